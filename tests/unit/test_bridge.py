"""Routes: every documented semantic of ``voiceterm.bridge``, on the real bus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from voiceterm.bridge import FAIRNESS_BUDGET, Bridge
from voiceterm.bus import Message
from voiceterm.events import (
    AgentError,
    AgentResponse,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    ControlEvent,
    Event,
    UserStartedSpeaking,
    UserStoppedSpeaking,
)
from voiceterm.testing import RouteHarness


@dataclass(slots=True)
class Ping(Event):
    n: int = 0
    tag: str = ""


@dataclass(slots=True)
class Pong(Event):
    n: int = 0


@dataclass(slots=True)
class Halt(ControlEvent):
    """A control event used as a trigger."""


def recorder(into: list[int]) -> Callable[[Message], None]:
    """A step that appends each event's ``n`` to ``into``."""

    def record(message: Message) -> None:
        into.append(message.event.n)

    return record


def pongs(harness: RouteHarness) -> list[int]:
    return [e.n for e in harness.events(Pong)]


def texts(harness: RouteHarness) -> list[str]:
    return [e.content for e in harness.events(AgentResponse)]


# --- map, filter, stream, broadcast ---------------------------------------------------


async def test_map_sync_and_async_values_flow_on_and_none_stops() -> None:
    bridge = Bridge("node")

    async def double(message: Message) -> Pong:
        await asyncio.sleep(0)
        return Pong(n=message.event.n * 2)

    def plus_one_unless_odd(message: Message) -> Pong | None:
        return None if message.event.n % 4 else Pong(n=message.event.n + 1)

    bridge.on(Ping).map(double).map(plus_one_unless_odd).broadcast()
    async with RouteHarness(bridge) as harness:
        for n in range(4):
            await harness.send(Ping(n=n))
        await harness.settle()
    # 0 -> 0 -> 1; 1 -> 2 -> dropped; 2 -> 4 -> 5; 3 -> 6 -> dropped
    assert pongs(harness) == [1, 5]


async def test_filter_accepts_sync_and_async_predicates() -> None:
    bridge = Bridge("node")

    async def is_small(message: Message) -> bool:
        return bool(message.event.n < 3)

    (
        bridge.on(Ping)
        .filter(lambda message: message.event.n % 2 == 0)
        .filter(is_small)
        .map(lambda message: Pong(n=message.event.n))
        .broadcast()
    )
    async with RouteHarness(bridge) as harness:
        for n in range(6):
            await harness.send(Ping(n=n))
        await harness.settle()
    assert pongs(harness) == [0, 2]


async def test_stream_accepts_async_generators_iterables_and_coroutines() -> None:
    async def agen(message: Message) -> AsyncIterator[Pong]:
        for i in range(2):
            yield Pong(n=i)

    def plain_list(message: Message) -> list[Pong]:
        return [Pong(n=10), Pong(n=11)]

    def sync_gen(message: Message) -> Iterator[Pong]:
        yield Pong(n=20)
        yield Pong(n=21)

    async def coroutine(message: Message) -> list[Pong]:
        await asyncio.sleep(0)
        return [Pong(n=30), Pong(n=31)]

    bridges = []
    for index, fn in enumerate([agen, plain_list, sync_gen, coroutine]):
        bridge = Bridge(f"node{index}")
        bridge.on(Ping, n=index).stream(fn).broadcast()
        bridges.append(bridge)
    async with RouteHarness(*bridges) as harness:
        for index in range(4):
            await harness.send(Ping(n=index))
            await harness.settle()
    assert pongs(harness) == [0, 1, 10, 11, 20, 21, 30, 31]


async def test_chained_stream_stages_flat_map_in_order_with_messages_from_the_node() -> None:
    seen_sources: list[str] = []

    async def words(message: Message) -> AsyncIterator[str]:
        for word in ["one", "two"]:
            await asyncio.sleep(0)
            yield word

    async def letters(message: Message) -> AsyncIterator[str]:
        seen_sources.append(message.source)
        for letter in message.event[:2]:
            yield letter

    async def shout(message: Message) -> AsyncIterator[AgentResponse]:
        yield AgentResponse(content=message.event.upper())

    bridge = Bridge("speaker")
    bridge.on(UserStoppedSpeaking).stream(words).stream(letters).stream(shout).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(UserStoppedSpeaking())
        await harness.settle()
    assert texts(harness) == ["O", "N", "T", "W"]
    assert seen_sources == ["speaker", "speaker"]
    assert {m.source for m in harness.messages if isinstance(m.event, AgentResponse)} == {"speaker"}


