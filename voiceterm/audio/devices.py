"""Sound devices through sounddevice (PortAudio): listing, choosing, and the microphone.

- ``list_devices()`` -> ``DeviceList`` (what ``voiceterm devices`` prints).
- ``find_device(name_or_index, "input" | "output")`` -> ``DeviceInfo``: a device index,
  a case-insensitive piece of its name, or ``None`` for the system default. Unknown or
  ambiguous names raise ``AudioDeviceError`` naming the choices.
- ``MicrophoneSource`` -> an ``AudioSource`` of 16 kHz int16 mono ``AudioFrame``\\ s.

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

sounddevice is imported lazily (it loads PortAudio and enumerates devices on import).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from voiceterm.audio.frames import CAPTURE_RATE, AudioFrame
from voiceterm.audio.resample import StreamResampler
from voiceterm.errors import AudioDeviceError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Array = npt.NDArray[np.int16]

log = logging.getLogger(__name__)

DeviceKind = Literal["input", "output"]

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

_INSTALL_HINT = "Install PortAudio (Debian/Ubuntu: apt-get install libportaudio2)."
_CHOOSE_HINT = "Run `voiceterm devices` to see the devices, then pick one by name or index."


# --- sounddevice import ---------------------------------------------------------


class _AlsaQuiet:
    """Keeps alive the no-op ALSA error handler installed by ``silence_alsa_messages``.

    ALSA prints its own errors ("underrun occurred", probing of absent cards) straight
    to file descriptor 2, which would scribble over the TUI. The handler must outlive
    every ALSA call, so the ctypes callback is held here for the life of the process.
    """

    handler: Any = None


def silence_alsa_messages() -> None:
    """Stop libasound from writing diagnostics to stderr (no-op without ALSA).

    Underruns are still counted from PortAudio's status flags.
    """
    if _AlsaQuiet.handler is not None:
        return
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("asound")
    if name is None:
        return
    try:
        asound = ctypes.CDLL(name)
    except OSError:
        return
    # void handler(const char *file, int line, const char *func, int err, const char *fmt, ...)
    handler_type = ctypes.CFUNCTYPE(
        None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
    )

    def _ignore(file: bytes, line: int, func: bytes, err: int, fmt: bytes) -> None:
        return None

    _AlsaQuiet.handler = handler_type(_ignore)
    asound.snd_lib_error_set_handler(_AlsaQuiet.handler)


class _NativeStderr:
    """Process-wide state of ``native_stderr_silenced`` (file descriptor 2 is global).

    PortAudio's ALSA host API prints "Expression '...' failed" lines to fd 2 when a
    device cannot be opened, e.g. on every reopen attempt while a device is gone.
    Nested and concurrent users (the microphone's and the speaker's reopen threads)
    share one redirection: the lock and depth make sure fd 2 is restored exactly
    once, by the last user out.
    """

    lock = threading.Lock()
    depth = 0
    saved_fd = -1


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what C libraries write to fd 2 to /dev/null for the duration.

    Python's own ``sys.stderr`` output in other threads is briefly silenced too, so
    keep the block short (opening a stream takes milliseconds).
    """
    with _NativeStderr.lock:
        if _NativeStderr.depth == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            except (OSError, ValueError):  # no fd 2 (daemonized, closed): nothing to hide
                saved = -1
            _NativeStderr.saved_fd = saved
        _NativeStderr.depth += 1
    try:
        yield
    finally:
        with _NativeStderr.lock:
            _NativeStderr.depth -= 1
            if _NativeStderr.depth == 0 and _NativeStderr.saved_fd >= 0:
                os.dup2(_NativeStderr.saved_fd, 2)
                os.close(_NativeStderr.saved_fd)
                _NativeStderr.saved_fd = -1


