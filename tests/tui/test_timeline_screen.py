"""The timeline screen: a turn's waterfall, its headline figures, chunks, exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.tui.conftest import SIZE, FakeAgent, screen_text, wait_for
from voiceterm.timeline import format_seconds
from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.screens.timeline_screen import TimelineScreen
from voiceterm.tui.widgets.waterfall import LABEL_WIDTH, Waterfall

pytestmark = pytest.mark.tui


def lane_row(app: VoicetermApp, title: str) -> str:
    return next(line for line in screen_text(app).splitlines() if f"│ {title}" in line)


async def open_timeline_after_a_turn(app: VoicetermApp, agent: FakeAgent) -> TimelineScreen:
    await agent.say("What time is it?")
    await app.run_action("open_timeline")
    screen = app.screen
    assert isinstance(screen, TimelineScreen)
    return screen


async def test_a_turn_shows_as_bars_per_lane_with_its_headline_figures(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await open_timeline_after_a_turn(app, agent)
        await pilot.pause()
        text = screen_text(app)
        turn = agent.timeline.turns[0]
        figures = turn.headline()
        assert f"voice→voice {format_seconds(figures['voice_to_voice'])}" in text
        assert f"first token {format_seconds(figures['first_token'])}" in text
        assert "Turn 1 · voice · 12:00:00.000" in text
        assert "#1 12:00:00" in text and "What time is it?" in text
        for title in ("speech/VAD", "STT", "LLM tokens", "sentences", "TTS synth", "playback"):
            assert "█" in lane_row(app, title), title
        assert "▼" in lane_row(app, "marks")


async def test_arrow_keys_select_a_chunk_and_show_its_content_and_times(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_timeline_after_a_turn(app, agent)
        # The screen mounts its widgets and hands focus on over a few refreshes: a busy
        # machine takes more than one to get there.
        await wait_for(pilot, lambda: any(w is app.focused for w in screen.query(Waterfall)))
        assert app.focused is screen.query_one(Waterfall)
        # Starts on the user's speech; down twice reaches the LLM lane (the tool call
        # comes first), right goes to the first token.
        await pilot.press("down", "down")
        await wait_for(pilot, lambda: "tool clock" in screen_text(app))
        await pilot.press("right")
        await wait_for(pilot, lambda: "chunk 2 of" in screen_text(app))
        text = screen_text(app)
        assert "LLM tokens   chunk 2 of 10   150 ms" in text
        assert re.search(r"│ It {20,}│", text)  # the token itself, alone on its line
        assert "start 12:00:01.330  (+370 ms from the end of speech)" in text
        assert "end   12:00:01.480  (+520 ms)" in text


async def test_clicking_a_bar_selects_that_chunk(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await open_timeline_after_a_turn(app, agent)
        await pilot.pause()
        waterfall = app.screen.query_one(Waterfall)
        playback_row = 1 + 2 + 5  # border, axis rows, sixth lane
        x = 1 + 1 + LABEL_WIDTH + waterfall.size.width - LABEL_WIDTH - 3
        await pilot.click(Waterfall, offset=(x, playback_row))
        await pilot.pause()
        chosen = waterfall.selected
        assert chosen is not None and chosen.lane == "playback"
        assert chosen.content in screen_text(app)


async def test_another_turn_can_be_chosen_and_new_turns_appear_live(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await open_timeline_after_a_turn(app, agent)
        await agent.submit_text("and now?")
        await wait_for(pilot, lambda: "Turn 2 · typed" in screen_text(app))
        await pilot.press("shift+tab")  # to the turn list
        await pilot.press("up")
        await wait_for(pilot, lambda: "Turn 1 · voice" in screen_text(app))


def read_exports(folder: Path) -> tuple[Path, dict[str, Any], Path, str]:
    [trace_file] = folder.glob("*.trace.json")
    [markdown_file] = folder.glob("*.md")
    return trace_file, json.loads(trace_file.read_text()), markdown_file, markdown_file.read_text()


async def test_export_keys_write_a_chrome_trace_and_markdown(
    app: VoicetermApp, agent: FakeAgent, tmp_path: Path
) -> None:
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_timeline_after_a_turn(app, agent)
        await pilot.press("e")
        await pilot.press("m")
        await wait_for(pilot, lambda: len(app._notifications) == 2)
        notes = {note.title: note.message for note in app._notifications}
    trace_file, trace, markdown_file, markdown = read_exports(tmp_path)
    assert str(trace_file) in notes["Chrome trace written"]
    assert str(markdown_file) in notes["Conversation written"]
    lanes = {e["cat"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert {"turn", "vad", "stt", "llm", "sentence", "tts", "playback"} <= lanes
    assert "**You:** What time is it?" in markdown


async def test_an_export_that_cannot_be_written_says_why(agent: FakeAgent, tmp_path: Path) -> None:
    app = VoicetermApp(agent, export_dir=tmp_path / "missing" / "folder.json")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await open_timeline_after_a_turn(app, agent)
        await pilot.press("e")
        await wait_for(pilot, lambda: len(app._notifications) == 1)
        [note] = list(app._notifications)
        assert note.severity == "error" and note.title == "Export failed"
        assert "folder you can write to" in note.message


async def test_a_redraw_before_the_timeline_screen_has_mounted_waits_for_it(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    # The timeline changed just as the screen was opened (a token, a busy machine):
    # the redraw must not reach into the screen's widgets before they exist.
    async with app.run_test(size=SIZE) as pilot:
        await agent.say("What time is it?")
        app.action_open_timeline()
        app._redraws._redraw()
        await wait_for(pilot, lambda: "Turn 1 · voice" in screen_text(app))
        assert app.return_code is None and app.is_running
