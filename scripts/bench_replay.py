"""Replay determinism: the same recording through the same code N times, same turns?

    .venv/bin/python scripts/bench_replay.py [--runs 10] [DIR ...]

Each run replays the recording in lockstep on audio time (``voiceterm replay``)
with the recorded settings on one set of loaded engines, and keeps every turn:
where its speech starts and ends, the decision that ended it, its transcript,
whether it cut the agent off, its tools and its answer. The runs must all be
identical to the first. Prints each run's wall time against the audio's length.
Default recordings: the three rig sessions under tests/data/sessions.

Target (issue 24): 10 of 10 replays give identical turns and transcripts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from voiceterm.pipeline.agent import load_engines
    from voiceterm.recording.reader import Recording
    from voiceterm.recording.replay import replay, replay_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    folders = args.folders or sorted((ROOT / "tests" / "data" / "sessions").iterdir())
    load = [f"{os.getloadavg()[0]:.2f}"]
    failures = 0
    engines = None
    for folder in folders:
        recording = Recording.open(folder)
        config, _notes = replay_config(recording, [])
        if engines is None:
            engines = load_engines(config)
        first: list[dict[str, object]] | None = None
        same = 0
        walls = []
        for _ in range(args.runs):
            result = asyncio.run(replay(recording, config, engines=engines))
            turns = [turn.to_dict(result.shift) for turn in result.replayed]
            walls.append(result.wall_s)
            if first is None:
                first = turns
            if turns == first:
                same += 1
        failures += same != args.runs
        audio_s = result.audio_s
        print(
            f"{folder.name}: {same} of {args.runs} replays identical "
            f"({len(first or [])} turns); {audio_s:.1f} s of audio in "
            f"{min(walls):.1f}-{max(walls):.1f} s",
            flush=True,
        )
    load.append(f"{os.getloadavg()[0]:.2f}")
    print(f"load {' -> '.join(load)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
