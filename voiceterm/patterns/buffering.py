"""Buffered streaming: gather small LLM chunks into bigger pieces.

The seed's ``BufferedStreamingNode`` releases its buffer when it reaches a size
or ends a sentence, and sends whatever is left at the end. This is that pattern
as a reusable piece, with a sentence test that is not fooled by "Dr.", "e.g.",
"3.14" or "..." (:func:`voiceterm.patterns.sentences.ends_with_sentence`).

Use :class:`TextBuffer` directly, :func:`buffer_text` on a stream of strings, or
:func:`buffer_responses` on a node's event stream inside a route::

    bridge.on(UserTranscriptionReceived).stream(
        lambda message: buffer_responses(node.generate(message), max_chars=80)
    ).broadcast()
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any

from voiceterm.bus import Message
from voiceterm.events import AgentGenerationComplete, AgentResponse
from voiceterm.patterns.sentences import ends_with_sentence
from voiceterm.patterns.streams import closed_on_error


class TextBuffer:
    """Collects text and releases it at ``max_chars`` or at the end of a sentence.

    Whether the buffer ends a sentence is judged by
    :func:`~voiceterm.patterns.sentences.ends_with_sentence`. A sentence that ends
    in a bare ``.`` is held until the next chunk shows it really ended (the next
    chunk starts with a space): otherwise "Wait..." streamed as "Wait." + ".."
    would be cut inside the ellipsis. ``!`` and ``?`` are released at once.

    Args:
        max_chars: Release the buffer once it holds at least this many characters.
        at_sentence_end: Also release it when it ends a complete sentence.
    """

    def __init__(self, max_chars: int = 50, *, at_sentence_end: bool = True) -> None:
        if max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self.max_chars = max_chars
        self.at_sentence_end = at_sentence_end
        self._buffer = ""
        self._held = False  # the buffer ends a sentence with "." unless more follows

    @property
    def pending(self) -> str:
        """Text received but not released yet."""
        return self._buffer

    def push(self, text: str) -> list[str]:
        """Add ``text``; return the pieces that are due (often none, at most two)."""
        released: list[str] = []
        if self._held:
            if not text:
                return released
            self._held = False
            if text[0].isspace():
                released.append(self._buffer)
                self._buffer = ""
        buffer = self._buffer = self._buffer + text
        if len(buffer) >= self.max_chars:
            released.append(buffer)
            self._buffer = ""
        elif self.at_sentence_end and ends_with_sentence(buffer):
            if buffer[-1] == ".":
                self._held = True
            else:
                released.append(buffer)
                self._buffer = ""
        return released

    def flush(self) -> str | None:
        """Release what is left (``None`` if it is only whitespace) and start over."""
        remainder, self._buffer = self._buffer, ""
        self._held = False
        return remainder if remainder.strip() else None

    def reset(self) -> None:
        """Throw the buffered text away (an interrupted answer)."""
        self._buffer = ""
        self._held = False


async def buffer_text(
    chunks: AsyncIterable[str], *, max_chars: int = 50, at_sentence_end: bool = True
) -> AsyncGenerator[str, None]:
    """Re-chunk a text stream into pieces released by a :class:`TextBuffer`.

    The final remainder is released at the end of the stream. If this generator is
    closed or cancelled, ``chunks`` is closed or cancelled too.
    """
    buffer = TextBuffer(max_chars, at_sentence_end=at_sentence_end)
    async with closed_on_error(chunks) as iterator:
        async for chunk in iterator:
            for piece in buffer.push(chunk):
                yield piece
    last = buffer.flush()
    if last is not None:
        yield last


async def buffer_responses(
    events: AsyncIterable[Any],
    *,
    max_chars: int = 50,
    at_sentence_end: bool = True,
    chunk_type: str = "buffered",
    final_chunk_type: str = "final",
) -> AsyncGenerator[Any, None]:
    """Buffer the ``AgentResponse`` chunks of an event stream (like ``node.generate``).

    Text is released as ``AgentResponse(chunk_type=chunk_type)``; the last
    remainder, at the end of the stream or just before ``AgentGenerationComplete``,
    as ``chunk_type=final_chunk_type``. Any other event passes through in order
    (pending text is released just before it, so nothing is reordered). An
    ``AgentGenerationComplete`` passes with its ``chunk_count`` set to the number
    of buffered chunks released. Messages are unwrapped to their events.
    """
    buffer = TextBuffer(max_chars, at_sentence_end=at_sentence_end)
    released = 0
    async with closed_on_error(events) as iterator:
        async for item in iterator:
            event = item.event if isinstance(item, Message) else item
            if isinstance(event, AgentResponse):
                for piece in buffer.push(event.content):
                    released += 1
                    yield AgentResponse(content=piece, chunk_type=chunk_type)
                continue
            final = isinstance(event, AgentGenerationComplete)
            pending = buffer.flush()
            if pending is not None:
                released += 1
                yield AgentResponse(
                    content=pending, chunk_type=final_chunk_type if final else chunk_type
                )
            if final:
                event = AgentGenerationComplete(
                    total_length=event.total_length, chunk_count=released
                )
                released = 0
            yield event
    last = buffer.flush()
    if last is not None:
        yield AgentResponse(content=last, chunk_type=final_chunk_type)


__all__ = ["TextBuffer", "buffer_responses", "buffer_text"]
