"""A blocking model's reply streamed on the event loop: :func:`astream_chat`.

An in-process model (``LlamaEngine``) generates in a blocking loop, so that loop
runs in a worker thread; its async ``stream_chat`` is this adapter. Cancelling
the consumer stops the worker and waits for it, so two generations never overlap.
Works with any :class:`BlockingChat`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

from voiceterm.engines.llm.messages import ChatMessage, ToolSpecs


class BlockingChat(Protocol):
    """A model whose reply is a blocking generator, cancellable by a flag."""

    def generate(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: ToolSpecs = None,
    ) -> Generator[str, None, None]:
        """The reply's pieces, in the calling thread; ends soon after ``cancel`` is set.

        Closing the generator early must free the model for the next call.
        """
        ...


@dataclass(frozen=True, slots=True)
class _Finished:
    error: BaseException | None = None


def _hand_over(
    pieces: Callable[[], Generator[str, None, None]],
    loop: asyncio.AbstractEventLoop,
    queue: asyncio.Queue[str | _Finished],
    stop: threading.Event,
) -> None:
    """The worker: runs the generator, posting each piece, then ``_Finished``, to the loop."""

    def post(item: str | _Finished) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            stop.set()
            return False
        return True

    try:
        with contextlib.closing(pieces()) as generated:
            for piece in generated:
                if not post(piece):
                    return
    except BaseException as error:  # handed to the loop, raised there
        post(_Finished(error))
    else:
        post(_Finished())


async def astream_chat(
    engine: BlockingChat,
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
        engine: The model (or a fake with the same ``generate``).
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

    def pieces() -> Generator[str, None, None]:
        return engine.generate(history, stop, max_tokens=max_tokens, grammar=grammar, tools=tools)

    work = functools.partial(_hand_over, pieces, loop, queue, stop)
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
