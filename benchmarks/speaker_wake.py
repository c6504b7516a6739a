"""What waking the sleeping speaker costs, on each sound server the rig can run.

The speaker stops its stream after 3 s with nothing to play (``Player``'s
``sleep_after_s``) and starts it again when an answer may come. A stream started
on a sink the server suspended (a desktop does after 5 s) takes its first buffer at
once and only then waits for the sink to run. This prints, per rig profile, the
time from ``wake()`` to the stream flowing (the first callback at the device's
pace: from then on queued sound plays), in two cases:

* ``asleep``: the player's stream stopped, its sink still up (woken 4 s after the
  last sound);
* ``suspended``: also the sink suspended by the server (woken 10 s after it); on
  the lab profile the keep-alive loopbacks never let a sink suspend.

    .venv/bin/python scripts/bench_speaker_wake.py --wakes 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.rig import RigControl
from benchmarks.stats import percentile
from voiceterm.audio.speaker import Player

CASES = (("asleep", 4.0), ("suspended", 10.0))


def pct(values: list[float], q: float, scale: float = 1.0) -> float:
    """The one percentile (``benchmarks.stats``), scaled; nan for none."""
    return scale * percentile(values, q)


async def wake_times(wakes: int, quiet_s: float) -> list[float]:
    """Seconds from ``wake()`` to a flowing stream, ``wakes`` times after ``quiet_s``."""
    player = Player(device="pulse", block_ms=5, sleep_after_s=3.0)
    player.start()
    times: list[float] = []
    try:
        for _ in range(wakes):
            await asyncio.sleep(quiet_s)
            assert player.asleep, "the player did not go to sleep"
            woken = time.monotonic()
            player.wake()
            while not player._stream_clock.flowing:
                if time.monotonic() - woken > 10:
                    raise RuntimeError("the stream never flowed")
                await asyncio.sleep(0.002)
            times.append(time.monotonic() - woken)
    finally:
        player.close()
    return times


def reinitialize_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profiles", nargs="+", default=["lab", "pulse-desktop", "pipewire"])
    parser.add_argument("--wakes", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vt-bench-wake-"))
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rows: list[tuple[str, str, list[float]]] = []
    try:
        for profile in args.profiles:
            rig = RigControl(folder / profile)
            try:
                env = rig.start(profile=profile)
                os.environ.update(env)
                reinitialize_portaudio()  # PortAudio lists "pulse" once a server answers
                for case, quiet_s in CASES:
                    rows.append((profile, case, asyncio.run(wake_times(args.wakes, quiet_s))))
                    print(f"{profile} {case}: done", flush=True)
            finally:
                rig.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nbench_speaker_wake: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, ", end="")
    print(f"{args.wakes} wakes per case, loadavg {load_before} -> {load_after}")
    print(f"{'profile':14s} {'case':10s} {'p50 ms':>7s} {'p95 ms':>7s} {'max ms':>7s}")
    for profile, case, times in rows:
        print(
            f"{profile:14s} {case:10s} {pct(times, 50, 1000):7.0f} "
            f"{pct(times, 95, 1000):7.0f} {1000 * max(times):7.0f}"
        )


if __name__ == "__main__":
    main()
