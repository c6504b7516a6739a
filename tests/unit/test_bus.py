"""The bus: messages, delivery to every bridge, taps, synchronous publishing, stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

import voiceterm
from voiceterm.bridge import Bridge
from voiceterm.bus import Bus, Message
from voiceterm.events import AgentResponse, Event, UserStartedSpeaking
from voiceterm.testing import FakeLLMClient, RouteHarness, word_chunks


@dataclass(slots=True)
class Ping(Event):
    n: int = 0


def recorder(into: list[int]) -> Callable[[Message], None]:
    """A step that appends each event's ``n`` to ``into``."""

    def record(message: Message) -> None:
        into.append(message.event.n)

    return record


def test_public_names_import_from_the_package() -> None:
    assert voiceterm.Bus is Bus
    assert voiceterm.Message is Message
    assert voiceterm.Bridge is Bridge


def test_messages_have_increasing_ids_and_monotonic_timestamps() -> None:
    first = Message("a", Ping())
    second = Message("b", Ping())
    assert second.id > first.id
    assert second.timestamp >= first.timestamp
    explicit = Message("c", None, id=7, timestamp=1.5)
    assert (explicit.source, explicit.event, explicit.id, explicit.timestamp) == ("c", None, 7, 1.5)
    assert explicit == Message("c", None, 7, 1.5)


async def test_every_registered_bridge_sees_every_message() -> None:
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    bus = Bus()
    for name in seen:
        bridge = Bridge(name)
        bridge.on(Ping).map(recorder(seen[name]))
        bus.register_bridge(bridge)
        bus.register_bridge(bridge)  # registering twice changes nothing
    assert len(bus.bridges) == 3
    async with RouteHarness(bus=bus) as harness:
        for n in range(3):
            await bus.broadcast(Message("user", Ping(n=n)))
        await harness.settle()
    assert seen == {"a": [0, 1, 2], "b": [0, 1, 2], "c": [0, 1, 2]}


async def test_broadcast_before_start_or_after_stop_is_dropped() -> None:
    seen: list[int] = []
    bus = Bus()
    bridge = Bridge("a")
    bridge.on(Ping).map(lambda m: seen.append(m.event.n))
    bus.register_bridge(bridge)
    await bus.broadcast(Message("user", Ping(n=1)))
    await bus.start()
    assert bus.running
    await bus.broadcast(Message("user", Ping(n=2)))
    await asyncio.sleep(0)
    await bus.stop()
    await bus.broadcast(Message("user", Ping(n=3)))
    assert seen == [2]
    assert not bus.running


async def test_taps_see_every_message_in_order_and_a_failing_tap_is_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = Bus()
    got: list[int] = []

    broken_error = RuntimeError("tap bug")

    def broken(message: Message) -> None:
        raise broken_error

    remove_broken = bus.tap(broken)
    remove = bus.tap(lambda m: got.append(m.event.n))
    await bus.start()
    with caplog.at_level(logging.ERROR, logger="voiceterm.bus"):
        await bus.broadcast(Message("user", Ping(n=1)))
    remove_broken()
    remove_broken()  # removing twice is harmless
    await bus.broadcast(Message("user", Ping(n=2)))
    remove()
    await bus.broadcast(Message("user", Ping(n=3)))
    await bus.stop()
    assert got == [1, 2]
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [broken_error]


async def test_deliver_now_and_finish_delivery_serve_synchronous_publishers() -> None:
    release = asyncio.Event()
    seen: list[int] = []

    async def slow(message: Message) -> None:
        await release.wait()
        seen.append(message.event.n)

    bridge = Bridge("slow", queue_size=1)
    bridge.on(Ping).map(slow)
    async with RouteHarness(bridge) as harness:
        bus = harness.bus
        assert bus.deliver_now(Message("timer", Ping(n=0))) == -1
        await asyncio.sleep(0)  # ping 0 enters the step
        assert bus.deliver_now(Message("timer", Ping(n=1))) == -1
        stuck_message = Message("timer", Ping(n=2))
        token = bus.deliver_now(stuck_message)
        assert token >= 0
        finisher = asyncio.create_task(bus.finish_delivery(stuck_message, token))
        release.set()
        await finisher
        await harness.settle()
    assert seen == [0, 1, 2]


