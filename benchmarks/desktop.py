"""The speaker on the sound servers people run: answers heard after a long quiet.

For each rig profile (``scripts/audio_rig.sh``: ``lab``, ``pulse-desktop``,
``pipewire``) and each app run: start ``voiceterm --headless`` fresh, leave it
quiet for ``--quiet-s`` (10 s: longer than the speaker's 3 s sleep plus the server's 5 s
suspend, so the speaker's stream is stopped and, on a desktop, its sink
suspended), then ask one question into the microphone sink and record the
speaker sink's monitor. The recorder starts with the question and asks for a 2 s
latency, so that it neither keeps the sink awake nor makes it render in small
blocks, as nobody records a real speaker.

Per profile it prints: app runs that answered aloud (Whisper hears enough
of the printed answer in the recording, 40 %), answers cut off as ``speaker_lost``,
"stopped playing" reports, underflows, and voice-to-voice p50/p95 as the app
measured it (its playback start is the first sample's DAC time once the stream
consumes, so a speaker that was waking counts in full). Profiles take turns run
by run, so they share whatever else the machine does; ``--background-load N``
runs every app beside N busy programs.

    .venv/bin/python scripts/bench_desktop.py --runs 20
    .venv/bin/python scripts/bench_desktop.py --runs 10 --background-load 1
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.corpus import espeak, normalize_words
from benchmarks.load import background_load
from benchmarks.rig import LiveApp, RigControl, transcribe
from benchmarks.stats import percentile

QUESTIONS = (  # answered in plain English words that Whisper spells as printed
    "Who wrote Hamlet?",
    "Tell me a fun fact about the ocean.",
    "How many legs does a spider have?",
    "What color is the sky on a clear day?",
)
HEARD_SHARE = 0.4  # of the printed answer's words, heard in the recording
V2V = re.compile(r"voice-to-voice (\d+) ms")
STOPPED = re.compile(r"^error: The speaker failed: .* stopped playing", re.M)  # not the summary


@dataclass
class ProfileResult:
    runs: int = 0
    aloud: int = 0
    speaker_lost: int = 0
    stopped_playing: int = 0
    stopped_playing_runs: int = 0
    v2v_ms: list[float] = field(default_factory=list)
    timings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def pct(values: list[float], q: float, scale: float = 1.0) -> float:
    """The one percentile (``benchmarks.stats``), scaled; nan for none."""
    return scale * percentile(values, q)


def write_question(folder: Path, text: str) -> Path:
    path = folder / f"q{abs(hash(text)) % 10**8}.wav"
    if not path.exists():
        pad = np.zeros(3200, np.int16)
        audio = np.concatenate((pad, espeak(text), pad))
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(audio.tobytes())
    return path


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as recording:
        return np.frombuffer(recording.readframes(recording.getnframes()), np.int16)


def one_run(
    rig: RigControl, question: str, folder: Path, quiet_s: float, result: ProfileResult
) -> None:
    app = LiveApp(rig.env, ("--audio-echo", "off", "--llm-max-tokens", "32"), config_home=folder)
    app.start()
    heard = folder / "heard.wav"
    try:
        time.sleep(quiet_s)
        since = app.mark()
        recorder = subprocess.Popen(
            [
                "parecord",
                "--device=vt_speaker.monitor",
                "--rate=16000",
                "--channels=1",
                "--format=s16le",
                "--file-format=wav",
                "--latency-msec=2000",
                str(heard),
            ],
            env={**rig.env},
            stdin=subprocess.DEVNULL,
        )
        try:
            subprocess.run(
                ["paplay", "--device=vt_mic", str(write_question(folder, question))],
                env={**rig.env},
                check=True,
                timeout=30,
            )
            try:
                app.wait_for(r"voice-to-voice \d+ ms|\[interrupted", since=since, timeout=60)
            except TimeoutError:
                result.failures.append(f"no answer to {question!r}")
            time.sleep(2.5)  # the recorder's 2 s buffer
        finally:
            recorder.send_signal(2)
            recorder.wait(timeout=10)
    finally:
        app.stop()
    result.runs += 1
    transcript = app.transcript()
    stops = len(STOPPED.findall(transcript))
    result.stopped_playing += stops
    result.stopped_playing_runs += stops > 0
    if stops:
        result.failures.append(f"the speaker stopped playing:\n{app.stderr_text}")
    result.speaker_lost += transcript.count("[interrupted: speaker_lost]")
    line = app.find(V2V.pattern, since)
    if line is not None:
        match = V2V.search(line.text)
        assert match is not None
        result.v2v_ms.append(float(match.group(1)))
        result.timings.append(line.text.strip())
    agent = app.find(r"^agent:", since)
    printed = agent.text.removeprefix("agent:").strip() if agent else ""
    said = set(normalize_words(transcribe(read_wav(heard)))) if heard.exists() else set()
    shown = set(normalize_words(printed))
    if shown and len(said & shown) / len(shown) >= HEARD_SHARE:
        result.aloud += 1
    else:
        result.failures.append(f"not heard aloud: {printed!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--profiles", nargs="+", default=["lab", "pulse-desktop", "pipewire"])
    parser.add_argument("--runs", type=int, default=20, help="app runs per profile")
    parser.add_argument("--quiet-s", type=float, default=10.0, help="quiet before the question")
    parser.add_argument("--background-load", type=int, default=0)
    args = parser.parse_args()

    rigs: dict[str, RigControl] = {}
    folder = Path(tempfile.mkdtemp(prefix="vt-bench-desktop-"))
    results = {profile: ProfileResult() for profile in args.profiles}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    try:
        for profile in args.profiles:
            rig = RigControl(folder / f"rig-{profile}")
            rig.start(profile=profile)
            rigs[profile] = rig
        with background_load(args.background_load):
            for run in range(args.runs):
                for profile in args.profiles:
                    question = QUESTIONS[run % len(QUESTIONS)]
                    one_run(rigs[profile], question, folder, args.quiet_s, results[profile])
                    r = results[profile]
                    print(
                        f"run {run + 1:2d} {profile:13s} aloud {r.aloud}/{r.runs} "
                        f"lost {r.speaker_lost} stopped {r.stopped_playing} "
                        f"| {r.timings[-1] if r.timings else 'no timings'}",
                        flush=True,
                    )
    finally:
        for rig in rigs.values():
            rig.stop()
        shutil.rmtree(folder, ignore_errors=True)
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    print()
    print(f"bench_desktop: {started}, quiet {args.quiet_s:g} s before each question, ", end="")
    print(f"background load {args.background_load}, loadavg {load_before} -> {load_after}")
    print(
        f"{'profile':14s} {'aloud':>7s} {'speaker_lost':>12s} {'stopped playing':>16s} "
        f"{'v2v p50':>8s} {'v2v p95':>8s}"
    )
    for profile, r in results.items():
        print(
            f"{profile:14s} {r.aloud:3d}/{r.runs:<3d} {r.speaker_lost:12d} "
            f"{r.stopped_playing:9d} ({r.stopped_playing_runs} runs) "
            f"{pct(r.v2v_ms, 50):8.0f} {pct(r.v2v_ms, 95):8.0f}"
        )
    for profile, r in results.items():
        for failure in r.failures:
            print(f"  {profile}: {failure}")


if __name__ == "__main__":
    main()
