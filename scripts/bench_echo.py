"""Echo handling through the PulseAudio rig: how much echo each method removes.

The rig loops the speaker sink back into the microphone sink at a set gain (a
laptop's speaker heard by its own microphone, with ~30 ms of acoustic delay).
For each gain this script records, through real PortAudio devices:

  A. the user alone: near-end speech played into the microphone sink;
  B. the assistant alone: far-end speech played by ``Player`` (its echo reaches
     the microphone), with the ``Player``'s render tap as the reference;
  C. double talk: the assistant speaks and, 3 s in, the user talks over it.

Then it runs every echo handler over the same recordings, feeding render and
capture in time order exactly as ``EchoCancelledSource`` does live, and reports:

- ERLE (echo return loss enhancement, dB) in B while the assistant speaks, after
  a 1.5 s convergence time (and during it);
- self-interruptions in B: VadSegmenter (the app's own VAD, default settings)
  starting speech that lasts >= 150 ms (the listener's barge-in rule);
- the barge-in in C: is the user's speech detected (>= 150 ms) within the user's
  turn, how many ms after its onset, and the user's level kept (dB vs. A);
- CPU per 10 ms frame.

Usage: .venv/bin/python scripts/bench_echo.py [--gains -10 -6 0] [--rounds 1]
Needs pulseaudio, pulseaudio-utils and espeak-ng (scripts/setup.sh --dev).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiceterm.audio.echo import (  # noqa: E402
    EchoCanceller,
    HalfDuplexGate,
    LiveKitEchoCanceller,
    NoEchoHandling,
    ResidualEchoGate,
    WebRtcEchoCanceller,
)
from voiceterm.audio.frames import AudioFrame, PlaybackTag  # noqa: E402
from voiceterm.audio.resample import StreamResampler  # noqa: E402
from voiceterm.audio.wavio import read_wav  # noqa: E402

Int16Array = npt.NDArray[np.int16]

FAR_TEXT = (
    "Sure. The weather today is mild, with a light breeze from the west. "
    "Later this evening there may be a few showers, so take an umbrella if you go out."
)
NEAR_TEXT = "Stop, wait a moment please."
BARGE_IN_AFTER_S = 3.0
MIN_SPEECH_S = 0.15  # the listener's default barge-in rule
CONVERGE_S = 1.5


@dataclass
class Recording:
    """Captured 16 kHz frames and the render blocks (16 kHz) with their times."""

    frames: list[AudioFrame] = field(default_factory=list)
    render: list[tuple[float, Int16Array]] = field(default_factory=list)
    t_far: float = 0.0  # when the assistant's first sample was heard
    t_far_end: float = 0.0
    t_near: float = 0.0  # when paplay of the user's speech started


def espeak(text: str, path: Path, voice: str) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return path


def start_rig(rig_dir: Path, gain_db: float) -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "audio_rig.sh"), "start", "--echo-gain", f"{gain_db:g}"],
        env={**os.environ, "VT_RIG_DIR": str(rig_dir)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    os.environ.update(env)
    return env


def stop_rig(rig_dir: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "audio_rig.sh"), "stop"],
        env={**os.environ, "VT_RIG_DIR": str(rig_dir)},
        capture_output=True,
    )


async def record(far: Path, near: Path) -> tuple[Recording, Recording, Recording]:
    """Phases A, B and C through the live devices."""
    from voiceterm.audio.devices import MicrophoneSource
    from voiceterm.audio.player import Player

    far_audio, far_rate = read_wav(far)
    player = Player(device="pulse", block_ms=10)
    player.start()
    tap = player.render_tap()
    resampler = StreamResampler(player.sample_rate, 16000)
    mic = MicrophoneSource(device="pulse", block_ms=20)
    mic.start()
    current = Recording()

    async def capture() -> None:
        async for frame in mic.frames():
            current.frames.append(frame)

    async def drain_tap() -> None:
        while True:
            while tap:
                t, block = tap.popleft()
                current.render.append((t, np.asarray(resampler.process(block), dtype=np.int16)))
            await asyncio.sleep(0.02)

    started = asyncio.Event()
    idle = asyncio.Event()

    def on_started(tag: PlaybackTag, t: float) -> None:
        current.t_far = t
        started.set()

    def on_idle(t: float) -> None:
        current.t_far_end = t
        idle.set()

    player.on_started = on_started
    player.on_idle = on_idle
    tasks = [asyncio.create_task(capture()), asyncio.create_task(drain_tap())]
    await asyncio.sleep(2.0)  # streams flowing, the loopback settled

    recordings = []
    for phase in "ABC":
        current = Recording()
        started.clear()
        idle.clear()
        await asyncio.sleep(0.5)
        if phase == "A":
            current.t_near = time.monotonic()
            await asyncio.to_thread(
                subprocess.run, ["paplay", "--device=vt_mic", str(near)], check=True
            )
            await asyncio.sleep(1.0)
        else:
            player.enqueue(far_audio, far_rate, PlaybackTag(turn_id=ord(phase)))
            await started.wait()
            if phase == "C":
                await asyncio.sleep(BARGE_IN_AFTER_S)
                current.t_near = time.monotonic()
                await asyncio.to_thread(
                    subprocess.run, ["paplay", "--device=vt_mic", str(near)], check=True
                )
            await idle.wait()
            await asyncio.sleep(1.0)
        recordings.append(current)
    for task in tasks:
        task.cancel()
    mic.close()
    player.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    a, b, c = recordings
    return a, b, c


@dataclass
class Result:
    output: Int16Array
    captured: Int16Array
    times: npt.NDArray[np.float64]  # t_start of each 20 ms frame
    cost_us: float


def run_canceller(make: Callable[[], EchoCanceller], rec: Recording) -> Result:
    """Feed render and capture in time order, as EchoCancelledSource does."""
    canceller = make()
    render = sorted(rec.render, key=lambda item: item[0])
    index = 0
    outputs: list[Int16Array] = []
    spent = 0.0
    for frame in rec.frames:
        start = time.perf_counter()
        while index < len(render) and render[index][0] <= frame.t_end:
            canceller.process_render(render[index][1])
            index += 1
        outputs.append(canceller.process_capture(frame.samples))
        spent += time.perf_counter() - start
    captured = np.concatenate([f.samples for f in rec.frames])
    times = np.array([f.t_start for f in rec.frames])
    return Result(np.concatenate(outputs), captured, times, spent / (len(rec.frames) * 2) * 1e6)


def energy(audio: Int16Array) -> float:
    return float(np.mean(audio.astype(np.float64) ** 2)) + 1e-9


def window(result: Result, t0: float, t1: float) -> slice:
    frames = np.flatnonzero((result.times >= t0) & (result.times < t1))
    if not frames.size:
        return slice(0, 0)
    return slice(int(frames[0]) * 320, (int(frames[-1]) + 1) * 320)


def frame_levels_dbfs(audio: Int16Array) -> npt.NDArray[np.float64]:
    """Level of each 20 ms frame in dBFS (digital silence: -100)."""
    frames = audio[: len(audio) // 320 * 320].astype(np.float64).reshape(-1, 320)
    power = np.mean(frames**2, axis=1) / 32768.0**2
    levels: npt.NDArray[np.float64] = 10 * np.log10(np.maximum(power, 1e-10))
    return levels


def interruptions(output: Int16Array, times: npt.NDArray[np.float64]) -> list[float]:
    """Onsets of speech the listener would act on (>= MIN_SPEECH_S before it ends)."""
    from voiceterm.engines.vad import SpeechEnded, SpeechStarted, VadSegmenter

    vad = VadSegmenter()
    onset: float | None = None
    fired: list[float] = []
    for i, t in enumerate(times):
        for event in vad.feed(output[i * 320 : (i + 1) * 320], float(t)):
            if isinstance(event, SpeechStarted):
                onset = event.onset_time
            elif isinstance(event, SpeechEnded):
                onset = None
        if onset is not None and t + 0.02 - onset >= MIN_SPEECH_S:
            fired.append(onset)
            onset = None
    return fired


def report(gain: float, a: Recording, b: Recording, c: Recording) -> None:
    print(f"\n== echo loopback at {gain:+g} dB ==")
    near_speech = np.flatnonzero(np.abs(np.concatenate([f.samples for f in a.frames])) > 1000)
    a_times = np.array([f.t_start for f in a.frames])
    near_onset = a_times[near_speech[0] // 320] - a.t_near if near_speech.size else 0.3
    near_len = (near_speech[-1] - near_speech[0]) / 16000 if near_speech.size else 1.5
    near_level = 10 * np.log10(
        energy(np.concatenate([f.samples for f in a.frames])[near_speech[0] : near_speech[-1]])
    )
    b_in = np.concatenate([f.samples for f in b.frames])
    full_scale = 10 * np.log10(32768.0**2)
    echo_level = 10 * np.log10(energy(b_in)) - full_scale
    print(
        f"user alone {near_level - full_scale:.1f} dBFS, "
        f"echo in the microphone {echo_level:.1f} dBFS (mean power)"
    )
    handlers: list[tuple[str, Callable[[], EchoCanceller]]] = [
        ("off", NoEchoHandling),
        ("livekit AEC3", LiveKitEchoCanceller),
        ("aec-audio-processing", WebRtcEchoCanceller),
        ("livekit + gate", lambda: ResidualEchoGate(LiveKitEchoCanceller())),
        ("aec-a-p + gate", lambda: ResidualEchoGate(WebRtcEchoCanceller())),
        ("half-duplex gate", HalfDuplexGate),
    ]
    header = (
        f"{'handler':<22}{'ERLE dB':>9}{'(1st 1.5s)':>11}{'resid p95':>10}{'self-int':>9}"
        f"{'barge-in':>10}{'after ms':>9}{'user dB':>9}{'us/10ms':>9}"
    )
    print(header)
    for name, make in handlers:
        try:
            rb = run_canceller(make, b)
            rc = run_canceller(make, c)
        except Exception as exc:  # a missing library: say so and go on
            print(f"{name:<22}unavailable: {exc}")
            continue
        steady = window(rb, b.t_far + CONVERGE_S, b.t_far_end)
        early = window(rb, b.t_far, b.t_far + CONVERGE_S)
        erle = 10 * np.log10(energy(rb.captured[steady]) / energy(rb.output[steady]))
        erle_early = 10 * np.log10(energy(rb.captured[early]) / energy(rb.output[early]))
        self_int = len(interruptions(rb.output, rb.times))
        t_user = c.t_near + near_onset
        caught = [
            t for t in interruptions(rc.output, rc.times) if t_user - 0.2 <= t <= t_user + near_len
        ]
        before = [t for t in interruptions(rc.output, rc.times) if t < t_user - 0.2]
        levels = frame_levels_dbfs(rb.output[steady])
        residual_p95 = float(np.percentile(levels, 95)) if levels.size else -100.0
        user = window(rc, t_user, t_user + near_len)
        user_db = 10 * np.log10(energy(rc.output[user])) - near_level
        after = f"{(caught[0] + MIN_SPEECH_S - t_user) * 1000:.0f}" if caught else "-"
        interrupted = self_int + len(before)
        print(
            f"{name:<22}{erle:>9.1f}{erle_early:>11.1f}{residual_p95:>10.1f}{interrupted:>9}"
            f"{'yes' if caught else 'NO':>10}{after:>9}{user_db:>9.1f}{rb.cost_us:>9.0f}"
        )
    print(
        "self-int: echo-only stretches the VAD would take for >=150 ms of user speech "
        "(self-interruptions); resid p95: 95th percentile of the 20 ms residual echo "
        "level (dBFS) while the assistant speaks; barge-in: user speech over the echo "
        "detected; after ms: "
        "from the user's onset to the listener's decision; user dB: user level kept "
        "(output during the barge-in vs. the user alone, includes the residual echo)."
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gains", type=float, nargs="+", default=[-10.0, -3.0])
    parser.add_argument("--rounds", type=int, default=1, help="recordings per gain")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-echo-"))
    far = espeak(FAR_TEXT, work / "far.wav", "en-us")
    near = espeak(NEAR_TEXT, work / "near.wav", "en+f3")
    for gain in [g for g in args.gains for _ in range(args.rounds)]:
        rig_dir = work / f"rig{gain:g}"
        try:
            start_rig(rig_dir, gain)
            if "sounddevice" in sys.modules:  # PortAudio must see the new server
                sd = sys.modules["sounddevice"]
                sd._terminate()
                sd._initialize()
            a, b, c = await record(far, near)
        finally:
            stop_rig(rig_dir)
        report(gain, a, b, c)


if __name__ == "__main__":
    asyncio.run(main())
