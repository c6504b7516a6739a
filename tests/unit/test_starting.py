"""Starting an agent: the status lines while the engines load, a message typed
meanwhile answered once they are in, and a load that fails failing it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.pipeline_fakes import QuietMic, SimulatedSpeaker, scripted_engines, until
from voiceterm.bus import Message
from voiceterm.config import Config
from voiceterm.errors import ConfigError, ModelError
from voiceterm.events import StageStatus, UserTranscriptionReceived
from voiceterm.pipeline import starting
from voiceterm.pipeline.loading import Engines
from voiceterm.pipeline.starting import Devices, StartingAgent


class SlowLoading:
    """Engines that load once released: ``loading`` said at once, then ``ready`` or a failure."""

    def __init__(self, error: ModelError | None = None) -> None:
        self.release = asyncio.Event()
        self.error = error

    async def __call__(
        self, config: Config, engines: Engines | None, publish: Callable[[StageStatus], None]
    ) -> Engines:
        publish(StageStatus(stage="llm", state="loading", detail="a slow model"))
        await self.release.wait()
        if self.error is not None:
            publish(StageStatus(stage="llm", state="failed", detail=self.error.message))
            raise self.error
        publish(StageStatus(stage="llm", state="ready", detail="a slow model"))
        return scripted_engines()


def starting_agent(monkeypatch: pytest.MonkeyPatch, loading: SlowLoading) -> StartingAgent:
    monkeypatch.setattr(starting, "engines_for", loading)
    return StartingAgent(Config(), Devices(QuietMic(), SimulatedSpeaker(), "quiet mic", ""))


def heard(messages: list[Message], kind: type) -> list:  # type: ignore[type-arg]
    return [m.event for m in messages if isinstance(m.event, kind)]


async def test_a_message_typed_while_loading_is_answered_once_the_agent_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loading = SlowLoading()
    session = starting_agent(monkeypatch, loading)
    messages: list[Message] = []
    session.bus.tap(messages.append)  # as the app's feed, before anything loads
    start = asyncio.create_task(session.start())
    try:
        await until(lambda: heard(messages, StageStatus))
        assert heard(messages, StageStatus)[0].state == "loading"
        assert session.agent is None and session.describe() == {"mic": "quiet mic"}
        typed = asyncio.create_task(session.submit_text("What time is it?"))
        await asyncio.sleep(0.05)
        assert not typed.done() and not heard(messages, UserTranscriptionReceived)
        loading.release.set()
        await start
        await typed
        [said] = heard(messages, UserTranscriptionReceived)
        assert said.content == "What time is it?"
        assert session.agent is not None and session.agent.bus is session.bus
        await until(lambda: session.timeline.turns and session.timeline.turns[0].agent_text)
        assert session.describe()["llm"] == "scripted"
    finally:
        await session.stop()


async def test_a_load_that_fails_fails_the_message_typed_meanwhile_and_stops_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loading = SlowLoading(ModelError("No chat model found."))
    session = starting_agent(monkeypatch, loading)
    messages: list[Message] = []
    session.bus.tap(messages.append)
    start = asyncio.create_task(session.start())
    await until(lambda: heard(messages, StageStatus))
    typed = asyncio.create_task(session.submit_text("Hello?"))
    loading.release.set()
    with pytest.raises(ModelError):
        await start
    with pytest.raises(ModelError, match="No chat model found"):
        await typed
    assert [s.state for s in heard(messages, StageStatus)] == ["loading", "failed"]
    assert session.agent is None
    await session.stop()
    assert not session.bus.running


async def test_engines_given_are_said_ready_on_the_bus() -> None:
    devices = Devices(QuietMic(), SimulatedSpeaker(), "", "")
    session = StartingAgent(Config(), devices, engines=scripted_engines())
    messages: list[Message] = []
    session.bus.tap(messages.append)
    try:
        await session.start()
        ready = {s.stage for s in heard(messages, StageStatus) if s.state == "ready"}
        assert {"stt", "llm", "tts"} <= ready
    finally:
        await session.stop()


def test_a_setting_that_cannot_work_is_refused_before_anything_loads() -> None:
    config = Config()
    config.turn.detector = "magic"
    with pytest.raises(ConfigError, match="turn.detector"):
        StartingAgent(config, Devices(QuietMic(), SimulatedSpeaker(), "", ""))
