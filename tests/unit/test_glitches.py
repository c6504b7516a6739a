"""GlitchWatch: audio dropouts counted in device callbacks reach the bus and the user."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from voiceterm.events import AudioGlitches
from voiceterm.pipeline.glitches import GlitchWatch


@dataclass
class Counters:
    underflows: int = 0
    overflows: int = 0


def test_only_growing_counts_are_published_with_totals_since_start() -> None:
    speaker, mic = Counters(), Counters()
    published: list[AudioGlitches] = []
    watch = GlitchWatch(speaker, mic, published.append)
    assert watch.check() is None  # nothing lost yet: nothing to say
    speaker.underflows = 2
    watch.check()
    watch.check()
    mic.overflows = 1
    watch.check()
    assert [(g.speaker_underflows, g.mic_overflows) for g in published] == [(2, 0), (2, 1)]
    assert published[-1].describe() == (
        "Audio dropouts since start: the speaker ran dry 2 times (clicks)"
        " and the microphone lost audio once."
    )


def test_the_totals_can_be_read_without_publishing_them() -> None:
    # At exit: the watch may not have looked since the last dropout.
    speaker, mic = Counters(underflows=3), Counters()
    published: list[AudioGlitches] = []
    watch = GlitchWatch(speaker, mic, published.append)
    assert watch.read().describe() == (
        "Audio dropouts since start: the speaker ran dry 3 times (clicks)."
    )
    assert published == []
    assert watch.check() is not None, "still news for the next check"


def test_sources_without_counters_count_as_clean() -> None:
    published: list[AudioGlitches] = []
    assert GlitchWatch(object(), object(), published.append).check() is None
    assert published == []


async def test_it_checks_by_itself_and_stops_when_cancelled() -> None:
    speaker = Counters()
    published: list[AudioGlitches] = []
    task = asyncio.create_task(GlitchWatch(speaker, Counters(), published.append, 0.01).run())
    speaker.underflows = 1
    for _ in range(100):
        if published:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    said = published[0].describe()
    assert said == "Audio dropouts since start: the speaker ran dry once (clicks)."
