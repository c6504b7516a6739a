"""Fit the learned end-of-turn decision on the tuning part of the real recordings.

Reads the signals that ``scripts/bench_turns.py --cache FILE`` saved (Smart
Turn's probability, Whisper's words, the LLM's P(end of message) at every pause
of every clip), keeps the tuning speakers only (``benchmarks.turn_clips.HELD_BACK``
are never looked at while fitting or choosing), and:

1. fits three logistic models (every signal; without the LLM's probability;
   the voice and the silence alone, for before the words are known) on samples
   taken at several silences of every pause: a pause that goes on gives a
   sample at each silence it reached, the end of a turn at every one. The
   features are standardised for the fit (the ridge then weighs them alike) and
   the weights are written back in the features' own units;
2. chooses the wait schedule (the first check, the cap, and the two
   probabilities that map ``p`` to a wait: ``sure`` ends the turn at the first
   check, ``unsure`` waits for the cap) by speaker-wise cross-validation on the
   tuning part: every tuning clip is judged by models fitted without its
   speaker, and the schedule with the shortest waits on finished turns (p50 +
   p95) is kept among those that cut at most ``--max-cut`` of the 700 ms pauses
   and split at most ``--max-split`` of the whole turns. With ``--per-check``
   the models leave the silence out and a bar for ``p`` is chosen at each
   check instead (falling as the silence goes on; the first bar of 0 is the
   cap), by coordinate descent on the same cross-validation;
3. writes the weights file (default: ``voiceterm/pipeline/end_of_turn/turn_weights.json``)
   with the models fitted on the whole tuning part.

``--why`` prints instead why a weights file waits where it waits: each
signal's ROC AUC at the pause points, and every finished turn that it ends
after ``--slow-ms`` or never, with what each signal said (both parts; the
held-back part is printed, never used).

Usage: ``.venv/bin/python scripts/fit_turn_end.py --cache /tmp/clips.pkl [--why]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fitting import fit_logistic
from benchmarks.turn_clips import START_MS, Clip, Pause, ends_at, learned_end, read_clips, roc_auc
from voiceterm.pipeline.end_of_turn.learned import (
    WEIGHTS_FILE,
    Logistic,
    Signals,
    TurnWeights,
    features,
    load_weights,
)

_WORDS_KNOWN = ("silence_s", "word_count", "stop", "question", "trailing", "short", "voice_short")
MODELS = {
    "full": ("voice", "words", *_WORDS_KNOWN),
    "words": ("voice", *_WORDS_KNOWN),
    "voice": ("voice", "silence_s"),
}
EARLY = ("voice", "words", "word_count", "stop", "question", "trailing")
"""The early decision's features: every signal, not the silence (see early_samples)."""
EARLY_SURES = (None, 0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5)
SAMPLE_SILENCES = (120, 160, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500)
CAPS = (700, 760, 800, 860, 900, 1000, 1100, 1200, 1500)
SURES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98)
STEP_MS = 20
RIDGE = 1.0


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


def early_samples(clips: list[Clip], first_ms: int, names: tuple[str, ...]) -> tuple[Any, Any]:
    """One sample per pause as it stood at the first check (it had not gone on yet), with
    every signal: Smart Turn's answer then, and the words and the LLM's reading of them."""
    rows, labels = [], []
    for clip in clips:
        for pause in clip.pauses:
            voice = pause.probability.get(first_ms)
            if voice is None or (not pause.final and pause.length_ms <= first_ms):
                continue
            values = features(Signals(first_ms, voice, pause.words, pause.words_end))
            rows.append([values[n] for n in names])
            labels.append(float(pause.final))
    return np.array(rows), np.array(labels)


