"""Drive the real ``voiceterm --headless`` on the PulseAudio rig, and listen to it.

Used by ``tests/audio/test_live_app.py`` and ``benchmarks.live``.

- :class:`LiveApp` starts the real app as a subprocess on the rig's devices and
  collects its stdout lines (``you:``, ``agent:``, ``[interrupted: ...]``, the
  timings line), each stamped with ``time.monotonic()`` when it arrived.
- :class:`RigIO` is the test's own mouth and ear on one clock: PortAudio streams
  (through ALSA's pulse plugin, like the app's) play speech into ``vt_mic`` and
  record ``vt_speaker.monitor``. Both sides are stamped with
  PortAudio's DAC/ADC times mapped onto ``time.monotonic()``, the clock the app
  uses too, so "the last voiced sample of the question" and "the first audible
  sample of the answer" can be compared directly. :func:`calibrate` checks that
  claim: it plays clicks into ``vt_mic`` and finds them in ``vt_mic.monitor``,
  where they must appear at the very time they were played. Audio its recorder
  loses (an input overflow, a stream reopened) is filled with silence to keep
  the times true, and remembered: :meth:`RigIO.heard` hands out a window only if
  every sample of it was heard, so a test that checks for silence cannot pass
  on silence the recorder made up.
- :class:`Recording` and :func:`loud_spans` find where sound is in a recording.

Why not ``paplay``/``parecord``: two processes start their streams at unknown
times, so their recordings cannot be lined up to the millisecond.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

AUDIBLE = 328
"""A sample louder than this (-40 dBFS) is sound; the player and bench_voice use the same."""

RIG_RATE = 48000
"""The rig's sinks run at 48 kHz; the test's stream uses the same rate (no resampling)."""

_ENVIRONMENT_SWAP = threading.Lock()
"""Held by :func:`environment`: one swap at a time, or two threads opening streams
would restore each other's variables."""

KEEPER_PERIOD_S = 0.02
"""How often :class:`RigIO` looks for a stream of its own that died."""

READY_LINE = "listening"
"""What ``voiceterm --headless`` prints once models and devices are ready."""


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in the process environment for the block, then as they were.

    PortAudio's pulse plugin reads ``PULSE_*`` from the environment when a stream
    opens, so that is how a stream here is pointed at the rig.
    """
    with _ENVIRONMENT_SWAP:
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


# --- the app -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One line the app printed, with the monotonic time it arrived here."""

    t: float
    text: str


def voiceterm_command() -> list[str]:
    """The installed ``voiceterm`` console script next to this interpreter."""
    script = Path(sys.executable).with_name("voiceterm")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "voiceterm.cli"]


