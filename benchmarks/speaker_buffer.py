"""How much speaker buffer the app needs: latency against clicks, side by side.

The speaker's PortAudio callback is Python, so it needs the interpreter lock; a
stage that keeps the lock in one long C call (tens of ms) makes it late, and
once the queued sound runs out the speaker clicks (an underflow). A bigger
buffer (``audio.output_buffer_ms``) or bigger blocks (``audio.output_block_ms``)
tolerate longer stalls and answer later.

For each setting, a real ``Player`` on the PulseAudio rig plays a tone while this
process keeps the lock for stalls of a given length (one regular-expression
match each: pure C, the lock held throughout), with 5 ms breaks between them.
It reports the buffer PortAudio granted and the underflows counted.

Usage: .venv/bin/python scripts/bench_speaker_buffer.py [--seconds 8]
Needs pulseaudio and pulseaudio-utils (scripts/setup.sh --dev).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.rig import RigControl
from voiceterm.audio.frames import PlaybackTag
from voiceterm.audio.speaker import Player

SETTINGS: tuple[tuple[int, float | str], ...] = ((20, "high"), (10, "high"), (10, 0.03))
STALL_SIZES = (16, 17, 18, 19, 20)  # backtracking depths: each one about doubles the stall


def stall(depth: int) -> None:
    """Keep the interpreter lock for one C call: ~2.4 ms at depth 16, doubling per step."""
    re.match(r"(a+)+$", "a" * depth + "b")


def stall_ms(depth: int) -> float:
    started = time.monotonic()
    stall(depth)
    return 1000 * (time.monotonic() - started)


async def underflows_while_stalled(
    block_ms: int, latency: float | str, depths: tuple[int, ...], seconds: float
) -> tuple[int, float]:
    player = Player(block_ms=block_ms, latency=latency)
    player.start(asyncio.get_running_loop())
    try:
        await asyncio.sleep(0.5)
        rate = 22050
        tone = (np.sin(np.arange(int(rate * seconds)) * 0.1) * 8000).astype(np.int16)
        player.enqueue(tone, rate, PlaybackTag(1, 0))
        before = player.underflows
        pick = random.Random(1)
        end = time.monotonic() + seconds - 0.5
        while time.monotonic() < end:
            stall(pick.choice(depths))
            await asyncio.sleep(0.005)
        return player.underflows - before, player.output_latency
    finally:
        player.close()


async def run(seconds: float, settings: tuple[tuple[int, float | str], ...]) -> None:
    sizes = {depth: stall_ms(depth) for depth in STALL_SIZES}
    ranges = [STALL_SIZES[i : i + 3] for i in range(len(STALL_SIZES) - 2)]
    print(f"# Speaker buffer against interpreter stalls, {seconds:g} s of tone each")
    print("stalls (ms)      | " + " | ".join(f"{b} ms blocks, {lat}" for b, lat in settings))
    for depths in ranges:
        label = "/".join(f"{sizes[d]:.0f}" for d in depths)
        cells = []
        for block_ms, latency in settings:
            count, granted = await underflows_while_stalled(block_ms, latency, depths, seconds)
            cells.append(f"buffer {1000 * granted:.0f} ms: {count:3d} underflows")
        print(f"{label:16s} | " + " | ".join(cells), flush=True)


def parse_setting(text: str) -> tuple[int, float | str]:
    """``"5,0.02"`` -> (5, 0.02); ``"10,high"`` -> (10, "high")."""
    block, _, latency = text.partition(",")
    try:
        return int(block), float(latency)
    except ValueError:
        return int(block), latency or "high"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="tone length per trial")
    parser.add_argument(
        "--settings",
        nargs="+",
        metavar="BLOCK_MS,LATENCY",
        help="settings to compare, e.g. 5,high 5,0.02 (default: "
        + " ".join(f"{b},{lat}" for b, lat in SETTINGS)
        + ")",
    )
    args = parser.parse_args()
    settings = tuple(parse_setting(text) for text in args.settings) if args.settings else SETTINGS
    with tempfile.TemporaryDirectory(prefix="vt-rig-") as rig_dir:
        rig = RigControl(Path(rig_dir))
        os.environ.update(rig.start())
        try:
            asyncio.run(run(args.seconds, settings))
        finally:
            rig.run("stop")


if __name__ == "__main__":
    main()
