"""The in-process event bus: every registered bridge sees every message.

Delivery is push-based and cheap. ``broadcast`` does, synchronously and in this
order:

1. control: every route whose ``interrupt_on`` / ``suspend_on`` / ``resume_on``
   matches the event reacts at once, so a barge-in never waits behind queued data;
2. taps: plain callbacks that observe every message (recorders, UIs);
3. data: the message is appended to the bounded queue of every route that
   listens for it. Each route drains its own queue in its own task, so a slow
   route delays nobody but its own publisher, and only when its queue is full
   and it asked for back-pressure (``when_full="block"``): the publisher then
   waits for room in that queue, after every other route already has the
   message. With ``when_full="drop_oldest"`` the oldest queued data is dropped
   and counted instead. Control events (``ControlEvent``) are never dropped or
   blocked and are taken before queued data.

Which routes care about which event type is computed once per type and cached,
so a broadcast costs a dictionary lookup plus one queue append per listener.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voiceterm.bridge import Bridge, Route

logger = logging.getLogger(__name__)

_message_ids = itertools.count(1)
_monotonic = time.monotonic

Tap = Callable[["Message"], None]


@dataclass(slots=True, init=False)
class Message:
    """An event on the bus, with the id of the node that sent it.

    Attributes:
        source: The id of the node (or outside component) that sent it.
        event: The payload, usually a :mod:`voiceterm.events` dataclass.
        id: A number unique within the process, increasing in creation order.
        timestamp: ``time.monotonic()`` when the message was made.
    """

    source: str
    event: Any
    id: int
    timestamp: float

    # A hand-written __init__: messages are made for every chunk at every stage,
    # and this is about twice as fast as the generated one with default factories.
    def __init__(
        self, source: str, event: Any, id: int | None = None, timestamp: float | None = None
    ) -> None:
        self.source = source
        self.event = event
        self.id = next(_message_ids) if id is None else id
        self.timestamp = _monotonic() if timestamp is None else timestamp


class _Plan:
    """The routes that react to one event type (cached per type)."""

    __slots__ = ("controls", "routes")

    def __init__(self, controls: tuple[Route, ...], routes: tuple[Route, ...]) -> None:
        self.controls = controls
        self.routes = routes


class Bus:
    """Joins bridges; ``broadcast`` delivers a message to every one of them."""

    def __init__(self) -> None:
        self._bridges: list[Bridge] = []
        self._running = False
        self._plans: dict[type[Any], _Plan] = {}
        self._taps: list[Tap] = []
        # Deliveries started by deliver_now() that still wait for room somewhere.
        self._unfinished: dict[int, list[Route]] = {}
        self._stopping: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the bus delivers messages (between ``start`` and ``stop``)."""
        return self._running

    @property
    def bridges(self) -> tuple[Bridge, ...]:
        """The registered bridges, in registration order."""
        return tuple(self._bridges)

    def register_bridge(self, bridge: Bridge) -> None:
        """Attach ``bridge``; it starts with the bus (or now, if the bus runs)."""
        if bridge in self._bridges:
            return
        self._bridges.append(bridge)
        bridge.attach(self)
        self.invalidate()
        if self._running:
            bridge.start()

    def tap(self, callback: Tap) -> Callable[[], None]:
        """Call ``callback(message)`` synchronously for every message broadcast.

        For observers that must see everything in exact broadcast order without a
        queue (recorders, a UI's ``post_message``). The callback must be quick and
        must not block; an exception it raises is logged and ignored.

        Returns:
            A function that removes the tap.
        """
        self._taps.append(callback)

        def remove() -> None:
            if callback in self._taps:
                self._taps.remove(callback)

        return remove

    def invalidate(self) -> None:
        """Forget the cached routing plans (called when routes change)."""
        self._plans.clear()

    async def start(self) -> None:
        """Start every bridge's route workers on the running event loop."""
        self._running = True
        for bridge in self._bridges:
            bridge.start()

    async def broadcast(self, message: Message) -> None:
        """Deliver ``message`` to every bridge, waiting where a blocking queue is full.

        Messages broadcast while the bus is not running are dropped.
        """
        if not self._running:
            logger.debug("bus not running; dropped %s", type(message.event).__name__)
            return
        blocked = self._deliver(message)
        if blocked is not None:
            await self._deliver_blocked(message, blocked)

    def offer(self, message: Message) -> Coroutine[Any, Any, None] | None:
        """Deliver ``message`` wherever there is room now, without waiting.

        Returns ``None`` when that was everywhere (or the bus is not running), else
        a coroutine that completes the delivery to the full blocking queues: a
        route awaits it, so that a fast stage waits for a slow one.
        """
        if not self._running:
            return None
        blocked = self._deliver(message)
        return None if blocked is None else self._deliver_blocked(message, blocked)

    def deliver_now(self, message: Message) -> int:
        """Deliver without waiting: ``-1`` when done, else a token for ``finish_delivery``.

        For synchronous publishers (device callbacks, timers). Every route with room
        already has the message when this returns; a non-negative result means some
        blocking queue was full, and the caller must ``await
        finish_delivery(message, token)`` (usually in a task) to complete it.
        """
        if not self._running:
            return -1
        blocked = self._deliver(message)
        if blocked is None:
            return -1
        self._unfinished[message.id] = blocked
        return 0

    async def finish_delivery(self, message: Message, start: int = 0) -> None:
        """Complete a delivery that :meth:`deliver_now` could not finish."""
        blocked = self._unfinished.pop(message.id, None)
        if blocked is not None:
            await self._deliver_blocked(message, blocked)

    async def stop(self) -> None:
        """Cancel every route and wait until each task has finished its ``finally``.

        Safe to call from inside a route (a "quit" command): the stopping goes on
        in a task of its own while the calling route is cancelled with the rest.
        """
        self._running = False
        if self._stopping is None or self._stopping.done():
            self._stopping = asyncio.get_running_loop().create_task(
                self._stop_bridges(), name="bus stop"
            )
        await asyncio.shield(self._stopping)

    async def _stop_bridges(self) -> None:
        await asyncio.gather(*(bridge.stop() for bridge in self._bridges))
        self._unfinished.clear()

    # --- delivery internals ---------------------------------------------------------

    def _deliver(self, message: Message) -> list[Route] | None:
        """Control, taps, then queue; return the blocking routes that were full."""
        event_type = type(message.event)
        plan = self._plans.get(event_type)
        if plan is None:
            plan = self._plan_for(event_type)
        for route in plan.controls:
            route.control(message)
        if self._taps:
            self._call_taps(message)
        blocked: list[Route] | None = None
        for route in plan.routes:
            if not route.offer(message):
                if blocked is None:
                    blocked = [route]
                else:
                    blocked.append(route)
        return blocked

    async def _deliver_blocked(self, message: Message, blocked: list[Route]) -> None:
        for route in blocked:
            while not route.enqueue(message):
                await route.space()

    def _call_taps(self, message: Message) -> None:
        for tap in tuple(self._taps):
            try:
                tap(message)
            except Exception:
                logger.exception("bus tap %r failed", tap)

    def _plan_for(self, event_type: type[Any]) -> _Plan:
        controls: list[Route] = []
        routes: list[Route] = []
        for bridge in self._bridges:
            for route in bridge.routes:
                if route.controlled_by(event_type):
                    controls.append(route)
                if route.triggered_by(event_type):
                    routes.append(route)
        plan = self._plans[event_type] = _Plan(tuple(controls), tuple(routes))
        return plan