class LiveApp:
    """``voiceterm --headless`` as a subprocess, with its output collected line by line.

    Args:
        env: environment additions (the rig's ``PULSE_*`` variables at least).
        args: extra command-line flags, e.g. ``("--audio-echo", "off")``.
        config_home: an empty ``XDG_CONFIG_HOME``, so no user config is read.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        args: Sequence[str] = (),
        *,
        config_home: Path | None = None,
    ) -> None:
        self.args = list(args)
        self.env = {**os.environ, **env, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        if config_home is not None:
            self.env["XDG_CONFIG_HOME"] = str(config_home)
        self.stdout: list[OutputLine] = []
        self.stderr: list[OutputLine] = []
        self.returncode: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._changed = threading.Condition()
        self._readers: list[threading.Thread] = []

    @property
    def command(self) -> list[str]:
        return [*voiceterm_command(), "--headless", *self.args]

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, ready_timeout: float = 120.0) -> None:
        """Start the app and wait until it says it is listening.

        Raises:
            RuntimeError: it exited first, or was not ready in time (output attached).
        """
        self._process = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._process.stdout is not None and self._process.stderr is not None
        for stream, lines in (
            (self._process.stdout, self.stdout),
            (self._process.stderr, self.stderr),
        ):
            reader = threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            reader.start()
            self._readers.append(reader)
        try:
            self.wait_for(re.escape(READY_LINE), timeout=ready_timeout)
        except TimeoutError as exc:
            self.stop(signal.SIGKILL)
            raise RuntimeError(
                f"voiceterm --headless did not get ready:\n{self.transcript()}"
            ) from exc

    def _read(self, stream: Any, lines: list[OutputLine]) -> None:
        for raw in stream:
            line = OutputLine(time.monotonic(), raw.rstrip("\n"))
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def mark(self) -> int:
        """The number of stdout lines so far; pass it as ``since`` to look only after now."""
        with self._changed:
            return len(self.stdout)

    def lines(self, since: int = 0) -> list[OutputLine]:
        with self._changed:
            return self.stdout[since:]

    def find(self, pattern: str, since: int = 0) -> OutputLine | None:
        """The first stdout line from ``since`` on that matches ``pattern`` (a regex)."""
        regex = re.compile(pattern)
        return next((line for line in self.lines(since) if regex.search(line.text)), None)

    def wait_for(self, pattern: str, *, since: int = 0, timeout: float = 30.0) -> OutputLine:
        """Wait for a stdout line matching ``pattern`` (a regex) from line ``since`` on.

        Raises:
            TimeoutError: none came in time, or the app exited (its output is attached).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.stdout[since:]:
                    if regex.search(line.text):
                        return line
                remaining = deadline - time.monotonic()
                exited = self._process is None or self._process.poll() is not None
                if remaining <= 0 or exited:
                    break
                self._changed.wait(min(remaining, 0.2))
        state = "exited" if exited else f"printed nothing matching within {timeout:.0f} s"
        raise TimeoutError(f"voiceterm {state} ({pattern!r}):\n{self.transcript()}")

    def transcript(self) -> str:
        """Everything the app printed, stdout then stderr (for failure messages)."""
        with self._changed:
            out = "\n".join(line.text for line in self.stdout)
            err = "\n".join(line.text for line in self.stderr)
        return f"--- stdout\n{out}\n--- stderr\n{err}"

    @property
    def stderr_text(self) -> str:
        with self._changed:
            return "\n".join(line.text for line in self.stderr)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit (kill after ``timeout``); returns the exit code."""
        process = self._process
        if process is None:
            return self.returncode if self.returncode is not None else 0
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        self.returncode = process.returncode
        return process.returncode


# --- finding sound -----------------------------------------------------------------------


def loud_frames(audio: Int16Array, rate: int, frame_ms: int = 5) -> npt.NDArray[np.bool_]:
    """Per frame of ``frame_ms``: does any sample pass :data:`AUDIBLE`?"""
    size = max(1, rate * frame_ms // 1000)
    count = len(audio) // size
    frames = np.abs(audio[: count * size].astype(np.int32)).reshape(count, size)
    mask: npt.NDArray[np.bool_] = frames.max(axis=1) > AUDIBLE
    return mask


def loud_spans(audio: Int16Array, rate: int, min_gap_s: float = 0.3) -> list[tuple[float, float]]:
    """(start, end) in seconds of each stretch of sound; gaps shorter than ``min_gap_s`` join."""
    loud = np.flatnonzero((audio > AUDIBLE) | (audio < -AUDIBLE))
    if loud.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(loud) > min_gap_s * rate)
    starts = np.concatenate(([loud[0]], loud[breaks + 1]))
    ends = np.concatenate((loud[breaks], [loud[-1]]))
    return [(int(s) / rate, (int(e) + 1) / rate) for s, e in zip(starts, ends, strict=True)]


@dataclass(frozen=True, slots=True)
class Recording:
    """Recorded audio whose first sample was captured at monotonic time ``t0``."""

    audio: Int16Array
    rate: int
    t0: float

    @property
    def t_end(self) -> float:
        return self.t0 + len(self.audio) / self.rate

    def index(self, t: float) -> int:
        return int(np.clip(round((t - self.t0) * self.rate), 0, len(self.audio)))

    def between(self, t_from: float, t_to: float | None = None) -> Recording:
        start = self.index(t_from)
        end = len(self.audio) if t_to is None else self.index(t_to)
        return Recording(self.audio[start:end], self.rate, self.t0 + start / self.rate)

    def spans(self, min_gap_s: float = 0.3) -> list[tuple[float, float]]:
        """Stretches of sound as (start, end) monotonic times."""
        return [(self.t0 + a, self.t0 + b) for a, b in loud_spans(self.audio, self.rate, min_gap_s)]

    def first_loud(self) -> float | None:
        """Monotonic time of the first audible sample, if any."""
        loud = np.flatnonzero((self.audio > AUDIBLE) | (self.audio < -AUDIBLE))
        return self.t0 + int(loud[0]) / self.rate if loud.size else None

    def last_loud(self) -> float | None:
        """Monotonic time just after the last audible sample, if any."""
        loud = np.flatnonzero((self.audio > AUDIBLE) | (self.audio < -AUDIBLE))
        return self.t0 + (int(loud[-1]) + 1) / self.rate if loud.size else None

    def loud_seconds(self) -> float:
        return float(loud_frames(self.audio, self.rate).sum()) * 0.005

    def at_16k(self) -> Int16Array:
        from voiceterm.audio.resample import resample

        return np.asarray(resample(self.audio, self.rate, 16000), dtype=np.int16)


# --- the test's own mouth and ear -----------------------------------------------------


class LostAudio(AssertionError):
    """The test's recorder lost audio where the test needed to hear all of it."""


