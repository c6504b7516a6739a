"""Echo handling through the PulseAudio rig: how much echo each method removes.

The rig loops the speaker sink back into the microphone sink at a set gain (a
laptop's speaker heard by its own microphone, with ~30 ms of acoustic delay).
For each gain this script records, through real PortAudio devices:

  A. the user alone: near-end speech played into the microphone sink;
  B. the assistant alone: far-end speech played by ``Player`` (its echo reaches
     the microphone), with the ``Player``'s render tap as the reference;
  C. double talk: the assistant speaks and, 3 s in, the user talks over it.

One canceller instance handles B and then C, as one instance does in the app (B is
its first answer, with a cold AEC; C its second).

Then it runs every echo handler over the same recordings, feeding render and
capture in time order exactly as ``EchoCancelledSource`` does live, and reports:

- ERLE (echo return loss enhancement, dB) in B while the assistant speaks, after
  a 1.5 s convergence time (and during it);
- self-interruptions in B: VadSegmenter (the app's own VAD, default settings)
  starting speech that lasts >= 150 ms (the listener's barge-in rule);
- the barge-in in C: is the user's speech detected (>= 150 ms) within the user's
  turn, how many ms after its onset, and the user's level kept (dB vs. A);
- CPU per 10 ms frame.

Usage: [VT_RIG_PROFILE=lab|pulse-desktop|pipewire] .venv/bin/python scripts/bench_echo.py
       [--gains -10 -6 0] [--rounds 1]
Needs pulseaudio, pulseaudio-utils and espeak-ng (scripts/setup.sh --dev).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks.stats import percentile
from voiceterm.audio.echo import (
    EchoCancelledSource,
    EchoCanceller,
    HalfDuplexGate,
    LiveKitEchoCanceller,
    NoEchoHandling,
    RenderReference,
    ResidualEchoGate,
    WebRtcEchoCanceller,
)
from voiceterm.audio.frames import AudioFrame, PlaybackTag
from voiceterm.audio.wavio import read_wav

ROOT = Path(__file__).resolve().parents[1]

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
class Phase:
    """When one phase ran and what happened in it (monotonic times)."""

    begin: float = 0.0
    end: float = 0.0
    t_far: float = 0.0  # the assistant's first sample heard
    t_far_end: float = 0.0  # ... and its last
    t_near: float = 0.0  # paplay of the user's speech started


@dataclass
class Session:
    """One continuous capture (16 kHz frames) and render tap across all phases."""

    frames: list[AudioFrame] = field(default_factory=list)
    render: list[tuple[float, Int16Array]] = field(default_factory=list)
    render_rate: int = 0
    phases: dict[str, Phase] = field(default_factory=dict)


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


async def record(far: Path, near: Path) -> Session:
    """Phases A, B and C through the live devices, as one continuous session."""
    from voiceterm.audio.microphone import MicrophoneSource
    from voiceterm.audio.speaker import Player

    far_audio, far_rate = read_wav(far)
    player = Player(device="pulse", block_ms=10)
    player.start()
    tap = player.render_tap()
    mic = MicrophoneSource(device="pulse", block_ms=20)
    mic.start()
    session = Session(render_rate=player.sample_rate)
    phase = Phase()

    async def capture() -> None:
        async for frame in mic.frames():
            session.frames.append(frame)

    async def drain_tap() -> None:
        while True:
            while tap:
                session.render.append(tap.popleft())
            await asyncio.sleep(0.02)

    started = asyncio.Event()
    idle = asyncio.Event()

    def on_started(tag: PlaybackTag, t: float) -> None:
        phase.t_far = t
        started.set()

    def on_idle(t: float) -> None:
        phase.t_far_end = t
        idle.set()

    player.on_started = on_started
    player.on_idle = on_idle
    tasks = [asyncio.create_task(capture()), asyncio.create_task(drain_tap())]
    await asyncio.sleep(2.0)  # streams flowing, the loopback settled
    for name in "ABC":
        phase = Phase(begin=time.monotonic())
        session.phases[name] = phase
        started.clear()
        idle.clear()
        await asyncio.sleep(0.5)
        if name == "A":
            phase.t_near = time.monotonic()
            await asyncio.to_thread(
                subprocess.run, ["paplay", "--device=vt_mic", str(near)], check=True
            )
            await asyncio.sleep(1.0)
        else:
            player.enqueue(far_audio, far_rate, PlaybackTag(turn_id=ord(name)))
            await started.wait()
            if name == "C":
                await asyncio.sleep(BARGE_IN_AFTER_S)
                phase.t_near = time.monotonic()
                await asyncio.to_thread(
                    subprocess.run, ["paplay", "--device=vt_mic", str(near)], check=True
                )
            await idle.wait()
            await asyncio.sleep(1.0)
        phase.end = time.monotonic()
    await asyncio.sleep(0.3)  # the last frames
    for task in tasks:
        task.cancel()
    mic.close()
    player.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return session


@dataclass
class Result:
    output: Int16Array
    captured: Int16Array
    times: npt.NDArray[np.float64]  # t_start of each 20 ms frame
    cost_us: float


class RecordedFrames:
    """The recorded microphone frames as an ``AudioSource``."""

    muted = False

    def __init__(self, frames: list[AudioFrame]) -> None:
        self._frames = frames

    def start(self) -> None:
        pass

    async def frames(self) -> AsyncIterator[AudioFrame]:
        for frame in self._frames:
            yield frame

    def close(self) -> None:
        pass


def run_canceller(canceller: EchoCanceller, session: Session, *, follow_echo: bool) -> Result:
    """Feed render and capture through the app's own ``EchoCancelledSource``."""
    source = EchoCancelledSource(
        RecordedFrames(session.frames),
        canceller,
        RenderReference(deque(session.render), session.render_rate),
        follow_echo=follow_echo,
    )

    async def cleaned() -> list[Int16Array]:
        return [frame.samples async for frame in source.frames()]

    start = time.process_time()
    with ThreadPoolExecutor(1) as pool:  # a loop of its own: this runs inside main's
        outputs = pool.submit(asyncio.run, cleaned()).result()
    spent = time.process_time() - start
    captured = np.concatenate([f.samples for f in session.frames])
    times = np.array([f.t_start for f in session.frames])
    cost = spent / (len(session.frames) * 2) * 1e6
    if follow_echo and source.lead_s:
        print(f"  (reference moved {1000 * source.lead_s:.0f} ms ahead of its time stamps)")
    return Result(np.concatenate(outputs), captured, times, cost)


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


