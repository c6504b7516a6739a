"""PortAudio through sounddevice: loading it quietly, the devices, streams and their health.

- ``list_devices()`` -> ``DeviceList`` (what ``voiceterm devices`` prints).
- ``find_device(name_or_index, "input" | "output")`` -> ``DeviceInfo``: a device index,
  a case-insensitive piece of its name, or ``None`` for the system default. Unknown or
  ambiguous names raise ``AudioDeviceError`` naming the choices.
- ``pick_sample_rate`` finds a rate a device takes; ``open_stream_error`` words
  PortAudio's complaint when a stream will not open.
- ``start_stream`` opens and starts a stream: ``native_stderr_silenced``,
  ``realtime_threads_created`` and ``alsa_periods_at_most`` (the ALSA host API's
  period count) around it.
- ``StreamClock`` tells a stream that is slow to start from one that stalled or is
  gone; ``reopen_every_second`` brings a lost device back.

The microphone (``voiceterm.audio.microphone``) and the speaker
(``voiceterm.audio.speaker``) build on this. sounddevice is imported lazily (it loads
PortAudio and enumerates devices on import).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar, Literal

from voiceterm.errors import AudioDeviceError

log = logging.getLogger(__name__)

DeviceKind = Literal["input", "output"]

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


def start_stream(
    make: Callable[[], Any], kind: DeviceKind, name: str, *, alsa_periods: int | None = None
) -> Any:
    """Make a stream with ``make`` and start it, as every stream here is opened.

    What PortAudio prints to fd 2 meanwhile is hidden, the threads the open starts get
    real-time priority where allowed, and with ``alsa_periods`` the ALSA host API may
    split the buffer into up to that many periods.

    Raises:
        AudioDeviceError: PortAudio would not open or start it (busy, unavailable,
            settings refused), in a sentence naming the ``kind`` of device and its ``name``.
    """
    sd = import_sounddevice()
    periods: contextlib.AbstractContextManager[None] = (
        alsa_periods_at_most(sd, alsa_periods)
        if alsa_periods is not None
        else contextlib.nullcontext()
    )
    try:
        with native_stderr_silenced(), realtime_threads_created(), periods:
            stream = make()
            stream.start()
    except (sd.PortAudioError, ValueError) as exc:
        raise open_stream_error(exc, kind, name) from exc
    return stream


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


async def reopen_every_second(
    open_device: Callable[[], None], closed: Callable[[], bool], what: str
) -> bool:
    """Try ``open_device`` (in a worker thread) once a second until it works.

    A lost device usually comes back (replugged, released by another program, the
    sound server restarted), so the microphone and the speaker keep trying rather
    than give up. Each ``AudioDeviceError`` on the way is logged at debug level.

    Returns:
        True once the device is open again; False when ``closed()`` ended the wait.
    """
    while not closed():
        await asyncio.sleep(1.0)
        try:
            await asyncio.to_thread(open_device)
        except AudioDeviceError as exc:
            log.debug("%s still unavailable: %s", what, exc.message)
            continue
        return True
    return False


class ReopeningDevice:
    """What the microphone and the speaker share: a device lost mid-session is
    reported, closed and reopened every second until it works again.

    A subclass names its ``kind`` and implements ``_close_stream`` and ``_reopen``.
    """

    kind: ClassVar[str] = "device"
    device_name: str
    on_error: Callable[[AudioDeviceError], None] | None
    """Called on the loop with the error when the device stops mid-session."""
    on_restored: Callable[[], None] | None
    """Called on the loop when the device works again."""
    _closed: bool

    def _close_stream(self) -> None:
        raise NotImplementedError

    def _reopen(self) -> None:
        raise NotImplementedError

    def _lost(self, stopped: str) -> AudioDeviceError:
        """The error that says this device ``stopped`` ("stopped playing")."""
        return AudioDeviceError(
            f"The {self.kind} {self.device_name!r} {stopped}.",
            hint="It may have been unplugged or taken by another program; "
            "voiceterm tries to reopen it every second.",
        )

    async def _reconnect(self, error: AudioDeviceError) -> None:
        """Report ``error``, close the stream, and reopen it every second until it works
        (``on_restored``) or the device is closed."""
        log.warning("%s", error)
        if self.on_error is not None:
            self.on_error(error)
        await asyncio.to_thread(self._close_stream)
        if await reopen_every_second(self._reopen, lambda: self._closed, self.kind):
            log.warning("%s %r reopened", self.kind, self.device_name)
            if self.on_restored is not None:
                self.on_restored()
