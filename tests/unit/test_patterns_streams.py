"""merge_streams, close_async_iterator and closed_on_error: order, completeness,
cancellation, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.events import AgentResponse, UserStartedSpeaking, UserStoppedSpeaking
from voiceterm.patterns.streams import close_async_iterator, closed_on_error, merge_streams
from voiceterm.testing import RouteHarness


class Paced:
    """A stream whose chunks come out only when the test releases them."""

    def __init__(self, name: str, count: int) -> None:
        self.name = name
        self.count = count
        self.allowed = 0
        self.changed = asyncio.Event()
        self.log: list[str] = []

    def release(self, chunks: int = 1) -> None:
        self.allowed += chunks
        self.changed.set()

    async def stream(self) -> AsyncIterator[str]:
        try:
            for i in range(self.count):
                while self.allowed <= i:
                    self.changed.clear()
                    await self.changed.wait()
                yield f"{self.name}{i}"
        except asyncio.CancelledError:
            self.log.append("cancelled")
            raise
        except GeneratorExit:
            self.log.append("closed")
            raise
        finally:
            self.log.append("finally")


async def turns(count: int = 10) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_chunks_come_out_as_they_are_produced() -> None:
    a, b, c = Paced("a", 2), Paced("b", 2), Paced("c", 1)
    merged = merge_streams(a.stream(), b.stream(), c.stream())
    got: list[str] = []

    async def consume() -> None:
        async for chunk in merged:
            got.append(chunk)

    consumer = asyncio.create_task(consume())
    for stream in [b, c, a, a, b]:
        stream.release()
        await turns()
    await consumer
    assert got == ["b0", "c0", "a0", "a1", "b1"]
    assert [s.log for s in (a, b, c)] == [["finally"]] * 3


async def test_every_chunk_of_every_stream_arrives_in_stream_order() -> None:
    async def numbers(prefix: str, count: int, pause_every: int) -> AsyncIterator[str]:
        for i in range(count):
            if i % pause_every == 0:
                await asyncio.sleep(0)
            yield f"{prefix}{i}"

    got = [
        chunk
        async for chunk in merge_streams(
            numbers("x", 50, 2), numbers("y", 30, 3), numbers("z", 1, 1), numbers("e", 0, 1)
        )
    ]
    assert sorted(got) == sorted(
        [f"x{i}" for i in range(50)] + [f"y{i}" for i in range(30)] + ["z0"]
    )
    for prefix, count in (("x", 50), ("y", 30)):
        assert [c for c in got if c[0] == prefix] == [f"{prefix}{i}" for i in range(count)]


async def test_ready_chunks_come_in_the_order_the_streams_were_given() -> None:
    async def one(name: str) -> AsyncIterator[str]:
        yield name

    got = [chunk async for chunk in merge_streams(one("first"), one("second"), one("third"))]
    assert got == ["first", "second", "third"]
    nothing: AsyncIterator[str] = merge_streams()
    assert [chunk async for chunk in nothing] == []


async def test_an_error_in_one_stream_cancels_the_others_and_is_raised() -> None:
    slow = Paced("s", 5)

    async def failing() -> AsyncIterator[str]:
        yield "f0"
        await asyncio.sleep(0)
        raise ValueError("stream broke")

    got: list[str] = []
    with pytest.raises(ValueError, match="stream broke"):
        async for chunk in merge_streams(slow.stream(), failing()):
            got.append(chunk)
    assert got == ["f0"]
    assert slow.log == ["cancelled", "finally"]
    await turns()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_closing_the_merged_stream_closes_every_stream() -> None:
    a, b = Paced("a", 3), Paced("b", 3)
    a.release(3)
    merged = merge_streams(a.stream(), b.stream())
    assert await merged.__anext__() == "a0"
    await merged.aclose()
    assert "finally" in a.log
    assert b.log == ["cancelled", "finally"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_interrupting_a_route_that_merges_cancels_every_stream() -> None:
    a, b = Paced("a", 10), Paced("b", 10)

    async def parallel(message: Message) -> AsyncIterator[AgentResponse]:
        async for chunk in merge_streams(a.stream(), b.stream()):
            yield AgentResponse(content=chunk)

    bridge = Bridge("parallel")
    bridge.on(UserStoppedSpeaking).interrupt_on(UserStartedSpeaking).stream(parallel).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(UserStoppedSpeaking())
        a.release()
        b.release()
        await harness.wait_for(AgentResponse, count=2)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
        a.release(5)
        b.release(5)
        await turns()
        assert [e.content for e in harness.events(AgentResponse)] == ["a0", "b0"]
    assert a.log == ["cancelled", "finally"]
    assert b.log == ["cancelled", "finally"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


# --- close_async_iterator ---------------------------------------------------------------


async def test_close_throws_cancellation_into_a_suspended_generator() -> None:
    stream = Paced("a", 3)
    stream.release(3)
    generator = stream.stream()
    await generator.__anext__()
    await close_async_iterator(generator, asyncio.CancelledError())
    assert stream.log == ["cancelled", "finally"]


async def test_close_closes_on_other_errors_and_ignores_finished_streams() -> None:
    stream = Paced("a", 3)
    stream.release(3)
    generator = stream.stream()
    await generator.__anext__()
    await close_async_iterator(generator, ValueError("downstream"))
    await close_async_iterator(generator, asyncio.CancelledError())  # already finished
    assert stream.log == ["closed", "finally"]


async def test_close_survives_a_generator_that_refuses_to_stop() -> None:
    refusals: list[str] = []

    async def stubborn() -> AsyncIterator[int]:
        while len(refusals) < 2:  # refuses twice, then lets the collector close it
            try:
                yield 1
            except BaseException as exc:  # the misbehaviour under test
                refusals.append(type(exc).__name__)

    generator = stubborn()
    await generator.__anext__()
    await close_async_iterator(generator, asyncio.CancelledError())  # logged, not raised
    assert refusals == ["CancelledError", "GeneratorExit"]
    await close_async_iterator(object())  # not a stream at all: nothing to do


# --- closed_on_error ---------------------------------------------------------------------


async def test_closed_on_error_finishes_the_stream_when_its_consumer_is_closed() -> None:
    stream = Paced("a", 3)
    stream.release(3)

    async def passed_on() -> AsyncGenerator[str, None]:
        async with closed_on_error(stream.stream()) as iterator:
            async for chunk in iterator:
                yield chunk

    consumer = passed_on()
    assert await consumer.__anext__() == "a0"
    await consumer.aclose()
    assert stream.log == ["closed", "finally"]


async def test_closed_on_error_throws_cancellation_in_and_leaves_a_whole_stream_alone() -> None:
    stream = Paced("a", 3)
    stream.release(1)
    first = asyncio.Event()

    async def consume() -> None:
        async with closed_on_error(stream.stream()) as iterator:
            async for _chunk in iterator:
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.log == ["cancelled", "finally"]

    whole = Paced("b", 2)
    whole.release(2)
    async with closed_on_error(whole.stream()) as iterator:
        assert [chunk async for chunk in iterator] == ["b0", "b1"]
    assert whole.log == ["finally"]
