"""Cached streaming: replay a streamed answer that was already generated once.

The seed's ``CachedStreamingNode`` keeps every answer forever in a dict. Here the
cache is a bounded LRU (:class:`ResponseCache`, by entries and by characters per
entry), and :func:`cached_stream` stores an answer only when its stream finished:
an interrupted or failed answer is never replayed as if it were whole.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Hashable,
    Iterable,
)
from typing import Any

from voiceterm.patterns.streams import closed_on_error


class ResponseCache:
    """A least-recently-used map from a key to the chunks of an answer.

    Args:
        max_entries: How many answers are kept; the least recently used goes first.
        max_chars: Answers longer than this (all chunks together) are not stored,
            so one runaway answer cannot take the memory. ``None``: no limit.

    Attributes:
        hits: Lookups that found an answer.
        misses: Lookups that did not.
    """

    def __init__(self, max_entries: int = 128, *, max_chars: int | None = 20_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[Hashable, tuple[str, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # Mapping-style access, so the cache is a drop-in for the seed's plain dict
    # (``self.response_cache = ResponseCache()`` in ``CachedStreamingNode``).
    def __getitem__(self, key: Hashable) -> tuple[str, ...]:
        chunks = self.get(key)
        if chunks is None:
            raise KeyError(key)
        return chunks

    def __setitem__(self, key: Hashable, chunks: Iterable[str]) -> None:
        self.put(key, chunks)

    def get(self, key: Hashable) -> tuple[str, ...] | None:
        """The chunks stored for ``key`` (marking it recently used), or ``None``."""
        chunks = self._entries.get(key)
        if chunks is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return chunks

    def put(self, key: Hashable, chunks: Iterable[str]) -> bool:
        """Store ``chunks`` for ``key``; ``False`` if the answer was too long to keep."""
        stored = tuple(chunks)
        if self.max_chars is not None and sum(map(len, stored)) > self.max_chars:
            return False
        self._entries[key] = stored
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def clear(self) -> None:
        """Forget every answer."""
        self._entries.clear()


def cache_key(*parts: Any) -> str:
    """A stable key for what an answer depends on (messages, settings...).

    ``parts`` are serialized as JSON (anything else by ``repr``) and hashed, so
    equal conversations give equal keys across runs.
    """
    payload = json.dumps(parts, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


async def cached_stream(
    cache: ResponseCache, key: Hashable, produce: Callable[[], AsyncIterable[str]]
) -> AsyncGenerator[str, None]:
    """Replay the cached chunks for ``key``, or stream ``produce()`` and remember it.

    The answer is stored only when the stream ends normally (not when it is
    interrupted, closed early or fails).
    """
    cached = cache.get(key)
    if cached is not None:
        for chunk in cached:
            yield chunk
        return
    chunks: list[str] = []
    async with closed_on_error(produce()) as iterator:
        async for chunk in iterator:
            chunks.append(chunk)
            yield chunk
    cache.put(key, chunks)


__all__ = ["ResponseCache", "cache_key", "cached_stream"]
