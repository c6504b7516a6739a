"""Audio dropouts made visible: the devices' counters, read now and then, on the bus.

PortAudio's callbacks may only count a speaker that ran dry or microphone audio
that was lost (they must never block); :class:`GlitchWatch` turns growing counts
into ``AudioGlitches`` events for the UIs. :class:`SpeakerLosses` counts the worse
case for the session's summary: the speaker stopped playing altogether.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from voiceterm.audio.abilities import glitch_counts
from voiceterm.events import AudioGlitches
from voiceterm.timeline import Turn

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
        sink: object,
        source: object,
        publish: Callable[[AudioGlitches], None],
        interval_s: float = 5.0,
    ) -> None:
        self._sink = sink
        self._source = source
        self._publish = publish
        self.interval_s = interval_s
        self._seen = (0, 0)

    def read(self) -> AudioGlitches:
        """The totals since start, published or not (the last ones, at exit)."""
        underflows, overflows = glitch_counts(self._sink, self._source)
        return AudioGlitches(speaker_underflows=underflows, mic_overflows=overflows)

    def check(self) -> AudioGlitches | None:
        """Read the counters; publish and return the event when they changed."""
        glitches = self.read()
        counts = (glitches.speaker_underflows, glitches.mic_overflows)
        if counts == self._seen:
            return None
        self._seen = counts
        logger.info("%s", glitches.describe())
        self._publish(glitches)
        return glitches

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.check()


@dataclass(frozen=True, slots=True)
class SpeakerLosses:
    """How often the speaker stopped playing mid-session, and what that cost.

    Attributes:
        reports: the speaker's errors (``AgentError`` from ``speaker``): each time it
            stopped playing, and each failed reopen after that.
        answers_cut: answers cut off by it (turns interrupted with ``speaker_lost``).
    """

    reports: int = 0
    answers_cut: int = 0

    @classmethod
    def of(cls, reports: int, turns: Iterable[Turn]) -> SpeakerLosses:
        """``reports`` counted from the bus; the cut-off answers read from the timeline."""
        return cls(reports, sum(turn.interrupt_reason == "speaker_lost" for turn in turns))

    def describe(self) -> str:
        """One sentence, with the counts even when they are 0 (benchmarks read it)."""
        times = "once" if self.reports == 1 else f"{self.reports} times"
        return f"The speaker stopped playing {times}; answers cut off by it: {self.answers_cut}."
