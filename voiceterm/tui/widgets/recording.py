"""The status line's "● REC" while the session is being recorded."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class RecordingBadge(Static):
    """Shows "● REC" while recording; takes no room otherwise."""

    recording: reactive[bool] = reactive(False)

    def render(self) -> Text:
        return Text("● REC", style="bold red") if self.recording else Text("")

    def watch_recording(self, recording: bool) -> None:
        self.display = recording
