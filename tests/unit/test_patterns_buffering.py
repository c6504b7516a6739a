"""Buffered streaming: release at a size or a real sentence end; the remainder at the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from voiceterm.events import AgentGenerationComplete, AgentResponse, ToolCall
from voiceterm.patterns.buffering import TextBuffer, buffer_responses, buffer_text
from voiceterm.testing import word_chunks

TRICKY = "Dr. Smith is here. Pi is 3.14 today. Wait... what? Use e.g. this one. Bye"
TRICKY_PIECES = [
    "Dr. Smith is here.",
    " Pi is 3.14 today.",
    " Wait... what?",
    " Use e.g. this one.",
    " Bye",
]


def run_buffer(chunks: Iterable[str], buffer: TextBuffer) -> list[str]:
    pieces: list[str] = []
    for chunk in chunks:
        pieces += buffer.push(chunk)
    last = buffer.flush()
    if last is not None:
        pieces.append(last)
    return pieces


async def stream_of(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        yield item


@pytest.mark.parametrize(
    "chunks",
    [word_chunks(TRICKY), list(TRICKY), [TRICKY[i : i + 3] for i in range(0, len(TRICKY), 3)]],
    ids=["words", "characters", "triples"],
)
def test_sentence_ends_are_found_however_the_text_is_chunked(chunks: list[str]) -> None:
    pieces = run_buffer(chunks, TextBuffer(max_chars=200))
    assert "".join(pieces) == TRICKY
    # A space may travel with either side of a cut, depending on the chunks.
    assert [p.strip() for p in pieces] == [p.strip() for p in TRICKY_PIECES]


def test_not_fooled_by_abbreviations_decimals_or_ellipses() -> None:
    buffer = TextBuffer(max_chars=200)
    for text in ["Ask Dr.", " Who", " about", " e.g.", " 3.", "14", " or", " so..."]:
        assert buffer.push(text) == []
    assert buffer.pending == "Ask Dr. Who about e.g. 3.14 or so..."


def test_releases_at_the_size_limit_and_flushes_the_remainder() -> None:
    buffer = TextBuffer(max_chars=10, at_sentence_end=False)
    assert buffer.push("aaaa") == []
    assert buffer.push("bbbbbb") == ["aaaabbbbbb"]
    assert buffer.push("cc.") == []  # sentence ends are ignored when asked to
    assert buffer.flush() == "cc."
    assert buffer.flush() is None


def test_exclamation_and_question_marks_release_at_once() -> None:
    buffer = TextBuffer(max_chars=100)
    assert buffer.push("Really?") == ["Really?"]
    assert buffer.push(" Yes!") == [" Yes!"]
    assert buffer.push(' He said "stop."') == [' He said "stop."']


def test_a_held_sentence_is_released_by_the_next_chunk_or_the_flush() -> None:
    buffer = TextBuffer(max_chars=100)
    assert buffer.push("Done.") == []  # might still be "Done..."
    assert buffer.push("") == []
    assert buffer.push(" Next!") == ["Done.", " Next!"]
    assert buffer.push("End.") == []
    assert buffer.flush() == "End."


def test_whitespace_remainder_is_not_sent_and_reset_forgets() -> None:
    buffer = TextBuffer(max_chars=100)
    buffer.push("Half a sent")
    buffer.reset()
    assert buffer.pending == ""
    buffer.push("  ")
    assert buffer.flush() is None
    with pytest.raises(ValueError, match="max_chars"):
        TextBuffer(max_chars=0)


async def test_buffer_text_rechunks_a_stream_and_keeps_all_text() -> None:
    pieces = [p async for p in buffer_text(stream_of(list(TRICKY)), max_chars=200)]
    assert pieces == TRICKY_PIECES
    long_text = "word " * 30
    pieces = [p async for p in buffer_text(stream_of(word_chunks(long_text)), max_chars=20)]
    assert "".join(pieces) == long_text.rstrip()
    assert all(len(p) >= 20 for p in pieces[:-1])


async def test_buffer_responses_buffers_text_and_keeps_other_events_in_place() -> None:
    call = ToolCall(tool_name="clock")
    events = [
        AgentResponse(content="Let"),
        AgentResponse(content=" me"),
        call,
        AgentResponse(content=" check."),
        AgentResponse(content=" It is"),
        AgentResponse(content=" noon"),
        AgentGenerationComplete(total_length=26, chunk_count=5),
    ]
    out = [e async for e in buffer_responses(stream_of(events), max_chars=100)]
    assert [(type(e).__name__, getattr(e, "content", "")) for e in out] == [
        ("AgentResponse", "Let me"),
        ("ToolCall", ""),
        ("AgentResponse", " check."),
        ("AgentResponse", " It is noon"),
        ("AgentGenerationComplete", ""),
    ]
    assert [e.chunk_type for e in out if isinstance(e, AgentResponse)] == [
        "buffered",
        "buffered",
        "final",
    ]
    assert out[-1] == AgentGenerationComplete(total_length=26, chunk_count=3)


async def test_buffer_responses_flushes_the_remainder_when_the_stream_just_ends() -> None:
    events = [AgentResponse(content="One."), AgentResponse(content=" Two")]
    out = [e async for e in buffer_responses(stream_of(events))]
    assert [(e.content, e.chunk_type) for e in out] == [("One.", "buffered"), (" Two", "final")]


async def test_closing_the_buffer_closes_the_upstream_stream() -> None:
    log: list[str] = []

    async def upstream() -> AsyncIterator[str]:
        try:
            for word in word_chunks("one two three. four"):
                yield word
        finally:
            log.append("finally")

    buffered = buffer_text(upstream(), max_chars=5)
    assert await buffered.__anext__() == "one two"
    await buffered.aclose()
    assert log == ["finally"]