@dataclass(eq=False)
class Playback:
    """One sound being played into the microphone sink; times are filled in as it plays."""

    samples: Int16Array
    rate: int
    start_index: int = -1
    """Sample index in the output stream of its first sample (-1 until it starts)."""
    pos: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


class RigIO:
    """Plays into ``sink`` and records ``source`` through PortAudio, on one clock.

    Args:
        env: the rig's environment (``PULSE_SERVER`` at least).
        sink: where :meth:`play` goes (default the microphone sink ``vt_mic``).
        source: what is recorded (default the speaker's monitor).
        rate: stream rate; the rig runs at 48 kHz.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        sink: str = "vt_mic",
        source: str = "vt_speaker.monitor",
        rate: int = RIG_RATE,
        block: int = 480,
    ) -> None:
        self.env = dict(env)
        self.sink = sink
        self.source = source
        self.rate = rate
        self.block = block
        self._out: Any = None
        self._in: Any = None
        self._closed = False
        self._out_resync = False
        self._in_resync = False
        self.restarts = 0
        """Times a stream died (an xrun the pulse plugin did not survive) and was reopened."""
        self._keeper: threading.Thread | None = None
        self._active: list[Playback] = []
        self._queue: list[Playback] = []
        self._lock = threading.Lock()
        self._out_count = 0
        self._in_count = 0
        # (monotonic time - sample index / rate) per callback: medians give the clocks.
        self._out_anchor: list[float] = []
        self._in_anchor: list[float] = []
        self._in_blocks: list[Int16Array] = []
        self._in_first_index: list[int] = []
        self._in_lost: list[tuple[int, int]] = []
        # Recorded sample ranges [start, end) that are silence this recorder made up
        # (start == end: audio was lost but the clock saw no gap to fill).
        self.overflows = 0
        """Input overflows: the recording lost audio before this process read it."""
        self.underflows = 0

    # -- lifecycle

    def start(self) -> RigIO:
        self._out = self._open("output")
        self._in = self._open("input")
        # A stream that dies is reopened within a few blocks, not when the test next
        # asks for audio: a test waiting on the app's output (seconds) lost all of it.
        self._keeper = threading.Thread(target=self._keep, name="rig-keeper", daemon=True)
        self._keeper.start()
        time.sleep(0.3)  # a few blocks, so both clocks have anchors
        return self

    def _keep(self) -> None:
        while not self._closed:
            time.sleep(KEEPER_PERIOD_S)
            with contextlib.suppress(Exception):  # a stream that will not open: tried again
                self._reopen_dead()

    def _open(self, kind: str) -> Any:
        import sounddevice as sd

        # The pulse plugin reads PULSE_SINK/PULSE_SOURCE when a stream opens, so
        # these streams can face the other way than the app's, in the same session.
        with environment({**self.env, "PULSE_SINK": self.sink, "PULSE_SOURCE": self.source}):
            if not any(device["name"] == "pulse" for device in sd.query_devices()):
                # PortAudio lists devices once, and lists "pulse" only when a server
                # answered. (Never re-initialize with a stream open: it kills the stream.)
                sd._terminate()
                sd._initialize()
            # Two streams, not one duplex stream: through the pulse plugin a duplex
            # stream dies on the first xrun, a simplex one recovers.
            stream_class = sd.OutputStream if kind == "output" else sd.InputStream
            callback = self._play_callback if kind == "output" else self._record_callback
            stream = stream_class(
                device="pulse",
                samplerate=self.rate,
                channels=1,
                dtype="int16",
                blocksize=self.block,
                # Playing: "high" survives a loaded machine, and the DAC time says
                # when each sample is heard anyway. Recording: "low", as the app does.
                latency="high" if kind == "output" else "low",
                callback=callback,
            )
            stream.start()
        return stream

    def _reopen_dead(self) -> None:
        """Reopen a stream that died; the sample clocks carry on across the gap."""
        if self._closed:
            return
        for kind in ("output", "input"):
            stream = self._out if kind == "output" else self._in
            if stream is not None and stream.active:
                continue
            self.restarts += 1
            with contextlib.suppress(Exception):
                stream.close()
            if kind == "output":
                self._out_resync = True
                self._out = self._open(kind)
            else:
                self._in_resync = True
                self._in = self._open(kind)

    def close(self) -> None:
        self._closed = True
        if self._keeper is not None:
            self._keeper.join()
            self._keeper = None
        for stream in (self._out, self._in):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.stop()
                with contextlib.suppress(Exception):
                    stream.close()
        self._out = self._in = None

    def __enter__(self) -> RigIO:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the device threads

    def _record_callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        if status.input_overflow:
            self.overflows += 1
            self._in_resync = True
        age = time_info.currentTime - time_info.inputBufferAdcTime
        if not (0.0 <= age < 2.0 and time_info.inputBufferAdcTime > 0):
            # No usable time. Straight after the last block, the count places it;
            # after a loss nothing does, and the next block with a time fills the hole.
            if self._in_anchor and not self._in_resync:
                self._in_first_index.append(self._in_count)
                self._in_blocks.append(indata[:, 0].copy())
                self._in_count += frames
            return
        t_adc = now - age
        if self._in_anchor and self._in_resync:
            # Samples were lost (a reopened stream, an overflow): move the count on to
            # this block's time and fill the hole with silence, so times stay true,
            # and remember where the made-up silence is.
            expected = round((t_adc - self._in_clock()) * self.rate)
            if expected > self._in_count:
                self._in_first_index.append(self._in_count)
                self._in_blocks.append(np.zeros(expected - self._in_count, np.int16))
                self._in_lost.append((self._in_count, expected))
                self._in_count = expected
            else:
                self._in_lost.append((self._in_count, self._in_count))
            self._in_anchor.clear()
        self._in_resync = False
        self._in_anchor.append(t_adc - self._in_count / self.rate)
        self._in_first_index.append(self._in_count)
        self._in_blocks.append(indata[:, 0].copy())
        self._in_count += frames

    def _play_callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic()
        if status.output_underflow:
            self.underflows += 1
        ahead = time_info.outputBufferDacTime - time_info.currentTime
        if 0.0 <= ahead < 2.0 and time_info.outputBufferDacTime > 0:
            t_dac = now + ahead
            if self._out_anchor and (self._out_resync or status.output_underflow):
                # The device played silence we did not write: move the count on.
                expected = round((t_dac - self._out_clock()) * self.rate)
                self._out_count = max(self._out_count, expected)
                self._out_anchor.clear()
            self._out_resync = False
            self._out_anchor.append(t_dac - self._out_count / self.rate)
        mix = np.zeros(frames, np.int32)
        with self._lock:
            if self._queue:
                self._active.extend(self._queue)
                self._queue.clear()
            finished = []
            for playback in self._active:
                if playback.start_index < 0:
                    playback.start_index = self._out_count
                piece = playback.samples[playback.pos : playback.pos + frames]
                mix[: len(piece)] += piece
                playback.pos += len(piece)
                if playback.pos >= len(playback.samples):
                    finished.append(playback)
            for playback in finished:
                self._active.remove(playback)
                playback.done.set()
        outdata[:, 0] = np.clip(mix, -32768, 32767)
        self._out_count += frames

    # -- clocks

    def _out_clock(self) -> float:
        return float(np.median(self._out_anchor[-400:])) if self._out_anchor else time.monotonic()

    def _in_clock(self) -> float:
        return float(np.median(self._in_anchor[-400:])) if self._in_anchor else time.monotonic()

    def output_time(self, sample_index: int) -> float:
        """Monotonic time at which output sample ``sample_index`` reaches the sink."""
        return self._out_clock() + sample_index / self.rate

    # -- playing

    def play(self, audio: Int16Array, rate: int) -> Playback:
        """Start playing ``audio`` (mono int16 at ``rate``) into the sink now, over the rest."""
        from voiceterm.audio.resample import resample

        samples = np.asarray(resample(np.asarray(audio, np.int16), rate, self.rate), np.int16)
        playback = Playback(samples, self.rate)
        with self._lock:
            self._queue.append(playback)
        return playback

    def started_at(self, playback: Playback, timeout: float = 2.0) -> float:
        """Monotonic time at which ``playback``'s first sample reaches the sink."""
        deadline = time.monotonic() + timeout
        while playback.start_index < 0:
            if time.monotonic() > deadline:
                raise TimeoutError("the rig's output stream does not run")
            time.sleep(0.005)
        return self.output_time(playback.start_index)

    def play_and_wait(self, audio: Int16Array, rate: int) -> tuple[Playback, float]:
        """Play ``audio`` to the end; returns it with the time of its first sample."""
        playback = self.play(audio, rate)
        t_start = self.started_at(playback)
        playback.done.wait(playback.duration + 5.0)
        return playback, t_start

    # -- recording

    def now(self) -> float:
        return time.monotonic()

    def recorded(self, since: float, until: float | None = None) -> Recording:
        """What ``source`` captured between two monotonic times (until now by default)."""
        blocks = len(self._in_blocks)  # the callback only appends: take a consistent prefix
        if blocks == 0:
            return Recording(np.zeros(0, np.int16), self.rate, since)
        t_zero = self._in_clock()
        first_index = self._in_first_index[:blocks]
        start = max(first_index[0], round((since - t_zero) * self.rate))
        end = first_index[blocks - 1] + len(self._in_blocks[blocks - 1])
        if until is not None:
            end = min(end, max(start, round((until - t_zero) * self.rate)))
        begin_block = max(0, int(np.searchsorted(first_index, start, side="right")) - 1)
        audio = np.concatenate(self._in_blocks[begin_block:blocks])
        offset = first_index[begin_block]
        return Recording(
            audio[start - offset : end - offset], self.rate, t_zero + start / self.rate
        )

    def lost_spans(self, since: float, until: float) -> list[tuple[float, float]]:
        """Where the recording between two monotonic times is not what ``source`` carried.

        Each span is silence this recorder put in place of audio it lost (an input
        overflow, a reopened stream, a block without a time); a span of length 0
        marks audio lost where the clock saw no gap to fill.
        """
        t_zero = self._in_clock()
        spans = [
            (t_zero + start / self.rate, t_zero + end / self.rate)
            for start, end in list(self._in_lost)
        ]
        return [(a, b) for a, b in spans if a <= until and b >= since]

    def heard(self, since: float, until: float, timeout: float = 2.0) -> Recording:
        """What ``source`` carried between two monotonic times, every sample of it.

        For a test that checks for silence: it must not pass on silence the recorder
        made up, so any lost audio in the window fails it.

        Raises:
            LostAudio: part of the window was lost (see :meth:`lost_spans`), or the
                recording did not reach ``until`` within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        slack = 1.5 * self.block / self.rate
        recording = self.recorded(since, until)
        if recording.t0 > since + slack:
            raise LostAudio(f"the recording starts {recording.t0 - since:.3f} s into the window")
        while recording.t_end < until - slack:
            if time.monotonic() > deadline:
                raise LostAudio(
                    f"the recorder stopped at {recording.t_end - since:.3f} s of a "
                    f"{until - since:.3f} s window ({self.restarts} reopened streams)"
                )
            time.sleep(0.02)
            recording = self.recorded(since, until)
        lost = self.lost_spans(since, until)
        if lost:
            shown = ", ".join(
                f"{1000 * (a - since):+.0f}..{1000 * (b - since):+.0f} ms" for a, b in lost
            )
            raise LostAudio(
                f"the recorder lost audio in the window ({shown} from its start; "
                f"{self.overflows} input overflows, {self.restarts} reopened streams "
                "so far): its silence there proves nothing"
            )
        return recording

    def forget_before(self, t: float) -> None:
        """Drop recorded audio older than ``t`` (long benchmarks)."""
        t_zero = self._in_clock()
        keep_from = round((t - t_zero) * self.rate)
        drop = 0
        while drop + 1 < len(self._in_first_index) and self._in_first_index[drop + 1] <= keep_from:
            drop += 1
        # The callback appends at the end; deleting at the front is safe under the GIL.
        del self._in_blocks[:drop]
        del self._in_first_index[:drop]
        lost = 0
        while lost < len(self._in_lost) and self._in_lost[lost][1] < keep_from:
            lost += 1
        del self._in_lost[:lost]
        del self._in_anchor[: max(0, len(self._in_anchor) - 400)]
        del self._out_anchor[: max(0, len(self._out_anchor) - 400)]

    def wait_for_sound(self, since: float, timeout: float) -> float | None:
        """Monotonic time of the first audible sample recorded after ``since``, or ``None``."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.recorded(since).first_loud()
            if t is not None or time.monotonic() > deadline:
                return t
            time.sleep(0.02)

    def wait_for_silence(self, since: float, quiet_s: float, timeout: float) -> float | None:
        """Wait until nothing was audible for ``quiet_s``; returns the end of the last sound.

        Returns ``None`` when sound still went on at ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recording = self.recorded(since)
            last = recording.last_loud()
            if recording.t_end - (last if last is not None else since) >= quiet_s:
                return last if last is not None else since
            time.sleep(0.05)
        return None


@dataclass(frozen=True, slots=True)
class Calibration:
    """How far the test's time stamps are off: a click's capture time minus its play time."""

    errors_ms: list[float]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.errors_ms)) if self.errors_ms else float("nan")

    @property
    def worst_ms(self) -> float:
        return float(np.max(np.abs(self.errors_ms))) if self.errors_ms else float("nan")


def calibrate(env: Mapping[str, str], clicks: int = 8) -> Calibration:
    """Play clicks into ``vt_mic`` and find them in ``vt_mic.monitor``, on :class:`RigIO`'s clocks.

    A null sink's monitor carries what the sink renders at the moment it renders
    it, so with exact time stamps each click is captured when it is played: the
    differences are the error of every time this module reports. (Turn the rig's
    echo loopback off first, or the app's speech lands in the same recording.)
    """
    click = np.zeros(RIG_RATE // 2, np.int16)
    click[RIG_RATE // 10 : RIG_RATE // 10 + 48] = 20000
    errors: list[float] = []
    with RigIO(env, sink="vt_mic", source="vt_mic.monitor") as io:
        for _ in range(clicks):
            playback, t_start = io.play_and_wait(click, RIG_RATE)
            t_played = t_start + (RIG_RATE // 10) / RIG_RATE
            time.sleep(0.1)
            heard = io.recorded(t_played - 0.2, t_played + 0.2).first_loud()
            if heard is not None:
                errors.append(1000 * (heard - t_played))
    return Calibration(errors)


# --- speech ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Utterance:
    """Speech to play into the microphone, with where the VAD finds it (seconds)."""

    audio: Int16Array
    rate: int
    text: str
    onset: float
    """The first voiced frame (what the app calls the onset)."""
    speech_end: float
    """The end of the last voiced frame (the last voiced sample)."""


def utterance(audio: Int16Array, text: str, rate: int = 16000) -> Utterance:
    """Wrap speech with 0.2 s of silence before and after, and find its voiced span."""
    from voiceterm.engines.vad import segment_file

    pad = np.zeros(rate // 5, np.int16)
    padded = np.concatenate((pad, np.asarray(audio, np.int16), pad))
    segments = segment_file(padded, rate)
    if not segments:
        raise ValueError(f"the VAD finds no speech in {text!r}")
    return Utterance(padded, rate, text, segments[0].speech_start, segments[-1].speech_end)


def cough(seconds: float = 0.08, level_dbfs: float = -12.0, seed: int = 1) -> Int16Array:
    """A short burst of band-limited noise with a fast attack: a cough or a "mm" click."""
    rate = 16000
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    noise = rng.normal(0.0, 1.0, n)
    noise = np.convolve(noise, np.ones(4) / 4, mode="same")  # less hiss, more body
    envelope = np.minimum(1.0, np.arange(n) / (0.005 * rate)) * np.exp(-np.arange(n) / (0.4 * n))
    burst = noise * envelope
    burst *= 32768 * 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(burst**2)) + 1e-9)
    pad = np.zeros(rate // 5, np.int16)
    return np.concatenate((pad, np.clip(burst, -32768, 32767).astype(np.int16), pad))


def transcribe(audio16k: Int16Array) -> str:
    """What Whisper (the embedded tiny.en) hears in 16 kHz audio."""
    from voiceterm.engines.stt import WhisperTranscriber
    from voiceterm.modelstore import resolve_model

    transcriber = _transcriber_cache.get("stt")
    if transcriber is None:
        transcriber = WhisperTranscriber(resolve_model("stt").path)
        _transcriber_cache["stt"] = transcriber
    return str(transcriber.transcribe(audio16k).text)


_transcriber_cache: dict[str, Any] = {}


@contextlib.contextmanager
def running_app(env: Mapping[str, str], args: Sequence[str] = (), **kw: Any) -> Iterator[LiveApp]:
    """A started :class:`LiveApp`, stopped (SIGTERM) at the end."""
    app = LiveApp(env, args, **kw)
    app.start()
    try:
        yield app
    finally:
        app.stop()


# --- the rig, for scripts (tests use the ``rig`` fixture) ------------------------------


@dataclass
class RigControl:
    """``scripts/audio_rig.sh`` with its own daemon folder (``VT_RIG_DIR``)."""

    rig_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def script(self) -> Path:
        return Path(__file__).resolve().parents[1] / "scripts" / "audio_rig.sh"

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["bash", str(self.script), *args],
            env={**os.environ, "VT_RIG_DIR": str(self.rig_dir)},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(f"audio_rig.sh {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self, profile: str | None = None) -> dict[str, str]:
        """Start the rig (``profile``: lab, pulse-desktop or pipewire; default: lab or
        ``VT_RIG_PROFILE``) and return its environment."""
        options = ("--profile", profile) if profile else ()
        for line in self.run("start", *options).splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = value.strip("'\"")
        return self.env

    def set_echo(self, gain_db: float | None) -> None:
        self.run("echo", "off" if gain_db is None else f"{gain_db:g}")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.run("stop")
