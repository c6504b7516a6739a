"""A fake agent for the TUI tests, and helpers to read what is on the screen.

``FakeAgent`` is the scripted demo agent (real ``Bus``, real ``Timeline``, the
same events the pipeline publishes) on a frozen clock, plus switches to make
start-up slow or fail and a record of every call the app makes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.style import Style
from textual.app import App
from textual.pilot import Pilot

from voiceterm.errors import VoicetermError
from voiceterm.events import AgentError, StageStatus
from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.demo import DESCRIPTIONS, STAGES, ScriptedAgent

START = 1000.0
"""The frozen monotonic clock of the fake agent."""
CLOCK_OFFSET = 1_767_268_800.0 - START
"""Monotonic START is 2026-01-01 12:00:00 UTC."""
SIZE = (110, 32)


class FakeAgent(ScriptedAgent):
    """A scripted agent for tests.

    Args:
        hold_start: ``start()`` waits for ``release_start`` before models are "ready".
        failed_stage: this stage reports ``failed`` during start-up.
        start_error: ``start()`` raises this after the stages reported.
    """

    def __init__(
        self,
        *,
        hold_start: bool = False,
        failed_stage: str | None = None,
        start_error: VoicetermError | None = None,
        level_hz: float = 0.0,
    ) -> None:
        super().__init__(clock=lambda: START, clock_offset=CLOCK_OFFSET, level_hz=level_hz)
        self.release_start = asyncio.Event() if hold_start else None
        self.failed_stage = failed_stage
        self.start_error = start_error

    async def start(self) -> None:
        self.calls.append("start")
        await self.bus.start()
        for stage in STAGES:
            await self.publish(
                StageStatus(stage=stage, state="loading", detail=DESCRIPTIONS[stage])
            )
        if self.release_start is not None:
            await self.release_start.wait()
        for stage in STAGES:
            if stage == self.failed_stage:
                detail = f"No {stage} found."
                await self.publish(StageStatus(stage=stage, state="failed", detail=detail))
            else:
                ready = StageStatus(stage=stage, state="ready", detail=DESCRIPTIONS[stage])
                await self.publish(ready)
        if self.start_error is not None:
            raise self.start_error
        if self.level_hz:
            self._spawn(self._levels(), "fake mic levels")

    async def stop(self) -> None:
        self.calls.append("stop")
        await super().stop()

    async def fail(self, error: str, source: str = "llm") -> None:
        """Publish an ``AgentError`` as a crashing stage would."""
        await self.publish(AgentError(error=error, source=source))


@pytest.fixture(autouse=True)
def utc(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Wall-clock times on screen in UTC, whatever the machine's zone; logs in a temp dir."""
    monkeypatch.setenv("TZ", "UTC")
    # The app logs to the user's log folder: keep that in a temporary one.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def app(agent: FakeAgent, tmp_path: Path) -> VoicetermApp:
    return VoicetermApp(agent, export_dir=tmp_path)


async def wait_for(
    pilot: Pilot[None], condition: Callable[[], object], limit_s: float = 5.0
) -> None:
    """Let the app run until ``condition()`` holds (redraws are throttled to 20 Hz)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the app did not get there in time")
        await pilot.pause(0.02)


def screen_text(app: App[None]) -> str:
    """Everything on the screen as plain text, one line per row (no-break spaces as spaces)."""
    lines = (strip.text for strip in app.screen._compositor.render_strips())
    return "\n".join(lines).replace("\u00a0", " ")


def styles_of(app: App[None], needle: str) -> list[Style]:
    """The styles of every on-screen segment whose text contains ``needle``."""
    found: list[Style] = []
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            if needle in segment.text and segment.style is not None:
                found.append(segment.style)
    return found
