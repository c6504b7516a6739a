"""Recording in the app (Ctrl+R, "● REC") and viewing a recording (``voiceterm view``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA
from tests.tui.conftest import SIZE, FakeAgent, screen_text, wait_for
from voiceterm.recording.reader import TIMELINE_EVENTS, Recording
from voiceterm.recording.view import load_timeline
from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.viewer import RecordingTimelineScreen, RecordingViewer

pytestmark = pytest.mark.tui


class FakeRecording:
    """Stands in for ``RecordingControl``: start and stop without a pipeline."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.active = False
        self.on_change: object = None

    def toggle(self) -> Path:
        self.active = not self.active
        if callable(self.on_change):
            self.on_change(self.active)
        return self.folder


async def test_ctrl_r_starts_and_stops_recording_with_rec_in_the_status_line(
    agent: FakeAgent, tmp_path: Path
) -> None:
    agent.recording = FakeRecording(tmp_path / "session")  # type: ignore[attr-defined]
    app = VoicetermApp(agent, export_dir=tmp_path, log_path=tmp_path / "log")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "● REC" not in screen_text(app)
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "● REC" in screen_text(app))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "● REC" not in screen_text(app))


async def test_view_opens_a_recording_and_plays_the_turns_audio(tmp_path: Path) -> None:
    folder = DATA / "sessions" / "tool_call"
    timeline, recording = load_timeline(folder)
    app = RecordingViewer(timeline, recording, title=str(folder), export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RecordingTimelineScreen)
        text = screen_text(app)
        assert "What time is it?" in text and "7 times 8" in text
        await pilot.press("u")
        await pilot.press("a")
        await pilot.pause()
        # Two seconds of question and an answer at 16 kHz went to the speaker.
        assert [what for what, _ in screen.played] == ["user", "answer"]
        assert all(samples > 16000 for _, samples in screen.played)
        # The timeline screen's own keys work here too.
        assert "Export trace" in screen_text(app) and "Play user" in screen_text(app)
        await pilot.press("e")
        await wait_for(pilot, lambda: any(tmp_path.glob("*.trace.json")))
        await pilot.press("q")


async def test_view_reads_the_events_behind_the_screen_and_ends_on_the_newest_turn(
    tmp_path: Path,
) -> None:
    # As ``voiceterm view`` opens a recording: the screen is up before the events
    # are all read, and ends on the newest turn with every turn listed.
    folder = DATA / "sessions" / "barge_in_echo"
    whole, _recording = load_timeline(folder)
    recording = Recording.open(folder)
    timeline = recording.empty_timeline()
    batches = recording.message_batches(TIMELINE_EVENTS)
    app = RecordingViewer(timeline, recording, export_dir=tmp_path, batches=batches)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RecordingTimelineScreen)
        await wait_for(pilot, lambda: screen.loaded)
        await pilot.pause()
        numbers = [t.number for t in whole.turns if not t.is_empty]
        assert [t.number for t in timeline.turns if not t.is_empty] == numbers
        assert screen.selected_turn is not None and screen.selected_turn.number == numbers[-1]
        assert whole.turns[-1].user_text in screen_text(app)
        await pilot.press("q")
