"""What the sound devices add to every answer: the app's microphone-to-speaker round trip.

A click is played into the rig's microphone sink. A child process, built like the
app's audio path (``MicrophoneSource`` -> frames -> ``Player``), answers the
first loud frame with a tone; the tone is heard on the speaker's monitor. Click
to tone is what capture and playback cost an answer on top of its computing:
block waits, PortAudio's and PulseAudio's buffers. Barge-in pays the same path.

Settings (capture block and latency, playback block and latency) run side by
side: each round takes every setting in turn, each with a fresh child. Also
reported: the child's CPU use while it listens (the devices' idle cost).

Usage: .venv/bin/python scripts/bench_round_trip.py [--clicks 20] [--rounds 2]
           [--settings 20,low,20,high 10,low,5,high ...]
Needs pulseaudio and pulseaudio-utils (scripts/setup.sh --dev).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.rig import RIG_RATE, RigControl, RigIO
from benchmarks.stats import percentile

DEFAULT_SETTINGS = ("20,low,20,high", "10,low,5,high")
LOUD = 3000  # a frame louder than this (int16 peak) is the click


def latency_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


@dataclass
class Setting:
    capture_block_ms: int
    capture_latency: float | str
    playback_block_ms: int
    playback_latency: float | str
    round_trips_ms: list[float] = field(default_factory=list)
    cpu_percent: list[float] = field(default_factory=list)
    granted: str = ""

    @classmethod
    def parse(cls, text: str) -> Setting:
        capture_block, capture_latency, playback_block, playback_latency = text.split(",")
        return cls(
            int(capture_block),
            latency_value(capture_latency),
            int(playback_block),
            latency_value(playback_latency),
        )

    @property
    def label(self) -> str:
        return (
            f"capture {self.capture_block_ms} ms/{self.capture_latency}, "
            f"playback {self.playback_block_ms} ms/{self.playback_latency}"
        )

    def args(self) -> list[str]:
        return [
            str(self.capture_block_ms),
            str(self.capture_latency),
            str(self.playback_block_ms),
            str(self.playback_latency),
        ]


# --- the child: the app's audio path, answering clicks -------------------------------


async def answer_clicks(setting: Setting) -> None:
    from voiceterm.audio.frames import PlaybackTag
    from voiceterm.audio.microphone import MicrophoneSource
    from voiceterm.audio.speaker import Player

    mic = MicrophoneSource(block_ms=setting.capture_block_ms, latency=setting.capture_latency)
    player = Player(block_ms=setting.playback_block_ms, latency=setting.playback_latency)
    player.start(asyncio.get_running_loop())
    mic.start()
    stream = getattr(mic, "_stream", None)
    capture_latency = float(stream.latency) if stream is not None else float("nan")
    print(f"ready {1000 * capture_latency:.0f} {1000 * player.output_latency:.0f}", flush=True)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)).astype(np.int16)
    answered = 0.0
    turn = 0
    try:
        async for frame in mic.frames():
            if int(np.abs(frame.samples).max()) > LOUD and time.monotonic() - answered > 0.3:
                answered = time.monotonic()
                turn += 1
                player.enqueue(tone, 16000, PlaybackTag(turn_id=turn))
    finally:
        mic.close()
        player.close()


def cpu_seconds(pid: int) -> float:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


# --- the parent: clicks in, tones out ------------------------------------------------


def measure(setting: Setting, env: dict[str, str], clicks: int, pick: random.Random) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.round_trip", "--child", *setting.args()],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise RuntimeError(f"the answering process did not start ({ready})")
        setting.granted = f"PortAudio granted capture {ready[1]} ms, playback {ready[2]} ms"
        click = np.zeros(RIG_RATE // 10, np.int16)
        click[: RIG_RATE // 300] = 20000
        with RigIO(env, sink="vt_mic", source="vt_speaker.monitor") as io:
            time.sleep(0.5)
            cpu_before, t_before = cpu_seconds(child.pid), time.monotonic()
            for _ in range(clicks):
                _, t_click = io.play_and_wait(click, RIG_RATE)
                heard = io.wait_for_sound(t_click + 0.001, 2.0)
                if heard is not None:
                    setting.round_trips_ms.append(1000 * (heard - t_click))
                time.sleep(0.25 + 0.1 * pick.random())  # off the blocks' beat
            elapsed = time.monotonic() - t_before
            setting.cpu_percent.append(100 * (cpu_seconds(child.pid) - cpu_before) / elapsed)
    finally:
        child.terminate()
        child.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=20, help="clicks per setting and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--settings",
        nargs="+",
        default=list(DEFAULT_SETTINGS),
        metavar="CAPTURE_MS,LATENCY,PLAYBACK_MS,LATENCY",
        help="latency: seconds, low or high (default: %(default)s)",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(answer_clicks(Setting.parse(",".join(args.child))))
        return 0
    settings = [Setting.parse(text) for text in args.settings]
    pick = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="vt-rig-") as rig_dir:
        rig = RigControl(Path(rig_dir))
        env = rig.start()
        try:
            for round_index in range(args.rounds):
                for setting in settings:
                    before = len(setting.round_trips_ms)
                    measure(setting, env, args.clicks, pick)
                    got = setting.round_trips_ms[before:]
                    print(
                        f"round {round_index + 1}: {setting.label}: "
                        f"p50 {percentile(got, 50):.0f} ms over {len(got)} clicks",
                        flush=True,
                    )
        finally:
            rig.stop()
    print(f"\n# Microphone -> speaker round trip on the rig, {args.rounds} rounds side by side")
    print("setting                                          | clicks |  p50 |  p95 | CPU (idle)")
    for setting in settings:
        values = setting.round_trips_ms
        print(
            f"{setting.label:48s} | {len(values):6d} | {percentile(values, 50):4.0f} "
            f"| {percentile(values, 95):4.0f} | {np.mean(setting.cpu_percent):4.1f}% of a core"
        )
        print(f"    {setting.granted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
