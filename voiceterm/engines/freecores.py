"""How many cores other programs leave free, re-checked as their load changes.

The engines' threads meet at a barrier after every layer (llama.cpp, CTranslate2,
ONNX Runtime). When another program holds a core, the thread that lost it stops
every layer: with ``python3 -c "while True: pass"`` beside voiceterm on 2 cores,
voice-to-voice went from 352 ms to 3.4-6.1 s. One thread per core that is really
free keeps every barrier short; so the engines ask :class:`FreeCores` before each
step how many threads to run.

What counts is the CPU time *other* programs take: the machine's busy time
(``/proc/stat``) minus voiceterm's own (``/proc/self/stat``, all its threads),
over the last ~0.5 s. Measuring busy time alone would count voiceterm's own
engines as "another program" and shrink their threads after every turn. Steal
time (a virtual machine's host running something else) counts as taken too.

A core counts as taken once others use more than :data:`TAKEN_ABOVE` of one:
a thread that loses its core a third of the time makes every barrier wait a
third of the time, and one thread without waits is then as fast as two with.

A daemon thread reads the two files every :data:`INTERVAL_S` (a few microseconds
of work), from the first question on; never the audio thread, never a busy loop.
Where ``/proc`` cannot be read (not Linux), every core counts as free.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INTERVAL_S = 0.5
"""How often the load is read again."""
TAKEN_ABOVE = 0.35
"""Others' load (in cores) above which one more core counts as theirs."""


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """One reading of the machine's and this process's CPU time, in clock ticks.

    Attributes:
        total: All cores, every state.
        busy: All cores, neither idle nor waiting for I/O (steal included).
        ours: This process, user and system time of all its threads.
        cores: Cores counted in ``total``.
    """

    total: int
    busy: int
    ours: int
    cores: int


def read_cpu_times(proc: Path = Path("/proc")) -> CpuTimes | None:
    """Read ``/proc/stat`` and ``/proc/self/stat`` (``None`` where they cannot be read)."""
    try:
        stat = (proc / "stat").read_text(encoding="ascii")
        own = (proc / "self" / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return parse_cpu_times(stat, own)


def parse_cpu_times(stat: str, own: str) -> CpuTimes | None:
    """A :class:`CpuTimes` from the text of ``/proc/stat`` and ``/proc/self/stat``."""
    lines = stat.splitlines()
    if not lines or not lines[0].startswith("cpu "):
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user/nice)
    ticks = [int(field) for field in lines[0].split()[1:9]]
    total = sum(ticks)
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    cores = sum(1 for line in lines[1:] if line.startswith("cpu") and line[3:4].isdigit())
    # The command name may hold spaces and parentheses: fields count from the last ")".
    after_name = own.rsplit(")", 1)[-1].split()
    try:
        ours = int(after_name[11]) + int(after_name[12])  # utime, stime
    except (IndexError, ValueError):
        return None
    return CpuTimes(total=total, busy=total - idle, ours=ours, cores=max(1, cores))


def others_load(before: CpuTimes, after: CpuTimes) -> float:
    """Cores' worth of CPU time that other programs used between two readings."""
    elapsed = (after.total - before.total) / after.cores  # ticks of one core
    if elapsed <= 0:
        return 0.0
    others = (after.busy - before.busy) - (after.ours - before.ours)
    return max(0.0, others / elapsed)


