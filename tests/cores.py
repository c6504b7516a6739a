"""Test helpers for sharing the CPU: a watched CoreShare and a machine of known load."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from voiceterm.engines.cores import CoreShare
from voiceterm.engines.freecores import CpuTimes, FreeCores

TICKS = 50  # clock ticks of one core between two readings (0.5 s at USER_HZ 100)


class WatchedCores(CoreShare):
    def __init__(self, free_cores: FreeCores | None = None) -> None:
        super().__init__(free_cores or machine())
        self.seen: list[str] = []

    @contextlib.contextmanager
    def computing(self, engine: str) -> Iterator[None]:
        with super().computing(engine):
            self.seen.append(engine)
            yield


class ScriptedCpu:
    """Readings of ``/proc`` on a machine whose load is set by the test.

    Each reading is one window later: ``others`` and ``ours`` cores' worth of CPU
    time went to other programs and to this process meanwhile.
    """

    def __init__(self, cores: int = 2, *, others: float = 0.0, ours: float = 0.0) -> None:
        self.cores = cores
        self.others = others
        self.ours = ours
        self.readable = True
        self._now = CpuTimes(total=0, busy=0, ours=0, cores=cores)

    def __call__(self) -> CpuTimes | None:
        if not self.readable:
            return None
        now = self._now
        ours = round(self.ours * TICKS)
        busy = min(self.cores * TICKS, round(self.others * TICKS) + ours)
        self._now = CpuTimes(
            total=now.total + self.cores * TICKS,
            busy=now.busy + busy,
            ours=now.ours + ours,
            cores=self.cores,
        )
        return self._now


def machine(cores: int = 2, *, others: float = 0.0) -> FreeCores:
    """What ``cores`` cores leave free while other programs take ``others`` cores' worth."""
    free = FreeCores(ScriptedCpu(cores, others=others), cores=cores, watch=False)
    free.sample()
    free.sample()
    return free