def import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into an ``AudioDeviceError``.

    The first import initializes PortAudio, which probes every ALSA device; its
    complaints about absent ones are kept off the terminal.
    """
    silence_alsa_messages()
    try:
        with native_stderr_silenced():
            import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise AudioDeviceError(
            "The PortAudio library is not installed, so no sound device can be used.",
            hint=_INSTALL_HINT,
        ) from exc
    except ImportError as exc:
        raise AudioDeviceError(
            "The sounddevice package is not installed.", hint="pip install sounddevice"
        ) from exc
    module: ModuleType = sounddevice
    return module


# --- listing and choosing --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    default_low_input_latency: float = 0.0
    default_low_output_latency: float = 0.0

    def channels(self, kind: DeviceKind) -> int:
        """Maximum channel count for capture (``"input"``) or playback (``"output"``)."""
        return self.max_input_channels if kind == "input" else self.max_output_channels


@dataclass(frozen=True, slots=True)
class DeviceList:
    """Inputs and outputs PortAudio sees, and the system defaults (``None``: none)."""

    inputs: list[DeviceInfo] = field(default_factory=list)
    outputs: list[DeviceInfo] = field(default_factory=list)
    default_input: int | None = None
    default_output: int | None = None

    def format(self) -> str:
        """Human-readable listing; ``*`` marks the defaults."""
        lines: list[str] = []
        sections: tuple[tuple[str, list[DeviceInfo], int | None, DeviceKind], ...] = (
            ("Inputs (microphones)", self.inputs, self.default_input, "input"),
            ("Outputs (speakers)", self.outputs, self.default_output, "output"),
        )
        for title, devices, default, kind in sections:
            lines.append(f"{title}:")
            if not devices:
                lines.append("  (none)")
            for dev in devices:
                mark = "*" if dev.index == default else " "
                lines.append(
                    f" {mark}{dev.index:>3}  {dev.name}  [{dev.hostapi}, "
                    f"{dev.channels(kind)} ch, {dev.default_samplerate:g} Hz]"
                )
        lines.append("Choose with --input-device / --output-device NAME-OR-INDEX.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _device_info(sd: ModuleType, raw: dict[str, Any]) -> DeviceInfo:
    hostapi = sd.query_hostapis(raw["hostapi"])["name"]
    return DeviceInfo(
        index=int(raw["index"]),
        name=str(raw["name"]),
        hostapi=str(hostapi),
        max_input_channels=int(raw["max_input_channels"]),
        max_output_channels=int(raw["max_output_channels"]),
        default_samplerate=float(raw["default_samplerate"]),
        default_low_input_latency=float(raw["default_low_input_latency"]),
        default_low_output_latency=float(raw["default_low_output_latency"]),
    )


def _default_index(sd: ModuleType, kind: DeviceKind) -> int | None:
    try:
        index = sd.default.device[0 if kind == "input" else 1]
    except Exception:
        return None
    if index is None or int(index) < 0:
        try:  # sounddevice's default may be unset; ask PortAudio itself
            index = sd.query_devices(kind=kind)["index"]
        except Exception:
            return None
    return int(index)


def list_devices() -> DeviceList:
    """All devices PortAudio sees, split into inputs and outputs.

    Raises:
        AudioDeviceError: PortAudio itself is missing.
    """
    sd = import_sounddevice()
    devices = [_device_info(sd, raw) for raw in sd.query_devices()]
    return DeviceList(
        inputs=[d for d in devices if d.max_input_channels > 0],
        outputs=[d for d in devices if d.max_output_channels > 0],
        default_input=_default_index(sd, "input"),
        default_output=_default_index(sd, "output"),
    )


def find_device(name_or_index: int | str | None, kind: DeviceKind) -> DeviceInfo:
    """Resolve a device choice for capture (``"input"``) or playback (``"output"``).

    Args:
        name_or_index: ``None`` (or ``""``/``"default"``) for the system default, an
            index (int or digits), or a case-insensitive piece of the device name. An
            exact name wins over partial matches.

    Raises:
        AudioDeviceError: no device of that kind, no match, or several matches.
    """
    devices = list_devices()
    candidates = devices.inputs if kind == "input" else devices.outputs
    what = "input (microphone)" if kind == "input" else "output (speaker)"
    if not candidates:
        raise AudioDeviceError(
            f"No {what} device was found.",
            hint="Connect one, check that the sound server runs (PulseAudio/PipeWire), "
            "or run `voiceterm devices`.",
        )
    choice = name_or_index.strip() if isinstance(name_or_index, str) else name_or_index
    if choice is None or choice in ("", "default"):
        default = devices.default_input if kind == "input" else devices.default_output
        for dev in candidates:
            if dev.index == default:
                return dev
        return candidates[0]
    if isinstance(choice, int) or choice.isdigit():
        index = int(choice)
        for dev in candidates:
            if dev.index == index:
                return dev
        raise AudioDeviceError(f"There is no {what} device with index {index}.", hint=_CHOOSE_HINT)
    wanted = choice.lower()
    exact = [d for d in candidates if d.name.lower() == wanted]
    if len(exact) == 1:
        return exact[0]
    matches = exact or [d for d in candidates if wanted in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        names = ", ".join(repr(d.name) for d in candidates)
        raise AudioDeviceError(
            f"No {what} device matches {choice!r} (there are: {names}).", hint=_CHOOSE_HINT
        )
    names = ", ".join(f"{d.index}: {d.name!r}" for d in matches)
    raise AudioDeviceError(
        f"{choice!r} matches several {what} devices ({names}).",
        hint="Use a longer part of the name, or the index.",
    )


def pick_sample_rate(info: DeviceInfo, kind: DeviceKind, preferred: int | None = None) -> int:
    """A rate the device accepts for int16 mono: ``preferred`` if it works, else its default.

    Raises:
        AudioDeviceError: the device accepts none of the rates tried.
    """
    sd = import_sounddevice()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    tried: list[int] = []
    for rate in (preferred, int(info.default_samplerate), 48000, 44100):
        if not rate or rate in tried:
            continue
        tried.append(rate)
        try:
            with native_stderr_silenced():  # PortAudio opens the device to check it
                check(device=info.index, samplerate=rate, channels=1, dtype="int16")
        except Exception:
            continue
        return rate
    raise AudioDeviceError(
        f"The device {info.name!r} accepts none of the sample rates "
        f"{', '.join(map(str, tried))} Hz for 16-bit mono {kind}.",
        hint=_CHOOSE_HINT,
    )


def open_stream_error(exc: Exception, kind: DeviceKind, name: str) -> AudioDeviceError:
    """Turn PortAudio's complaint about opening a stream into an ``AudioDeviceError``."""
    text = str(exc)
    what = "microphone" if kind == "input" else "speaker"
    if "unavailable" in text.lower() or "busy" in text.lower():
        hint = "Another program may be using it; close it, or choose another device."
    else:
        hint = _CHOOSE_HINT
    return AudioDeviceError(f"Could not open the {what} {name!r}: {text}.", hint=hint)


