"""Async stream plumbing: closing abandoned iterators and merging streams.

Two things the seed gets subtly wrong and every streaming stage needs:

* An ``async for`` that ends with an exception does **not** close the async
  generator it was iterating; its ``finally`` would run later, from the garbage
  collector, in another task. :func:`close_async_iterator` finishes it at once,
  throwing ``CancelledError`` into it when the stream was cancelled (so it sees
  the cancellation, as interruption-aware generators expect) and closing it
  otherwise; :func:`closed_on_error` does so for a stream a generator passes on.
* :func:`merge_streams` yields chunks from several streams as they arrive. The
  seed's version compares ``__anext__`` awaitables with iterators and restarts
  them on every round; this one keeps exactly one pending ``__anext__`` per
  stream, and on cancellation or error cancels the others and closes them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def close_async_iterator(iterator: Any, error: BaseException | None = None) -> None:
    """Finish an abandoned async iterator so that its ``finally`` runs now.

    Args:
        iterator: An async generator or any async iterator (one without
            ``athrow``/``aclose`` is left alone, or just ``aclose``-d).
        error: Why it is abandoned. ``asyncio.CancelledError`` is thrown into a
            generator so that it sees the cancellation; anything else (or
            ``None``) closes it with ``GeneratorExit``.

    Never raises: a generator that misbehaves while closing is logged.
    """
    try:
        if isinstance(error, asyncio.CancelledError) and hasattr(iterator, "athrow"):
            try:
                await iterator.athrow(asyncio.CancelledError())
            except (asyncio.CancelledError, StopAsyncIteration):
                return
            # It swallowed the cancellation and yielded again (or had already
            # finished): closing makes sure it is done either way.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    except RuntimeError as exc:
        # "asynchronous generator is already running" or "ignored GeneratorExit".
        logger.debug("could not close %r: %s", iterator, exc)
    except Exception:
        logger.exception("stream %r failed while closing", iterator)


@contextlib.asynccontextmanager
async def closed_on_error(stream: AsyncIterable[T]) -> AsyncGenerator[AsyncIterator[T], None]:
    """``stream``'s iterator, finished at once if the body ends with an exception.

    For a generator that passes ``stream`` on: the body's exception (an error, a
    cancellation, or ``GeneratorExit`` when its own consumer closes it) finishes
    ``stream`` with :func:`close_async_iterator` before it propagates.
    """
    iterator = aiter(stream)
    try:
        yield iterator
    except BaseException as exc:
        await close_async_iterator(iterator, exc)
        raise


async def _next_of(iterator: AsyncIterator[T]) -> T:
    return await iterator.__anext__()


async def merge_streams(*streams: AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """Yield the chunks of all ``streams`` as they arrive, until all are done.

    Each stream runs ahead by at most one chunk. When several chunks are ready at
    once they come in the order the streams were given. Chunks of one stream
    keep their order.

    If one stream raises, the others are cancelled and closed and the error is
    raised here. If the merged stream is cancelled or closed (an interruption),
    every stream is cancelled and closed before this generator finishes.

    Args:
        streams: Async iterables (async generators, usually).

    Yields:
        Every chunk of every stream.
    """
    loop = asyncio.get_running_loop()
    iterators = [aiter(stream) for stream in streams]
    pending: dict[asyncio.Task[T], int] = {}

    def schedule(index: int) -> None:
        task = loop.create_task(_next_of(iterators[index]), name=f"merge_streams[{index}]")
        pending[task] = index

    error: BaseException | None = None
    try:
        for index in range(len(iterators)):
            schedule(index)
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=pending.__getitem__):
                index = pending.pop(task)
                try:
                    chunk = task.result()
                except StopAsyncIteration:
                    continue
                yield chunk
                schedule(index)
    except BaseException as exc:
        error = exc
        raise
    finally:
        await _cancel_all(pending)
        for iterator in iterators:
            await close_async_iterator(iterator, error)


async def _cancel_all(tasks: dict[asyncio.Task[Any], int]) -> None:
    """Cancel ``tasks``, wait until they have finished, and consume their outcome."""
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            exc = task.exception()  # retrieved, so asyncio does not warn about it
            if exc is not None and not isinstance(exc, StopAsyncIteration):
                logger.debug("merged stream ended with %r while cancelling", exc)
    tasks.clear()


__all__ = ["close_async_iterator", "closed_on_error", "merge_streams"]
