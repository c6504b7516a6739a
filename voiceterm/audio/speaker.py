"""The speaker: gapless playback of tagged speech chunks through PortAudio, with honest timing.

Two layers:

- ``StreamedSink`` plays a ``voiceterm.audio.playback.PlaybackEngine`` in a
  sounddevice (PortAudio) output stream: PortAudio's thread fills each block, stamped
  with when it is heard. A started stream fills its buffer at once but may be
  consumed only later (a desktop's sound server resumes a sink it suspended;
  PulseAudio's null sink renders every 2 s while idle), so sound is written only once
  the stream flows (``StreamClock``): it waits whole, is stamped with when it is
  really heard, and the wait is told (``on_woke``).
- ``Player`` is the speaker the app uses. With nothing to play for ``sleep_after_s``
  it stops the stream (the device stays open) and starts it again when an answer may
  come (``wake``: the user talks, the agent is busy) or at the latest at ``enqueue``:
  a running stream calls back every block only to write silence, which costs CPU
  (docs/BENCHMARKS.md, "Idle CPU of the whole app"), and the echo canceller's
  reference then carries that silence through the event loop too. A watchdog tells a
  slow stream from a lost device and reopens a lost one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voiceterm.audio import portaudio
from voiceterm.audio.frames import PlaybackTag, WokeCallback
from voiceterm.audio.playback import EngineSink, PlaybackEngine
from voiceterm.audio.resample import resample_int16
from voiceterm.errors import AudioDeviceError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Array = npt.NDArray[np.int16]

log = logging.getLogger(__name__)

SLEEP_AFTER_S = 3.0
"""Seconds with nothing to play after which ``Player`` stops its stream."""


class StreamedSink(EngineSink):
    """A ``PlaybackEngine`` played by a PortAudio output stream (see ``Player``'s arguments).

    The device thread's side of the speaker: opening the stream, filling each block
    on PortAudio's thread, and telling the loop once the stream flows.
    """

    def __init__(
        self,
        device: int | str | None,
        *,
        block_ms: int,
        latency: float | str,
        sample_rate: int | None,
    ) -> None:
        super().__init__()
        if not 2 <= block_ms <= 100:
            raise ValueError("block_ms must be between 2 and 100")
        self.device = device
        self.block_ms = block_ms
        self.latency = latency
        self.asleep = False
        self._last_start = 0.0
        self._requested_rate = sample_rate
        self._stream: Any = None
        self._stream_clock = portaudio.StreamClock(block_ms / 1000)
        self._priority_asked = False
        self._waiting_since: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.on_woke: WokeCallback | None = None
        self._fallback_latency = 0.0
        self.underflows = 0
        self.realtime_thread = False
        self.device_name = ""

    @property
    def output_latency(self) -> float:
        """PortAudio's reported output latency in seconds (after ``start``)."""
        return float(self._stream.latency) if self._stream is not None else 0.0

    @property
    def gaps(self) -> int:
        """Times a turn's audio ran dry before its next chunk arrived."""
        return self._engine.gaps if self._engine is not None else 0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Open the output device and start the stream (silent until ``enqueue``).

        Raises:
            AudioDeviceError: no such device, no output device, or it cannot be opened.
        """
        self._loop = self._callbacks.bind_loop(loop)
        info = portaudio.find_device(self.device, "output")
        self.device_name = info.name
        rate = self._requested_rate or portaudio.pick_sample_rate(info, "output")
        self._engine = PlaybackEngine(rate, self._callbacks.post_threadsafe)
        self._open_stream(info.index)

    def _open_stream(self, index: int) -> None:
        sd = portaudio.import_sounddevice()
        assert self._engine is not None
        rate = self._engine.sample_rate
        stream = portaudio.start_stream(
            lambda: sd.OutputStream(
                device=index,
                samplerate=rate,
                channels=1,
                dtype="int16",
                blocksize=max(1, rate * self.block_ms // 1000),
                latency=self.latency,
                callback=self._callback,
            ),
            "output",
            self.device_name,
        )
        self._fallback_latency = float(stream.latency)
        self._stream_clock.started()
        self._priority_asked = False
        self._stream = stream
        self.asleep = False
        self._last_start = self._stream_clock.started_at

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: no blocking, no locks, no big allocations.
        if not self._priority_asked:
            self._priority_asked = True
            self.realtime_thread = portaudio.raise_thread_priority()
        engine = self._engine
        # A gap in silence, before an answer's first sound or after its last, is
        # inaudible (PortAudio reports a few as the stream starts): only a gap
        # that cuts into sound is a click.
        if status.output_underflow and engine is not None and engine.mid_sound:
            self.underflows += 1
        now = time.monotonic()
        # PortAudio's clock is not time.monotonic (ALSA uses CLOCK_REALTIME), so only
        # the *difference* DAC time - current time is used: the output latency.
        ahead = time_info.outputBufferDacTime - time_info.currentTime
        if time_info.outputBufferDacTime <= 0 or not 0.0 <= ahead < 2.0:
            ahead = self._fallback_latency
        clock = self._stream_clock
        restarted = bool(status.output_underflow) and clock.flowing
        if clock.beat(now, underflow=bool(status.output_underflow)):
            self._post_flowing(now)
        # The block that reports an underflow is the device's first after it restarted;
        # those that follow it back to back fill a buffer that may wait unplayed.
        if engine is None or not (clock.flowing or restarted):
            # Until the device consumes, a block's time of playing is unknown (a
            # server resuming a suspended sink holds the first buffer for up to
            # seconds): the answer waits in the queue, whole, and its sound is
            # stamped with when it is really heard.
            outdata.fill(0)
            return
        engine.fill(outdata[:, 0], now + ahead)

    def _post_flowing(self, now: float) -> None:
        """From PortAudio's thread: the stream consumes; tell the loop (see ``_flowing``)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing: nobody waits
                loop.call_soon_threadsafe(self._flowing, now)

    def _flowing(self, at: float) -> None:
        """On the loop: an answer that waited for the stream to start may now play."""
        since, self._waiting_since = self._waiting_since, None
        if since is not None and self.on_woke is not None:
            try:
                self.on_woke(since, max(since, at))
            except Exception:  # a listener's bug must not stop playback
                log.exception("playback woke callback failed")

    def render_tap(self) -> deque[tuple[float, Int16Array]]:
        """What the device plays, block by block with its DAC time (echo reference).

        See ``PlaybackEngine.tap``; wrap it in ``voiceterm.audio.echo.RenderReference``
        with ``sample_rate``.
        """
        return self._require_engine().tap()

    def enqueue(self, audio: Int16Array, sample_rate: int, tag: PlaybackTag) -> None:
        """Queue int16 mono audio to play after what is queued, without a gap.

        The chunk is resampled to the device rate here, on the caller's thread.
        """
        engine = self._require_engine()
        engine.enqueue(resample_int16(audio, sample_rate, engine.sample_rate), tag)
        if self._waiting_since is None and not self._stream_clock.flowing:
            self._waiting_since = time.monotonic()

    def _restart(self) -> bool:
        """Stop and start a stuck stream; False when it refuses (the device is gone)."""
        stream = self._stream
        if stream is None:
            return False
        try:
            stream.abort()
            self._stream_clock.started()
            stream.start()
        except Exception as exc:
            log.debug("speaker stream did not restart: %s", exc)
            return False
        return True

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.abort()
            with contextlib.suppress(Exception):
                stream.close()


class Player(StreamedSink, portaudio.ReopeningDevice):
    """Plays tagged int16 chunks on an output device through PortAudio.

    Args:
        device: device name (substring), index, or ``None`` for the system default.
        block_ms: samples per callback, in milliseconds (10-20 ms: ``stop_now``
            silences within one block).
        latency: PortAudio's suggested output latency, seconds or ``"low"``/``"high"``.
            ``"high"`` is the safe default: through PulseAudio's ALSA plugin ``"low"``
            underflows constantly.
        sample_rate: force a device rate; default: the device's own default rate.
        reopen: when the device disappears, retry every second instead of failing.
        on_error: called on the loop with an ``AudioDeviceError`` when the device is
            lost (playback is then silent until it returns).
        on_restored: called on the loop when a lost device has been reopened.
        sleep_after_s: seconds of silence (nothing queued, nothing held) after
            which the stream stops until the next ``enqueue``; ``None``: never.
            Longer than ``voiceterm.audio.echo.IDLE_AFTER_S``, so the echo
            canceller hears the whole silent tail of an answer first.

    Attributes:
        on_started, on_tag_done, on_idle: playback callbacks (see ``AudioSink``),
            always called on the asyncio loop.
        underflows: output underflows reported by PortAudio in the middle of sound
            (audible clicks); one in silence is not counted.
        realtime_thread: whether PortAudio's callback thread got real-time priority.
        asleep: whether the stream is stopped for want of anything to play.
    """

    kind = "output device"

    def __init__(
        self,
        device: int | str | None = None,
        *,
        block_ms: int = 10,
        latency: float | str = "high",
        sample_rate: int | None = None,
        reopen: bool = True,
        on_error: Callable[[AudioDeviceError], None] | None = None,
        on_restored: Callable[[], None] | None = None,
        sleep_after_s: float | None = SLEEP_AFTER_S,
    ) -> None:
        super().__init__(device, block_ms=block_ms, latency=latency, sample_rate=sample_rate)
        self.reopen = reopen
        self.on_error = on_error
        self.on_restored = on_restored
        self.sleep_after_s = sleep_after_s
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Open the output device and start the stream (silent until ``enqueue``).

        Raises:
            AudioDeviceError: no such device, no output device, or it cannot be opened.
        """
        super().start(loop)
        if self._watchdog is None and self._loop is not None:
            self._watchdog = self._loop.create_task(self._watch_device(), name="player-watchdog")

    def enqueue(self, audio: Int16Array, sample_rate: int, tag: PlaybackTag) -> None:
        """Queue int16 mono audio to play after what is queued, without a gap.

        The chunk is resampled to the device rate here, on the caller's thread; a
        sleeping stream is started.
        """
        super().enqueue(audio, sample_rate, tag)
        if self.asleep:
            self._wake()

    def wake(self) -> None:
        """An answer may come soon: keep the stream running (start it if it sleeps).

        A stream that starts reports a few underflows while its buffers fill;
        started with an answer already queued, under load, those cut into the
        answer's first sound (docs/BENCHMARKS.md, "Busy machine"). Woken
        when the user starts talking or the agent gets busy, it is past them
        before the first chunk arrives.
        """
        self._last_start = time.monotonic()
        if self.asleep:
            self._wake()

    def _sleep(self) -> None:
        """Stop the stream while there is nothing to play (the device stays open)."""
        stream = self._stream
        if stream is None:
            return
        try:
            stream.abort()  # what it still holds is silence: no need to play it out
        except Exception as exc:  # the device went away: the watchdog reopens it
            log.debug("speaker stream did not stop: %s", exc)
            return
        self.asleep = True
        log.debug("speaker stream stopped: nothing to play")

    def _wake(self) -> None:
        """Start the stopped stream again; a failure is the watchdog's to report."""
        self.asleep = False
        self._stream_clock.started()
        self._last_start = self._stream_clock.started_at
        try:
            self._stream.start()
        except Exception as exc:  # e.g. the device was lost while the stream slept
            log.debug("speaker stream did not start again: %s", exc)

    def _sleepy(self) -> bool:
        """Whether nothing has played, or been queued or held, for ``sleep_after_s``."""
        engine = self._engine
        if self.sleep_after_s is None or engine is None or self.asleep or engine.busy:
            return False
        now = time.monotonic()
        quiet_since = max(engine.last_sound_end, self._last_start)
        return now - quiet_since >= self.sleep_after_s and not engine.paused

    def close(self) -> None:
        """Stop the stream and release the device (queued audio is dropped)."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._engine is not None:
            self._engine.stop_now()
        self._close_stream()

    async def _watch_device(self) -> None:
        """Tell a slow stream from a lost device; reopen a lost one.

        A stream that is starting (a server resuming a suspended sink) is waited for
        and its queued audio kept. One that stalls is started again once; only a
        stream PortAudio reports stopped, or one that stays stuck after that restart,
        is a lost device: then the queue is dropped, the loss reported, and the device
        reopened every second.
        """
        restarted = False
        while not self._closed:
            await asyncio.sleep(0.5)
            if self.asleep:
                continue
            state = self._stream_clock.state(self._stream)
            if state == "running":
                restarted = False
                if self._sleepy():
                    self._sleep()
                continue
            if state == "starting":
                continue
            if state == "stalled" and not restarted:
                restarted = True
                log.warning("speaker stream %r stalled: starting it again", self.device_name)
                if await asyncio.to_thread(self._restart):
                    continue
            restarted = False
            if not await self._recover():
                return

    async def _recover(self) -> bool:
        """The device is lost: drop the queue, report it, then reopen it every second.

        Returns:
            False when the device is not to be reopened (``reopen`` is off).
        """
        error = self._lost("stopped playing")
        if not self.reopen:
            log.error("%s", error)
            return False
        self._waiting_since = None
        if self._engine is not None:
            self._engine.stop_now()
            self._callbacks.post_soon("idle", None, time.monotonic())
        await self._reconnect(error)
        return True

    def _reopen(self) -> None:
        self._open_stream(portaudio.find_device(self.device, "output").index)
