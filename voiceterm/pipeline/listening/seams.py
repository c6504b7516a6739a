"""The listener's seams: what its parts read of the voice detector, and how they publish."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from voiceterm.events import Event

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from voiceterm.audio.frames import AudioFrame
    from voiceterm.engines.vad import SpeechEnded, VadEvent, VadSettings


Publish = Callable[[Event], None]
"""How a part sends an event (a :class:`~voiceterm.pipeline.publish.Publisher`)."""

Clock = Callable[[], float]
"""The listener's monotonic clock: a replay runs it on the audio's time."""


class Frames(Protocol):
    """What the listener reads of its source (an ``AudioSource`` fits): frames, in order."""

    def frames(self) -> AsyncIterator[AudioFrame]: ...


@dataclass(slots=True)  # not frozen: one is made at every frame, and frozen ones are slower to make
class Heard:
    """One microphone frame as the voice detector heard it (capture times)."""

    t_start: float
    t_end: float
    voiced: bool
    level_db: float


class Segmenter(Protocol):
    """What the listener needs of the voice detector (``VadSegmenter`` fits)."""

    @property
    def voiced(self) -> bool:
        """Whether the last frame fed was voiced."""
        ...

    @property
    def level_db(self) -> float: ...

    @property
    def settings(self) -> VadSettings: ...

    @property
    def trailing_silence_ms(self) -> int: ...

    @property
    def last_voiced_end(self) -> float | None: ...

    @property
    def pending_samples(self) -> int: ...

    def feed(self, samples: npt.NDArray[np.int16], t_first_sample: float) -> list[VadEvent]: ...

    def flush(self, t_end: float | None = None) -> list[VadEvent]: ...

    def end_utterance(self) -> list[VadEvent]: ...

    def discard_utterance(self) -> None: ...

    def current_utterance(self, *, pad_tail: bool = True) -> SpeechEnded | None: ...
