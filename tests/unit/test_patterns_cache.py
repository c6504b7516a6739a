"""The response cache: bounded LRU, replay identical, only whole answers stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from voiceterm.patterns.cache import ResponseCache, cache_key, cached_stream


def test_lru_evicts_the_least_recently_used() -> None:
    cache = ResponseCache(max_entries=2)
    cache.put("a", ["1"])
    cache.put("b", ["2"])
    assert cache.get("a") == ("1",)  # "a" is now the most recent
    cache.put("c", ["3"])
    assert "b" not in cache
    assert "a" in cache and "c" in cache
    assert len(cache) == 2
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (1, 1)
    cache.clear()
    assert len(cache) == 0


def test_answers_too_long_are_not_kept() -> None:
    cache = ResponseCache(max_entries=4, max_chars=10)
    assert cache.put("short", ["hello"]) is True
    assert cache.put("long", ["hello", " world", "!"]) is False
    assert "long" not in cache
    with pytest.raises(ValueError, match="max_entries"):
        ResponseCache(max_entries=0)


def test_cache_key_is_stable_and_sensitive() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert cache_key(messages) == cache_key([{"content": "hi", "role": "user"}])
    assert cache_key(messages) != cache_key([{"role": "user", "content": "hello"}])
    assert cache_key(messages, "model-a") != cache_key(messages, "model-b")
    assert len(cache_key(object())) == 64  # anything, via repr


class Source:
    def __init__(self, chunks: list[str], *, fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.calls = 0

    async def stream(self) -> AsyncIterator[str]:
        self.calls += 1
        for index, chunk in enumerate(self.chunks):
            await asyncio.sleep(0)
            if index == self.fail_at:
                raise RuntimeError("model failed")
            yield chunk


async def test_second_run_replays_the_identical_answer_without_generating() -> None:
    cache = ResponseCache()
    source = Source(["The", " answer", " is", " 42."])
    first = [c async for c in cached_stream(cache, "q", source.stream)]
    second = [c async for c in cached_stream(cache, "q", source.stream)]
    assert first == second == ["The", " answer", " is", " 42."]
    assert source.calls == 1


async def test_interrupted_or_failed_answers_are_not_cached() -> None:
    cache = ResponseCache()
    source = Source(["a", "b", "c"])
    partial = cached_stream(cache, "q", source.stream)
    assert await partial.__anext__() == "a"
    await partial.aclose()  # interrupted
    assert "q" not in cache

    failing = Source(["a", "b"], fail_at=1)
    with pytest.raises(RuntimeError):
        async for _ in cached_stream(cache, "f", failing.stream):
            pass
    assert "f" not in cache


def test_the_cache_is_a_drop_in_for_a_dict() -> None:
    cache = ResponseCache(max_entries=1)
    cache["a"] = ["x", "y"]
    assert "a" in cache
    assert cache["a"] == ("x", "y")
    cache["b"] = ["z"]
    with pytest.raises(KeyError):
        cache["a"]