def cores_taken(load: float) -> int:
    """How many cores a load of ``load`` cores takes (see :data:`TAKEN_ABOVE`)."""
    return max(0, math.floor(load + 1 - TAKEN_ABOVE))


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class FreeCores:
    """How many cores are free for voiceterm now (thread-safe).

    Args:
        read: Takes one reading; ``None`` when the load cannot be known.
        cores: Cores voiceterm may use; default: those it may run on.
        interval_s: Seconds between readings.
        watch: Read in a background thread from the first :meth:`count` on; off,
            only :meth:`sample` reads (tests drive it by hand).
    """

    def __init__(
        self,
        read: Callable[[], CpuTimes | None] = read_cpu_times,
        *,
        cores: int | None = None,
        interval_s: float = INTERVAL_S,
        watch: bool = True,
    ) -> None:
        self.cores = cores or usable_cores()
        self.interval_s = interval_s
        self._read = read
        self._watch = watch
        self._lock = threading.Lock()
        self._last: CpuTimes | None = None
        self._loads: tuple[float, float] = (0.0, 0.0)  # the last two windows
        self._free = self.cores
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def count(self) -> int:
        """Cores not taken by other programs, at least 1 (starts the watcher)."""
        if self._watch and self._watcher is None:
            self._start_watching()
        with self._lock:
            return self._free

    def threads(self, wanted: int) -> int:
        """``wanted`` threads, or fewer when fewer cores are free (at least 1)."""
        return max(1, min(wanted, self.count()))

    @property
    def others_load(self) -> float:
        """Others' load over the last two windows (cores' worth; the larger one)."""
        with self._lock:
            return max(self._loads)

    def sample(self) -> int:
        """Take one reading now; return the free cores it leaves.

        The larger load of the last two windows counts, so a core taken shows at
        the next reading and is given back only after two quiet ones (no
        flapping on a program that pauses for a moment).
        """
        reading = self._read()
        with self._lock:
            previous, self._last = self._last, reading
            if reading is None or previous is None:
                return self._free
            self._loads = (self._loads[1], others_load(previous, reading))
            taken = cores_taken(max(self._loads))
            self._free = max(1, min(self.cores, reading.cores - taken))
            return self._free

    def close(self) -> None:
        """Stop the watcher (it also stops by itself once this object is gone)."""
        self._stop.set()

    def _start_watching(self) -> None:
        with self._lock:
            if self._watcher is not None:
                return
            self._last = self._read()  # a window needs two readings
            watcher = threading.Thread(
                target=_watch,
                args=(weakref.ref(self), self._stop, self.interval_s),
                name="voiceterm-free-cores",
                daemon=True,
            )
            self._watcher = watcher
        watcher.start()


def _watch(owner: weakref.ref[Any], stop: threading.Event, interval_s: float) -> None:
    # Holds the FreeCores only while sampling, so dropping it ends the thread.
    while not stop.wait(interval_s):
        free_cores = owner()
        if free_cores is None:
            return
        free_cores.sample()
        del free_cores


# --- waiting without spinning ----------------------------------------------------------


# GNU OpenMP reads its settings from the environment once, when a copy of it is
# loaded; the environment is the process's, so loads that set it take turns.
_OPENMP_LOAD = threading.Lock()


@contextlib.contextmanager
def loading_openmp(*, passive: bool) -> Iterator[None]:
    """Around the import of a library that loads GNU OpenMP (``libgomp``).

    ``passive``: its idle threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``)
    instead of spinning first, on a core another program may want. CTranslate2
    (its own libgomp) loses nothing by it. llama.cpp does: its threads meet at an
    OpenMP barrier after every operation, and with sleeping waits two threads
    sampled 12 tokens in 311-353 ms against 210-237 ms; so it keeps libgomp's
    default, a short spin, and with a core taken it runs one thread: no barrier,
    nothing that spins. A value the user set is kept either way.
    """
    with _OPENMP_LOAD:
        set_here = passive and "OMP_WAIT_POLICY" not in os.environ
        if set_here:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            yield
        finally:
            if set_here:
                os.environ.pop("OMP_WAIT_POLICY", None)


def no_spinning(options: Any) -> Any:
    """Turn off ONNX Runtime's spin-waiting in ``options`` (a ``SessionOptions``); returns it.

    Idle pool threads then sleep at once instead of spinning, which would take a
    core from another program, or from the engine that runs beside.
    """
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options