def raise_thread_priority(priority: int = 10) -> bool:
    """Give the calling thread real-time round-robin scheduling, if allowed.

    Called once from inside an audio callback, so it is PortAudio's callback thread
    that gets it: a callback that runs late underflows (clicks) or overflows (lost
    input) when the model threads load every core. Needs root or an rtprio limit
    (as PulseAudio and PipeWire clients usually have); otherwise nothing changes.
    The callback is short and sleeps between blocks, so it cannot starve anyone.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (OSError, AttributeError):  # not permitted, or not Linux
        return False
    return True


@contextlib.contextmanager
def realtime_threads_created(priority: int = 10) -> Iterator[bool]:
    """Threads started inside this block get real-time priority, where allowed.

    Opening a stream through PulseAudio's ALSA plugin starts libpulse's own I/O
    thread, and starting it starts PortAudio's callback thread. Both must run on
    time even when Whisper, llama.cpp and Piper load every core: a late plugin thread
    starves the sound server's buffer (a dropout PortAudio never reports). New
    threads inherit their creator's scheduling, so the calling thread is raised for
    the few milliseconds of the open and put back afterwards. Yields whether it
    could (root, or an rtprio limit); without permission nothing changes.
    """
    try:
        policy = os.sched_getscheduler(0)
        param = os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (OSError, AttributeError):
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, param)


_ALSA_PERIODS = threading.Lock()
_ALSA_DEFAULT_PERIODS = 4  # PortAudio's own (pa_linux_alsa.c)


@contextlib.contextmanager
def alsa_periods_at_most(sd: ModuleType, count: int) -> Iterator[None]:
    """Streams opened in this block may have up to ``count`` periods in their buffer.

    PortAudio's ALSA host API doubles the period until the buffer holds at most
    four; with a buffer of many blocks that would make each period, and so each
    blocking read, several blocks long. ``PaAlsa_SetNumPeriods`` is a process-wide
    setting: it is raised for the open and put back after. Without ALSA nothing
    changes.
    """
    import ctypes
    import ctypes.util

    setter: Any = None
    with contextlib.suppress(OSError, AttributeError, TypeError):
        name = getattr(sd, "_libname", None) or ctypes.util.find_library("portaudio")
        setter = ctypes.CDLL(name).PaAlsa_SetNumPeriods
    with _ALSA_PERIODS:
        if setter is not None:
            setter(count)
        try:
            yield
        finally:
            if setter is not None:
                setter(_ALSA_DEFAULT_PERIODS)


STREAM_START_GRACE_S = 5.0
"""How long a started stream may take to play or capture before it counts as stuck.

