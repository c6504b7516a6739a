"""``voiceterm view``: a recording's (or a Chrome trace's) timeline, read-only, in the TUI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from voiceterm.recording.format import RecordingError
from voiceterm.recording.reader import Recording

if TYPE_CHECKING:
    from voiceterm.timeline import Timeline


def load_timeline(path: Path) -> tuple[Timeline, Recording | None]:
    """The timeline at ``path`` (a recording's folder or a trace file) and the recording.

    Raises:
        RecordingError: neither a recording nor a voiceterm trace.
    """
    if path.is_dir():
        recording = Recording.open(path)
        return recording.timeline(), recording
    from voiceterm.timeline_export import from_chrome_trace

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordingError(f"{path} does not exist.", hint="Give a recording's folder.") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise RecordingError(
            f"{path} is neither a recording's folder nor a voiceterm trace ({exc}).",
            hint="Give a folder made with --record, or a trace written with --trace.",
        ) from exc
    try:
        if not isinstance(document, dict):
            raise ValueError("not an object")
        return from_chrome_trace(document), None
    except (ValueError, TypeError, KeyError) as exc:
        raise RecordingError(
            f"{path} is not a voiceterm trace ({exc}).",
            hint="Give a folder made with --record, or a trace written with --trace.",
        ) from exc


def run_view(path: Path) -> int:
    """Open the timeline screen on ``path`` until the user quits.

    A recording's events are read while the screen is already up, a batch at a
    time (an hour holds some 100,000): the turns fill in as they are read.
    """
    if path.is_dir():
        from voiceterm.recording.reader import TIMELINE_EVENTS

        recording = Recording.open(path)
        timeline = recording.empty_timeline()
        batches = recording.message_batches(TIMELINE_EVENTS)
    else:
        timeline, _none = load_timeline(path)
        recording, batches = None, None
    from voiceterm.tui.viewer import RecordingViewer

    RecordingViewer(timeline, recording, title=str(path), batches=batches).run()
    return 0
