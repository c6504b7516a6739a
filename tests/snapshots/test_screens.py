"""Snapshot tests of the main screens with a scripted, frozen-clock agent.

Update after an intended change with ``pytest tests/snapshots --snapshot-update``
and look at the SVGs in ``__snapshots__`` before committing them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import FakeAgent, wait_for
from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.feed import MicLevel
from voiceterm.tui.widgets.waterfall import Waterfall

pytestmark = pytest.mark.tui

SIZE = (110, 32)
SnapCompare = Callable[..., bool]


async def a_conversation(pilot: Pilot[None], agent: FakeAgent) -> None:
    """A spoken question with a tool, a story cut off by a barge-in, a typed message."""
    app = pilot.app
    assert isinstance(app, VoicetermApp)
    await wait_for(pilot, lambda: app.activity == "listening")
    await agent.say("What time is it?")
    await agent.say("Tell me a story", cut_after_s=2.0)
    await agent.submit_text("hello there")
    await wait_for(pilot, lambda: app.agent.timeline.version == app._shown_version)
    app.post_message(MicLevel(-31.0, True))


def test_main_screen(snap_compare: SnapCompare) -> None:
    agent = FakeAgent()

    async def run_before(pilot: Pilot[None]) -> None:
        await a_conversation(pilot, agent)

    assert snap_compare(VoicetermApp(agent), terminal_size=SIZE, run_before=run_before)


def test_main_screen_while_models_load(snap_compare: SnapCompare) -> None:
    agent = FakeAgent(hold_start=True)

    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, VoicetermApp)
        await wait_for(pilot, lambda: "start" in agent.calls)
        await pilot.pause(0.1)

    assert snap_compare(VoicetermApp(agent), terminal_size=SIZE, run_before=run_before)


def test_timeline_screen_with_a_chunk_selected(snap_compare: SnapCompare) -> None:
    agent = FakeAgent()

    async def run_before(pilot: Pilot[None]) -> None:
        await a_conversation(pilot, agent)
        await pilot.press("ctrl+t")
        await pilot.press("shift+tab", "up", "up", "enter")  # turn 1, then its chunks
        await pilot.press("down", "down", "right", "right")
        app = pilot.app
        await wait_for(
            pilot, lambda: getattr(app.screen.query_one(Waterfall).selected, "lane", "") == "llm"
        )

    assert snap_compare(VoicetermApp(agent), terminal_size=SIZE, run_before=run_before)
