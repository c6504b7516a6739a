"""The timeline screen: pick a turn, see its waterfall, pick a chunk, read it.

Left, the turns (newest last) with their voice-to-voice time; right, the chosen
turn's headline figures, its waterfall and the selected chunk's content with
absolute and relative timestamps. ``e`` writes the Chrome trace (Perfetto),
``m`` the conversation as Markdown.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from voiceterm.timeline import (
    HEADLINES,
    LANE_TITLES,
    Timeline,
    Turn,
    format_seconds,
    format_wall,
)
from voiceterm.tui.session_files import MARKDOWN, TRACE, export
from voiceterm.tui.widgets.waterfall import Chunk, Waterfall


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def turn_option_prompt(turn: Turn, timeline: Timeline) -> Text:
    """Two lines for the turn list: number, time and voice-to-voice; the user's words."""
    headline = turn.headline()
    v2v = headline["voice_to_voice"]
    figure = format_seconds(v2v) if v2v is not None else turn.source
    prompt = Text()
    prompt.append(f"#{turn.number} ", style="bold")
    prompt.append(format_wall(timeline.to_wall(turn.started_at))[:8], style="dim")
    prompt.append(f"  {figure}", style="bold green" if v2v is not None else "dim")
    if turn.interrupted:
        prompt.append("  cut", style="yellow")
    said = turn.user_text or turn.user_partial or turn.agent_text or turn.wake or "…"
    prompt.append("\n" + _short(said, 28), style="italic")
    return prompt


def headline_text(turn: Turn, timeline: Timeline) -> Text:
    """The turn's title line, its headline figures, and both sides' words."""
    text = Text()
    text.append(f"Turn {turn.number}", style="bold")
    started = format_wall(timeline.to_wall(turn.started_at))
    text.append(f" · {turn.source} · {started}", style="dim")
    rate = turn.tokens_per_second()
    if rate is not None:
        text.append(f" · LLM {rate:.0f} tok/s", style="dim")
    if turn.interrupted:
        text.append(" · cut off", style="yellow")
    text.append("\n")
    figures = turn.headline()
    for index, (key, label) in enumerate(HEADLINES):
        if index:
            text.append("   ")
        text.append(f"{label} ", style="dim")
        value = figures[key]
        text.append(format_seconds(value), style="bold green" if value is not None else "dim")
    text.append("\n")
    text.append("You ", style="bold cyan")
    text.append(_short(turn.user_text or turn.user_partial, 200))
    text.append("\nvoiceterm ", style="bold magenta")
    played, cut = turn.cut_off_text()
    text.append(_short(played, 200))
    if cut.strip():
        text.append(" " + _short(cut, 80), style="dim strike")
    return text


def chunk_text(turn: Turn, chunk: Chunk, timeline: Timeline, position: tuple[int, int]) -> Text:
    """What the selected chunk holds and when it happened, absolute and relative."""
    index, count = position
    anchor = turn.anchor
    text = Text()
    if chunk.is_mark:
        text.append(f"mark {chunk.content}", style="bold")
        text.append(f"   {index + 1} of {count}\n", style="dim")
        text.append("at    ", style="dim")
        text.append(format_wall(timeline.to_wall(chunk.start)))
        text.append(f"  ({_relative(chunk.start - anchor)} from {zero_of(turn)})", style="dim")
        return text
    text.append(LANE_TITLES.get(chunk.lane, chunk.lane), style="bold")
    text.append(f"   chunk {index + 1} of {count}   ", style="dim")
    text.append(format_seconds(chunk.duration), style="bold")
    if chunk.derived:
        text.append("   (inferred from events)", style="dim italic")
    text.append("\n")
    text.append(repr(chunk.content) if chunk.content.strip() != chunk.content else chunk.content)
    for label, at in (("start", chunk.start), ("end  ", chunk.end)):
        text.append(f"\n{label} ", style="dim")
        text.append(format_wall(timeline.to_wall(at)))
        note = f" from {zero_of(turn)}" if label == "start" else ""
        text.append(f"  ({_relative(at - anchor)}{note})", style="dim")
    return text


