"""Fit the learned end-of-turn decision on the tuning part of the real recordings.

Reads the signals that ``scripts/bench_turns.py --cache FILE`` saved (Smart
Turn's probability, Whisper's words, the LLM's P(end of message) at every pause
of every clip), keeps the tuning speakers only (``tests.turn_clips.HELD_BACK``
are never looked at), and:

1. fits three logistic models (every signal; without the LLM's probability;
   the voice and the silence alone, for before the words are known) on samples
   taken at several silences of every pause: a pause that goes on gives a
   sample at each silence it reached, the end of a turn at every one;
2. chooses the first check and the two probabilities that map ``p`` to a wait
   (``sure``: end at the first check, ``unsure``: wait for the cap) by replaying
   every tuning clip: the fewest cut sentences (at most ``--max-cut`` of the
   700 ms pauses, no whole turn split), then the shortest waits;
3. writes the weights file (default: ``voiceterm/pipeline/turn_weights.json``).

Usage: ``.venv/bin/python scripts/fit_turn_end.py --cache /tmp/clips.pkl``
"""

from __future__ import annotations

import argparse
import datetime
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.turn_clips import Clip, ends_at, learned_end  # noqa: E402
from voiceterm.pipeline.turn_fusion import (  # noqa: E402
    WEIGHTS_FILE,
    Logistic,
    Signals,
    TurnWeights,
    features,
)

MODELS = {
    "full": ("voice", "words", "silence_s", "word_count", "stop", "question", "trailing"),
    "words": ("voice", "silence_s", "word_count", "stop", "question", "trailing"),
    "voice": ("voice", "silence_s"),
}
SAMPLE_SILENCES = (120, 160, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500)
CAP_MS = 1500
RIDGE = 0.1


def samples(clips: list[Clip], first_ms: int, names: tuple[str, ...]) -> tuple[Any, Any]:
    rows, labels = [], []
    for clip in clips:
        for pause in clip.pauses:
            voice = pause.probability.get(first_ms)
            if voice is None:
                continue
            for silence in SAMPLE_SILENCES:
                if silence < first_ms or (not pause.final and pause.length_ms <= silence):
                    continue
                values = features(Signals(silence, voice, pause.words, pause.words_end))
                rows.append([values[n] for n in names])
                labels.append(float(pause.final))
    return np.array(rows), np.array(labels)


def fit(x: Any, y: Any) -> tuple[list[float], float]:
    """Logistic regression by Newton's method, with a small ridge on the weights."""
    design = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(design.shape[1])
    ridge = RIDGE * np.eye(design.shape[1])
    ridge[-1, -1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(design @ beta, -60, 60)))
        gradient = design.T @ (p - y) + ridge @ beta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return [float(b) for b in beta[:-1]], float(beta[-1])


