"""Limits: a token-bucket chunk rate and caps on chunks per response."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from voiceterm.events import AgentGenerationComplete, AgentResponse, ToolCall
from voiceterm.patterns.limits import (
    ChunkLimits,
    RateLimiter,
    limit_responses,
    rate_limited,
    split_text,
)


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


async def stream_of(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        yield item


async def test_rate_limiter_allows_a_burst_then_spaces_chunks_out() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=10, burst=3, clock=clock, sleep=clock.sleep)
    out = [c async for c in rate_limited(stream_of(range(6)), limiter)]
    assert out == list(range(6))
    assert clock.sleeps == [0.1, 0.1, 0.1]  # three at once, then 10 a second


async def test_rate_limiter_refills_while_idle_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=2, burst=2, clock=clock, sleep=clock.sleep)
    assert limiter.reserve() == 0
    assert limiter.reserve() == 0
    assert limiter.reserve() == pytest.approx(0.5)
    clock.now += 60  # a long pause refills only up to the burst
    assert limiter.reserve() == 0
    assert limiter.reserve() == 0
    assert limiter.reserve() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1, burst=0)


async def test_rate_limited_accepts_a_plain_rate() -> None:
    out = [c async for c in rate_limited(stream_of("ab"), 1000.0, burst=2)]
    assert out == ["a", "b"]


def test_split_text_cuts_after_spaces_where_it_can() -> None:
    assert split_text("hello big world", 10) == ["hello big ", "world"]
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    assert split_text("", 4) == []


def responses(*texts: str) -> list[Any]:
    return [AgentResponse(content=t) for t in texts]


async def test_long_chunks_are_split_without_losing_text() -> None:
    limits = ChunkLimits(max_chunk_chars=8)
    events = [*responses("short", "a much longer chunk"), AgentGenerationComplete(22, 2)]
    out = [e async for e in limit_responses(stream_of(events), limits)]
    texts = [e.content for e in out if isinstance(e, AgentResponse)]
    assert texts == ["short", "a much ", "longer ", "chunk"]
    assert out[-1] == AgentGenerationComplete(total_length=24, chunk_count=4)


async def test_count_cap_cuts_the_answer_and_stops_the_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []

    async def chatty() -> AsyncIterator[Any]:
        try:
            for i in range(1000):
                yield AgentResponse(content=f"w{i} ")
        finally:
            log.append("model stopped")

    with caplog.at_level(logging.WARNING):
        out = [e async for e in limit_responses(chatty(), ChunkLimits(max_chunks=3))]
    assert [getattr(e, "content", None) for e in out] == ["w0 ", "w1 ", "w2 ", None]
    assert out[-1] == AgentGenerationComplete(total_length=9, chunk_count=3)
    assert log == ["model stopped"]
    assert "more than 3 chunks" in caplog.text


async def test_total_cap_cuts_inside_a_chunk_and_reports() -> None:
    reasons: list[str] = []
    events = [*responses("12345", "67890", "abc"), ToolCall(tool_name="x")]
    out = [
        e
        async for e in limit_responses(
            stream_of(events), ChunkLimits(max_total_chars=7), on_limit=reasons.append
        )
    ]
    assert [getattr(e, "content", None) for e in out] == ["12345", "67", None]
    assert reasons == ["more than 7 characters"]


async def test_an_answer_within_the_caps_passes_unchanged() -> None:
    events = [*responses("a", "b"), ToolCall(tool_name="x"), AgentGenerationComplete(2, 2)]
    out = [e async for e in limit_responses(stream_of(events), ChunkLimits(max_chunks=2))]
    assert out[:3] == events[:3]
    assert out[3] == AgentGenerationComplete(total_length=2, chunk_count=2)
    with pytest.raises(ValueError, match="max_chunks"):
        ChunkLimits(max_chunks=0)