async def test_broadcast_wraps_values_and_skips_none() -> None:
    bridge = Bridge("node")
    bridge.on(Ping).map(lambda message: f"text {message.event.n}").broadcast(AgentResponse)
    bridge.on(Pong).stream(lambda message: [None, "x", None]).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=7))
        await harness.send(Pong())
        await harness.settle()
    assert texts(harness) == ["text 7"]
    assert "x" in harness.events(str)


async def test_steps_after_broadcast_see_the_same_value() -> None:
    after: list[Any] = []
    bridge = Bridge("node")
    bridge.on(Ping).map(lambda m: Pong(n=m.event.n)).broadcast().map(after.append)
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=3))
        await harness.settle()
    assert pongs(harness) == [3]
    assert [m.event.n for m in after] == [3]


# --- filters on the trigger -----------------------------------------------------------


async def test_property_filters_source_and_filter_fn() -> None:
    got: dict[str, list[int]] = {"tag": [], "source": [], "fn": [], "tuple": []}
    bridge = Bridge("node")
    bridge.on(Ping, tag="a").map(lambda m: got["tag"].append(m.event.n))
    bridge.on(Ping, source="mic").map(lambda m: got["source"].append(m.event.n))
    bridge.on(Ping, filter_fn=lambda m: m.event.n > 1).map(lambda m: got["fn"].append(m.event.n))
    bridge.on((Ping, Pong)).map(lambda m: got["tuple"].append(m.event.n))
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=0, tag="a"), source="mic")
        await harness.send(Ping(n=1, tag="b"), source="keyboard")
        await harness.send(Ping(n=2, tag="a"), source="keyboard")
        await harness.send(Pong(n=3))
        await harness.settle()
    assert got == {"tag": [0, 2], "source": [0], "fn": [2], "tuple": [0, 1, 2, 3]}


async def test_a_route_ignores_its_own_bridge_unless_source_names_it() -> None:
    bridge = Bridge("echo")
    echoed: list[int] = []
    bridge.on(Ping).map(lambda m: Ping(n=m.event.n + 1)).broadcast()
    bridge.on(Ping, source="echo").map(lambda m: echoed.append(m.event.n))
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.settle()
    assert [e.n for e in harness.events(Ping)] == [1, 2]  # no loop
    assert echoed == [2]


async def test_a_failing_filter_fn_is_reported_and_the_route_keeps_working() -> None:
    def picky(message: Message) -> bool:
        if message.event.n == 1:
            raise ValueError("cannot judge 1")
        return True

    bridge = Bridge("node")
    bridge.on(Ping, filter_fn=picky).map(lambda m: Pong(n=m.event.n)).broadcast()
    async with RouteHarness(bridge) as harness:
        for n in range(3):
            await harness.send(Ping(n=n))
        await harness.wait_for(AgentError)
        await harness.settle()
    assert pongs(harness) == [0, 2]
    assert "cannot judge 1" in harness.events(AgentError)[0].error


# --- ordering, queues, slow subscribers ----------------------------------------------


async def test_chunks_reach_every_subscriber_in_the_order_they_were_yielded() -> None:
    async def count(message: Message) -> AsyncIterator[Pong]:
        for n in range(500):
            if n % 50 == 0:
                await asyncio.sleep(0)
            yield Pong(n=n)

    producer = Bridge("producer")
    producer.on(Ping).stream(count).broadcast()
    received: dict[str, list[int]] = {"a": [], "b": []}
    subscribers = []
    for name in received:
        bridge = Bridge(name, queue_size=8)
        bridge.on(Pong).map(recorder(received[name]))
        subscribers.append(bridge)
    async with RouteHarness(producer, *subscribers) as harness:
        await harness.send(Ping())
        await harness.settle()
    assert received["a"] == list(range(500))
    assert received["b"] == list(range(500))


async def test_triggers_of_one_route_run_one_after_another() -> None:
    active = 0
    most_active = 0
    order: list[int] = []

    async def slow(message: Message) -> AsyncIterator[Pong]:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            order.append(message.event.n)
            yield Pong(n=message.event.n)
        finally:
            active -= 1

    bridge = Bridge("node")
    bridge.on(Ping).stream(slow).broadcast()
    async with RouteHarness(bridge) as harness:
        for n in range(5):
            await harness.send(Ping(n=n))
        await harness.settle()
    assert order == [0, 1, 2, 3, 4]
    assert most_active == 1