def zero_of(turn: Turn) -> str:
    """What time zero of a turn's axis is (see ``Turn.anchor``)."""
    return "the end of speech" if "speech_end" in turn.marks else "the message"


def _relative(seconds: float) -> str:
    return f"{seconds * 1000:+.0f} ms"


class TimelineScreen(Screen[None]):
    """Every turn's chunks on one time axis, with exports."""

    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("e", "export_trace", "Export trace"),
        Binding("m", "export_markdown", "Export Markdown"),
        Binding("tab", "focus_next", "Turns/chunks", show=False),
    ]

    def __init__(self, timeline: Timeline, export_dir: Path) -> None:
        super().__init__()
        self.timeline = timeline
        self.export_dir = export_dir
        self._numbers: list[int] = []
        self._revisions: dict[int, int] = {}

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield OptionList(id="turn-list")
            with Vertical(id="turn-pane"):
                yield Static(id="headline")
                yield Waterfall(id="waterfall")
                yield Static(id="chunk-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#turn-list", OptionList).border_title = "Turns"
        self.refresh_data()
        turns = self.query_one("#turn-list", OptionList)
        if turns.option_count:
            turns.highlighted = turns.option_count - 1
            self.query_one("#waterfall", Waterfall).focus()
        else:
            self.query_one("#headline", Static).update("No turns yet: speak or type a message.")

    # --- data -------------------------------------------------------------------------

    @property
    def selected_turn(self) -> Turn | None:
        option = self.query_one("#turn-list", OptionList).highlighted_option
        if option is None or option.id is None:
            return None
        return self.timeline.turn(int(option.id))

    def refresh_data(self) -> None:
        """Bring the list and the chosen turn up to date with the timeline."""
        turns = [t for t in self.timeline.turns if not t.is_empty]
        option_list = self.query_one("#turn-list", OptionList)
        numbers = [t.number for t in turns]
        if numbers != self._numbers:
            chosen = self.selected_turn
            follow = chosen is None or (self._numbers and chosen.number == self._numbers[-1])
            option_list.set_options(
                Option(turn_option_prompt(t, self.timeline), id=str(t.number)) for t in turns
            )
            self._numbers = numbers
            if turns:
                target = len(turns) - 1 if follow or chosen is None else None
                if target is None and chosen is not None and chosen.number in numbers:
                    target = numbers.index(chosen.number)
                option_list.highlighted = target if target is not None else len(turns) - 1
        else:
            for turn in turns:
                if self._revisions.get(turn.number) != turn.revision:
                    option_list.replace_option_prompt(
                        str(turn.number), turn_option_prompt(turn, self.timeline)
                    )
        self._revisions = {t.number: t.revision for t in turns}
        self._show(self.selected_turn)

    def _show(self, turn: Turn | None) -> None:
        if turn is None:
            return
        self.query_one("#headline", Static).update(headline_text(turn, self.timeline))
        waterfall = self.query_one("#waterfall", Waterfall)
        waterfall.border_title = f"Chunks (time 0 = {zero_of(turn).removeprefix('the ')})"
        waterfall.show_turn(turn)
        if waterfall.selected is None:
            self.query_one("#chunk-detail", Static).update(
                Text("Select a chunk with the arrow keys or the mouse.", style="dim")
            )

    @on(OptionList.OptionHighlighted, "#turn-list")
    def _turn_highlighted(self) -> None:
        self._show(self.selected_turn)

    @on(OptionList.OptionSelected, "#turn-list")
    def _turn_chosen(self) -> None:
        self.query_one("#waterfall", Waterfall).focus()

    @on(Waterfall.ChunkSelected)
    def _chunk_selected(self, message: Waterfall.ChunkSelected) -> None:
        waterfall = message.waterfall
        if waterfall.selection is None:
            return
        row, index = waterfall.selection
        count = len(waterfall.rows[row][1])
        self.query_one("#chunk-detail", Static).update(
            chunk_text(message.turn, message.chunk, self.timeline, (index, count))
        )

    # --- exports ------------------------------------------------------------------------

    def action_export_trace(self) -> None:
        export(TRACE, self.timeline, self.export_dir, self.notify)

    def action_export_markdown(self) -> None:
        export(MARKDOWN, self.timeline, self.export_dir, self.notify)