def interruptions(result: Result, t0: float, t1: float) -> list[float]:
    """Onsets in [t0, t1) of speech the listener acts on (>= MIN_SPEECH_S long).

    The VAD runs over the whole session, as the app's listener would.
    """
    from voiceterm.engines.vad import SpeechEnded, SpeechStarted, VadSegmenter

    vad = VadSegmenter()
    onset: float | None = None
    fired: list[float] = []
    for i, t in enumerate(result.times):
        for event in vad.feed(result.output[i * 320 : (i + 1) * 320], float(t)):
            if isinstance(event, SpeechStarted):
                onset = event.onset_time
            elif isinstance(event, SpeechEnded):
                onset = None
        if onset is not None and t + 0.02 - onset >= MIN_SPEECH_S:
            fired.append(onset)
            onset = None
    return [t for t in fired if t0 <= t < t1]


@dataclass
class Tally:
    """One handler's results over every session at one gain."""

    answers: int = 0
    self_interruptions: int = 0
    barge_ins: int = 0
    caught: int = 0
    erle: list[float] = field(default_factory=list)
    decision_ms: list[float] = field(default_factory=list)
    user_db: list[float] = field(default_factory=list)
    cost_us: list[float] = field(default_factory=list)


def report(gain: float, session: Session, tallies: dict[tuple[float, str], Tally]) -> None:
    print(f"\n== echo loopback at {gain:+g} dB ==")
    a, b, c = (session.phases[name] for name in "ABC")
    captured = np.concatenate([f.samples for f in session.frames])
    times = np.array([f.t_start for f in session.frames])
    in_a = np.flatnonzero((times >= a.begin) & (times < a.end))
    a_audio = captured[in_a[0] * 320 : (in_a[-1] + 1) * 320]
    near_speech = np.flatnonzero(np.abs(a_audio.astype(np.int32)) > 1000)
    near_onset = times[in_a[0] + near_speech[0] // 320] - a.t_near
    near_len = (near_speech[-1] - near_speech[0]) / 16000
    near_level = 10 * np.log10(energy(a_audio[near_speech[0] : near_speech[-1]]))
    full_scale = 10 * np.log10(32768.0**2)
    in_b = np.flatnonzero((times >= b.t_far) & (times < b.t_far_end))
    echo_level = 10 * np.log10(energy(captured[in_b[0] * 320 : (in_b[-1] + 1) * 320]))
    print(
        f"user alone {near_level - full_scale:.1f} dBFS, "
        f"echo in the microphone {echo_level - full_scale:.1f} dBFS (mean power)"
    )
    # As the app does, each takes the speaker's time stamps as true; the "followed"
    # row finds where the echo really comes first (EchoCancelledSource(follow_echo)).
    handlers: list[tuple[str, Callable[[], EchoCanceller], bool]] = [
        ("off", NoEchoHandling, False),
        ("livekit AEC3", LiveKitEchoCanceller, False),
        ("aec-audio-processing", WebRtcEchoCanceller, False),
        ("livekit + gate", lambda: ResidualEchoGate(LiveKitEchoCanceller()), False),
        ("livekit+gate followed", lambda: ResidualEchoGate(LiveKitEchoCanceller()), True),
        ("aec-a-p + gate", lambda: ResidualEchoGate(WebRtcEchoCanceller()), False),
        ("half-duplex gate", HalfDuplexGate, False),
    ]
    header = (
        f"{'handler':<22}{'ERLE dB':>9}{'(1st 1.5s)':>11}{'resid p95':>10}{'self-int':>9}"
        f"{'barge-in':>10}{'after ms':>9}{'user dB':>9}{'us/10ms':>9}"
    )
    print(header)
    notes: list[str] = []
    for name, make, follow_echo in handlers:
        try:
            # One instance for the whole session, as in the app: answer B meets a
            # cold canceller, answer C a warm one.
            result = run_canceller(make(), session, follow_echo=follow_echo)
        except Exception as exc:  # a missing library: say so and go on
            print(f"{name:<22}unavailable: {exc}")
            continue
        steady = window(result, b.t_far + CONVERGE_S, b.t_far_end)
        early = window(result, b.t_far, b.t_far + CONVERGE_S)
        erle = 10 * np.log10(energy(result.captured[steady]) / energy(result.output[steady]))
        erle_early = 10 * np.log10(energy(result.captured[early]) / energy(result.output[early]))
        t_user = c.t_near + near_onset
        self_int = interruptions(result, b.begin, b.end) + interruptions(
            result, c.begin, t_user - 0.2
        )
        caught = interruptions(result, t_user - 0.2, t_user + near_len)
        levels = frame_levels_dbfs(result.output[steady])
        residual_p95 = float(percentile(levels, 95)) if levels.size else -100.0
        user = window(result, t_user, t_user + near_len)
        user_db = 10 * np.log10(energy(result.output[user])) - near_level
        after = f"{(caught[0] + MIN_SPEECH_S - t_user) * 1000:.0f}" if caught else "-"
        if self_int:
            when = [
                f"{'B' if t < b.end else 'C'} +{t - (b.t_far if t < b.end else c.t_far):.2f}s"
                for t in self_int
            ]
            notes.append(f"{name}: self-interruption at {', '.join(when)} into the answer")
        tally = tallies.setdefault((gain, name), Tally())
        tally.answers += 2
        tally.self_interruptions += len(self_int)
        tally.barge_ins += 1
        tally.caught += bool(caught)
        tally.erle.append(erle)
        tally.user_db.append(user_db)
        tally.cost_us.append(result.cost_us)
        if caught:
            tally.decision_ms.append((caught[0] + MIN_SPEECH_S - t_user) * 1000)
        print(
            f"{name:<22}{erle:>9.1f}{erle_early:>11.1f}{residual_p95:>10.1f}{len(self_int):>9}"
            f"{'yes' if caught else 'NO':>10}{after:>9}{user_db:>9.1f}{result.cost_us:>9.0f}"
        )
    for note in notes:
        print(f"  {note}")
    print(
        "ERLE: echo removed while the first answer (B) plays, after 1.5 s (and during "
        "its first 1.5 s); resid p95: 95th percentile of the 20 ms residual echo level "
        "(dBFS); self-int: echo the app's VAD takes for >= 150 ms of user speech, in "
        "both answers; barge-in: the user's speech over the second answer (C) is "
        "detected; after ms: from the user's onset to the listener's decision; user dB: "
        "the user's level kept (output during the barge-in vs. the user alone)."
    )


def summarize(tallies: dict[tuple[float, str], Tally]) -> None:
    """Every session at each gain, per handler."""
    print("\n== summary (all sessions) ==")
    print(
        f"{'gain':>5}  {'handler':<22}{'self-interruptions':>20}{'barge-ins caught':>18}"
        f"{'ERLE p50':>10}{'decision p50':>14}{'user dB':>9}{'us/10ms':>9}"
    )
    for (gain, name), t in tallies.items():
        decision = f"{np.median(t.decision_ms):.0f} ms" if t.decision_ms else "-"
        print(
            f"{gain:>+5g}  {name:<22}{f'{t.self_interruptions} in {t.answers} answers':>20}"
            f"{f'{t.caught}/{t.barge_ins}':>18}{np.median(t.erle):>10.1f}{decision:>14}"
            f"{np.median(t.user_db):>9.1f}{np.median(t.cost_us):>9.0f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gains", type=float, nargs="+", default=[-10.0, -3.0])
    parser.add_argument("--rounds", type=int, default=1, help="recordings per gain")
    parser.add_argument("--save", type=Path, help="keep the recordings (pickles) in this folder")
    parser.add_argument("--load", type=Path, nargs="+", help="analyse saved recordings only")
    args = parser.parse_args()
    tallies: dict[tuple[float, str], Tally] = {}
    if args.load:
        for path in args.load:
            with path.open("rb") as handle:
                gain, session = pickle.load(handle)
            report(gain, session, tallies)
        summarize(tallies)
        return
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
            session = await record(far, near)
        finally:
            stop_rig(rig_dir)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            target = args.save / f"echo{gain:+g}dB-{time.strftime('%H%M%S')}.pkl"
            with target.open("wb") as handle:
                pickle.dump((gain, session), handle)
        report(gain, session, tallies)
    summarize(tallies)


if __name__ == "__main__":
    asyncio.run(main())
