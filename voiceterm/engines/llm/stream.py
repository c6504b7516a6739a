"""Streaming a reply on the event loop: :func:`astream_chat`.

The engine's ``stream_chat`` blocks, so it runs in a worker thread; cancelling
the consumer stops the worker and waits for it, so two generations never overlap.
Works with any :class:`~voiceterm.engines.llm.protocol.ChatStreamer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from voiceterm.engines.llm.messages import ChatMessage, ToolSpecs
from voiceterm.engines.llm.protocol import ChatStreamer


@dataclass(frozen=True, slots=True)
class _Finished:
    error: BaseException | None = None


async def astream_chat(
    engine: ChatStreamer,
    messages: Sequence[ChatMessage],
    *,
    max_tokens: int | None = None,
    grammar: str | None = None,
    tools: ToolSpecs = None,
    cancel: threading.Event | None = None,
) -> AsyncGenerator[str, None]:
    """Stream a reply on the event loop while the model runs in a worker thread.

    The worker hands each piece to the loop with ``call_soon_threadsafe``; the
    loop never blocks on the model. If the consumer stops early -- the task is
    cancelled (barge-in) or the generator is closed -- the cancel flag is set and
    this waits (without blocking the loop) until the worker has finished, so the
    next generation never overlaps this one.

    Args:
        engine: The model (or a fake with the same ``stream_chat``).
        messages: The conversation; copied, so the caller may change its list.
        max_tokens: Cap on generated tokens.
        grammar: GBNF constraining the output.
        tools: Tool specs for templates that render them.
        cancel: An outside flag to stop the worker too (one is made if omitted).

    Yields:
        Text pieces as the model produces them.

    Raises:
        EngineError: Whatever the engine raised, re-raised on the loop.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | _Finished] = asyncio.Queue()
    stop = cancel if cancel is not None else threading.Event()
    history = [dict(message) for message in messages]

    def post(item: str | _Finished) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            stop.set()
            return False
        return True

    def work() -> None:
        try:
            with contextlib.closing(
                engine.stream_chat(
                    history, stop, max_tokens=max_tokens, grammar=grammar, tools=tools
                )
            ) as pieces:
                for piece in pieces:
                    if not post(piece):
                        return
        except BaseException as error:  # handed to the loop, raised there
            post(_Finished(error))
        else:
            post(_Finished())

    worker = threading.Thread(target=work, name="voiceterm-llm", daemon=True)
    worker.start()
    finished = False
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _Finished):
                finished = True
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        if not finished:
            stop.set()
            # The worker's last act is posting _Finished (after the engine has
            # released the model), so waiting for it means the model is free.
            while not isinstance(await queue.get(), _Finished):
                pass
