"""Freed memory goes back to the system once an answer has been spoken."""

from __future__ import annotations

import ctypes

import pytest

from benchmarks.memory import rss_mb
from tests.pipeline_fakes import say, scripted_agent, scripted_engines, until
from voiceterm.events import AgentStoppedSpeaking
from voiceterm.pipeline.freed_memory import FreedMemory

_BLOCK = 64 * 1024  # below glibc's mmap threshold: served from the heap, kept when freed
_BLOCKS = 1600  # 100 MB


def test_memory_freed_but_kept_by_malloc_is_given_back() -> None:
    freed_memory = FreedMemory()
    if not freed_memory.available:
        pytest.skip("this C library has no malloc_trim")
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(_BLOCK) for _ in range(_BLOCKS)]
    pin = libc.malloc(_BLOCK)  # above the others, so free() cannot shrink the heap itself
    try:
        for block in blocks:
            ctypes.memset(block, 1, _BLOCK)
        for block in blocks:
            libc.free(block)
        kept_mb = rss_mb()
        freed_memory.give_back()
        given_back_mb = kept_mb - rss_mb()
    finally:
        libc.free(pin)
    assert given_back_mb > 50, f"only {given_back_mb:.0f} of 100 freed MB went back"


class CountingFreedMemory(FreedMemory):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def give_back(self) -> None:
        self.calls += 1


async def test_memory_is_given_back_after_each_answer() -> None:
    agent = scripted_agent(scripted_engines())
    counting = CountingFreedMemory()
    agent.freed_memory = counting
    stops: list[AgentStoppedSpeaking] = []
    agent.bus.tap(
        lambda m: stops.append(m.event) if isinstance(m.event, AgentStoppedSpeaking) else None
    )
    await agent.start()
    try:
        await say(agent, "What is the moon made of?")
        await until(lambda: len(stops) == 1 and counting.calls == 1)
        await say(agent, "Tell me about the sun.")
        await until(lambda: len(stops) == 2 and counting.calls == 2)
    finally:
        await agent.stop()
