"""What flows through the audio layer, and the two interfaces every device implements.

Capture side: an ``AudioSource`` (the microphone, a WAV file, a test fake) yields
``AudioFrame``\\ s: int16 mono samples at 16 kHz, each stamped with the monotonic
time of its first sample. Playback side: an ``AudioSink`` (the speaker, a WAV file)
takes int16 chunks at any rate, each with a ``PlaybackTag`` saying which turn and
sentence it belongs to, and reports back on the asyncio loop when sound really
started, when each chunk finished and when it ran dry.

The pipeline talks only to these protocols, so the live devices
(``voiceterm.audio.microphone.MicrophoneSource``, ``voiceterm.audio.speaker.Player``)
and the file ones (``voiceterm.audio.wavio.WavFileSource`` / ``WavFileSink``) are
interchangeable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Array = npt.NDArray[np.int16]

CAPTURE_RATE = 16000
"""Sample rate of every ``AudioFrame`` (what the VAD and Whisper want)."""

SILENCE_THRESHOLD = 328
"""|sample| above this (1 % of full scale, -40 dBFS) counts as sound, not silence."""


@dataclass(slots=True)
class AudioFrame:
    """A block of captured audio.

    Attributes:
        samples: int16 mono samples at ``sample_rate`` (16 kHz).
        t_start: ``time.monotonic()`` time at which the first sample was captured
            (from PortAudio's ADC time for a microphone; see each source for files).
        offset: index of the first sample counted from the start of the source,
            so ``offset / sample_rate`` is the position in the stream in seconds.
        sample_rate: samples per second, always ``CAPTURE_RATE`` from the sources here.
    """

    samples: Int16Array
    t_start: float
    offset: int = 0
    sample_rate: int = CAPTURE_RATE

    @property
    def duration(self) -> float:
        """Length of the frame in seconds."""
        return len(self.samples) / self.sample_rate

    @property
    def t_end(self) -> float:
        """Monotonic time just after the last sample."""
        return self.t_start + self.duration


@dataclass(frozen=True, slots=True)
class PlaybackTag:
    """Identifies a chunk of speech handed to a sink.

    Attributes:
        turn_id: the conversation turn the chunk answers; ``on_started`` fires once
            per turn id, at its first non-silent sample.
        sentence_index: which sentence (or clause) of the answer.
        text: the words this chunk speaks, so the pipeline can tell what was heard.
        chunk_index: position of the chunk within its sentence.
    """

    turn_id: int
    sentence_index: int = 0
    text: str = ""
    chunk_index: int = 0


@dataclass(frozen=True, slots=True)
class PlaybackPosition:
    """What a sink is playing at a given instant.

    Attributes:
        tag: the chunk being heard.
        sample: index (at the chunk's playback rate) of the sample being heard.
        total: number of samples in the chunk at that rate.
        sample_rate: the playback rate of ``sample`` and ``total``.
    """

    tag: PlaybackTag
    sample: int
    total: int
    sample_rate: int

    @property
    def fraction(self) -> float:
        """How much of the chunk has been heard, from 0.0 to 1.0."""
        return self.sample / self.total if self.total else 1.0

    @property
    def seconds(self) -> float:
        """Time into the chunk, in seconds."""
        return self.sample / self.sample_rate


StartedCallback = Callable[[PlaybackTag, float], None]
"""``on_started(tag, t_audible)``: first non-silent sample of a turn reached the DAC."""

TagDoneCallback = Callable[[PlaybackTag, float], None]
"""``on_tag_done(tag, t)``: the last sample of a chunk was played at monotonic ``t``."""

IdleCallback = Callable[[float], None]
"""``on_idle(t)``: nothing more to play; the last sample ends at monotonic ``t``."""

WokeCallback = Callable[[float, float], None]
"""``on_woke(since, until)``: queued sound waited for the device's stream to start,
from monotonic ``since`` to ``until`` (a sound server resuming a suspended sink)."""


@runtime_checkable
class AudioSource(Protocol):
    """Something that captures audio: a microphone, a WAV file, a test fake.

    ``muted`` replaces the samples with silence (frames keep flowing, so the VAD's
    clock keeps ticking). ``frames()`` ends when the source is exhausted or closed.
    """

    muted: bool

    def start(self) -> None:
        """Open the device or file; call from the running event loop."""
        ...

    def frames(self) -> AsyncIterator[AudioFrame]:
        """Yield captured frames of 16 kHz int16 mono audio, in order."""
        ...

    def close(self) -> None:
        """Release the device or file; ``frames()`` then ends."""
        ...


@runtime_checkable
class AudioSink(Protocol):
    """Something that plays audio: the speaker, a WAV file, a test fake.

    Callbacks are attributes (``None`` when nobody listens) and always run on the
    asyncio loop given to ``start()``.
    """

    on_started: StartedCallback | None
    on_tag_done: TagDoneCallback | None
    on_idle: IdleCallback | None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Open the device or file; callbacks go to ``loop`` (default: the running one)."""
        ...

    def enqueue(self, audio: Int16Array, sample_rate: int, tag: PlaybackTag) -> None:
        """Queue int16 mono audio at ``sample_rate`` to play after what is queued."""
        ...

    def stop_now(self) -> float:
        """Drop everything queued, silence within one block, return when sound ends."""
        ...

    def pause(self) -> float:
        """Hold playback in place (silent within one block); return when sound ends."""
        ...

    def resume(self) -> None:
        """Continue paused playback from the sample where it was held."""
        ...

    def position(self, at: float | None = None) -> PlaybackPosition | None:
        """The chunk and sample heard at monotonic ``at`` (default: now), or ``None``."""
        ...

    def close(self) -> None:
        """Stop and release the device or file."""
        ...


@runtime_checkable
class WakingSink(Protocol):
    """A sink whose device stream sleeps while idle (the speaker) and must be woken.

    ``wake()`` starts the stream ahead of an answer, so that a sound server resuming
    a suspended device does so while the user still talks; ``on_woke`` hears of an
    answer whose sound had to wait for the stream all the same.
    """

    on_woke: WokeCallback | None

    def wake(self) -> None:
        """An answer may come soon: start the stream if it sleeps."""
        ...