async def test_stop_cancels_everything_and_leaves_no_tasks_or_warnings() -> None:
    cleaned: list[str] = []
    hold = asyncio.Event()

    async def forever(message: Message) -> AsyncIterator[AgentResponse]:
        try:
            yield AgentResponse(content="first")
            await hold.wait()
            yield AgentResponse(content="never")
        finally:
            cleaned.append("generator")

    async def handler(message: Message) -> None:
        await hold.wait()

    async def stuck_step(message: Message) -> None:
        await hold.wait()

    llm = Bridge("llm")
    llm.on(Ping).interrupt_on(UserStartedSpeaking, handler=handler).stream(forever).broadcast()
    slow = Bridge("slow", queue_size=1)
    slow.on(AgentResponse).map(stuck_step)
    slow_pings = Bridge("slow pings", queue_size=1)
    slow_pings.on(Ping).map(stuck_step)
    bus = Bus()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with RouteHarness(llm, slow, slow_pings, bus=bus) as harness:
            await harness.send(Ping())
            await harness.wait_for(AgentResponse)
            await harness.send(UserStartedSpeaking())  # starts the async handler
            await harness.send(Ping())  # a second run, also stuck
            publisher = asyncio.create_task(harness.send(Ping()))  # waits for room
            await harness.wait_for(AgentResponse, count=2)
            assert not publisher.done()
        await publisher  # released by stop, not left hanging
        gc.collect()
        await asyncio.sleep(0)
    assert cleaned == ["generator", "generator"]
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert [str(w.message) for w in caught] == []


async def test_stop_from_inside_a_route_stops_everything() -> None:
    bus = Bus()
    after_stop: list[str] = []

    async def quit_step(message: Message) -> None:
        await bus.stop()
        after_stop.append("ran")  # never: the route is cancelled with the rest

    bridge = Bridge("quitter")
    bridge.on(Ping).map(quit_step)
    other = Bridge("other")
    other.on(Ping).map(lambda m: None)
    bus.register_bridge(bridge)
    bus.register_bridge(other)
    await bus.start()
    await bus.broadcast(Message("user", Ping()))
    await asyncio.sleep(0)
    await bus.stop()  # waits for the stop already under way
    assert not bus.running
    assert after_stop == []
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_bridge_registered_on_a_running_bus_starts_at_once() -> None:
    seen: list[int] = []
    bus = Bus()
    await bus.start()
    bridge = Bridge("late")
    bridge.on(Ping).map(lambda m: seen.append(m.event.n))
    bus.register_bridge(bridge)
    await bus.broadcast(Message("user", Ping(n=5)))
    await asyncio.sleep(0)
    await bus.stop()
    assert seen == [5]


# --- the shipped fakes and harness (voiceterm.testing) --------------------------------


async def test_fake_llm_streams_scripted_chunks_and_can_fail_or_be_cancelled() -> None:
    assert word_chunks("Hello there, you.") == ["Hello", " there,", " you."]
    client = FakeLLMClient(lambda messages: f"echo {messages}")
    assert [c.text async for c in client.generate_stream("hi")] == ["echo", " hi"]
    assert client.calls == ["hi"]

    failing = FakeLLMClient(["a", "b", "c"], fail_after=2, error=ValueError("boom"))
    got: list[str] = []
    with pytest.raises(ValueError, match="boom"):
        async for chunk in failing.generate_stream([]):
            got.append(chunk.text)
    assert got == ["a", "b"]

    slow = FakeLLMClient(["a", "b", "c"], delay=0.001)
    stream = slow.generate_stream([])
    assert (await stream.__anext__()).text == "a"
    stream.cancel()
    assert [c.text async for c in stream] == []
    closed = slow.generate_stream([])
    await closed.aclose()
    assert closed.closed and [c.text async for c in closed] == []


async def test_harness_waits_for_several_things_at_once_and_reports_timeouts() -> None:
    async with RouteHarness() as harness:
        first = asyncio.create_task(harness.wait_for(Ping, count=1))
        second = asyncio.create_task(harness.wait_for(Ping, count=2))
        await asyncio.sleep(0)
        await harness.send(Ping(n=1))
        await harness.send(Ping(n=2))
        assert [p.n for p in await first] == [1, 2]
        assert [p.n for p in await second] == [1, 2]
        with pytest.raises(TimeoutError, match="1 AgentResponse; last seen: Ping, Ping"):
            await harness.wait_for(AgentResponse, limit_s=0.01)
        assert harness.events(Ping, source="user") == harness.events(Ping)
        assert harness.text() == ""
