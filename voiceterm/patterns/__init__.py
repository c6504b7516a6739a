"""Reusable streaming patterns (pure Python; part of the streaming core).

The seed's patterns (``shared/seed/streaming-responses.txt``) as pieces that wrap
an event stream or sit in a route. Each module has one job:

- :mod:`~voiceterm.patterns.streams`: close abandoned streams; merge streams.
- :mod:`~voiceterm.patterns.sentences`: cut streamed text at sentence boundaries.
- :mod:`~voiceterm.patterns.buffering`: gather chunks up to a size or a sentence end.
- :mod:`~voiceterm.patterns.validation`: drop bad chunks; end with a completion marker.
- :mod:`~voiceterm.patterns.cache`: a bounded LRU of streamed answers, and replay.
- :mod:`~voiceterm.patterns.limits`: a chunk rate limit; caps per response.
- :mod:`~voiceterm.patterns.tooling`: run ``ToolCall`` s into ``ToolResult`` s.

Example, a generation that is validated, capped and buffered::

    def answer(message):
        events = node.generate(message)
        events = validate_responses(events)
        events = limit_responses(events, ChunkLimits(max_total_chars=2000))
        return buffer_responses(events, max_chars=80)

    bridge.on(UserTranscriptionReceived).exclusive().stream(answer).broadcast()
"""

from voiceterm.patterns.buffering import TextBuffer, buffer_responses, buffer_text
from voiceterm.patterns.cache import ResponseCache, cache_key, cached_stream
from voiceterm.patterns.limits import (
    ChunkLimits,
    RateLimiter,
    limit_responses,
    rate_limited,
    split_text,
)
from voiceterm.patterns.sentences import SentenceSplitter, ends_with_sentence
from voiceterm.patterns.streams import close_async_iterator, closed_on_error, merge_streams
from voiceterm.patterns.tooling import ToolExecutor, ToolRunner
from voiceterm.patterns.validation import is_valid_chunk, validate_responses

__all__ = [
    "ChunkLimits",
    "RateLimiter",
    "ResponseCache",
    "SentenceSplitter",
    "TextBuffer",
    "ToolExecutor",
    "ToolRunner",
    "buffer_responses",
    "buffer_text",
    "cache_key",
    "cached_stream",
    "close_async_iterator",
    "closed_on_error",
    "ends_with_sentence",
    "is_valid_chunk",
    "limit_responses",
    "merge_streams",
    "rate_limited",
    "split_text",
    "validate_responses",
]
