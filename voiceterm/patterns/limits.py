"""Limits on streamed answers: a chunk rate limit and caps per response.

* :class:`RateLimiter` / :func:`rate_limited`: a token bucket that spaces chunks
  out to at most ``per_second`` on average, with bursts of ``burst`` (for
  consumers that cannot take a flood, such as a UI or a remote API).
* :class:`ChunkLimits` / :func:`limit_responses`: a cap on how many chunks, how
  long a chunk and how much text one response may have, so a runaway model
  cannot fill memory or talk for ten minutes. Oversized chunks are split (no text
  is lost); past the count or total cap the answer is cut, the upstream stream is
  closed (the model stops) and the completion marker says what was sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from voiceterm.bus import Message
from voiceterm.events import AgentGenerationComplete, AgentResponse
from voiceterm.patterns.streams import close_async_iterator, closed_on_error

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RateLimiter:
    """A token bucket: ``per_second`` tokens a second, holding at most ``burst``.

    Args:
        per_second: The long-run rate.
        burst: How many may go back to back after a pause (and at the start).
        clock: Monotonic seconds (injectable for tests).
        sleep: How to wait (injectable for tests).
    """

    def __init__(
        self,
        per_second: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take a token now; return how many seconds to wait before using it."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.per_second

    async def acquire(self) -> None:
        """Wait until the next item may go."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)


async def rate_limited(
    stream: AsyncIterable[T], limiter: RateLimiter | float, burst: int = 1
) -> AsyncGenerator[T, None]:
    """Yield ``stream``'s items no faster than ``limiter`` allows.

    Args:
        stream: Any async iterable.
        limiter: A :class:`RateLimiter`, or a rate in items per second.
        burst: The burst when ``limiter`` is a rate.
    """
    bucket = limiter if isinstance(limiter, RateLimiter) else RateLimiter(limiter, burst)
    async with closed_on_error(stream) as iterator:
        async for item in iterator:
            await bucket.acquire()
            yield item


@dataclass(frozen=True, slots=True)
class ChunkLimits:
    """Caps for one response; ``None`` means no cap.

    Attributes:
        max_chunks: Chunks a response may have.
        max_chunk_chars: Characters a chunk may have (longer ones are split).
        max_total_chars: Characters a response may have in all.
    """

    max_chunks: int | None = None
    max_chunk_chars: int | None = None
    max_total_chars: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_chunks", "max_chunk_chars", "max_total_chars"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None")


def split_text(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_chars``, after a space where possible."""
    pieces: list[str] = []
    while len(text) > max_chars:
        cut = text.rfind(" ", 1, max_chars + 1)
        cut = cut + 1 if cut > 0 else max_chars
        pieces.append(text[:cut])
        text = text[cut:]
    if text:
        pieces.append(text)
    return pieces


class _Allowance:
    """What a response's caps still allow, updated as its chunks are sent."""

    def __init__(self, limits: ChunkLimits) -> None:
        self.limits = limits
        self.total = 0
        self.count = 0
        self.cut_reason: str | None = None

    def pieces(self, content: str) -> list[str]:
        """``content`` split at the chunk cap (or whole)."""
        max_chunk_chars = self.limits.max_chunk_chars
        return split_text(content, max_chunk_chars) if max_chunk_chars is not None else [content]

    def admit(self, piece: str) -> str | None:
        """The part of ``piece`` the caps allow; ``None`` once the chunk cap is reached.

        Sets ``cut_reason`` when the answer is cut here.
        """
        limits = self.limits
        if limits.max_chunks is not None and self.count >= limits.max_chunks:
            self.cut_reason = f"more than {limits.max_chunks} chunks"
            return None
        if limits.max_total_chars is not None:
            room = limits.max_total_chars - self.total
            if len(piece) > room:
                piece = piece[:room]
                self.cut_reason = f"more than {limits.max_total_chars} characters"
        return piece

    def sent(self, piece: str) -> None:
        self.count += 1
        self.total += len(piece)

    def complete(self) -> AgentGenerationComplete:
        """The end marker, counting what was sent."""
        return AgentGenerationComplete(total_length=self.total, chunk_count=self.count)


async def limit_responses(
    events: AsyncIterable[Any],
    limits: ChunkLimits,
    *,
    on_limit: Callable[[str], None] | None = None,
) -> AsyncGenerator[Any, None]:
    """Apply ``limits`` to the ``AgentResponse`` chunks of an event stream.

    Args:
        events: An event stream (``node.generate(...)``); Messages are unwrapped.
        limits: The caps.
        on_limit: Called with a short reason when the response is cut (default:
            log a warning).

    Yields:
        The events, with long chunks split and the answer cut at the caps. An
        upstream ``AgentGenerationComplete`` is replaced by one counting what was
        sent; when the answer is cut, upstream is closed and that marker ends it.
    """
    allowance = _Allowance(limits)
    async with closed_on_error(events) as iterator:
        async for item in iterator:
            event = item.event if isinstance(item, Message) else item
            if isinstance(event, AgentGenerationComplete):
                yield allowance.complete()
                continue
            if not isinstance(event, AgentResponse):
                yield event
                continue
            content = event.content
            for whole in allowance.pieces(content):
                piece = allowance.admit(whole)
                if piece is None:
                    break
                if piece:
                    same = piece == content
                    yield event if same else AgentResponse(piece, chunk_type=event.chunk_type)
                    allowance.sent(piece)
                if allowance.cut_reason is not None:
                    break
            if allowance.cut_reason is not None:
                break
    if allowance.cut_reason is not None:
        await close_async_iterator(iterator)
        if on_limit is not None:
            on_limit(allowance.cut_reason)
        else:
            logger.warning("response cut: %s", allowance.cut_reason)
        yield allowance.complete()


__all__ = ["ChunkLimits", "RateLimiter", "limit_responses", "rate_limited", "split_text"]
