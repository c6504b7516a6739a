"""Fakes and a small harness for testing routes and nodes without any model.

Shipped in the package (not only in ``tests/``) so that every part of voiceterm,
and people writing their own nodes, can test against the real bus::

    client = FakeLLMClient("Hello there. How can I help?", delay=0.01)
    node = MyNode(llm_client=client)
    bridge = Bridge(node)
    bridge.on(UserTranscriptionReceived).stream(node.generate).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(UserTranscriptionReceived(content="hi"))
        await harness.wait_for(AgentGenerationComplete)
        assert harness.text() == "Hello there. How can I help?"

Pure Python, like the rest of the core: importing it loads no audio or ML library.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from voiceterm.bridge import Bridge
from voiceterm.bus import Bus, Message
from voiceterm.events import AgentResponse

E = TypeVar("E")

Reply = str | Sequence[str]

_WORD_CHUNKS = re.compile(r"\s*\S+")


def word_chunks(text: str) -> list[str]:
    """Split ``text`` the way an LLM streams it: one word per chunk, spaces kept.

    ``"".join(word_chunks(text))`` gives ``text`` back (minus trailing spaces).
    """
    return _WORD_CHUNKS.findall(text)


@dataclass(slots=True)
class FakeChunk:
    """One streamed piece of an LLM answer, shaped like SDK stream chunks."""

    text: str


@dataclass(slots=True, eq=False)
class FakeStream:
    """The async iterator :meth:`FakeLLMClient.generate_stream` returns.

    Like an SDK stream object it can be cancelled (``cancel()``) or closed
    (``aclose()``); either ends it before the next chunk.

    Attributes:
        texts: The chunks it hands out, in order.
        delay, first_delay, fail_after, error: as for :class:`FakeLLMClient`.
        produced: How many chunks it has handed out.
        cancelled: Whether ``cancel()`` was called.
        closed: Whether ``aclose()`` was called.
    """

    texts: Sequence[str]
    delay: float = field(kw_only=True)
    first_delay: float = field(kw_only=True)
    fail_after: int | None = field(kw_only=True)
    error: Exception = field(kw_only=True)
    produced: int = field(default=0, init=False)
    cancelled: bool = field(default=False, init=False)
    closed: bool = field(default=False, init=False)

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> FakeChunk:
        if self.cancelled or self.closed or self.produced >= len(self.texts):
            raise StopAsyncIteration
        wait = self.first_delay if self.produced == 0 else self.delay
        if wait > 0:
            await asyncio.sleep(wait)
        if self.cancelled or self.closed:
            raise StopAsyncIteration
        if self.fail_after is not None and self.produced >= self.fail_after:
            raise self.error
        text = self.texts[self.produced]
        self.produced += 1
        return FakeChunk(text)

    def cancel(self) -> None:
        """Stop the stream; the next ``__anext__`` ends it."""
        self.cancelled = True

    async def aclose(self) -> None:
        """Close the stream (as SDK streams do)."""
        self.closed = True


class FakeLLMClient:
    """A streaming LLM client that answers from a script.

    Args:
        reply: The answer: a string (streamed word by word), a sequence of chunk
            texts, or a function of what ``generate_stream`` was given that
            returns either.
        delay: Seconds before each chunk after the first (0: no waiting at all).
        first_delay: Seconds before the first chunk (default: ``delay``).
        fail_after: Raise ``error`` instead of the chunk with this index.
        error: What to raise (default ``RuntimeError("fake LLM failed")``).

    Attributes:
        calls: What each ``generate_stream`` call was given, in order.
        streams: The streams handed out, in order.
    """

    def __init__(
        self,
        reply: Reply | Callable[[Any], Reply] = "Hello! How can I help you today?",
        *,
        delay: float = 0.0,
        first_delay: float | None = None,
        fail_after: int | None = None,
        error: Exception | None = None,
    ) -> None:
        self._reply = reply
        self.delay = delay
        self.first_delay = delay if first_delay is None else first_delay
        self.fail_after = fail_after
        self.error = error or RuntimeError("fake LLM failed")
        self.calls: list[Any] = []
        self.streams: list[FakeStream] = []

    def chunks_for(self, messages: Any) -> list[str]:
        """The chunk texts the client would stream for ``messages``."""
        reply = self._reply(messages) if callable(self._reply) else self._reply
        return word_chunks(reply) if isinstance(reply, str) else list(reply)

    def generate_stream(self, messages: Any) -> FakeStream:
        """Start streaming the scripted answer to ``messages``."""
        self.calls.append(messages)
        stream = FakeStream(
            self.chunks_for(messages),
            delay=self.delay,
            first_delay=self.first_delay,
            fail_after=self.fail_after,
            error=self.error,
        )
        self.streams.append(stream)
        return stream


class RouteHarness:
    """Runs bridges on a fresh bus and records every message broadcast on it.

    Recording uses a bus tap, so ``messages`` is in exact broadcast order and
    includes what the test itself sends.

    Args:
        bridges: The bridges under test.
        bus: A bus to use instead of a new one.
    """

    def __init__(self, *bridges: Bridge, bus: Bus | None = None) -> None:
        self.bus = bus or Bus()
        self.messages: list[Message] = []
        self._waiters: list[asyncio.Future[None]] = []
        for bridge in bridges:
            self.bus.register_bridge(bridge)
        self._untap = self.bus.tap(self._record)

    async def __aenter__(self) -> RouteHarness:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the bus."""
        await self.bus.start()

    async def stop(self) -> None:
        """Stop the bus (cancelling every route) and stop recording."""
        await self.bus.stop()
        self._untap()

    def add(self, bridge: Bridge) -> None:
        """Register another bridge (it starts at once if the bus runs)."""
        self.bus.register_bridge(bridge)

    async def send(self, event: Any, source: str = "user") -> Message:
        """Broadcast ``event`` from ``source`` and return the message."""
        message = Message(source, event)
        await self.bus.broadcast(message)
        return message

    # --- what happened ---------------------------------------------------------------

    def events(self, event_type: type[E] | None = None, *, source: str | None = None) -> list[E]:
        """The recorded events (of ``event_type``, from ``source``), in order."""
        return [
            m.event
            for m in self.messages
            if (event_type is None or isinstance(m.event, event_type))
            and (source is None or m.source == source)
        ]

    def text(self, *, source: str | None = None) -> str:
        """All ``AgentResponse`` content recorded so far, joined."""
        return "".join(e.content for e in self.events(AgentResponse, source=source))

    async def wait_for(
        self,
        event_type: type[E],
        *,
        count: int = 1,
        predicate: Callable[[E], bool] | None = None,
        limit_s: float = 5.0,
    ) -> list[E]:
        """Wait until ``count`` matching events were broadcast; return all matches.

        Raises:
            TimeoutError: with a summary of what was seen, after ``limit_s`` seconds
                (a safety net against hangs, not a speed check).
        """

        def matches() -> list[E]:
            found = self.events(event_type)
            return [e for e in found if predicate(e)] if predicate is not None else found

        async def wait() -> list[E]:
            while len(found := matches()) < count:
                changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(changed)
                await changed
            return found

        try:
            return await asyncio.wait_for(wait(), limit_s)
        except TimeoutError:
            seen = ", ".join(type(m.event).__name__ for m in self.messages[-20:])
            raise TimeoutError(
                f"waited {limit_s} s for {count} {event_type.__name__}; last seen: {seen}"
            ) from None

    async def settle(self, limit_s: float = 5.0) -> None:
        """Wait until no route has queued or running work (for a few loop turns).

        Raises:
            TimeoutError: if the routes are still busy after ``limit_s`` seconds.
        """

        async def wait() -> None:
            quiet_turns = 0
            while quiet_turns < 3:
                if self._busy():
                    quiet_turns = 0
                    await asyncio.sleep(0.001)
                else:
                    quiet_turns += 1
                    await asyncio.sleep(0)

        await asyncio.wait_for(wait(), limit_s)

    def _busy(self) -> bool:
        return any(route.pending for bridge in self.bus.bridges for route in bridge.routes)

    def _record(self, message: Message) -> None:
        self.messages.append(message)
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


def collect(items: Iterable[Any], event_type: type[E]) -> list[E]:
    """The items (events or messages) that are ``event_type`` events, unwrapped."""
    events = (i.event if isinstance(i, Message) else i for i in items)
    return [e for e in events if isinstance(e, event_type)]


__all__ = [
    "FakeChunk",
    "FakeLLMClient",
    "FakeStream",
    "RouteHarness",
    "collect",
    "word_chunks",
]