def score(weights: TurnWeights, clips: list[Clip]) -> tuple[float, int, float, float]:
    """(cut share at 700 ms pauses, whole turns split, eot p50, eot p95) on ``clips``."""
    paused = [c for c in clips if c.kind == "paused" and c.name.endswith("+700ms")]
    whole = [c for c in clips if c.kind == "whole"]

    def decide(pause: Any) -> int | None:
        return learned_end(weights, pause, step_ms=40)

    cut = sum(ends_at(decide, c)[0] for c in paused) / max(1, len(paused))
    results = [ends_at(decide, c) for c in whole]
    latency = sorted(r[1] for r in results if r[1] is not None)
    if not latency:
        return cut, len(whole), float("inf"), float("inf")
    p50 = latency[len(latency) // 2]
    p95 = latency[min(len(latency) - 1, round(0.95 * (len(latency) - 1)))]
    return cut, sum(r[0] for r in results), p50, p95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="bench_turns.py --cache FILE")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--max-cut", type=float, default=0.07, help="of the 700 ms pauses")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="fit on espeak-ng's questions and commands too (bench_turns.py --synthetic); "
        "the wait is still chosen on the real tuning turns",
    )
    parser.add_argument(
        "--curve",
        action="store_true",
        help="also print the cut-off/latency curve of the fitted models (every sure/unsure), "
        "the held-back part beside the tuning part (printed only, never used to choose)",
    )
    args = parser.parse_args()
    clips: list[Clip] = pickle.loads(args.cache.read_bytes())
    tuning = [c for c in clips if c.part == "tuning"]
    synthetic = [c for c in clips if c.part == "synthetic"] if args.synthetic else []
    if args.synthetic and not synthetic:
        print(f"{args.cache} holds no synthetic turns: run bench_turns.py --synthetic first")
        return 2
    speakers = sorted({c.speaker for c in tuning})
    whole = [c for c in tuning if c.kind == "whole"]
    print(
        f"tuning part: {len(whole)} whole turns, {len(tuning) - len(whole)} paused copies, "
        f"{len(speakers)} speakers"
        + (f"; and {len(synthetic)} espeak-ng clips to fit on" if synthetic else "")
    )
    firsts = sorted({ms for c in tuning for p in c.pauses for ms in p.probability})
    best: tuple[tuple[float, ...], TurnWeights, tuple[float, int, float, float]] | None = None
    for first_ms in firsts:
        models = {}
        for name, names in MODELS.items():
            x, y = samples(tuning + synthetic, first_ms, names)
            coefficients, bias = fit(x, y)
            models[name] = Logistic(names, tuple(coefficients), bias)
        for sure in np.arange(0.5, 0.96, 0.05):
            for unsure in np.arange(0.05, sure - 0.05, 0.05):
                weights = TurnWeights(
                    models, first_ms, CAP_MS, float(sure), float(unsure), "", WEIGHTS_FILE
                )
                result = score(weights, tuning)
                cut, split, p50, p95 = result
                key = (max(0.0, cut - args.max_cut), float(split), p50 + p95, -first_ms)
                if best is None or key < best[0]:
                    best = (key, weights, result)
    assert best is not None
    _, weights, (cut, split, p50, p95) = best
    print(
        f"chosen: first check {weights.first_ms} ms, sure {weights.sure:.2f}, "
        f"unsure {weights.unsure:.2f}: tuning cut@700 {100 * cut:.0f}%, "
        f"whole split {split}, eot p50 {p50:.0f} ms, p95 {p95:.0f} ms"
    )
    for name, model in weights.models.items():
        print(
            f"  {name}: bias {model.bias:+.2f}, "
            + ", ".join(f"{n} {w:+.2f}" for n, w in zip(model.names, model.weights, strict=True))
        )
    data = {
        "format": 1,
        "fitted_on": (
            f"{len(whole)} whole turns and {len(tuning) - len(whole)} paused copies of "
            f"{len(speakers)} tuning speakers ({'; '.join(speakers)}); "
            + (
                f"and {len(synthetic)} espeak-ng clips (tests/turn_clips.py synthetic_turns); "
                if synthetic
                else ""
            )
            + "the held-back speakers in tests/turn_clips.py were not used"
        ),
        "fitted_by": "scripts/fit_turn_end.py (logistic regression, Newton, ridge "
        f"{RIDGE}; samples at silences {list(SAMPLE_SILENCES)} ms; the wait chosen for "
        f"at most {args.max_cut:.0%} cuts at 700 ms pauses, then the shortest waits)",
        "fitted_at": datetime.date.today().isoformat(),
        "tuning_figures": {
            "cut_at_700ms": round(cut, 3),
            "whole_split": split,
            "eot_p50_ms": p50,
            "eot_p95_ms": p95,
        },
        "models": {
            name: {
                "features": list(model.names),
                "weights": [round(w, 4) for w in model.weights],
                "bias": round(model.bias, 4),
            }
            for name, model in weights.models.items()
        },
        "wait": {
            "first_ms": weights.first_ms,
            "cap_ms": weights.cap_ms,
            "sure": round(weights.sure, 3),
            "unsure": round(weights.unsure, 3),
        },
    }
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    if args.curve:
        print_curve(weights, tuning, [c for c in clips if c.part == "held-back"])
    return 0


def print_curve(chosen: TurnWeights, tuning: list[Clip], held_back: list[Clip]) -> None:
    """For each ``sure``, the tuning part's best ``unsure``; both parts' figures."""
    print()
    print(
        f"the curve (first check {chosen.first_ms} ms, the fitted models; for each sure, the "
        "unsure with the tuning part's shortest waits at the fewest cuts)"
    )
    print(
        f"{'sure':>5} {'unsure':>6} | {'tuning cut@700':>14} {'split':>5} {'p50':>5} {'p95':>5}"
        f" | {'held-back cut@700':>17} {'split':>5} {'p50':>5} {'p95':>5}"
    )
    for sure in np.arange(0.5, 0.991, 0.05):
        best: tuple[tuple[float, ...], TurnWeights, tuple[float, int, float, float]] | None = None
        for unsure in np.arange(0.0, sure - 0.02, 0.1):
            weights = TurnWeights(
                chosen.models, chosen.first_ms, CAP_MS, float(sure), float(unsure), "", WEIGHTS_FILE
            )
            result = score(weights, tuning)
            key = (round(result[0], 2), float(result[1]), result[2] + result[3])
            if best is None or key < best[0]:
                best = (key, weights, result)
        assert best is not None
        _, weights, (cut, split, p50, p95) = best
        held = score(weights, held_back)
        print(
            f"{sure:5.2f} {weights.unsure:6.2f} | {100 * cut:13.0f}% {split:5d} {p50:5.0f} "
            f"{p95:5.0f} | {100 * held[0]:16.0f}% {held[1]:5d} {held[2]:5.0f} {held[3]:5.0f}"
        )


if __name__ == "__main__":
    sys.exit(main())
