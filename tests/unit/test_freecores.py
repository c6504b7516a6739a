"""FreeCores: the engines run one thread per core that other programs leave free."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.cores import ScriptedCpu, machine
from voiceterm.engines.cores import CoreShare
from voiceterm.engines.freecores import (
    FreeCores,
    loading_openmp,
    parse_cpu_times,
    read_cpu_times,
)

PROC_STAT = """cpu  36784 0 4167 10817 312 0 89 138 0 0
cpu0 17390 0 1737 6918 15 0 26 68 0 0
cpu1 19394 0 2430 3899 297 0 62 69 0 0
intr 1 2 3
"""
# A command name with a space and a parenthesis: fields count from the last ")".
SELF_STAT = "6505 (my (odd) name) R 6500 6500 3613 0 -1 4194304 97 0 0 0 120 30 0 0 20 0 1 0"


def test_a_reading_counts_busy_time_steal_included_and_this_process_time() -> None:
    reading = parse_cpu_times(PROC_STAT, SELF_STAT)
    assert reading is not None
    assert reading.cores == 2
    assert reading.total == 36784 + 4167 + 10817 + 312 + 89 + 138
    assert reading.busy == reading.total - 10817 - 312  # idle and I/O wait are free
    assert reading.ours == 150  # utime + stime


def test_with_one_core_taken_by_another_program_the_engines_use_one_thread() -> None:
    cores = CoreShare(machine(2, others=1.0))
    assert cores.threads(2) == 1
    assert cores.threads(4) == 1


def test_an_idle_machine_leaves_every_core() -> None:
    cores = CoreShare(machine(2, others=0.0))
    assert cores.threads(2) == 2
    assert cores.threads(1) == 1  # never more than wanted


def test_voiceterms_own_busy_threads_are_not_another_program() -> None:
    cpu = ScriptedCpu(2, others=0.0, ours=2.0)  # both engines' threads on both cores
    free = FreeCores(cpu, cores=2, watch=False)
    free.sample()
    assert free.sample() == 2


def test_a_program_that_wins_a_core_from_our_threads_still_counts() -> None:
    # Three busy threads on two cores: the other program gets two thirds of one.
    cpu = ScriptedCpu(2, others=0.67, ours=1.33)
    free = FreeCores(cpu, cores=2, watch=False)
    free.sample()
    assert free.sample() == 1


def test_a_light_load_leaves_both_cores_and_half_a_core_takes_one() -> None:
    assert machine(2, others=0.2).count() == 2
    assert machine(2, others=0.5).count() == 1


def test_both_cores_taken_still_leaves_one_thread() -> None:
    assert machine(2, others=2.0).count() == 1
    assert machine(4, others=2.0).count() == 2


def test_a_core_is_taken_at_once_and_given_back_after_two_quiet_readings() -> None:
    cpu = ScriptedCpu(2)
    free = FreeCores(cpu, cores=2, watch=False)
    free.sample()
    assert free.sample() == 2
    cpu.others = 1.0  # a build starts
    assert free.sample() == 1
    cpu.others = 0.0  # it ends
    assert free.sample() == 1  # the window before still had it
    assert free.sample() == 2


def test_without_proc_every_core_counts_as_free() -> None:
    cpu = ScriptedCpu(2, others=1.0)
    cpu.readable = False
    free = FreeCores(cpu, cores=2, watch=False)
    free.sample()
    assert free.sample() == 2


def test_the_watcher_reads_again_in_the_background() -> None:
    cpu = ScriptedCpu(2)
    free = FreeCores(cpu, cores=2, interval_s=0.01)
    try:
        assert free.count() == 2  # nothing known yet: every core
        cpu.others = 1.0
        deadline = time.monotonic() + 5
        while free.count() != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert free.count() == 1
    finally:
        free.close()


def test_this_process_time_is_read_from_proc() -> None:
    before = read_cpu_times()
    if before is None:
        pytest.skip("no /proc here")
    spin_until = time.process_time() + 0.3
    while time.process_time() < spin_until:
        pass
    after = read_cpu_times()
    assert after is not None
    assert after.ours - before.ours >= 20  # 0.3 s of our own CPU time, in 10 ms ticks


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_a_real_busy_program_takes_a_core() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        free = FreeCores(watch=False)
        time.sleep(0.3)  # the program is running
        free.sample()
        time.sleep(0.6)
        assert free.sample() <= free.cores - 1
    finally:
        busy.kill()
        busy.wait()


def test_openmp_is_told_to_wait_passively_only_while_a_library_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with loading_openmp(passive=True):
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in os.environ  # llama.cpp, loaded later, keeps its spin
    with loading_openmp(passive=False):
        assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's own choice stays
    with loading_openmp(passive=True):
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
