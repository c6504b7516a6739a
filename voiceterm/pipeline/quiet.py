"""When is the agent done? Nothing in flight, nothing playing, nothing happening.

A file run ends once it has been quiet for a moment, and freed memory is handed
back only once the whole pipeline rests (not between two sentences of an answer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from voiceterm.bus import Bus
from voiceterm.pipeline.freed_memory import FreedMemory
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.observe import Observer

logger = logging.getLogger(__name__)

QUIET_FOR_S = 0.4
"""How long nothing may happen before a file run counts as done."""

# How many loop turns a handled event is waited for: each route needs one or two,
# so this only bounds the wait should one of them be stuck.
_HANDLED_TURNS = 100

GIVE_BACK_AFTER_QUIET_S = 0.5
"""The rest after an answer before freed memory is trimmed."""


class Quiet:
    """Measures how long an agent has rested.

    ``held``: whether a stage outside the routes still holds work (a transcript
    held back, a chunk still playing).
    """

    def __init__(
        self, bus: Bus, observer: Observer, activity: AgentActivity, held: Callable[[], bool]
    ) -> None:
        self._bus = bus
        self._observer = observer
        self._activity = activity
        self._held = held

    def pending(self) -> bool:
        """Whether any turn is still in flight."""
        routes = (route for bridge in self._bus.bridges for route in bridge.routes)
        return any(route.pending for route in routes) or self._held()

    def quiet_for(self) -> float:
        """Seconds since anything last happened; 0.0 while a turn is still in flight."""
        if self.pending() or self._activity.speaking:
            return 0.0
        return time.monotonic() - self._observer.last_activity

    async def wait(self, limit_s: float) -> None:
        """Wait until quiet for :data:`QUIET_FOR_S`, or ``limit_s`` has passed (logged)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.quiet_for() > QUIET_FOR_S:
                return
            await asyncio.sleep(0.05)
        logger.warning("pipeline still busy after %.0f s", limit_s)

    async def until_handled(self, trigger: type[object]) -> None:
        """Return once every route that ``trigger`` starts has acted on it."""
        routes = [
            route
            for bridge in self._bus.bridges
            for route in bridge.routes
            if route.trigger is trigger
        ]
        for _ in range(_HANDLED_TURNS):
            if not any(route.pending for route in routes):
                return
            await asyncio.sleep(0)

    async def give_back(self, freed_memory: FreedMemory) -> None:
        """Once rested, hand back what the engines freed (after the last engine's part)."""
        while True:
            rested_s = self.quiet_for()
            if rested_s >= GIVE_BACK_AFTER_QUIET_S:
                break
            await asyncio.sleep(GIVE_BACK_AFTER_QUIET_S - rested_s)
        await asyncio.to_thread(freed_memory.give_back)
