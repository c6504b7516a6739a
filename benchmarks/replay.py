"""Replay determinism: the same recording through the same code N times, same turns?

    .venv/bin/python scripts/bench_replay.py [--runs 10] [DIR ...]

Each run replays the recording in lockstep on audio time (``voiceterm replay``)
with the recorded settings on one set of loaded engines, and keeps every turn:
where its speech starts and ends, the decision that ended it (with the model's
probability), its transcript, whether it cut the agent off and its tools. The
runs must all be identical to the first. The answers' words are counted apart:
llama.cpp's sums depend on how many threads it gets (sized by the free cores),
so at temperature 0.3 an answer may take another word now and then; replay does
not compare answers. Prints each run's wall time against the audio's length.
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
    from voiceterm.pipeline.loading import load_engines
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
        answers: list[list[object]] = []
        for _ in range(args.runs):
            result = asyncio.run(replay(recording, config, engines=engines))
            turns = [turn.to_dict(result.shift) for turn in result.replayed]
            answers.append([turn.pop("answer") for turn in turns])
            walls.append(result.wall_s)
            if first is None:
                first = turns
            if turns == first:
                same += 1
            else:
                for before, after in zip(first, turns, strict=False):
                    for key in before:
                        if before[key] != after[key]:
                            print(
                                f"  differs: {key}: {before[key]!r} -> {after[key]!r}", flush=True
                            )
                if len(first) != len(turns):
                    print(f"  differs: {len(first)} turns -> {len(turns)}", flush=True)
        failures += same != args.runs
        audio_s = result.audio_s
        same_answers = sum(run == answers[0] for run in answers)
        print(
            f"{folder.name}: {same} of {args.runs} replays identical "
            f"({len(first or [])} turns); answers word for word in {same_answers}; "
            f"{audio_s:.1f} s of audio in {min(walls):.1f}-{max(walls):.1f} s",
            flush=True,
        )
    load.append(f"{os.getloadavg()[0]:.2f}")
    print(f"load {' -> '.join(load)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