class Gate:
    """A step that holds each message until released, and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.open = asyncio.Event()

    async def __call__(self, message: Message) -> None:
        self.seen.append(message.event.n)
        await self.open.wait()


async def turns(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_full_blocking_queue_makes_the_publisher_wait_and_loses_nothing() -> None:
    gate = Gate()
    slow = Bridge("slow", queue_size=2)
    slow.on(Ping).map(gate)
    async with RouteHarness(slow) as harness:

        async def publish() -> None:
            for n in range(6):
                await harness.send(Ping(n=n))

        publisher = asyncio.create_task(publish())
        await turns()
        # One in the step, two queued, the publisher waits with the fourth.
        assert gate.seen == [0]
        assert not publisher.done()
        gate.open.set()
        await publisher
        await harness.settle()
    assert gate.seen == [0, 1, 2, 3, 4, 5]
    assert slow.routes[0].dropped == 0


async def test_full_drop_oldest_queue_drops_and_counts_without_waiting() -> None:
    gate = Gate()
    meter = Bridge("meter", queue_size=2, when_full="drop_oldest")
    meter.on(Ping).map(gate)
    async with RouteHarness(meter) as harness:
        await harness.send(Ping(n=0))
        await turns()
        for n in range(1, 6):
            await harness.send(Ping(n=n))  # never waits
        gate.open.set()
        await harness.settle()
    assert gate.seen == [0, 4, 5]
    assert meter.routes[0].dropped == 3


async def test_route_queue_overrides_the_bridge_policy() -> None:
    gate = Gate()
    bridge = Bridge("node", queue_size=100)
    route = bridge.on(Ping).queue(1, when_full="drop_oldest").map(gate)
    async with RouteHarness(bridge) as harness:
        for n in range(4):
            await harness.send(Ping(n=n))
            await turns(2)
        gate.open.set()
        await harness.settle()
    assert gate.seen == [0, 3]
    assert route.dropped == 2
    with pytest.raises(ValueError, match="at least 1"):
        bridge.on(Ping).queue(0)


async def test_a_slow_subscriber_does_not_stall_other_routes() -> None:
    gate = Gate()
    slow = Bridge("slow", queue_size=1)
    slow.on(Ping).map(gate)
    fast_seen: list[int] = []
    fast = Bridge("fast")
    fast.on(Ping).map(lambda m: fast_seen.append(m.event.n))
    other_seen: list[int] = []
    slow.on(Pong).map(lambda m: other_seen.append(m.event.n))
    async with RouteHarness(slow, fast) as harness:

        async def publish() -> None:
            for n in range(3):
                await harness.send(Ping(n=n))

        publisher = asyncio.create_task(publish())
        await turns()
        # Ping 0 is in the slow step, ping 1 queued, ping 2 waits for room there;
        # the fast route already has all three, and the slow node's other route works.
        assert not publisher.done()
        assert fast_seen == [0, 1, 2]
        await harness.send(Pong(n=9))
        await turns()
        assert other_seen == [9]
        gate.open.set()
        await publisher
        await harness.settle()
    assert gate.seen == [0, 1, 2]


async def test_control_events_are_taken_before_queued_data() -> None:
    gate = Gate()
    order: list[str] = []

    async def record(message: Message) -> None:
        if isinstance(message.event, Ping):
            await gate(message)
        order.append(type(message.event).__name__ + str(getattr(message.event, "n", "")))

    bridge = Bridge("node")
    bridge.on((Ping, Halt)).map(record)
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=0))
        await turns()  # ping 0 is in the step; the rest queue up behind it
        for n in range(1, 3):
            await harness.send(Ping(n=n))
        await harness.send(Halt())
        await turns()
        gate.open.set()
        await harness.settle()
    assert order == ["Ping0", "Halt", "Ping1", "Ping2"]


# --- interruption ---------------------------------------------------------------------------


class Producer:
    """A streaming step that records how its runs start and end."""

    def __init__(self, chunks: int = 100, *, cleanup_s: float = 0.0) -> None:
        self.chunks = chunks
        self.cleanup_s = cleanup_s
        self.log: list[str] = []
        self.hold = asyncio.Event()
        self.hold_after = 3

    async def __call__(self, message: Message) -> AsyncIterator[AgentResponse]:
        run = message.event.n if isinstance(message.event, Ping) else 0
        self.log.append(f"start {run}")
        try:
            for i in range(self.chunks):
                if i == self.hold_after:
                    await self.hold.wait()
                yield AgentResponse(content=f"{run}.{i}")
        except asyncio.CancelledError:
            self.log.append(f"cancelled {run}")
            raise
        finally:
            if self.cleanup_s:
                await asyncio.sleep(self.cleanup_s)
            self.log.append(f"finally {run}")


async def test_interrupt_cancels_the_run_between_chunks() -> None:
    producer = Producer()
    handled: list[Message] = []
    bridge = Bridge("llm")
    (
        bridge.on(Ping)
        .interrupt_on(UserStartedSpeaking, handler=handled.append)
        .stream(producer)
        .broadcast()
    )
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.wait_for(AgentResponse, count=3)
        interrupt = await harness.send(UserStartedSpeaking())
        await harness.settle()
        producer.hold.set()  # even if the generator could go on, nothing more comes
        await turns()
        assert texts(harness) == ["1.0", "1.1", "1.2"]
        assert producer.log == ["start 1", "cancelled 1", "finally 1"]
        assert handled == [interrupt]


async def test_interrupt_while_the_chunk_is_downstream_throws_into_the_generator() -> None:
    producer = Producer()
    producer.hold.set()
    gate = Gate()

    async def slow_step(message: Message) -> Message:
        await gate(Message("x", Ping(n=len(gate.seen))))
        return message

    bridge = Bridge("llm")
    (bridge.on(Ping).interrupt_on(UserStartedSpeaking).stream(producer).map(slow_step).broadcast())
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await turns()
        assert gate.seen == [0]  # first chunk held in the next step
        await harness.send(UserStartedSpeaking())
        await harness.settle()
    assert producer.log == ["start 1", "cancelled 1", "finally 1"]
    assert texts(harness) == []


async def test_next_trigger_starts_only_after_the_cancelled_run_finished() -> None:
    producer = Producer(cleanup_s=0.02)
    bridge = Bridge("llm")
    bridge.on(Ping).interrupt_on(UserStartedSpeaking).stream(producer).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.wait_for(AgentResponse, count=3)
        await harness.send(UserStartedSpeaking())
        await harness.send(Ping(n=2))
        await harness.wait_for(AgentResponse, count=6)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
    assert producer.log == [
        "start 1",
        "cancelled 1",
        "finally 1",
        "start 2",
        "cancelled 2",
        "finally 2",
    ]
    assert texts(harness) == ["1.0", "1.1", "1.2", "2.0", "2.1", "2.2"]


async def test_interrupt_with_nothing_running_does_nothing() -> None:
    producer = Producer(chunks=3)
    handled: list[Message] = []
    bridge = Bridge("llm")
    (
        bridge.on(Ping)
        .interrupt_on(UserStartedSpeaking, handler=handled.append)
        .stream(producer)
        .broadcast()
    )
    async with RouteHarness(bridge) as harness:
        await harness.send(UserStartedSpeaking())
        await harness.settle()
        await harness.send(Ping(n=1))
        await harness.settle()
        await harness.send(UserStartedSpeaking())  # after the run completed
        await harness.settle()
    assert handled == []
    assert texts(harness) == ["1.0", "1.1", "1.2"]
    assert producer.log == ["start 1", "finally 1"]


async def test_interrupt_drops_triggers_queued_before_it() -> None:
    producer = Producer()
    handled: list[Message] = []
    bridge = Bridge("llm")
    (
        bridge.on(Ping)
        .interrupt_on(UserStartedSpeaking, handler=handled.append)
        .stream(producer)
        .broadcast()
    )
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.send(Ping(n=2))
        await harness.wait_for(AgentResponse, count=3)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
    assert producer.log == ["start 1", "cancelled 1", "finally 1"]
    assert len(handled) == 1


async def test_two_interrupts_in_a_row_call_the_handler_once() -> None:
    producer = Producer(cleanup_s=0.01)
    handled: list[Message] = []
    bridge = Bridge("llm")
    (
        bridge.on(Ping)
        .interrupt_on(UserStartedSpeaking, AgentStartedSpeaking, handler=handled.append)
        .stream(producer)
        .broadcast()
    )
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.wait_for(AgentResponse, count=3)
        first = await harness.send(UserStartedSpeaking())
        await harness.send(AgentStartedSpeaking())
        await harness.settle()
    assert handled == [first]


async def test_async_interrupt_handler_runs_in_a_task() -> None:
    producer = Producer()
    handled: list[str] = []

    async def handler(message: Message) -> None:
        await asyncio.sleep(0)
        handled.append(type(message.event).__name__)

    bridge = Bridge("llm")
    bridge.on(Ping).interrupt_on(UserStartedSpeaking, handler=handler).stream(producer).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.wait_for(AgentResponse, count=3)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
        await turns()
    assert handled == ["UserStartedSpeaking"]


async def test_a_generator_that_swallows_cancellation_broadcasts_nothing_more() -> None:
    finished: list[bool] = []

    async def stubborn(message: Message) -> AsyncIterator[AgentResponse]:
        hold = asyncio.Event()
        try:
            yield AgentResponse(content="a")
            try:
                await hold.wait()
            except asyncio.CancelledError:
                pass  # a badly behaved library
            yield AgentResponse(content="b")
            yield AgentResponse(content="c")
        finally:
            finished.append(True)

    bridge = Bridge("llm")
    bridge.on(Ping).interrupt_on(UserStartedSpeaking).stream(stubborn).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping())
        await harness.wait_for(AgentResponse)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
        await harness.send(Ping())  # the route still works
        await harness.wait_for(AgentResponse, count=2)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
    assert texts(harness) == ["a", "a"]
    assert finished == [True, True]


async def test_a_producer_that_never_awaits_cannot_starve_the_interrupter() -> None:
    finished: list[int] = []

    async def firehose(message: Message) -> AsyncIterator[AgentResponse]:
        produced = 0
        try:
            while True:
                produced += 1
                yield AgentResponse(content="x")
        finally:
            finished.append(produced)

    bridge = Bridge("llm")
    bridge.on(Ping).interrupt_on(UserStartedSpeaking).stream(firehose).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping())
        # This test's own task gets to run although the producer never awaits.
        await harness.wait_for(AgentResponse, count=10 * FAIRNESS_BUDGET)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
        seen = len(harness.events(AgentResponse))
    assert len(finished) == 1
    assert seen == finished[0] - 1 or seen == finished[0]


# --- suspend, resume, exclusive ------------------------------------------------------------


async def test_suspend_on_and_resume_on_gate_the_route() -> None:
    got: list[int] = []
    bridge = Bridge("node")
    (
        bridge.on(Ping)
        .suspend_on(AgentStartedSpeaking)
        .resume_on(AgentStoppedSpeaking)
        .map(lambda m: got.append(m.event.n))
    )
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.send(AgentStartedSpeaking())
        await harness.send(Ping(n=2))
        await harness.send(AgentStoppedSpeaking())
        await harness.send(Ping(n=3))
        await harness.settle()
    assert got == [1, 3]
    assert bridge.routes[0].suspended is False


async def test_exclusive_route_replaces_the_running_run_with_the_new_trigger() -> None:
    producer = Producer(cleanup_s=0.01)
    active = 0
    most_active = 0

    async def tracked(message: Message) -> AsyncIterator[AgentResponse]:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        try:
            async for chunk in producer(message):
                yield chunk
        finally:
            active -= 1

    bridge = Bridge("llm")
    bridge.on(Ping).exclusive().stream(tracked).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.wait_for(AgentResponse, count=3)
        await harness.send(Ping(n=2))
        await harness.send(Ping(n=3))  # replaces 2 before it even started
        await harness.wait_for(AgentResponse, count=6)
        producer.hold.set()
        await harness.wait_for(AgentResponse, count=3 + producer.chunks)
        await harness.settle()
    assert most_active == 1
    assert producer.log == ["start 1", "cancelled 1", "finally 1", "start 3", "finally 3"]
    assert texts(harness)[:4] == ["1.0", "1.1", "1.2", "3.0"]


# --- errors -----------------------------------------------------------------------------------


async def test_an_exception_becomes_agent_error_and_the_route_keeps_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fragile(message: Message) -> Pong:
        if message.event.n == 1:
            raise ValueError("one is bad")
        return Pong(n=message.event.n)

    bridge = Bridge("node")
    bridge.on(Ping).map(fragile).broadcast().named("fragile")
    with caplog.at_level(logging.ERROR, logger="voiceterm.bridge"):
        async with RouteHarness(bridge) as harness:
            for n in range(3):
                await harness.send(Ping(n=n))
            await harness.settle()
    errors = harness.events(AgentError)
    assert pongs(harness) == [0, 2]
    assert [(e.error, e.source) for e in errors] == [("ValueError: one is bad", "fragile")]
    assert "fragile failed" in caplog.text
    assert bridge.routes[0].errors == 1


async def test_a_generator_failing_mid_stream_keeps_what_it_sent_and_recovers() -> None:
    finished: list[int] = []

    async def flaky(message: Message) -> AsyncIterator[AgentResponse]:
        try:
            for i in range(3):
                if message.event.n == 1 and i == 2:
                    raise RuntimeError("model crashed")
                yield AgentResponse(content=f"{message.event.n}.{i}")
        finally:
            finished.append(message.event.n)

    async def stage(message: Message) -> AsyncIterator[AgentResponse]:
        yield message.event

    bridge = Bridge("llm")
    bridge.on(Ping).interrupt_on(UserStartedSpeaking).stream(flaky).stream(stage).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        await harness.wait_for(AgentError)
        await harness.send(Ping(n=2))
        await harness.settle()
    assert texts(harness) == ["1.0", "1.1", "2.0", "2.1", "2.2"]
    assert harness.events(AgentError)[0].error == "RuntimeError: model crashed"
    assert finished == [1, 2]


async def test_a_downstream_failure_closes_the_upstream_generator() -> None:
    log: list[str] = []

    async def source(message: Message) -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        except GeneratorExit:
            log.append("closed")
            raise
        finally:
            log.append("finally")

    def fragile(message: Message) -> Pong:
        if message.event == 2:
            raise KeyError("two")
        return Pong(n=message.event)

    bridge = Bridge("node")
    bridge.on(Ping).stream(source).map(fragile).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping())
        await harness.settle()
    assert pongs(harness) == [0, 1]
    assert log == ["closed", "finally"]
    assert len(harness.events(AgentError)) == 1


async def test_a_failing_interrupt_handler_is_logged_and_the_interrupt_still_works(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = Producer()

    def broken(message: Message) -> None:
        raise RuntimeError("handler bug")

    bridge = Bridge("llm")
    bridge.on(Ping).interrupt_on(UserStartedSpeaking, handler=broken).stream(producer).broadcast()
    with caplog.at_level(logging.ERROR):
        async with RouteHarness(bridge) as harness:
            await harness.send(Ping(n=1))
            await harness.wait_for(AgentResponse, count=3)
            await harness.send(UserStartedSpeaking())
            await harness.settle()
    assert producer.log[-1] == "finally 1"
    assert "handler bug" in caplog.text


# --- state ---------------------------------------------------------------------------------------


async def test_pending_tells_whether_a_route_has_work() -> None:
    gate = Gate()
    bridge = Bridge("node")
    route = bridge.on(Ping).map(gate)
    async with RouteHarness(bridge) as harness:
        assert not route.pending
        await harness.send(Ping(n=0))
        assert route.pending
        await turns()
        assert route.pending  # held in the step
        gate.open.set()
        await harness.settle()
        assert not route.pending


async def test_routes_added_while_running_start_and_receive() -> None:
    bridge = Bridge("node")
    async with RouteHarness(bridge) as harness:
        await harness.send(Ping(n=1))
        bridge.on(Ping).map(lambda m: Pong(n=m.event.n)).broadcast()
        late = Bridge("late")
        late.on(Ping).map(lambda m: Pong(n=m.event.n * 10)).broadcast()
        harness.add(late)
        await harness.send(Ping(n=2))
        await harness.settle()
    assert sorted(pongs(harness)) == [2, 20]


def test_node_id_comes_from_the_node() -> None:
    class Named:
        id = "named"

    class Anonymous:
        pass

    assert Bridge(Named()).node_id == "named"
    assert Bridge("text").node_id == "text"
    assert Bridge(Anonymous()).node_id == "Anonymous"
    with pytest.raises(ValueError, match="queue_size"):
        Bridge("x", queue_size=0)
