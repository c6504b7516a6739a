"""Echo handling: keep the assistant from hearing its own voice through the microphone.

On a laptop the microphone hears the speaker. Two ways to cope, behind one protocol:

- acoustic echo cancellation (AEC) with what was played as the reference signal:
  WebRTC's audio processing module (AEC3), from PyPI either as
  ``livekit.rtc.AudioProcessingModule`` (``LiveKitEchoCanceller``, a prebuilt wheel)
  or as ``aec_audio_processing.AudioProcessor`` (``WebRtcEchoCanceller``, built from
  source at install time). The user can still barge in while the assistant speaks.
- ``HalfDuplexGate``: the microphone goes silent while sound plays and for a short
  tail after it. Needs no library and cannot be fooled by loud echo, but the user
  cannot interrupt by voice.

An ``EchoCanceller`` takes 16 kHz int16 mono audio: ``process_render`` the audio as
it reaches the speaker, ``process_capture`` the microphone's, in 10 ms frames
(any multiple of 10 ms may be passed at once; render remainders are buffered).
Render and capture must be fed in time order: render audio first, up to the capture
frame's own time. ``EchoCancelledSource`` does that alignment: it wraps a
microphone ``AudioSource`` and a ``RenderReference`` tapped from the ``Player``
(``PlaybackEngine.tap``) and yields cleaned frames.

Choice by measurement (``scripts/bench_echo.py``: espeak speech through ``Player``,
looped back into the microphone by the PulseAudio rig; the user's voice -21 dBFS;
5 sessions of 2 answers and 1 barge-in per gain; the app's own VAD and its 150 ms
barge-in rule decide):

=======================  =========================  =========================
                          echo at -6 dB              echo at 0 dB
=======================  =========================  =========================
livekit AEC3              4/10 self-int., 4/5 b-i    2/10 self-int., 5/5 b-i
aec-audio-processing      3/10, 4/5                  3/10, 5/5
livekit AEC3 + gate       5/10, 4/5                  1/10, 5/5
aec-a-p + gate            3/10, 4/5                  2/10, 5/5
half-duplex gate          0/10, 0/5 (by design)      0/10, 0/5
=======================  =========================  =========================

ERLE p50 65-80 dB; decision 270-310 ms after the user's onset; the user keeps -1 to
-2 dB; 80-130 µs per 10 ms frame. The two AEC3 packages tie; livekit is the default
because it installs as a prebuilt wheel in seconds while aec-audio-processing
compiles WebRTC (5-11 minutes on 2 shared cores; the dev extra installs it, so its
tests run). The remaining self-interruptions are residual bursts of -31 to -42 dBFS
(a barge-in starts at -18 to -32 dBFS) at the end of an answer and at the start of
the next, where the rig's loopback shifted the echo delay by 3-13 ms (measured); a
single 5 s answer through the live ``EchoCancelledSource`` (tests/audio/test_echo.py)
passes 5 of 5 runs.
``ResidualEchoGate`` (10 dB) is part of ``"aec"``: it zeroes frames the canceller
mostly removed, which silenced the bursts of a cold canceller in earlier runs.
Aligning the reference on the DAC clock matters as much: correcting every
single-block timestamp glitch (PortAudio stamps a block up to ~70 ms off now and
then) tore the reference and caused most self-interruptions, so ``RenderReference``
only corrects offsets that persist.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from voiceterm.audio.echo_delay import EchoDelayEstimator
from voiceterm.audio.frames import CAPTURE_RATE, SILENCE_THRESHOLD, AudioFrame, AudioSource
from voiceterm.errors import EngineError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from voiceterm.audio.resample import StreamResampler

    Int16Array = npt.NDArray[np.int16]

log = logging.getLogger(__name__)

FRAME_SAMPLES = CAPTURE_RATE // 100  # the 10 ms frames WebRTC's APM works on

IDLE_AFTER_S = 2.0
"""Seconds of silent speaker after which the microphone bypasses echo cancellation
(longer than any room's echo tail)."""

ECHO_DELAY_BAND_S = (0.0, 0.35)
"""Delays from reference to echo that the canceller follows by itself; outside them
the reference is moved: AEC3 finds no echo that comes before its reference, and on
the rig it removed 33 dB of an echo 17 ms after it against 12 dB 120 ms after it
(scripts/bench_echo.py)."""
ECHO_DELAY_AIM_S = 0.02
"""Where a moved reference puts the echo: this long after the canceller gets it."""
MAX_LEAD_S = 1.0
"""The most the reference goes ahead of its time stamps."""
REFERENCE_HELD_SAMPLES = round((MAX_LEAD_S + 0.5) * CAPTURE_RATE)
"""Reference held beside the microphone at most: the lead and a late frame's worth."""

EchoMode = Literal["aec", "livekit", "webrtc", "half_duplex", "off"]


@runtime_checkable
class EchoCanceller(Protocol):
    """Removes the played audio (render) from the captured audio (capture)."""

    name: str

    def process_render(self, played: Int16Array) -> None:
        """Feed 16 kHz int16 audio as it reaches the speaker (silence included)."""
        ...

    def process_capture(self, captured: Int16Array) -> Int16Array:
        """Clean 16 kHz int16 microphone audio (a multiple of 10 ms); same length back."""
        ...


class _RenderFramer:
    """Cuts render audio of any length into exact 10 ms frames."""

    def __init__(self) -> None:
        self._rest: Int16Array | None = None

    def frames(self, audio: Int16Array) -> list[Int16Array]:
        import numpy as np

        data = audio if self._rest is None else np.concatenate((self._rest, audio))
        count = len(data) // FRAME_SAMPLES
        self._rest = data[count * FRAME_SAMPLES :] if len(data) % FRAME_SAMPLES else None
        return [data[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(count)]


def _check_capture(captured: Int16Array) -> None:
    if len(captured) % FRAME_SAMPLES:
        raise ValueError(
            f"capture audio must be a multiple of {FRAME_SAMPLES} samples (10 ms at 16 kHz), "
            f"got {len(captured)}"
        )


class LiveKitEchoCanceller:
    """WebRTC AEC3 through ``livekit.rtc.AudioProcessingModule`` (PyPI ``livekit``).

    Args:
        noise_suppression: also let WebRTC suppress stationary noise.
        high_pass_filter: remove rumble below ~80 Hz (helps the AEC).
        stream_delay_ms: hint for the render-to-capture delay; AEC3 finds the real
            one itself, this only speeds up convergence.

    Raises:
        EngineError: the ``livekit`` package is not installed.
    """

    name = "livekit"

    def __init__(
        self,
        *,
        noise_suppression: bool = False,
        high_pass_filter: bool = True,
        stream_delay_ms: int = 0,
    ) -> None:
        try:
            from livekit import rtc
        except ImportError as exc:
            raise EngineError(
                "Echo cancellation needs the livekit package (WebRTC's audio processing).",
                hint="pip install livekit, or set audio.echo = half_duplex.",
            ) from exc
        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
            auto_gain_control=False,
        )
        self._delay_ms = stream_delay_ms
        self._framer = _RenderFramer()

    def _frame(self, samples: Int16Array) -> Any:
        import numpy as np

        data = bytearray(np.ascontiguousarray(samples, dtype="<i2").tobytes())
        return self._rtc.AudioFrame(data, CAPTURE_RATE, 1, FRAME_SAMPLES)

    def process_render(self, played: Int16Array) -> None:
        for frame in self._framer.frames(played):
            self._apm.process_reverse_stream(self._frame(frame))

    def process_capture(self, captured: Int16Array) -> Int16Array:
        import numpy as np

        _check_capture(captured)
        out = np.empty(len(captured), dtype=np.int16)
        for start in range(0, len(captured), FRAME_SAMPLES):
            frame = self._frame(captured[start : start + FRAME_SAMPLES])
            self._apm.set_stream_delay_ms(self._delay_ms)
            self._apm.process_stream(frame)
            out[start : start + FRAME_SAMPLES] = np.frombuffer(frame.data, dtype=np.int16)
        return out


class WebRtcEchoCanceller:
    """WebRTC AEC through ``aec_audio_processing.AudioProcessor`` (PyPI ``aec-audio-processing``).

    Args:
        noise_suppression: also suppress stationary noise.
        stream_delay_ms: hint for the render-to-capture delay.

    Raises:
        EngineError: the ``aec-audio-processing`` package is not installed.
    """

    name = "webrtc"

    def __init__(self, *, noise_suppression: bool = False, stream_delay_ms: int = 0) -> None:
        try:
            from aec_audio_processing import AudioProcessor
        except ImportError as exc:
            raise EngineError(
                "Echo cancellation needs the aec-audio-processing package.",
                hint="pip install aec-audio-processing, or set audio.echo = half_duplex.",
            ) from exc
        self._ap = AudioProcessor(
            enable_aec=True, enable_ns=noise_suppression, enable_agc=False, enable_vad=False
        )
        self._ap.set_stream_format(CAPTURE_RATE, 1)
        self._ap.set_reverse_stream_format(CAPTURE_RATE, 1)
        self._ap.set_stream_delay(stream_delay_ms)
        self._framer = _RenderFramer()

    def process_render(self, played: Int16Array) -> None:
        import numpy as np

        for frame in self._framer.frames(played):
            self._ap.process_reverse_stream(np.ascontiguousarray(frame, dtype="<i2").tobytes())

    def process_capture(self, captured: Int16Array) -> Int16Array:
        import numpy as np

        _check_capture(captured)
        out = np.empty(len(captured), dtype=np.int16)
        for start in range(0, len(captured), FRAME_SAMPLES):
            frame = np.ascontiguousarray(captured[start : start + FRAME_SAMPLES], dtype="<i2")
            cleaned = self._ap.process_stream(frame.tobytes())
            out[start : start + FRAME_SAMPLES] = np.frombuffer(cleaned, dtype="<i2")
        return out


class ResidualEchoGate:
    """Silences what an echo canceller let through when it is mostly removed echo.

    AEC3 leaves short residual bursts (-45 dBFS and below on the rig with the echo
    as loud as the user) that a VAD listening to otherwise digital silence takes
    for speech. A 20 ms frame from which the canceller removed more than
    ``min_removed_db`` was nearly all echo, so it is zeroed; a user talking over
    the assistant keeps the output within a few dB of the input and passes.

    Args:
        canceller: the echo canceller to wrap.
        min_removed_db: removal (input level - output level) from which a frame
            counts as echo.
    """

    def __init__(self, canceller: EchoCanceller, *, min_removed_db: float = 10.0) -> None:
        self.canceller = canceller
        self.name = f"{canceller.name}+gate"
        self._ratio = 10.0 ** (min_removed_db / 10.0)  # in power

    def process_render(self, played: Int16Array) -> None:
        self.canceller.process_render(played)

    def process_capture(self, captured: Int16Array) -> Int16Array:
        import numpy as np

        cleaned = self.canceller.process_capture(captured)
        power_in = float(np.mean(np.square(captured, dtype=np.float64)))
        power_out = float(np.mean(np.square(cleaned, dtype=np.float64)))
        if power_out * self._ratio < power_in:
            return np.zeros_like(cleaned)
        return cleaned


class HalfDuplexGate:
    """Silences the microphone while the speaker plays, and for ``tail_ms`` after.

    Args:
        tail_ms: how long after the last loud render sample the microphone stays
            closed (room reverberation, and the device's capture latency).
        threshold: render samples above this count as sound.
    """

    name = "half_duplex"

    def __init__(self, *, tail_ms: int = 300, threshold: int = SILENCE_THRESHOLD) -> None:
        self._tail = CAPTURE_RATE * tail_ms // 1000
        self._threshold = threshold
        self._since_sound = self._tail  # samples of render since the last loud one

    @property
    def closed(self) -> bool:
        """True while the microphone is being silenced."""
        return self._since_sound < self._tail

    def process_render(self, played: Int16Array) -> None:
        import numpy as np

        loud = np.flatnonzero((played > self._threshold) | (played < -self._threshold))
        if loud.size:
            self._since_sound = len(played) - 1 - int(loud[-1])
        else:
            self._since_sound += len(played)

    def process_capture(self, captured: Int16Array) -> Int16Array:
        import numpy as np

        if self.closed:
            return np.zeros_like(captured)
        return captured


class NoEchoHandling:
    """Passes the microphone through untouched (headphones, or no speaker)."""

    name = "off"

    def process_render(self, played: Int16Array) -> None:
        return None

    def process_capture(self, captured: Int16Array) -> Int16Array:
        return captured


def make_echo_canceller(mode: EchoMode | str, *, tail_ms: int = 300) -> EchoCanceller:
    """The echo handling for a config value.

    Args:
        mode: ``"aec"`` (WebRTC AEC3 from whichever package is installed, livekit
            first, plus the residual echo gate), ``"livekit"`` or ``"webrtc"`` (that
            package, plus the gate), ``"half_duplex"`` or ``"off"``.
        tail_ms: the half-duplex gate's tail.

    Raises:
        EngineError: no AEC library for ``mode`` is installed.
        ValueError: an unknown mode.
    """
    if mode == "aec":
        try:
            return ResidualEchoGate(LiveKitEchoCanceller())
        except EngineError:
            pass
        try:
            return ResidualEchoGate(WebRtcEchoCanceller())
        except EngineError:
            raise EngineError(
                "Echo cancellation needs WebRTC's audio processing module.",
                hint="pip install livekit (or aec-audio-processing), "
                "or set audio.echo = half_duplex.",
            ) from None
    if mode == "livekit":
        return ResidualEchoGate(LiveKitEchoCanceller())
    if mode == "webrtc":
        return ResidualEchoGate(WebRtcEchoCanceller())
    if mode == "half_duplex":
        return HalfDuplexGate(tail_ms=tail_ms)
    if mode == "off":
        return NoEchoHandling()
    raise ValueError(f"unknown echo mode {mode!r}: use aec, livekit, webrtc, half_duplex or off")


class RenderReference:
    """What the speaker played, at 16 kHz, laid out on the time it was heard.

    Reads the ``(t_dac, block)`` pairs a ``PlaybackEngine`` tap collects on the
    device thread (a bounded deque: append/popleft are atomic), resamples them to
    16 kHz, and hands out everything heard up to a given time.

    The blocks' DAC times keep the reference in step with the room: when the device
    underflowed (a late callback leaves a hole in the sound) the next block's time
    jumps, and that hole is filled with silence here; an overlap is trimmed. An AEC
    fed a reference that slipped by even 20 ms has to re-learn the echo path, and
    lets echo through while it does.

    Args:
        tap: from ``PlaybackEngine.tap()`` / ``Player.render_tap()``.
        rate: the sample rate of the tapped blocks (the player's device rate).
        tolerance_s: timing jitter accepted before a hole or overlap is corrected.
        max_hole_s: longest hole filled (the stream stopped, e.g. a reopened device).
    """

    def __init__(
        self,
        tap: deque[tuple[float, Int16Array]],
        rate: int,
        *,
        tolerance_s: float = 0.003,
        max_hole_s: float = 0.5,
    ) -> None:
        from voiceterm.audio.resample import StreamResampler

        self._tap = tap
        self._rate = rate
        self._tolerance = tolerance_s
        self._max_hole = max_hole_s
        self._next_t: float | None = None  # where the reference stream is, in time
        self._suspect: float | None = None  # drift seen once, not yet confirmed
        self.holes = 0
        """Underflow holes filled with silence so far."""
        self._resampler: StreamResampler | None = (
            StreamResampler(rate, CAPTURE_RATE) if rate != CAPTURE_RATE else None
        )

    def _aligned(self, t: float, block: Int16Array) -> Int16Array:
        """The block, with silence before it for a hole or its start cut for an overlap.

        A correction needs two blocks in a row off by the same amount: a real hole
        shifts every later timestamp, while PortAudio now and then stamps a single
        block tens of ms off and the next one right again. Correcting such a spike
        would itself tear the reference (measured: it caused most residual echo).
        """
        import numpy as np

        expected = self._next_t
        if expected is None or abs(t - expected) > self._max_hole:  # (re)start here
            self._suspect = None
            self._next_t = t + len(block) / self._rate
            return block
        drift = t - expected
        if abs(drift) <= self._tolerance:
            self._suspect = None
        elif self._suspect is None or abs(drift - self._suspect) > self._tolerance:
            self._suspect = drift  # one block off: wait for the next to confirm
        else:
            self._suspect = None
            if drift > 0:
                self.holes += 1
                block = np.concatenate((np.zeros(round(drift * self._rate), np.int16), block))
            else:
                block = block[min(len(block), round(-drift * self._rate)) :]
        self._next_t = expected + len(block) / self._rate
        return block

    def until(self, t: float) -> list[Int16Array]:
        """Blocks (16 kHz) whose sound started at or before monotonic time ``t``."""
        import numpy as np

        out: list[Int16Array] = []
        tap = self._tap
        while tap and tap[0][0] <= t:
            t_block, block = tap.popleft()
            block = self._aligned(t_block, block)
            if self._resampler is not None:
                block = np.asarray(self._resampler.process(block), dtype=np.int16)
            if len(block):
                out.append(block)
        return out


class RenderTapped(Protocol):
    """A sink that can share what it plays (``Player``)."""

    @property
    def sample_rate(self) -> int: ...

    def render_tap(self) -> deque[tuple[float, Int16Array]]: ...


@dataclass(eq=False)
class EchoCancelledSource:
    """An ``AudioSource`` that removes the speaker's sound from another source.

    Before each captured frame is cleaned, every render block heard up to the end
    of that frame is fed to the canceller, so render always leads its echo.

    Args:
        source: the microphone (16 kHz frames, multiples of 10 ms).
        canceller: an ``EchoCanceller``.
        reference: what the speaker played; or give ``player`` instead.
        player: a ``Player``: its render tap is taken in ``start()`` (start the
            player first; one that failed to start leaves the source without a
            reference). With neither, no render is fed, which only suits
            ``NoEchoHandling``.
        follow_echo: find where the echo really comes (``EchoDelayEstimator``) and
            hand the canceller the reference ahead of its time stamps when the echo
            comes before them; without it the stamps are taken as true. Off by
            default: it removes more echo where the stamps are off, but in the
            recorded barge-in session the canceller, working better, also held back
            the user's first word over the answer (a barge-in confirmed after 890 ms
            instead of 430, "up what time is it"); see docs/BENCHMARKS.md.

    Example:
        ``EchoCancelledSource(MicrophoneSource(), make_echo_canceller("aec"), player=player)``
    """

    source: AudioSource
    canceller: EchoCanceller
    reference: RenderReference | None = None
    player: RenderTapped | None = field(default=None, kw_only=True)
    follow_echo: bool = field(default=False, kw_only=True)
    lead_s: float = field(default=0.0, init=False)
    """How far ahead of its time stamps the speaker's sound goes to the canceller."""
    _on_stamps: StampAligned = field(
        default_factory=lambda: StampAligned(max_lead=REFERENCE_HELD_SAMPLES), init=False
    )
    _echo_delay: EchoDelayEstimator = field(
        default_factory=lambda: EchoDelayEstimator(CAPTURE_RATE), init=False
    )

    @property
    def muted(self) -> bool:
        return self.source.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self.source.muted = value

    @property
    def relaxed(self) -> bool:
        """The source's ``relaxed`` (fewer loop wake-ups while idle), where it has one."""
        return bool(getattr(self.source, "relaxed", False))

    @relaxed.setter
    def relaxed(self, value: bool) -> None:
        if hasattr(self.source, "relaxed"):
            self.source.relaxed = value

    @property
    def device_name(self) -> str:
        return str(getattr(self.source, "device_name", ""))

    @property
    def overflows(self) -> int:
        """The microphone's input overflows (audio lost in the device)."""
        return int(getattr(self.source, "overflows", 0))

    def start(self) -> None:
        """Start the source (and take the player's render tap, if given a player)."""
        if self.reference is None and self.player is not None:
            try:
                tap = self.player.render_tap()
            except RuntimeError:  # the player never started (no speaker): nothing to cancel
                log.warning("echo cancellation has no reference: the speaker is not playing")
            else:
                self.reference = RenderReference(tap, self.player.sample_rate)
        self.source.start()

    async def frames(self) -> AsyncIterator[AudioFrame]:
        """The source's frames with the echo removed.

        While the speaker has been silent for ``IDLE_AFTER_S`` there is no echo to
        remove, and frames pass through untouched: the canceller costs about as
        much CPU as the rest of an idle session together. Render and capture are
        skipped together, so the canceller's idea of the echo delay still holds
        when sound resumes.
        """
        import numpy as np

        last_sound = float("-inf")
        async for frame in self.source.frames():
            blocks = (
                self.reference.until(frame.t_end + self.lead_s)
                if self.reference is not None
                else []
            )
            if any(int(np.abs(block).max(initial=0)) > SILENCE_THRESHOLD for block in blocks):
                last_sound = frame.t_end + self.lead_s
            on_stamps = None
            if self.follow_echo:  # the reference on the stamps is only for finding the echo
                self._on_stamps.add(blocks)
                on_stamps = self._on_stamps.take(len(frame.samples))
            if frame.t_end - last_sound > IDLE_AFTER_S and self.reference is not None:
                yield frame
                continue
            if on_stamps is not None:
                self._follow_echo(frame.samples, on_stamps)
            for block in blocks:
                self.canceller.process_render(block)
            cleaned = self.canceller.process_capture(frame.samples)
            yield AudioFrame(cleaned, frame.t_start, frame.offset, frame.sample_rate)

    def _follow_echo(self, captured: Int16Array, on_stamps: Int16Array) -> None:
        """Move the reference so that the canceller gets it just before its echo."""
        lag = self._echo_delay.push(captured, on_stamps)
        if lag is None:
            return
        delay = self.lead_s + lag  # how long after the canceller gets it the echo comes
        if ECHO_DELAY_BAND_S[0] <= delay <= ECHO_DELAY_BAND_S[1]:
            return
        lead = min(max(ECHO_DELAY_AIM_S - lag, 0.0), MAX_LEAD_S)
        if abs(lead - self.lead_s) < 0.005:
            return
        log.info(
            "the echo comes %+.0f ms from the speaker's time stamps (correlation %.2f): "
            "echo cancellation now gets the speaker's sound %.0f ms ahead of them",
            1000 * lag,
            self._echo_delay.correlation,
            1000 * lead,
        )
        self.lead_s = lead

    def close(self) -> None:
        self.source.close()


class StampAligned:
    """The reference laid out sample for sample beside the microphone, on its time stamps.

    The canceller may get the reference ahead of the microphone (``lead_s``); what
    it got beyond the frame waits here, so that each frame is paired with the
    reference stamped at its own time (silence where the speaker played nothing).

    Args:
        max_lead: samples held beyond the frame at most (the oldest go first).
    """

    def __init__(self, *, max_lead: int) -> None:
        self._blocks: deque[Int16Array] = deque()
        self._held = 0
        self._max_lead = max_lead

    @property
    def empty(self) -> bool:
        """Nothing held: the speaker played nothing up to here."""
        return not self._blocks

    def add(self, blocks: list[Int16Array]) -> None:
        for block in blocks:
            self._blocks.append(block)
            self._held += len(block)
        while self._held > self._max_lead and len(self._blocks) > 1:
            self._held -= len(self._blocks.popleft())

    def take(self, n: int) -> Int16Array:
        """The next ``n`` samples (silence where there are none)."""
        import numpy as np

        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and self._blocks:
            block = self._blocks[0]
            count = min(n - filled, len(block))
            out[filled : filled + count] = block[:count]
            filled += count
            self._held -= count
            if count == len(block):
                self._blocks.popleft()
            else:
                self._blocks[0] = block[count:]
        return out
