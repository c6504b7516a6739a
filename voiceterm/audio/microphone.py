"""The microphone: ``MicrophoneSource``, an ``AudioSource`` of 16 kHz int16 mono ``AudioFrame``\\ s.

Devices that refuse 16 kHz are common, so the microphone tries 16 kHz first and
otherwise captures at the device's default rate and resamples with a streaming soxr
resampler (``voiceterm.audio.resample.StreamResampler``, whose filter delay is
subtracted from the frame times). A reader thread of its own takes each block with
PortAudio's blocking read (a raw stream: no array is made on that thread), copies its
bytes into a bounded deque and wakes the event loop (at most one pending wake-up, so
a stalled loop cannot pile them up); when the loop lags, the oldest blocks are dropped
and counted. Whether the stream still delivers is checked by one timer every
:data:`HEALTH_CHECK_S`, not by a timeout around each wait. While ``relaxed`` (nobody
speaks, the agent is idle: the listener says so) the reader sleeps ~:data:`RELAXED_WAKE_MS`
and then takes every whole block the device buffered at once: one wake-up of the reader
and of the loop per ~30 ms instead of one per block; un-relaxed, it reads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from voiceterm.audio import portaudio
from voiceterm.audio.frames import CAPTURE_RATE, AudioFrame
from voiceterm.audio.resample import StreamResampler
from voiceterm.errors import AudioDeviceError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Array = npt.NDArray[np.int16]

log = logging.getLogger(__name__)

RELAXED_WAKE_MS = 30
"""How often a ``relaxed`` microphone wakes the event loop: each wake-up is a
thread hop and a loop turn, a third of the listener's idle cost at 10 ms blocks;
speech that starts is then seen at most this much later (barge-in is never
relaxed: the agent is busy then)."""

CAPTURE_BUFFER_S = 0.2
"""How much audio the capture device's buffer holds at least. A relaxed reader lets
~:data:`RELAXED_WAKE_MS` pile up there, and ALSA's pulse plugin drops what overflows
its buffer without a word; a read still returns as soon as one block is in, so a
bigger buffer costs no delay."""

HEALTH_CHECK_S = 0.5
"""How often the microphone checks that its stream still delivers (and reopens it
if not)."""

_READER_JOIN_S = 1.0  # a read stuck longer than this (a dead server) is aborted under it


class FrameCutter:
    """Cuts a microphone's blocks into exact 16 kHz frames, each stamped with its capture time.

    A block at another rate is resampled first (the resampler's filter delay is
    subtracted from its time). The times follow the device's stamps through a slow
    filter, so the frames' times run on evenly.

    Args:
        frame_len: samples per frame at 16 kHz.
    """

    def __init__(self, frame_len: int) -> None:
        self.frame_len = frame_len
        self._resampler: StreamResampler | None = None
        self._pending: Int16Array | None = None  # resampled samples not yet framed
        self._clock: float | None = None  # smoothed capture time of _pending[0]
        self._offset = 0  # counted from the first frame, through reopens

    def restart(self, device_rate: int) -> None:
        """A stream (re)opened at ``device_rate``: nothing left over from the one before."""
        self._resampler = (
            StreamResampler(device_rate, CAPTURE_RATE) if device_rate != CAPTURE_RATE else None
        )
        self._pending = None
        self._clock = None

    def cut(self, block: Int16Array, t_adc: float, rate: int, muted: bool) -> list[AudioFrame]:
        """Resample one device block (``rate``, first sample at ``t_adc``); cut it into frames."""
        import numpy as np

        t_block_end = t_adc + len(block) / rate
        piece: Int16Array = block
        if self._resampler is not None:
            t_block_end -= self._resampler.delay_s  # its output lags its input
            piece = np.asarray(self._resampler.process(block), dtype=np.int16).reshape(-1)
        if self._clock is None and self._pending is None:
            # A stream's first read is stamped late, 5-30 ms idle and more when busy
            # (PortAudio's first delivery); the second agrees with all that follow.
            # So the first block waits and is stamped back from the second.
            self._pending = piece
            return []
        pending = piece if self._pending is None else np.concatenate((self._pending, piece))
        # The newest sample we hold ends at t_block_end. PortAudio's timestamps
        # jitter by up to a block, so follow
        # them through a slow filter: continuity, nudged 5 % toward each measurement
        # (no drift), and a jump only when they disagree by more than 50 ms.
        measured = t_block_end - len(pending) / CAPTURE_RATE
        predicted = self._clock
        if predicted is None or abs(measured - predicted) > 0.05:
            t_first = measured
        else:
            t_first = predicted + 0.05 * (measured - predicted)
        frames: list[AudioFrame] = []
        n = self.frame_len
        start = 0
        while len(pending) - start >= n:
            samples = pending[start : start + n]
            if muted:
                samples = np.zeros(n, dtype=np.int16)
            frames.append(
                AudioFrame(
                    samples=np.ascontiguousarray(samples),
                    t_start=t_first + start / CAPTURE_RATE,
                    offset=self._offset,
                )
            )
            self._offset += n
            start += n
        self._pending = pending[start:] if start < len(pending) else None
        self._clock = t_first + start / CAPTURE_RATE
        return frames


class MicrophoneSource(portaudio.ReopeningDevice):
    """Captures the microphone as 16 kHz int16 mono ``AudioFrame``\\ s.

    Args:
        device: name (substring), index, or ``None`` for the system default input.
        block_ms: length of each yielded frame (10, 20 or 30 ms suit webrtcvad).
        sample_rate: force a device capture rate (default: 16 kHz if the device takes
            it, else its default rate, resampled).
        latency: the least the capture buffer holds, in seconds (``"low"`` or
            ``"high"``: :data:`CAPTURE_BUFFER_S`); a read returns as soon as one
            block is in, whatever the buffer.
        max_queued_ms: how much captured audio may wait for a lagging event loop
            before the oldest is dropped (and counted in ``dropped``).
        reopen: when the device vanishes mid-session, report it (``on_error``) and
            retry every second until it returns, instead of raising from ``frames()``.
        on_error: called on the loop with the ``AudioDeviceError`` when capture stops.
        on_restored: called on the loop when capture has resumed.

    Attributes:
        muted: when true, frames keep coming but carry silence.
        relaxed: when true, the reader and the loop wake once per
            :data:`RELAXED_WAKE_MS` (several blocks at once) instead of once per block.
        overflows: input overflows reported by PortAudio (audio lost in the device).
        dropped: blocks dropped because the event loop did not keep up.
        realtime_thread: whether the reader thread got real-time priority.
        t_start of each frame: when its first sample was captured, in
        ``time.monotonic()``: the time a read returned, less the audio still waiting
        in the device's buffer and all but one block of the audio read (the time
        PortAudio's callback gave, which the echo canceller is tuned to).
    """

    kind = "microphone"

    def __init__(
        self,
        device: int | str | None = None,
        *,
        block_ms: int = 20,
        sample_rate: int | None = None,
        latency: float | str = "low",
        max_queued_ms: int = 1000,
        reopen: bool = True,
        on_error: Callable[[AudioDeviceError], None] | None = None,
        on_restored: Callable[[], None] | None = None,
    ) -> None:
        if not 5 <= block_ms <= 100:
            raise ValueError("block_ms must be between 5 and 100")
        self.device = device
        self.block_ms = block_ms
        self.latency = latency
        self.reopen = reopen
        self.on_error = on_error
        self.on_restored = on_restored
        self.muted = False
        self._relaxed = False
        # Set while the reader must read each block at once (not relaxed, or stopping).
        self._hurry = threading.Event()
        self._hurry.set()
        self.overflows = 0
        self.dropped = 0
        self.realtime_thread = False
        self.device_name = ""
        self.device_rate = 0
        self._requested_rate = sample_rate
        self._cutter = FrameCutter(CAPTURE_RATE * block_ms // 1000)
        self._blocks: deque[tuple[bytearray, float]] = deque(
            maxlen=max(2, max_queued_ms // block_ms)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._wake_pending = False
        self._check_due = False  # the health timer asks frames() to look at the stream
        self._health_timer: asyncio.TimerHandle | None = None
        self._stream: Any = None
        self._reader: threading.Thread | None = None
        self._reader_stop = threading.Event()
        self._read_failed = False
        self._stream_clock = portaudio.StreamClock(block_ms / 1000)
        self._closed = False

    @property
    def relaxed(self) -> bool:
        """Whether the reader may gather ~:data:`RELAXED_WAKE_MS` of blocks per wake-up."""
        return self._relaxed

    @relaxed.setter
    def relaxed(self, value: bool) -> None:
        self._relaxed = value
        if value:
            self._hurry.clear()
        else:
            self._hurry.set()  # a sleeping reader reads what waits, then every block

    def start(self) -> None:
        """Open the device and start capturing; call from the running event loop.

        Raises:
            AudioDeviceError: no input device, no match, busy, or it refuses to open.
        """
        self._loop = asyncio.get_running_loop()
        self._wake_event = asyncio.Event()
        self._closed = False
        self._open()

    def _open(self) -> None:
        sd = portaudio.import_sounddevice()
        info = portaudio.find_device(self.device, "input")
        self.device_name = info.name
        rate = self._requested_rate or portaudio.pick_sample_rate(
            info, "input", preferred=CAPTURE_RATE
        )
        block = rate * self.block_ms // 1000
        latency = self.latency if isinstance(self.latency, (int, float)) else 0.0
        buffer_s = max(float(latency), CAPTURE_BUFFER_S)
        # No callback: PortAudio's blocking read, in a thread of our own that can
        # take several blocks per wake-up while relaxed (a callback is called once
        # per block, whatever waits). One period per block keeps each read as
        # prompt as a callback would be.
        stream = portaudio.start_stream(
            lambda: sd.RawInputStream(
                device=info.index,
                samplerate=rate,
                channels=1,
                dtype="int16",
                blocksize=block,
                latency=buffer_s,
            ),
            "input",
            info.name,
            alsa_periods=int(buffer_s * 1000 / self.block_ms) + 2,
        )
        self.device_rate = rate
        self._cutter.restart(rate)
        self._stream = stream
        self._start_reader(stream, rate, block)
        log.info("microphone %r open at %d Hz", info.name, rate)

    def _start_reader(self, stream: Any, rate: int, block: int) -> None:
        self._stream_clock.started()
        self._read_failed = False
        self._reader_stop = stop = threading.Event()
        if self._relaxed:
            self._hurry.clear()
        else:
            self._hurry.set()
        self._reader = threading.Thread(
            target=self._read_blocks,
            args=(stream, rate, block, stop),
            name="microphone",
            daemon=True,
        )
        self._reader.start()

    def _read_blocks(self, stream: Any, rate: int, block: int, stop: threading.Event) -> None:
        """The reader thread: read, stamp, hand over, until ``stop`` or a failed read.

        It holds the interpreter lock only between reads (the read itself waits in C),
        and makes no array: the loop does, when it takes the bytes.
        """
        self.realtime_thread = portaudio.raise_thread_priority()
        hurry = self._hurry
        try:
            while not stop.is_set():
                count = block
                if not hurry.is_set():
                    hurry.wait(RELAXED_WAKE_MS / 1000)
                    if stop.is_set():
                        break
                    waiting = stream.read_available
                    count = max(block, waiting - waiting % block)
                raw, overflowed = stream.read(count)
                now = time.monotonic()
                # Stamped as PortAudio's callback stamped it (inputBufferAdcTime from
                # ALSA's delay, which through the pulse plugin leaves out the block
                # handed over): one block after what is left and read would say, 6.6-13
                # ms on the rig with both streams on one microphone. The echo
                # canceller's reference lead was tuned on those times.
                t_first = now - (stream.read_available + count - block) / rate
                self._hand_over(raw, t_first, now, overflowed)
        except Exception as exc:  # the stream broke (device or server gone)
            if not stop.is_set():
                log.debug("microphone read failed: %s", exc)
                self._read_failed = True

    def _hand_over(self, raw: Any, t_first: float, now: float, overflowed: bool) -> None:
        """Queue one read's bytes with the capture time of its first sample; wake the loop."""
        if overflowed:
            self.overflows += 1
        self._stream_clock.beat(now)
        if len(self._blocks) == self._blocks.maxlen:
            self.dropped += 1  # append below pushes out the oldest read
        self._blocks.append((bytearray(raw), t_first))
        if not self._wake_pending and self._loop is not None:
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening
                self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        if self._wake_event is not None:
            self._wake_event.set()

    async def frames(self) -> AsyncIterator[AudioFrame]:
        """Yield 16 kHz frames of ``block_ms`` each until ``close()``.

        Raises:
            AudioDeviceError: the device vanished and ``reopen`` is false.
        """
        import numpy as np

        if self._wake_event is None or self._loop is None:
            raise RuntimeError("MicrophoneSource.start() must be called first")
        event = self._wake_event
        self._health_timer = self._loop.call_later(HEALTH_CHECK_S, self._health_tick)
        try:
            while not self._closed:
                await event.wait()
                event.clear()
                if self._check_due:
                    self._check_due = False
                    if not self._closed and not self._healthy():
                        await self._recover()
                        continue
                while self._blocks:
                    raw, t_adc = self._blocks.popleft()
                    block: Int16Array = np.frombuffer(raw, dtype=np.int16)
                    for frame in self._cutter.cut(block, t_adc, self.device_rate, self.muted):
                        yield frame
        finally:
            if self._health_timer is not None:
                self._health_timer.cancel()
                self._health_timer = None

    def _health_tick(self) -> None:
        """Every :data:`HEALTH_CHECK_S` on the loop: have ``frames()`` check the stream."""
        if self._closed or self._loop is None or self._wake_event is None:
            return
        self._check_due = True
        self._wake_event.set()
        self._health_timer = self._loop.call_later(HEALTH_CHECK_S, self._health_tick)

    def _healthy(self) -> bool:
        # Capture cannot wait for a stuck stream the way playback can: stalled is lost.
        if self._read_failed:
            return False
        return self._stream_clock.state(self._stream) in ("running", "starting")

    async def _recover(self) -> None:
        """The device stopped: report it, then reopen every second until it works."""
        error = self._lost("stopped delivering audio")
        if not self.reopen:
            self.close()
            raise error
        await self._reconnect(error)

    def _reopen(self) -> None:
        self._open()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        reader, self._reader = self._reader, None
        self._reader_stop.set()
        self._hurry.set()
        if reader is not None and reader is not threading.current_thread():
            # A read returns within a block; the stream is not stopped under it.
            reader.join(timeout=_READER_JOIN_S)
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.abort()
            with contextlib.suppress(Exception):
                stream.close()

    def close(self) -> None:
        """Stop capturing and release the device; ``frames()`` ends."""
        self._closed = True
        self._close_stream()
        self._blocks.clear()
        if self._wake_event is not None:
            self._wake_event.set()
