"""Publishing from synchronous code (device callbacks, timers) onto the bus."""

from __future__ import annotations

import asyncio
from typing import Any

from voiceterm.bus import Bus, Message


class Publisher:
    """Broadcasts events from synchronous code running on the event loop.

    Delivery is immediate when no queue is full; otherwise the rest of the delivery
    continues in a task that this publisher owns and cancels on :meth:`close`.
    """

    def __init__(self, bus: Bus, source: str) -> None:
        self._bus = bus
        self.source = source
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, event: Any) -> None:
        if not self._bus.running:
            return
        message = Message(self.source, event)
        stuck = self._bus.deliver_now(message)
        if stuck >= 0:
            task = asyncio.get_running_loop().create_task(
                self._bus.finish_delivery(message, stuck), name=f"publish from {self.source}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
