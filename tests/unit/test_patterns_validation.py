"""Chunk validation: bad chunks dropped and reported, one honest completion marker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from voiceterm.bus import Message
from voiceterm.events import AgentGenerationComplete, AgentResponse, ToolCall
from voiceterm.patterns.validation import is_valid_chunk, validate_responses


async def stream_of(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        yield item


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("Hello", True),
        (" world.\n", True),
        ("\tindented", True),
        ("", False),
        ("   ", False),
        (None, False),
        ("broken \ufffd bytes", False),
        ("bell\x07", False),
    ],
)
def test_is_valid_chunk(text: str | None, valid: bool) -> None:
    assert is_valid_chunk(text) is valid


async def test_invalid_chunks_are_dropped_logged_and_not_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = [
        AgentResponse(content="Hello"),
        Message("llm", AgentResponse(content="  ")),
        ToolCall(tool_name="clock"),
        AgentResponse(content=" there\x00"),
        AgentResponse(content=" friend."),
        AgentGenerationComplete(total_length=99, chunk_count=99),  # replaced
    ]
    with caplog.at_level(logging.WARNING):
        out = [e async for e in validate_responses(stream_of(events))]
    assert [type(e).__name__ for e in out] == [
        "AgentResponse",
        "ToolCall",
        "AgentResponse",
        "AgentGenerationComplete",
    ]
    assert out[-1] == AgentGenerationComplete(total_length=len("Hello friend."), chunk_count=2)
    assert caplog.text.count("Invalid chunk filtered") == 2


async def test_a_custom_check_and_invalid_callback() -> None:
    rejected: list[str] = []

    def no_shouting(text: str) -> bool:
        return not text.isupper()

    events = [AgentResponse(content="calm"), AgentResponse(content="LOUD")]
    out = [
        e
        async for e in validate_responses(
            stream_of(events), no_shouting, on_invalid=rejected.append
        )
    ]
    assert [getattr(e, "content", None) for e in out] == ["calm", None]
    assert rejected == ["LOUD"]
    assert [e async for e in validate_responses(stream_of([]))] == [AgentGenerationComplete()]


async def test_closing_validation_closes_upstream() -> None:
    log: list[str] = []

    async def upstream() -> AsyncIterator[AgentResponse]:
        try:
            while True:
                yield AgentResponse(content="x")
        finally:
            log.append("finally")

    validated = validate_responses(upstream())
    await validated.__anext__()
    await validated.aclose()
    assert log == ["finally"]