def model_features(without: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Each model's features, less ``without``."""
    return {name: tuple(n for n in names if n not in without) for name, names in MODELS.items()}


def fit_models(
    clips: list[Clip], first_ms: int, without: tuple[str, ...] = ()
) -> dict[str, Logistic]:
    models = {}
    for name, names in model_features(without).items():
        x, y = samples(clips, first_ms, names)
        coefficients, bias = fit_logistic(x, y, ridge=RIDGE)
        models[name] = Logistic(names, tuple(coefficients), bias)
    names = tuple(n for n in EARLY if n not in without)
    x, y = early_samples(clips, first_ms, names)
    coefficients, bias = fit_logistic(x, y, ridge=RIDGE)
    models["early"] = Logistic(names, tuple(coefficients), bias)
    return models


@dataclass(frozen=True, slots=True)
class Schedule:
    first_ms: int
    cap_ms: int
    sure: float
    unsure: float
    early_sure: float | None = None
    thresholds: tuple[tuple[int, float], ...] = ()
    """The bar for each check (``TurnWeights.thresholds``); sure and unsure then unused."""

    def weights(self, models: dict[str, Logistic]) -> TurnWeights:
        return TurnWeights(
            models,
            self.first_ms,
            self.cap_ms,
            self.sure,
            self.unsure,
            "",
            WEIGHTS_FILE,
            early_sure=self.early_sure,
            thresholds=self.thresholds,
        )

    def bars(self, silences: Any) -> Any:
        """The ``p`` that ends a turn at each silence (thresholds only; above 1: never)."""
        bars = np.full(len(silences), 2.0)
        for ms, bar in self.thresholds:
            bars[silences >= max(ms, self.first_ms)] = bar
        bars[silences >= self.cap_ms] = 0.0
        return bars


@dataclass(frozen=True, slots=True)
class Figures:
    cut: float  # share of the 700 ms copies cut
    split: int  # whole turns split
    wholes: int
    p50: float  # end-of-turn latency of the finished whole turns (ms)
    p95: float
    mean: float = math.inf


class Trajectories:
    """``p`` at every silence step of every pause, as ``benchmarks.turn_clips.learned_end`` sees it.

    The silence enters each model linearly, so a pause needs one log-odds per
    model (what is known) and the silence's weight. Fast enough to replay
    thousands of schedules.
    """

    def __init__(self, clips: list[Clip], models_of: Any, first_ms: int, top_ms: int) -> None:
        self.clips = clips
        self.first_ms = first_ms
        self.silences = np.arange(first_ms, top_ms + 1, STEP_MS)
        pauses = [p for c in clips for p in c.pauses]
        self.length = np.array([p.length_ms for p in pauses], dtype=float)
        self.asked = np.array([first_ms in p.probability for p in pauses])
        self.p = np.full((len(pauses), len(self.silences)), 0.0)
        self.early = np.full((len(pauses), len(self.silences)), 0.0)
        row = 0
        for clip in clips:
            models: dict[str, Logistic] = models_of(clip)
            for pause in clip.pauses:
                self.p[row], self.early[row] = self._trajectory(models, pause)
                row += 1
        self.owner = np.repeat(np.arange(len(clips)), [len(c.pauses) for c in clips])

    def _trajectory(self, models: dict[str, Logistic], pause: Pause) -> tuple[Any, Any]:
        """``p`` at each silence step, and the early model's (0 until every signal is known)."""
        voice = pause.probability.get(self.first_ms)
        early = np.zeros(len(self.silences))
        if voice is None:
            return np.zeros(len(self.silences)), early
        out = np.empty(len(self.silences))
        for index, silence in enumerate(self.silences):
            words = pause.words if silence >= pause.words_ready_ms else None
            known = words and silence >= pause.words_end_ready_ms
            signals = Signals(int(silence), voice, words, pause.words_end if known else None)
            values = features(signals)
            name = "voice" if words is None else ("full" if "words" in values else "words")
            out[index] = models[name].probability(values)
            if name == "full" and "early" in models:
                early[index] = models["early"].probability(values)
        return out, early

    def ends(self, schedule: Schedule) -> Any:
        """The silence at which each pause is ended (NaN: it is not)."""
        columns = self.silences <= schedule.cap_ms
        silences = self.silences[columns]
        p = self.p[:, columns]
        if schedule.thresholds:
            done = p >= schedule.bars(silences)[None, :]
        else:
            share = np.clip((schedule.sure - p) / (schedule.sure - schedule.unsure), 0.0, 1.0)
            wait = np.round(schedule.first_ms + share * (schedule.cap_ms - schedule.first_ms))
            done = silences[None, :] >= wait
        if schedule.early_sure is not None:
            done |= self.early[:, columns] >= schedule.early_sure
        went_on = self.length[:, None] + START_MS < silences[None, :]
        stop = done | went_on
        any_stop = stop.any(axis=1)
        index = np.argmax(stop, axis=1)
        at = silences[index].astype(float)
        ended = any_stop & done[np.arange(len(p)), index] & ~went_on[np.arange(len(p)), index]
        result = np.where(ended & (self.length >= at), at, np.nan)
        capped = ~any_stop & (self.length >= schedule.cap_ms)
        result = np.where(capped, float(schedule.cap_ms), result)
        return np.where(self.asked, result, np.nan)

    def figures(self, schedule: Schedule, speakers: set[str] | None = None) -> Figures:
        """The figures of the clips (of ``speakers`` only, if given)."""
        ends = self.ends(schedule)
        finals = [p.final for c in self.clips for p in c.pauses]
        cut_clips = 0
        copies = 0
        split = 0
        wholes = 0
        latency = []
        row = 0
        for clip in self.clips:
            first_end: tuple[bool, float] | None = None
            for _ in clip.pauses:
                if first_end is None and not math.isnan(ends[row]):
                    first_end = (finals[row], float(ends[row]))
                row += 1
            if speakers is not None and clip.speaker not in speakers:
                continue
            if clip.kind == "whole":
                wholes += 1
                if first_end is not None and not first_end[0]:
                    split += 1
                elif first_end is not None:
                    latency.append(first_end[1])
            elif clip.name.endswith("+700ms"):
                copies += 1
                cut_clips += first_end is not None and not first_end[0]
        return summary(cut_clips, copies, split, wholes, latency)


def summary(cut: int, copies: int, split: int, wholes: int, latency: list[float]) -> Figures:
    latency = sorted(latency)
    if not latency:
        return Figures(cut / max(1, copies), split, wholes, math.inf, math.inf)
    p50 = latency[len(latency) // 2]
    p95 = latency[min(len(latency) - 1, round(0.95 * (len(latency) - 1)))]
    return Figures(cut / max(1, copies), split, wholes, p50, p95, float(np.mean(latency)))


def schedules(first_ms: int) -> list[Schedule]:
    found = []
    for cap in CAPS:
        for sure in SURES:
            for unsure in np.arange(0.0, sure - 0.04, 0.05):
                for early in EARLY_SURES:
                    found.append(Schedule(first_ms, cap, sure, round(float(unsure), 2), early))
    return found


def judged_clips(clips: list[Clip]) -> list[Clip]:
    """The clips the figures are about: whole turns and the 700 ms copies."""
    return [c for c in clips if c.kind == "whole" or c.name.endswith("+700ms")]


def choose(
    tuning: list[Clip],
    fitting: list[Clip],
    max_cut: float,
    max_split: float,
    without: tuple[str, ...] = (),
) -> tuple[Schedule, Figures]:
    """The schedule with the shortest cross-validated waits within the cut budgets."""
    speakers = sorted({c.speaker for c in tuning})
    firsts = sorted({ms for c in tuning for p in c.pauses for ms in p.probability})
    judged = judged_clips(tuning)
    best: tuple[tuple[float, ...], Schedule, Figures] | None = None
    by_early: dict[float | None, tuple[tuple[float, ...], Schedule, Figures]] = {}
    for first_ms in firsts:
        # Leave one speaker out: each clip is judged by models that never heard its speaker.
        folds = {
            speaker: fit_models([c for c in fitting if c.speaker != speaker], first_ms, without)
            for speaker in speakers
        }
        paths = Trajectories(judged, lambda clip, f=folds: f[clip.speaker], first_ms, max(CAPS))
        for schedule in schedules(first_ms):
            result = paths.figures(schedule)
            over = max(0.0, result.cut - max_cut) + max(
                0.0, result.split / max(1, result.wholes) - max_split
            )
            key = (over, result.p50 + result.p95, result.cut, -first_ms)
            if best is None or key < best[0]:
                best = (key, schedule, result)
            early = by_early.get(schedule.early_sure)
            if early is None or key < early[0]:
                by_early[schedule.early_sure] = (key, schedule, result)
    print("the best cross-validated schedule for each early decision's threshold:")
    for early_sure, (rank, schedule, result) in by_early.items():
        shown = "off " if early_sure is None else f"{early_sure:.2f}"
        print(
            f"  early {shown}: first {schedule.first_ms} cap {schedule.cap_ms} sure "
            f"{schedule.sure:.2f} unsure {schedule.unsure:.2f}: {describe(result)}"
            + (" (over the budget)" if rank[0] > 0 else "")
        )
    assert best is not None
    return best[1], best[2]


KNOTS = (*range(200, 1201, 40), 1300, 1400, 1500)
"""The silences (ms) at which the per-check bar may change (besides the first check)."""
BARS = (2.0, 0.99, 0.98, 0.97, *(round(0.95 - 0.05 * i, 2) for i in range(19)), 0.0)
"""The bars tried at each check, highest first: 2.0 never ends a turn, 0.0 is the cap."""


def thresholds_schedule(first_ms: int, bars: list[float]) -> Schedule:
    """The schedule of a bar at each of ``first_ms`` and the later KNOTS (0.0: the cap)."""
    knots = (first_ms, *(k for k in KNOTS if k > first_ms))
    cap = next((k for k, bar in zip(knots, bars, strict=True) if bar <= 0.0), max(CAPS))
    listed: tuple[tuple[int, float], ...] = ()
    for knot, bar in zip(knots, bars, strict=True):
        if 0.0 < bar <= 1.0 and knot < cap and (not listed or bar < listed[-1][1]):
            listed = (*listed, (knot, bar))
    return Schedule(first_ms, cap, 1.0, 0.0, thresholds=listed or ((first_ms, 1.0),))


def rank(result: Figures, max_cut: float, max_split: float) -> tuple[float, ...]:
    over = max(0.0, result.cut - max_cut) + max(
        0.0, result.split / max(1, result.wholes) - max_split
    )
    return (over, result.p50 + result.p95, result.mean, result.cut)


def search_bars(
    paths: Trajectories,
    max_cut: float,
    max_split: float,
    speakers: set[str] | None = None,
) -> tuple[Schedule, Figures]:
    """The bars, falling with the silence, with the shortest waits within the budgets.

    Coordinate descent from "never" at every check but the last: each check's bar in turn, latest
    first, takes the value of BARS (between its neighbours') that ranks best, until
    no bar moves."""
    knots = (paths.first_ms, *(k for k in KNOTS if k > paths.first_ms))
    bars = [*[BARS[0]] * (len(knots) - 1), 0.0]  # at first, only the top cap ends a turn
    schedule = thresholds_schedule(paths.first_ms, bars)
    result = paths.figures(schedule, speakers)
    best = rank(result, max_cut, max_split)
    moved = True
    while moved:
        moved = False
        for index in reversed(range(len(knots))):
            for bar in BARS:
                if index > 0 and bar > bars[index - 1]:
                    continue
                if index + 1 < len(knots) and bar < bars[index + 1]:
                    continue
                trial = [*bars[:index], bar, *bars[index + 1 :]]
                tried = thresholds_schedule(paths.first_ms, trial)
                figures = paths.figures(tried, speakers)
                key = rank(figures, max_cut, max_split)
                if key < best:
                    best, bars, schedule, result, moved = key, trial, tried, figures, True
    return schedule, result


def choose_thresholds(
    tuning: list[Clip],
    fitting: list[Clip],
    max_cut: float,
    max_split: float,
    without: tuple[str, ...] = (),
) -> tuple[Schedule, Figures]:
    """The per-check bars with the shortest cross-validated waits within the budgets.

    Like :func:`choose`: every tuning clip is judged by models fitted without its
    speaker, and the bars are chosen on those judgements. Also printed: each speaker
    judged by bars chosen without it too (nested), the honest figure of the choice."""
    speakers = sorted({c.speaker for c in tuning})
    firsts = sorted({ms for c in tuning for p in c.pauses for ms in p.probability})
    judged = judged_clips(tuning)
    best: tuple[tuple[float, ...], Schedule, Figures, Trajectories] | None = None
    for first_ms in firsts:
        folds = {
            speaker: fit_models([c for c in fitting if c.speaker != speaker], first_ms, without)
            for speaker in speakers
        }
        paths = Trajectories(judged, lambda clip, f=folds: f[clip.speaker], first_ms, max(CAPS))
        schedule, result = search_bars(paths, max_cut, max_split)
        print(f"  first check {first_ms} ms: {describe(result)}")
        key = (*rank(result, max_cut, max_split), -first_ms)
        if best is None or key < best[0]:
            best = (key, schedule, result, paths)
    assert best is not None
    _, schedule, result, paths = best
    cut = copies = split = wholes = 0
    latency: list[float] = []
    for speaker in speakers:
        others = set(speakers) - {speaker}
        chosen, _ = search_bars(paths, max_cut, max_split, others)
        ends = paths.ends(chosen)
        row = 0
        for clip in paths.clips:
            first_end: tuple[bool, float] | None = None
            for pause in clip.pauses:
                if first_end is None and not math.isnan(ends[row]):
                    first_end = (pause.final, float(ends[row]))
                row += 1
            if clip.speaker != speaker:
                continue
            if clip.kind == "whole":
                wholes += 1
                split += first_end is not None and not first_end[0]
                if first_end is not None and first_end[0]:
                    latency.append(first_end[1])
            else:
                copies += 1
                cut += first_end is not None and not first_end[0]
    print(
        "  nested (each speaker judged by bars chosen without it too): "
        + describe(summary(cut, copies, split, wholes, latency))
    )
    return schedule, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="bench_turns.py --cache FILE")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--max-cut", type=float, default=0.10, help="of the 700 ms pauses")
    parser.add_argument("--max-split", type=float, default=0.05, help="of the whole turns")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="fit on espeak-ng's questions and commands too (bench_turns.py --synthetic); "
        "the wait is still chosen on the real tuning turns",
    )
    parser.add_argument(
        "--why",
        action="store_true",
        help="do not fit: print why the weights file (--out) waits where it waits",
    )
    parser.add_argument(
        "--words-signal",
        choices=("end_token", "probe"),
        default="end_token",
        help="what the cache's LLM probability is: the plain P(<|im_end|>) (bench_turns.py's "
        "cache) or the words' probe (fit_text_probe.py --write-cache); the app reads the same",
    )
    parser.add_argument(
        "--without",
        nargs="*",
        default=[],
        choices=sorted({n for names in MODELS.values() for n in names}),
        help="fit the models without these features (e.g. short voice_short)",
    )
    parser.add_argument(
        "--per-check",
        action="store_true",
        help="fit the models without the silence, and choose a bar for p at each check "
        "(falling as the silence goes on) instead of the sure/unsure schedule",
    )
    parser.add_argument("--slow-ms", type=int, default=900, help="--why: a wait this long is slow")
    parser.add_argument(
        "--curve",
        action="store_true",
        help="also print the cut-off/latency curve of the fitted models (for each cap), "
        "the held-back part beside the tuning part (printed only, never used to choose)",
    )
    args = parser.parse_args()
    clips = read_clips(args.cache)
    tuning = [c for c in clips if c.part == "tuning"]
    held_back = [c for c in clips if c.part == "held-back"]
    if args.why:
        why(load_weights(args.out), tuning, held_back, args.slow_ms)
        return 0
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
    without = tuple(args.without)
    if args.per_check:
        without = tuple(sorted({*without, "silence_s"}))
        print("per-check bars, cross-validated by speaker:")
        schedule, cross = choose_thresholds(
            tuning, tuning + synthetic, args.max_cut, args.max_split, without
        )
    else:
        schedule, cross = choose(tuning, tuning + synthetic, args.max_cut, args.max_split, without)
    models = fit_models(tuning + synthetic, schedule.first_ms, without)
    weights = schedule.weights(models)
    paths = Trajectories(judged_clips(tuning), lambda clip: models, schedule.first_ms, max(CAPS))
    fitted = paths.figures(schedule)
    stepwise = replayed(weights, judged_clips(tuning))
    if stepwise != fitted:
        print(f"the fast replay disagrees with benchmarks/turn_clips.py: {stepwise} != {fitted}")
        return 1
    shape = (
        "bars " + ", ".join(f"{bar:.2f} from {ms} ms" for ms, bar in schedule.thresholds)
        if schedule.thresholds
        else f"sure {schedule.sure:.2f}, unsure {schedule.unsure:.2f}"
    )
    print(
        f"chosen: first check {schedule.first_ms} ms, cap {schedule.cap_ms} ms, {shape}, "
        "early decision "
        f"{'off' if schedule.early_sure is None else f'at {schedule.early_sure:.2f}'}\n"
        f"  cross-validated by speaker: {describe(cross)}\n"
        f"  the final models on the tuning part they were fitted on: {describe(fitted)}"
    )
    for name, model in weights.models.items():
        print(
            f"  {name}: bias {model.bias:+.2f}, "
            + ", ".join(f"{n} {w:+.3f}" for n, w in zip(model.names, model.weights, strict=True))
        )
    data = {
        "format": 1,
        "fitted_on": (
            f"{len(whole)} whole turns and {len(tuning) - len(whole)} paused copies of "
            f"{len(speakers)} tuning speakers ({'; '.join(speakers)}); "
            + (
                f"and {len(synthetic)} espeak-ng clips (benchmarks/turn_clips.py synthetic_turns); "
                if synthetic
                else ""
            )
            + "the held-back speakers in benchmarks/turn_clips.py were not used"
        ),
        "fitted_by": "scripts/fit_turn_end.py (logistic regression on standardised features, "
        f"Newton, ridge {RIDGE}; samples at silences {list(SAMPLE_SILENCES)} ms; the first "
        + (
            "check, cap and the bar for p at each check (the models without the silence; "
            "coordinate descent over the checks) chosen by leave-one-speaker-out "
            "cross-validation on the "
            if args.per_check
            else "check, cap, sure and unsure chosen by leave-one-speaker-out cross-validation on "
            "the "
        )
        + "tuning part: the shortest waits on finished turns (p50 + p95) with at most "
        f"{args.max_cut:.0%} of the 700 ms pauses cut and {args.max_split:.0%} of the whole "
        "turns split"
        + (
            ")"
            if args.per_check
            else "; the early model, one sample per pause at the first check with every signal "
            "and not the silence, ends a turn as soon as those signals are known and its p "
            "reaches early_sure, chosen with the rest, absent if the choice was 'never')"
        ),
        "fitted_at": datetime.date.today().isoformat(),
        "words_signal": args.words_signal,
        "tuning_figures": {
            "cross_validated": figures_json(cross),
            "fitted": figures_json(fitted),
        },
        "models": {
            name: {
                "features": list(model.names),
                "weights": [round(w, 4) for w in model.weights],
                "bias": round(model.bias, 4),
            }
            for name, model in weights.models.items()
            if name != "early" or weights.early_sure is not None
        },
        "wait": {
            "first_ms": weights.first_ms,
            "cap_ms": weights.cap_ms,
            **(
                {"thresholds": [[ms, bar] for ms, bar in weights.thresholds]}
                if weights.thresholds
                else {"sure": round(weights.sure, 3), "unsure": round(weights.unsure, 3)}
            ),
            **({} if weights.early_sure is None else {"early_sure": weights.early_sure}),
        },
    }
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    if args.curve and args.per_check:
        print_bars_curve(tuning, held_back, schedule.first_ms, without)
    elif args.curve:
        print_curve(weights, tuning, held_back)
    return 0


