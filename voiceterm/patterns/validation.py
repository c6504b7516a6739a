"""Chunk validation with a completion marker.

The seed's ``ValidatedStreamingNode`` checks each chunk, drops (and logs) the
bad ones, and ends with ``AgentGenerationComplete(total_length, chunk_count)``
describing what was actually sent. :func:`validate_responses` does that to any
event stream, with :func:`is_valid_chunk` as the default check.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import Any

from voiceterm.bus import Message
from voiceterm.events import AgentGenerationComplete, AgentResponse
from voiceterm.patterns.streams import closed_on_error

logger = logging.getLogger(__name__)

ChunkCheck = Callable[[str], bool]

_ALLOWED_CONTROLS = frozenset("\n\t\r")


def is_valid_chunk(text: str | None) -> bool:
    """Whether ``text`` is a chunk worth sending on.

    Rejects ``None``, empty and whitespace-only chunks, and malformed text: the
    Unicode replacement character (a broken byte sequence from the model) or
    control characters other than newlines and tabs.
    """
    if not text or not text.strip():
        return False
    if "\ufffd" in text:
        return False
    return not any(unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS for ch in text)


async def validate_responses(
    events: AsyncIterable[Any],
    is_valid: ChunkCheck = is_valid_chunk,
    *,
    on_invalid: Callable[[str], None] | None = None,
) -> AsyncGenerator[Any, None]:
    """Pass valid ``AgentResponse`` chunks on and end with a completion marker.

    Args:
        events: An event stream (``node.generate(...)``, an LLM adapter...).
            Messages are unwrapped to their events.
        is_valid: The check for each chunk's text.
        on_invalid: Called with the text of each rejected chunk (default: log a
            warning).

    Yields:
        Every valid ``AgentResponse`` and every other event, in order, except
        upstream ``AgentGenerationComplete`` markers, which are replaced by one
        final ``AgentGenerationComplete`` whose ``total_length`` and
        ``chunk_count`` count only the chunks that passed.
    """
    total_length = 0
    chunk_count = 0
    async with closed_on_error(events) as iterator:
        async for item in iterator:
            event = item.event if isinstance(item, Message) else item
            if isinstance(event, AgentGenerationComplete):
                continue
            if isinstance(event, AgentResponse):
                if not is_valid(event.content):
                    if on_invalid is not None:
                        on_invalid(event.content)
                    else:
                        logger.warning("Invalid chunk filtered: %r", event.content)
                    continue
                total_length += len(event.content)
                chunk_count += 1
            yield event
    yield AgentGenerationComplete(total_length=total_length, chunk_count=chunk_count)


__all__ = ["ChunkCheck", "is_valid_chunk", "validate_responses"]
