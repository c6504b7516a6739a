"""One streamed completion as reply pieces: what is closed when the reply stops early."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from types import SimpleNamespace
from typing import Any

from voiceterm.engines.llm.server_reply import reply_pieces
from voiceterm.engines.llm.stats import GenerationStats


def chunk(text: str) -> Any:
    delta = SimpleNamespace(content=text, tool_calls=None)
    return SimpleNamespace(choices=[SimpleNamespace(delta=delta, finish_reason=None)])


class FakeStream:
    """The SDK's async stream: iterated through a generator of its own, closed by ``aclose``."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.log: list[str] = []

    async def __aiter__(self) -> AsyncGenerator[Any, None]:
        try:
            for text in self.texts:
                yield chunk(text)
        finally:
            self.log.append("iterator closed")

    async def aclose(self) -> None:
        self.log.append("response closed")


class FakeClient:
    def __init__(self, stream: FakeStream) -> None:
        async def create(**_request: Any) -> FakeStream:
            return stream

        self.chat = SimpleNamespace(completions=SimpleNamespace(create=create))


async def test_stopping_early_closes_the_iterator_then_the_response_at_once() -> None:
    stream = FakeStream(["Hello", " there", " friend"])
    took: list[float] = []
    pieces = reply_pieces(FakeClient(stream), {}, GenerationStats(), took.append)
    async with contextlib.aclosing(pieces):
        assert await anext(pieces) == "Hello"
    assert stream.log == ["iterator closed", "response closed"]
    assert len(took) == 1  # closed early: how long it took is told


async def test_a_whole_reply_closes_the_response_too() -> None:
    stream = FakeStream(["Hello", " there"])
    took: list[float] = []
    pieces = reply_pieces(FakeClient(stream), {}, GenerationStats(), took.append)
    assert [piece async for piece in pieces] == ["Hello", " there"]
    assert stream.log == ["iterator closed", "response closed"]
    assert took == []