BUDGETS = ((0.10, 0), (0.20, 0), (0.30, 0), (0.50, 0), (0.10, 1), (0.30, 1), (0.50, 2))
"""(cut@700, whole turns split) for the per-check curve: the goals first, then looser."""


def print_bars_curve(
    tuning: list[Clip], held_back: list[Clip], first_ms: int, without: tuple[str, ...]
) -> None:
    """The per-check bars chosen on the tuning CV at looser budgets; both parts' figures."""
    speakers = sorted({c.speaker for c in tuning})
    judged = judged_clips(tuning)
    folds = {
        speaker: fit_models([c for c in tuning if c.speaker != speaker], first_ms, without)
        for speaker in speakers
    }
    paths = Trajectories(judged, lambda clip: folds[clip.speaker], first_ms, max(CAPS))
    models = fit_models(tuning, first_ms, without)
    held = Trajectories(judged_clips(held_back), lambda clip: models, first_ms, max(CAPS))
    print()
    print(
        f"the curve (first check {first_ms} ms): bars chosen on the tuning part's "
        "cross-validation within looser budgets; held back printed only"
    )
    for max_cut, splits in BUDGETS:
        wholes = sum(c.kind == "whole" for c in judged)
        schedule, cross = search_bars(paths, max_cut, (splits + 0.5) / wholes)
        shown = ", ".join(f"{bar:.2f} from {ms}" for ms, bar in schedule.thresholds)
        print(
            f"  budget cut@700 {max_cut:.0%}, {splits} split: CV {describe(cross)} | held back "
            f"{describe(held.figures(schedule))} | cap {schedule.cap_ms}, bars {shown}"
        )


