"""Record the sessions under tests/data/sessions/ on a private PulseAudio rig.

    .venv/bin/python scripts/record_sessions.py [--only NAME] [--out tests/data/sessions]

Each session runs ``voiceterm --headless --record DIR`` on the rig's devices and
plays espeak-ng speech into its microphone on a schedule:

- ``thinking_pause``: a question with a thinking pause in the middle (the
  end-of-turn model must wait for the rest);
- ``barge_in_echo``: a question with a long answer, played back into the
  microphone as echo (-12 dB), cut off by the user half way through;
- ``tool_call``: two questions a tool answers (the clock, the calculator).

The recordings are short (a few seconds of FLAC each) so CI can replay them
with ``--expect-same`` (tests/integration/test_recorded_sessions.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RIG = ROOT / "scripts" / "audio_rig.sh"


@dataclass(frozen=True, slots=True)
class Say:
    """Play ``text`` into the microphone ``after_s`` seconds after the previous step."""

    after_s: float
    text: str
    pause_s: float = 0.0
    then: str = ""
    """Said after ``pause_s`` of silence (a thinking pause inside one turn)."""


SESSIONS: dict[str, tuple[float | None, list[Say]]] = {
    "thinking_pause": (
        None,
        [Say(1.0, "I would like to know", 0.9, "what the capital of France is.")],
    ),
    "barge_in_echo": (
        -12.0,
        [
            Say(1.0, "Tell me a long story about a brave knight and a dragon."),
            Say(5.5, "Stop. What time is it?"),
        ],
    ),
    "tool_call": (
        None,
        [Say(1.0, "What time is it?"), Say(5.0, "What is seven times eight?")],
    ),
}


def speech(text: str, pause_s: float, then: str, folder: Path) -> Path:
    """A 16 kHz WAV of ``text`` (and ``then`` after a pause) made with espeak-ng."""
    first = folder / "first.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(first), text], check=True)
    out = folder / f"say-{abs(hash((text, then)))}.wav"
    if not then:
        subprocess.run(["sox", str(first), "-r", "16000", str(out)], check=True)
        return out
    second = folder / "second.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(second), then], check=True)
    padded = folder / "first-padded.wav"
    subprocess.run(["sox", str(first), str(padded), "pad", "0", f"{pause_s}"], check=True)
    subprocess.run(["sox", str(padded), str(second), "-r", "16000", str(out)], check=True)
    return out


def record(
    name: str, echo_db: float | None, steps: list[Say], out: Path, env: dict[str, str]
) -> None:
    folder = out / name
    if folder.exists():
        raise SystemExit(f"{folder} exists: remove it first")
    work = Path(tempfile.mkdtemp(prefix="vt-say-"))
    wavs = [speech(step.text, step.pause_s, step.then, work) for step in steps]
    subprocess.run(
        ["bash", str(RIG), "echo", "off" if echo_db is None else f"{echo_db:g}"],
        env=env,
        check=True,
        capture_output=True,
    )
    app = subprocess.Popen(
        [str(Path(sys.executable).with_name("voiceterm")), "--headless", "--record", str(folder)],
        env={
            **env,
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "XDG_CONFIG_HOME": str(work / "config"),
        },
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert app.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert app.stdout is not None
        for line in app.stdout:
            lines.append(line.rstrip())
            print(f"  [{name}] {line.rstrip()}", flush=True)
            if line.startswith("listening"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(180):
        app.kill()
        raise SystemExit(f"{name}: voiceterm did not get ready")
    for step, wav in zip(steps, wavs, strict=True):
        time.sleep(step.after_s)
        subprocess.run(["paplay", "--device=vt_mic", str(wav)], env=env, check=True)
    time.sleep(6.0)  # the last answer
    app.send_signal(signal.SIGTERM)
    app.wait(30)
    subprocess.run(["bash", str(RIG), "echo", "off"], env=env, check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(SESSIONS))
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "sessions")
    args = parser.parse_args()
    rig_dir = Path(tempfile.mkdtemp(prefix="vt-rig-"))
    env = {**os.environ, "VT_RIG_DIR": str(rig_dir)}
    started = subprocess.run(
        ["bash", str(RIG), "start"], env=env, check=True, capture_output=True, text=True
    ).stdout
    for line in started.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'\"")
    try:
        for name, (echo_db, steps) in SESSIONS.items():
            if args.only and name != args.only:
                continue
            print(f"recording {name}", flush=True)
            record(name, echo_db, steps, args.out, env)
    finally:
        subprocess.run(["bash", str(RIG), "stop"], env=env, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
