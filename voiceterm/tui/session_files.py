"""What the app writes on request: the session's recording and the timeline exports.

Each request ends in a notification saying where the file went, or why nothing
was written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voiceterm.errors import VoicetermError
from voiceterm.timeline import Timeline
from voiceterm.timeline_export import export_markdown, export_timeline
from voiceterm.tui.notices import Notices, Notify
from voiceterm.tui.protocol import AgentLike
from voiceterm.tui.widgets.recording import RecordingBadge


@dataclass(frozen=True, slots=True)
class Export:
    """One way to write the timeline to a file, and how its toast names it."""

    write: Callable[[Timeline, Path], Path]
    what: str
    note: str


TRACE = Export(export_timeline, "Chrome trace", "open it in ui.perfetto.dev")
MARKDOWN = Export(export_markdown, "Conversation", "Markdown with timings")


def export(kind: Export, timeline: Timeline, folder: Path, notify: Notify) -> None:
    """Write ``timeline`` into ``folder``; a toast says where it went, or why it did not."""
    try:
        path = kind.write(timeline, folder)
    except VoicetermError as error:
        notify(f"{error.message}\n{error.hint}", title=error.title, severity="error")
        return
    notify(f"{path}\n({kind.note})", title=f"{kind.what} written")


@dataclass(frozen=True, slots=True, eq=False)
class SessionFiles:
    """Recording the session and exporting its timeline, for the app's keys and commands.

    Attributes:
        agent: the session (its timeline, and its recording if it can record).
        export_dir: where the exports are written.
        notify: the app's ``notify``.
        notices: where refused requests are reported.
    """

    agent: AgentLike
    export_dir: Path
    notify: Notify
    notices: Notices

    def show_recording_on(self, badge: RecordingBadge) -> None:
        """Keep ``badge`` showing whether the session is being recorded."""
        recording = getattr(self.agent, "recording", None)
        if recording is None:
            return

        def changed(active: bool) -> None:
            badge.recording = active

        recording.on_change = changed
        badge.recording = recording.active

    def toggle_recording(self) -> None:
        """Start or stop recording the session."""
        recording = getattr(self.agent, "recording", None)
        if recording is None:
            self.notify("This session cannot be recorded.", severity="warning")
            return
        try:
            folder = recording.toggle()
        except VoicetermError as error:
            self.notices.error(error)
            return
        if recording.active:
            self.notify(f"{folder}", title="Recording the session")
        else:
            self.notify(f"{folder}\n(voiceterm view / replay it)", title="Recording saved")

    def export_trace(self) -> None:
        """The timeline as a Chrome trace (JSON for Perfetto)."""
        export(TRACE, self.agent.timeline, self.export_dir, self.notify)

    def export_markdown(self) -> None:
        """The conversation as Markdown, with timings."""
        export(MARKDOWN, self.agent.timeline, self.export_dir, self.notify)
