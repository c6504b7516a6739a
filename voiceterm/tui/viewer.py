"""The timeline of a recorded session, read-only, with its sound (``voiceterm view``).

In the timeline, ``u`` plays what the microphone heard in the selected turn (the
user's speech, before echo cancellation) and ``a`` what the speaker played for
its answer, both through the default speaker; ``s`` stops the sound.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.widgets import Static

from voiceterm.errors import VoicetermError
from voiceterm.timeline import Timeline, Turn
from voiceterm.tui.screens.timeline_screen import TimelineScreen

if TYPE_CHECKING:
    from collections.abc import Iterator

    from voiceterm.bus import Message
    from voiceterm.recording.reader import Recording

_BEFORE_SPEECH_S = 0.3  # the recording's pre-roll: the first syllable, as the VAD had it
_AFTER_SPEECH_S = 0.2


def user_span(turn: Turn) -> tuple[float, float] | None:
    """Where the user's speech of ``turn`` lies on the session's clock."""
    end = turn.marks.get("speech_end")
    if end is None:
        return None
    vad = turn.lane_spans("vad")
    start = min((s.start for s in vad), default=turn.started_at)
    return start - _BEFORE_SPEECH_S, end + _AFTER_SPEECH_S


def answer_span(turn: Turn) -> tuple[float, float] | None:
    """Where the speaker played the answer of ``turn``."""
    start = turn.marks.get("playback_start")
    if start is None:
        return None
    played = turn.lane_spans("playback")
    end = turn.marks.get("playback_stopped") or max((s.end for s in played), default=start + 1)
    return start, end


class RecordingTimelineScreen(TimelineScreen):
    """The timeline screen, with keys to hear the selected turn."""

    # Added to the timeline screen's keys (exports, tab); escape quits the viewer.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.quit", "Quit"),
        Binding("u", "play_user", "Play user"),
        Binding("a", "play_answer", "Play answer"),
        Binding("s", "stop_sound", "Stop sound"),
    ]

    def __init__(
        self,
        timeline: Timeline,
        export_dir: Path,
        recording: Recording | None,
        *,
        batches: Iterator[list[Message]] | None = None,
    ) -> None:
        super().__init__(timeline, export_dir)
        self.recording = recording
        self.played: list[tuple[str, int]] = []
        """What was sent to the speaker: (``user``/``answer``, samples)."""
        self._batches = batches
        self.loaded = batches is None
        """Whether every turn of the recording is on the timeline."""

    def on_mount(self) -> None:
        if self._batches is not None:
            # After TimelineScreen's own on_mount, which says that there are no turns.
            self.call_later(self._start_reading, self._batches)

    def _start_reading(self, batches: Iterator[list[Message]]) -> None:
        self.query_one("#headline", Static).update("Reading the recording ...")
        self._read(batches)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _read(self, batches: Iterator[list[Message]]) -> None:
        # Parsing runs here; the timeline is only touched on the app's thread.
        try:
            for batch in batches:
                self.app.call_from_thread(self._add, batch)
        except VoicetermError as error:
            self.app.call_from_thread(
                self.notify, error.message, title=error.title, severity="error"
            )
        self.app.call_from_thread(self._done)

    def _add(self, batch: list[Message]) -> None:
        for message in batch:
            self.timeline.record(message)
        self.refresh_data()

    def _done(self) -> None:
        self.loaded = True
        if self.selected_turn is None:
            self.query_one("#headline", Static).update("This recording holds no turns.")
        else:
            self.query_one("#waterfall").focus()

    def action_play_user(self) -> None:
        self._play("user", 0, user_span)

    def action_play_answer(self) -> None:
        self._play("answer", 1, answer_span)

    def action_stop_sound(self) -> None:
        try:
            import sounddevice

            sounddevice.stop()
        except Exception:  # noqa: BLE001 - nothing playing, or no sound library: fine
            return

    def _play(self, what: str, channel: int, where: Any) -> None:
        turn = self.selected_turn
        if self.recording is None:
            self.notify("A trace holds no sound; open the recording's folder.", severity="warning")
            return
        if turn is None:
            return
        span = where(turn)
        if span is None:
            self.notify(f"Turn {turn.number} has no {what} audio.", severity="warning")
            return
        try:
            clip = self.recording.clip(span[0], span[1], channel)
        except VoicetermError as error:
            self.notify(error.message, title=error.title, severity="error")
            return
        self.played.append((what, len(clip)))
        if not len(clip):
            self.notify(f"Turn {turn.number}: no {what} audio was recorded.", severity="warning")
            return
        try:
            import sounddevice

            sounddevice.stop()
            sounddevice.play(clip, 16000)
        except Exception as error:  # noqa: BLE001 - PortAudio says why in its message
            self.notify(f"Cannot play the sound: {error}", title="Speaker", severity="error")


class RecordingViewer(App[None]):
    """A recorded session's timeline on its own."""

    CSS_PATH = "app.tcss"

    def __init__(
        self,
        timeline: Timeline,
        recording: Recording | None,
        *,
        title: str = "",
        export_dir: Path | None = None,
        batches: Iterator[list[Message]] | None = None,
    ) -> None:
        """``batches``: the recording's messages still to read into ``timeline``; they are
        read in a thread while the screen shows the turns read so far."""
        super().__init__()
        self.timeline = timeline
        self.recording = recording
        self.title = f"voiceterm view: {title} (read-only)"
        self.export_dir = export_dir or Path.cwd()
        self._batches = batches

    def on_mount(self) -> None:
        self.push_screen(
            RecordingTimelineScreen(
                self.timeline, self.export_dir, self.recording, batches=self._batches
            )
        )