def replayed(weights: TurnWeights, clips: list[Clip]) -> Figures:
    """The figures by ``benchmarks.turn_clips.learned_end``, pause by pause (the check on
    :class:`Trajectories`, which replays thousands of schedules)."""
    cut = copies = split = wholes = 0
    latency = []
    for clip in clips:
        cut_off, at = ends_at(lambda pause: learned_end(weights, pause, step_ms=STEP_MS), clip)
        if clip.kind == "whole":
            wholes += 1
            split += cut_off
            if at is not None:
                latency.append(float(at))
        else:
            copies += 1
            cut += cut_off
    return summary(cut, copies, split, wholes, latency)


def describe(result: Figures) -> str:
    return (
        f"cut@700 {100 * result.cut:.0f}%, whole split {result.split}/{result.wholes}, "
        f"eot p50 {result.p50:.0f} ms, p95 {result.p95:.0f} ms"
    )


def figures_json(result: Figures) -> dict[str, float]:
    return {
        "cut_at_700ms": round(result.cut, 3),
        "whole_split": result.split,
        "eot_p50_ms": result.p50,
        "eot_p95_ms": result.p95,
    }


def print_curve(chosen: TurnWeights, tuning: list[Clip], held_back: list[Clip]) -> None:
    """For each cap, the tuning part's best sure/unsure; both parts' figures."""
    print()
    print(
        f"the curve (first check {chosen.first_ms} ms, the fitted models; for each cap, the "
        "sure/unsure with the tuning part's shortest waits at <= 10% cuts, in-sample)"
    )
    print(
        f"{'cap':>5} {'sure':>5} {'unsure':>6} | {'tuning cut@700':>14} {'split':>5} {'p50':>5} "
        f"{'p95':>5} | {'held-back cut@700':>17} {'split':>5} {'p50':>5} {'p95':>5}"
    )
    models = chosen.models
    tuned = Trajectories(judged_clips(tuning), lambda clip: models, chosen.first_ms, max(CAPS))
    held = Trajectories(judged_clips(held_back), lambda clip: models, chosen.first_ms, max(CAPS))
    for cap in CAPS:
        best: tuple[tuple[float, ...], Schedule, Figures] | None = None
        for schedule in schedules(chosen.first_ms):
            if schedule.cap_ms != cap or schedule.early_sure != chosen.early_sure:
                continue
            result = tuned.figures(schedule)
            key = (max(0.0, result.cut - 0.10), result.p50 + result.p95)
            if best is None or key < best[0]:
                best = (key, schedule, result)
        assert best is not None
        _, schedule, t = best
        h = held.figures(schedule)
        print(
            f"{cap:5d} {schedule.sure:5.2f} {schedule.unsure:6.2f} | {100 * t.cut:13.0f}% "
            f"{t.split:2d}/{t.wholes:<2d} {t.p50:5.0f} {t.p95:5.0f} | {100 * h.cut:16.0f}% "
            f"{h.split:2d}/{h.wholes:<2d} {h.p50:5.0f} {h.p95:5.0f}"
        )


