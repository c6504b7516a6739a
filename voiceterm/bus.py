"""The in-process event bus: every registered bridge sees every message.

Delivery is push-based and cheap: ``broadcast`` hands the message to each bridge,
which (1) runs interrupt handlers synchronously, so barge-in never waits behind
queued data, and (2) appends the message to the bounded queue of every route
that listens for it. Each route drains its own queue in its own task, so a slow
route delays nobody but its own publisher, and only when its queue is full and
its bridge asked for back-pressure (``when_full="block"``); with
``when_full="drop_oldest"`` the oldest queued data is dropped and counted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voiceterm.bridge import Bridge

logger = logging.getLogger(__name__)

_message_ids = itertools.count(1)


@dataclass(slots=True)
class Message:
    """An event on the bus, with the id of the node that sent it."""

    source: str
    event: Any
    id: int = field(default_factory=lambda: next(_message_ids))
    timestamp: float = field(default_factory=time.monotonic)


class Bus:
    """Joins bridges; ``broadcast`` delivers a message to every one of them."""

    def __init__(self) -> None:
        self._bridges: list[Bridge] = []
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    @property
    def bridges(self) -> tuple[Bridge, ...]:
        return tuple(self._bridges)

    def register_bridge(self, bridge: Bridge) -> None:
        """Attach ``bridge``; it starts with the bus (or now, if the bus runs)."""
        if bridge in self._bridges:
            return
        self._bridges.append(bridge)
        bridge.attach(self)
        if self._running:
            bridge.start()

    async def start(self) -> None:
        """Start every bridge's route workers on the running event loop."""
        self._running = True
        for bridge in self._bridges:
            bridge.start()

    def deliver_now(self, message: Message) -> int:
        """Deliver without waiting; return -1, or the index of a bridge that was full.

        Interrupts run first, on every bridge, before any data is queued: a
        barge-in must never wait behind chunks. A caller that gets an index
        finishes with :meth:`finish_delivery` from that index on.
        """
        bridges = self._bridges
        for bridge in bridges:
            bridge.interrupt(message)
        for index, bridge in enumerate(bridges):
            if not bridge.deliver(message):
                return index
        return -1

    async def finish_delivery(self, message: Message, start: int) -> None:
        """Deliver to ``bridges[start:]``, waiting for room where a queue is full."""
        for bridge in self._bridges[start:]:
            while not bridge.deliver(message):
                await bridge.wait_for_space(message)

    async def broadcast(self, message: Message) -> None:
        """Deliver ``message`` to every bridge, waiting where a queue is full."""
        if not self._running:
            logger.debug("bus not running; dropped %s", type(message.event).__name__)
            return
        stuck = self.deliver_now(message)
        if stuck >= 0:
            await self.finish_delivery(message, stuck)

    async def stop(self) -> None:
        """Cancel every route and wait until each task has finished its ``finally``."""
        self._running = False
        await asyncio.gather(*(bridge.stop() for bridge in self._bridges))