A sound server may first resume a device it suspended while idle, or wait for the
device's next period: PulseAudio's null sink, idle, renders every 2 s, so a stream
started on it is called back for its first buffer at once and then not again for
up to 2 s. That is slow, not lost."""

STREAM_STALL_S = 2.0
"""How long a stream that was flowing may go without a callback before it counts as stuck."""

StreamState = Literal["running", "starting", "stalled", "gone"]


class StreamClock:
    """When a PortAudio stream was started, when it last called back, and whether it flows.

    A stream starts by filling its buffer (several callbacks back to back), then is
    called back at the device's pace. "Flowing" begins with the first callback that
    comes at least half a block after the one before: the device is consuming. Until
    then, whatever is written waits in a buffer that is not yet played, so its time
    of playing is unknown.

    ``beat`` runs on PortAudio's thread; the rest on the event loop.
    """

    def __init__(self, block_s: float) -> None:
        self.block_s = block_s
        self.started_at = time.monotonic()
        self.last_callback: float | None = None
        self.flowing = False

    def started(self) -> None:
        """The stream was (re)started: it must show it flows again."""
        self.started_at = time.monotonic()
        self.last_callback = None
        self.flowing = False

    def beat(self, now: float, underflow: bool = False) -> bool:
        """A callback at monotonic ``now``; True for the one that shows the stream flows.

        ``underflow``: PortAudio reports the device ran out. Through ALSA it then
        restarts the device, which fills its buffer again and, on a sound server,
        may wait as long as at a start: the stream must show it flows again.
        """
        if underflow and self.flowing:
            self.flowing = False
            self.started_at = self.last_callback = now
            return False
        previous, self.last_callback = self.last_callback, now
        if self.flowing or previous is None or now - previous < self.block_s / 2:
            return False
        self.flowing = True
        return True

    def state(self, stream: Any, now: float | None = None) -> StreamState:
        """What the stream is doing, from what it reports and how it has called back.

        ``gone``: PortAudio says the stream no longer runs (the device or the sound
        server went away). ``starting``: started, not yet flowing, within the grace a
        server needs to resume. ``stalled``: flowing once but silent for
        ``STREAM_STALL_S``, or never flowing within the grace.
        """
        if stream is None or not stream.active:
            return "gone"
        now = time.monotonic() if now is None else now
        if not self.flowing:
            return "starting" if now - self.started_at < STREAM_START_GRACE_S else "stalled"
        last = self.last_callback if self.last_callback is not None else self.started_at
        return "running" if now - last < STREAM_STALL_S else "stalled"


# --- the microphone ---------------------------------------------------------------


class MicrophoneSource:
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
        self._frame_len = CAPTURE_RATE * block_ms // 1000
        self._blocks: deque[tuple[bytearray, float]] = deque(
            maxlen=max(2, max_queued_ms // block_ms)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_event: asyncio.Event | None = None
        self._wake_pending = False
        self._check_due = False  # the health timer asks frames() to look at the stream
        self._health_timer: asyncio.TimerHandle | None = None
        self._stream: Any = None
        self._resampler: StreamResampler | None = None
        self._reader: threading.Thread | None = None
        self._reader_stop = threading.Event()
        self._read_failed = False
        self._stream_clock = StreamClock(block_ms / 1000)
        self._closed = False
        self._pending: Int16Array | None = None  # resampled samples not yet framed
        self._clock: float | None = None  # smoothed capture time of _pending[0]
        self._offset = 0

    @property
    def sample_rate(self) -> int:
        """Rate of the frames yielded: always 16 kHz."""
        return CAPTURE_RATE

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
        sd = import_sounddevice()
        info = find_device(self.device, "input")
        self.device_name = info.name
        rate = self._requested_rate or pick_sample_rate(info, "input", preferred=CAPTURE_RATE)
        block = rate * self.block_ms // 1000
        latency = self.latency if isinstance(self.latency, (int, float)) else 0.0
        buffer_s = max(float(latency), CAPTURE_BUFFER_S)
        try:
            # No callback: PortAudio's blocking read, in a thread of our own that can
            # take several blocks per wake-up while relaxed (a callback is called once
            # per block, whatever waits). One period per block keeps each read as
            # prompt as a callback would be.
            with (
                native_stderr_silenced(),
                realtime_threads_created(),
                alsa_periods_at_most(sd, int(buffer_s * 1000 / self.block_ms) + 2),
            ):
                stream = sd.RawInputStream(
                    device=info.index,
                    samplerate=rate,
                    channels=1,
                    dtype="int16",
                    blocksize=block,
                    latency=buffer_s,
                )
                stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise open_stream_error(exc, "input", info.name) from exc
        self.device_rate = rate
        self._resampler = StreamResampler(rate, CAPTURE_RATE) if rate != CAPTURE_RATE else None
        self._pending = None
        self._clock = None
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
        self.realtime_thread = raise_thread_priority()
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
                    for frame in self._assemble(block, t_adc):
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

    def _assemble(self, block: Int16Array, t_adc: float) -> list[AudioFrame]:
        """Resample one device block and cut it into exact ``block_ms`` frames."""
        import numpy as np

        rate = self.device_rate
        t_block_end = t_adc + len(block) / rate
        piece: Int16Array = block
        if self._resampler is not None:
            t_block_end -= self._resampler.delay_s  # its output lags its input
            piece = np.asarray(self._resampler.process(block), dtype=np.int16).reshape(-1)
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
        n = self._frame_len
        start = 0
        while len(pending) - start >= n:
            samples = pending[start : start + n]
            if self.muted:
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

    def _healthy(self) -> bool:
        # Capture cannot wait for a stuck stream the way playback can: stalled is lost.
        if self._read_failed:
            return False
        return self._stream_clock.state(self._stream) in ("running", "starting")

    async def _recover(self) -> None:
        """The device stopped: report it, then reopen every second until it works."""
        error = AudioDeviceError(
            f"The microphone {self.device_name!r} stopped delivering audio.",
            hint="It may have been unplugged or taken by another program; "
            "voiceterm tries to reopen it every second.",
        )
        if not self.reopen:
            self.close()
            raise error
        log.warning("%s", error)
        if self.on_error is not None:
            self.on_error(error)
        await asyncio.to_thread(self._close_stream)
        while not self._closed:
            await asyncio.sleep(1.0)
            try:
                await asyncio.to_thread(self._open)
            except AudioDeviceError as exc:
                log.debug("microphone still unavailable: %s", exc.message)
                continue
            log.warning("microphone %r reopened", self.device_name)
            if self.on_restored is not None:
                self.on_restored()
            return

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