LOW_FALSE = 0.02


def caught(scores: list[float], labels: list[bool]) -> float:
    """The share of true ends scoring above the pauses that go on, but the top LOW_FALSE."""
    goes_on = sorted(
        (s for s, label in zip(scores, labels, strict=True) if not label), reverse=True
    )
    ends = [s for s, label in zip(scores, labels, strict=True) if label]
    if not goes_on or not ends:
        return float("nan")
    bar = goes_on[min(len(goes_on) - 1, int(LOW_FALSE * len(goes_on)))]
    return sum(s > bar for s in ends) / len(ends)


def why(weights: TurnWeights, tuning: list[Clip], held_back: list[Clip], slow_ms: int) -> None:
    """Each signal's separation, and the finished turns that wait long, with their signals."""
    first = weights.first_ms
    print(f"weights: {weights.source} (first check {first} ms, cap {weights.cap_ms} ms)")
    print()
    print(
        "ROC AUC at the pause points (the whole turns' pauses and the 700 ms copies'; "
        f"Smart Turn asked at {first} ms; a flag's ties count half)"
    )
    signals: dict[str, Any] = {
        "Smart Turn p": lambda p: p.probability[first],
        "Smart Turn logit": lambda p: features(Signals(first, p.probability[first])).get("voice"),
        "LLM P(<|im_end|>)": lambda p: p.words_end,
        "LLM logit": lambda p: features(Signals(first, 0.5, p.words, p.words_end)).get("words"),
        "final '.' or '!'": lambda p: float(p.words.strip().endswith((".", "!"))),
        "final '?'": lambda p: float(p.words.strip().endswith("?")),
        "any final stop": lambda p: float(p.words.strip().endswith((".", "!", "?"))),
        "no trailing comma etc.": lambda p: -features(Signals(first, 0.5, p.words))["trailing"],
        "word count": lambda p: features(Signals(first, 0.5, p.words))["word_count"],
        "learned p, all known": lambda p: (
            weights.judge(Signals(first, p.probability[first], p.words, p.words_end)).probability
        ),
        "learned p, voice only": lambda p: (
            weights.judge(Signals(first, p.probability[first])).probability
        ),
    }
    parts = {"tuning": tuning, "held-back (printed only)": held_back}
    points = {
        part: [p for c in judged_clips(clips) for p in c.pauses if first in p.probability]
        for part, clips in parts.items()
    }
    print(
        "(AUC, and the share of true ends that score above all but the top "
        f"{LOW_FALSE:.0%} of the pauses that go on: what an early end could catch)"
    )
    print(f"{'signal':<26}" + "".join(f"{part + ': AUC, caught':>40}" for part in parts))
    for part, pauses in points.items():
        ends = sum(p.final for p in pauses)
        print(f"  {part}: {ends} true ends, {len(pauses) - ends} pauses that go on")
    for name, value in signals.items():
        row = f"{name:<26}"
        for pauses in points.values():
            scores = [value(p) for p in pauses]
            labels = [p.final for p in pauses]
            row += f"{roc_auc(scores, labels):31.2f}{100 * caught(scores, labels):8.0f}%"
        print(row)
    print()
    print(
        f"finished whole turns that the weights end after {slow_ms} ms of silence or never: "
        "the end (ms), Smart Turn, the LLM, when the words (w@) and the LLM's reading (l@) "
        "were known, p at the first check with the voice alone and with everything known"
    )
    schedule = Schedule(
        weights.first_ms,
        weights.cap_ms,
        weights.sure,
        weights.unsure,
        thresholds=weights.thresholds,
    )
    for part, clips in parts.items():
        wholes = [c for c in clips if c.kind == "whole"]
        paths = Trajectories(wholes, lambda clip: weights.models, first, weights.cap_ms)
        ends = paths.ends(schedule)
        index = 0
        slow = []
        for clip in wholes:
            for pause in clip.pauses:
                if pause.final:
                    end = float(ends[index])
                    if math.isnan(end) or end >= slow_ms:
                        slow.append((clip, pause, end))
                index += 1
        late = sum(p.words_end_ready_ms >= slow_ms for _, p, _ in slow)
        print(
            f"-- {part}: {len(slow)} of {len(wholes)} (the words or the LLM known only after "
            f"{slow_ms} ms at {late} of them)"
        )
        for clip, pause, end in slow:
            voice = pause.probability.get(first, float("nan"))
            alone = weights.judge(Signals(first, voice)).probability
            known = weights.judge(Signals(first, voice, pause.words, pause.words_end)).probability
            shown = "never" if math.isnan(end) else f"{end:.0f}"
            print(
                f"  {clip.name[:30]:<30} {shown:>5} voice {voice:.2f} llm {pause.words_end:.3f} "
                f"w@{pause.words_ready_ms:4.0f} l@{pause.words_end_ready_ms:4.0f} "
                f"p {alone:.2f}/{known:.2f} {pause.words[-40:]!r}"
            )


if __name__ == "__main__":
    sys.exit(main())
