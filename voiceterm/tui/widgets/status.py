"""The status line: what the agent is doing, the microphone meter, the listening
mode, and which models and devices are in use (with their loading progress)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

ACTIVITY_LABELS: dict[str, str] = {
    "starting": "starting",
    "listening": "listening",
    "hearing": "hearing you",
    "thinking": "thinking",
    "speaking": "speaking",
    "muted": "muted",
}


class ActivityIndicator(Static):
    """● listening / hearing you / thinking / speaking (colour set in app.tcss)."""

    activity: reactive[str] = reactive("starting")

    def render(self) -> Text:
        return Text(f"● {ACTIVITY_LABELS.get(self.activity, self.activity)}")

    def watch_activity(self, old: str, new: str) -> None:
        self.remove_class(f"-{old}")
        self.add_class(f"-{new}")


class MicMeter(Widget):
    """A microphone level bar with a VAD light; click it to mute or unmute.

    Levels arrive up to 50 times a second; the widget only redraws when what it
    shows changes (the number of lit cells, the VAD light), which in a quiet room
    is rarely.
    """

    CELLS = 12
    FLOOR_DB = -66.0
    CEILING_DB = -6.0

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lit = 0
        self._voiced = False
        self._muted = False

    def set_level(self, level_db: float, voiced: bool) -> None:
        span = self.CEILING_DB - self.FLOOR_DB
        fraction = (min(max(level_db, self.FLOOR_DB), self.CEILING_DB) - self.FLOOR_DB) / span
        lit = round(fraction * self.CELLS)
        if (lit, voiced) != (self._lit, self._voiced):
            self._lit, self._voiced = lit, voiced
            self.refresh()

    def set_muted(self, muted: bool) -> None:
        if muted != self._muted:
            self._muted = muted
            self._lit, self._voiced = 0, False
            self.refresh()

    @property
    def shown(self) -> tuple[int, bool, bool]:
        """(lit cells, VAD light, muted), as drawn."""
        return self._lit, self._voiced, self._muted

    def render(self) -> Text:
        text = Text("mic ", style="dim")
        if self._muted:
            text.append("muted".ljust(self.CELLS), style="bold red")
        else:
            for cell in range(self.CELLS):
                if cell < self._lit:
                    style = "green" if cell < 8 else "yellow" if cell < 10 else "red"
                    text.append("━", style=style)
                else:
                    text.append("─", style="dim")
        text.append("  VAD ", style="dim")
        text.append("●" if self._voiced else "○", style="bold green" if self._voiced else "dim")
        return text

    async def on_click(self, event: events.Click) -> None:
        await self.run_action("app.toggle_mute")


class ModeIndicator(Static):
    """The listening mode: always, the wake word (asleep, or the follow-up window counting
    down), or push-to-talk (and whether the talk key is down)."""

    def show(
        self,
        *,
        push_to_talk: bool,
        talking: bool,
        mode: str = "always",
        state: str = "on",
        seconds_left: float | None = None,
        phrase: str = "",
    ) -> None:
        if not push_to_talk and mode == "wake_word":
            self.update(wake_word_label(state, seconds_left, phrase))
        elif not push_to_talk:
            self.update("always listening")
        elif talking:
            self.update(Text("● talking — F4 to stop", style="bold green"))
        else:
            self.update("push-to-talk — F4 to talk")

    async def on_click(self, event: events.Click) -> None:
        await self.run_action("app.toggle_push_to_talk")


def wake_word_label(state: str, seconds_left: float | None, phrase: str) -> Text:
    """Asleep: what to say. Awake: that it listens, and for how long without the wake word."""
    phrase = phrase or "the wake word"
    if state == "open":
        left = f" {max(0, round(seconds_left or 0))} s" if seconds_left is not None else ""
        return Text(f"● listening{left} — no need to say {phrase}", style="bold green")
    if state == "answering":
        return Text("● listening — talk to interrupt", style="green")
    return Text(f'wake word — say "{phrase}"')


@dataclass(slots=True)
class StageState:
    state: str = "loading"
    detail: str = ""


STAGE_ORDER: tuple[str, ...] = ("stt", "llm", "tts", "turn", "vad", "mic", "speaker")
_STATE_STYLE = {"loading": "yellow", "ready": "", "failed": "bold red", "stopped": "dim"}
_STATE_MARK = {"loading": "…", "ready": "", "failed": " ✗", "stopped": " ■"}


class StageBadges(Static):
    """``stt Whisper tiny.en · llm SmolLM2 …`` with loading progress while it starts."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.stages: dict[str, StageState] = {}

    def set_stage(self, stage: str, state: str, detail: str = "") -> None:
        current = self.stages.setdefault(stage, StageState())
        current.state = state
        if detail:
            current.detail = detail
        self._redraw()

    def set_descriptions(self, descriptions: dict[str, str]) -> None:
        for stage, detail in descriptions.items():
            entry = self.stages.setdefault(stage, StageState(state="ready"))
            if detail and entry.state != "failed":
                entry.detail = detail
        self._redraw()

    @property
    def any_loading(self) -> bool:
        return any(s.state == "loading" for s in self.stages.values())

    def _redraw(self) -> None:
        text = Text()
        if self.any_loading:
            ready = sum(s.state == "ready" for s in self.stages.values())
            text.append(f"loading {ready}/{len(self.stages)}  ", style="bold yellow")
        order = [s for s in STAGE_ORDER if s in self.stages]
        order += sorted(set(self.stages) - set(STAGE_ORDER))
        for index, stage in enumerate(order):
            if index:
                text.append(" · ", style="dim")
            entry = self.stages[stage]
            text.append(f"{stage} ", style="dim")
            style = _STATE_STYLE.get(entry.state, "")
            text.append((entry.detail or entry.state) + _STATE_MARK.get(entry.state, ""), style)
        self.update(text)
