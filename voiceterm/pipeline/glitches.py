"""Audio dropouts made visible: the devices' counters, read now and then, on the bus.

PortAudio's callbacks may only count a speaker that ran dry or microphone audio
that was lost (they must never block); :class:`GlitchWatch` turns growing counts
into ``AudioGlitches`` events for the UIs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from voiceterm.events import AudioGlitches

logger = logging.getLogger(__name__)


class GlitchWatch:
    """Publishes ``AudioGlitches`` whenever the sink's or source's count grows.

    Args:
        sink: anything with ``underflows`` (the speaker); read at every check.
        source: anything with ``overflows`` (the microphone).
        publish: called on the loop with each ``AudioGlitches``.
        interval_s: seconds between checks (and so between two events at most).
    """

    def __init__(
        self,
        sink: Any,
        source: Any,
        publish: Callable[[AudioGlitches], None],
        interval_s: float = 5.0,
    ) -> None:
        self._sink = sink
        self._source = source
        self._publish = publish
        self.interval_s = interval_s
        self._seen = (0, 0)

    def check(self) -> AudioGlitches | None:
        """Read the counters; publish and return the event when they changed."""
        counts = (
            int(getattr(self._sink, "underflows", 0)),
            int(getattr(self._source, "overflows", 0)),
        )
        if counts == self._seen:
            return None
        self._seen = counts
        glitches = AudioGlitches(speaker_underflows=counts[0], mic_overflows=counts[1])
        logger.info("%s", glitches.describe())
        self._publish(glitches)
        return glitches

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.check()
