"""The wake word check's misses, and a learned decision tried against the hand-set rule.

Reads what ``scripts/bench_wake.py --save PATH`` kept: every utterance the app's own
check read (:func:`~voiceterm.pipeline.wake_words.read_wake_check`, from a fit of -19:
the wake word model's best score at the utterance's end, Whisper's fit of the phrase, its
own first words' fit, whether its words begin with the phrase), for the wake phrase said
by every voice, for "Hey <another name>, what time is it?", and for 5 h of audio
without the phrase. Nothing is run again: each decision is replayed on the same reads.

1. ``--misses``: every trial at 10 dB that the app's rule (``listen.wake_fit_above``,
   ``wake_fit_margin``) misses, and every "Hey <another name>" at 10 dB: what each
   utterance read gave;
2. when the model's best score comes, against the end of the utterance (the check is
   decided 300 ms after it, at ``vad.hangover_ms``);
3. a logistic decision over the model's score, the fit, the margin to Whisper's own
   reading, its words and the utterance's length, fitted on the tuning part only (the
   phrase by the tuning voices where the model missed it, against the tuning recordings
   of people and "Hey <another name>" by the tuning voices), with its threshold the
   lowest at which no tuning recording without the phrase wakes it and no more tuning
   "Hey <another name>" than with the rule; several feature sets and weightings, each
   printed with the held-back voices' figures (which chose nothing);
4. the rule with the words trusted from a lower fit;
5. the best of 3 against the rule, side by side: false rejects by voice family and
   SNR, false accepts per kind, "Hey <another name>" that woke it.

    .venv/bin/python scripts/bench_wake.py --no-cut --save /tmp/wake/reads.pkl
    .venv/bin/python scripts/fit_wake_decision.py /tmp/wake/reads.pkl --misses

Synthetic voices, not people.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import wake as bench
from benchmarks.fitting import FloatArray, fit_logistic
from benchmarks.stats import percentile
from voiceterm.config import Config

RIDGE = 1.0
READ_FROM = -19.0
"""The lowest fit the bench read from: the learned decision judges utterances from it."""
PHRASE_FROM_S = 1.5
"""An utterance that begins by then (the trial's speech starts at 1.0 s) holds the phrase."""
THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.05, 0.999, 0.01), 2))
FEATURE_SETS = (
    ("fit", "margin"),
    ("model", "fit", "margin"),
    ("model", "fit", "margin", "words"),
    ("model", "fit", "margin", "speech_s"),
    ("model", "fit", "margin", "words", "speech_s"),
)
OTHER_NAMES_WEIGHTS = (0.5, 0.8)
"""The share of the negatives' weight on "Hey <another name>" (the rest on people)."""

Wakes = Callable[[bench.Heard], bool]


class _Unpickler(pickle.Unpickler):
    """The bench ran as ``__main__``: its classes are bench_wake's."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__":
            return getattr(bench, name)
        return super().find_class(module, name)


def load(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        data: dict[str, Any] = _Unpickler(handle).load()
    return data


def features(h: bench.Heard, level: float, late: dict[int, float]) -> dict[str, float]:
    """The logistic decision's inputs for one read utterance (its fit is known).

    ``late``: the model's best score up to 0.5 s after the speech ended, by ``id(h)``,
    for the utterances whose whole score curve the bench kept (the trials); else the
    score known at the check."""
    assert h.fit is not None
    score = late.get(id(h), h.best)
    score = min(0.99, max(0.01, score if score >= level else 0.0))
    words = h.rest is not None
    if h.own is None or words:
        margin = 0.0  # its words are the phrase: nothing reads better
    elif math.isinf(h.own):
        margin = 10.0
    else:
        margin = min(10.0, max(-20.0, h.fit - h.own))
    return {
        "model": math.log(score / (1 - score)),
        "fit": h.fit,
        "margin": margin,
        "words": 1.0 if words else 0.0,
        "speech_s": min(6.0, h.speech_end - h.speech_start),
    }


def trial_missed(t: bench.Trial, cutoff: float, wakes: Wakes) -> bool:
    return not bench.detections_at(t.scores, cutoff) and not any(map(wakes, t.heard))


@dataclass
class Reads:
    trials: list[bench.Trial]
    near: list[bench.Trial]
    heard: dict[str, list[bench.Heard]]
    kinds: dict[str, tuple[float, int, float]]
    cutoff: float
    level: float

    def fr(self, wakes: Wakes, held_back: bool) -> float:
        """False rejects at 10 dB, %, of one part."""
        chosen = [
            t
            for t in self.trials
            if t.snr == 10.0 and (t.voice in bench.HELD_BACK_VOICES) == held_back
        ]
        return 100 * sum(trial_missed(t, self.cutoff, wakes) for t in chosen) / len(chosen)

    def others(self, wakes: Wakes, held_back: bool | None = None) -> int:
        """ "Hey <another name>" trials that woke it (``held_back``: of one part's voices)."""
        return sum(
            not trial_missed(t, self.cutoff, wakes)
            for t in self.near
            if held_back is None or (t.voice in bench.HELD_BACK_VOICES) == held_back
        )

    def accepts(self, wakes: Wakes, kinds: tuple[str, ...] | None = None) -> int:
        return sum(
            wakes(h)
            for kind, items in self.heard.items()
            if kinds is None or kind in kinds
            for h in items
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reads", type=Path, help="bench_wake.py --save's file")
    parser.add_argument("--misses", action="store_true", help="list the rule's misses at 10 dB")
    parser.add_argument(
        "--compare",
        type=float,
        nargs=2,
        metavar=("FIT", "MARGIN"),
        default=None,
        help="also print the rule at this fit and margin -> the rule as configured, side by "
        "side, and the grid of both around it",
    )
    parser.add_argument(
        "--rules",
        action="store_true",
        help="rules on the name's own fit and on the model's later score, beside the rule; "
        "the best on the tuning voices chosen as the rule's levels are",
    )
    parser.add_argument(
        "--also",
        type=Path,
        default=None,
        help="with --rules: another draw's reads (its negatives may be the first's); a rule must "
        "keep the bounds on both, and is chosen on the tuning voices of both pooled",
    )
    parser.add_argument(
        "--only-rules", action="store_true", help="--rules (and --misses, --compare), nothing else"
    )
    args = parser.parse_args()

    data = load(args.reads)
    reads = Reads(
        data["trials"], data["near"], data["heard"], data["kinds"], data["cutoff"], data["level"]
    )
    cutoff, level = reads.cutoff, reads.level
    respelled = respell(reads)
    print(
        f"(the words read again with today's spelling rule: {respelled} utterance(s) no longer "
        "begin with the phrase; Whisper's own reading of them was not kept, so the check by "
        "sound refuses them here)"
    )
    listen = Config().listen
    held = bench.HELD_BACK_VOICES

    def rule(h: bench.Heard) -> bool:
        return h.by_sound(
            level,
            listen.wake_fit_above,
            listen.wake_fit_margin,
            listen.wake_name_fit_above,
            listen.wake_name_fit_margin,
        )

    def fit_rule(h: bench.Heard) -> bool:
        return h.by_sound(level, listen.wake_fit_above, listen.wake_fit_margin)

    if args.misses:
        print_misses(reads, rule)
    if args.compare is not None:
        compare_rules(reads, args.compare[0], args.compare[1], rule)
    if args.rules or args.only_rules:
        draws = [reads]
        if args.also is not None:
            other = load(args.also)
            draws.append(
                Reads(
                    other["trials"],
                    other["near"],
                    other["heard"],
                    other["kinds"],
                    other["cutoff"],
                    other["level"],
                )
            )
            respell(draws[1])
        try_rules(draws, fit_rule)
    if args.only_rules:
        return 0
    if data.get("onset"):
        onset = Reads(data["onset"], [], {}, {}, cutoff, level)
        print(
            "\nthe noise starting with the trial (10 dB): FR tuning "
            f"{onset.fr(rule, False):.1f}% / held back {onset.fr(rule, True):.1f}% (the room's "
            "noise before it: "
            f"{reads.fr(rule, False):.1f}% / {reads.fr(rule, True):.1f}%)"
        )

    # When the model's best score comes: its whole curve is kept for the trials.
    late: dict[int, float] = {}
    after_end: list[float] = []
    for t in reads.trials + reads.near:
        for h in t.heard:
            window = [
                (p, at) for at, p in t.scores if h.speech_start + 0.3 <= at <= h.speech_end + 0.5
            ]
            late[id(h)] = max(window, default=(0.0, 0.0))[0]
            if t in reads.trials and window and not h.woke and max(window)[0] >= 0.1:
                after_end.append(max(window)[1] - h.speech_end)
    ms = 1000 * np.array(after_end)
    print(
        "\nthe model's best score in an utterance it did not wake on (>= 0.1, the phrase, all "
        f"SNRs), after the speech ended: p10 {percentile(ms, 10):.0f} ms, p50 "
        f"{percentile(ms, 50):.0f} ms, p90 {percentile(ms, 90):.0f} ms (n={len(ms)}); the "
        "check is decided at 300 ms"
    )
    peak_late = sum(
        late[id(h)] > h.best + 0.05 for t in reads.trials for h in t.heard if id(h) in late
    )
    print(f"  utterances whose best came after the check (by > 0.05): {peak_late}")

    def usable(h: bench.Heard) -> bool:
        return not h.woke and h.fit is not None and h.fit >= READ_FROM

    tuning_people = [h for k in bench.TUNING_NEGATIVES for h in reads.heard.get(k, []) if usable(h)]
    tuning_others = [h for t in reads.near if t.voice not in held for h in t.heard if usable(h)]
    phrase = [
        h
        for t in reads.trials
        if t.voice not in held and not bench.detections_at(t.scores, cutoff)
        for h in t.heard
        if usable(h) and h.speech_start < PHRASE_FROM_S
    ]
    rule_others_tuning = reads.others(rule, held_back=False)
    print(
        f"\nthe rule (fit from {listen.wake_fit_above:g}, margin {listen.wake_fit_margin:g}; the "
        f"name from {listen.wake_name_fit_above}, margin {listen.wake_name_fit_margin:g}): "
        f"FR at 10 dB tuning {reads.fr(rule, False):.1f}% / held back "
        f"{reads.fr(rule, True):.1f}%, 'Hey <another name>' woke {reads.others(rule)} of "
        f"{len(reads.near)} ({rule_others_tuning} of the tuning voices'), false accepts "
        f"{reads.accepts(rule)}"
    )
    print(
        f"\na logistic decision, fitted on {len(phrase)} utterances of the phrase, "
        f"{len(tuning_people)} of people and {len(tuning_others)} of other names (tuning, fit >= "
        f"{READ_FROM:g}); threshold: the lowest with 0 tuning accepts and at most "
        f"{rule_others_tuning} tuning other names"
    )
    print(
        "  features | model score | other names' weight | threshold | FR 10 dB tuning / held "
        "back | other names woke | false accepts (5 h) | weights, bias"
    )
    best: tuple[float, Wakes, str] | None = None
    for names in FEATURE_SETS:
        for use_late in (False, True):
            known = late if use_late else {}
            for share in OTHER_NAMES_WEIGHTS:

                def row(
                    h: bench.Heard,
                    known: dict[int, float] = known,
                    names: tuple[str, ...] = names,
                ) -> list[float]:
                    found = features(h, level, known)
                    return [found[n] for n in names]

                x = np.array([row(h) for h in phrase + tuning_people + tuning_others])
                y = np.array([1.0] * len(phrase) + [0.0] * (len(x) - len(phrase)))
                weight = np.concatenate(
                    (
                        np.full(len(phrase), 1.0 / len(phrase)),
                        np.full(len(tuning_people), (1 - share) / len(tuning_people)),
                        np.full(len(tuning_others), share / len(tuning_others)),
                    )
                ) * len(x)
                weights, bias = fit_logistic(x, y, ridge=RIDGE, weight=weight)

                def probability(
                    h: bench.Heard,
                    w: FloatArray = weights,
                    b: float = bias,
                    row: Callable[[bench.Heard], list[float]] = row,
                ) -> float:
                    z = b + float(np.dot(w, row(h)))
                    return 1 / (1 + math.exp(-max(-60.0, min(60.0, z))))

                chosen = None
                for threshold in THRESHOLDS:

                    def wakes(
                        h: bench.Heard,
                        th: float = threshold,
                        probability: Callable[[bench.Heard], float] = probability,
                    ) -> bool:
                        if h.woke:
                            return False
                        return h.by_words(level) or (usable(h) and probability(h) >= th)

                    if (
                        reads.accepts(wakes, bench.TUNING_NEGATIVES) == 0
                        and reads.others(wakes, held_back=False) <= rule_others_tuning
                    ):
                        chosen = (threshold, wakes)
                        break
                if chosen is None:
                    continue
                threshold, wakes = chosen
                tuning_fr = reads.fr(wakes, False)
                label = (
                    f"{'+'.join(names)} | {'0.5 s after the end' if use_late else 'at the check'}"
                    f" | {share:g} | {threshold:.2f}"
                )
                print(
                    f"  {label} | {tuning_fr:.1f}% / {reads.fr(wakes, True):.1f}% | "
                    f"{reads.others(wakes)} | {reads.accepts(wakes)} | "
                    f"{', '.join(f'{w:+.2f}' for w in weights)}, {bias:+.2f}"
                )
                if best is None or tuning_fr < best[0]:
                    best = (tuning_fr, wakes, label)

    print("\nthe rule, its words trusted from a lower fit (FR 10 dB tuning / held back):")
    for words_from in (-12.0, -13.0, -15.0, -17.0, -19.0):

        def lower(h: bench.Heard, words_from: float = words_from) -> bool:
            trusted = h.fit is not None and h.fit >= words_from and h.rest is not None
            return rule(h) or (not h.woke and trusted)

        print(
            f"  words from {words_from:g}: {reads.fr(lower, False):.1f}% / "
            f"{reads.fr(lower, True):.1f}%, other names woke {reads.others(lower)} of "
            f"{len(reads.near)}, false accepts {reads.accepts(lower)}"
        )

    if best is not None:
        print(f"\nthe rule -> the logistic decision best on the tuning voices ({best[2]}):")
        side_by_side(reads, rule, best[1])
    return 0


def margin_of(h: bench.Heard) -> float:
    """The phrase's fit minus Whisper's own first words' (0: its words are the phrase)."""
    if h.rest is not None:
        return 0.0
    if h.fit is None or h.own is None:
        return float("-inf")
    return h.fit - h.own


def try_rules(draws: list[Reads], rule: Wakes) -> None:
    """Rules on the name's own fit and on the model's score after the check, beside the rule.

    Chosen as the rule's levels were, set before reading: the fewest tuning false rejects at
    10 dB with no tuning recording without the phrase woken, no more tuning-voice "Hey
    <another name>" than the rule, and people's speech transcribed at most
    ``MAX_TRANSCRIBED_PER_HOUR`` an hour (tuning kinds), on every draw; pooled over the
    draws; the held-back part chose nothing."""
    reads = draws[0]
    level = reads.level
    listen = Config().listen
    tuning_hours = sum(reads.kinds[k][0] for k in bench.TUNING_NEGATIVES if k in reads.kinds)
    tuning_hours /= 3600
    hours = sum(seconds for seconds, _, _ in reads.kinds.values()) / 3600
    people = [h for k in bench.TUNING_NEGATIVES for h in reads.heard.get(k, [])]
    base_others = [d.others(rule, held_back=False) for d in draws]

    def name_at(h: bench.Heard) -> float:
        return h.name_fit if h.name_fit is not None else float("-inf")

    candidates: list[tuple[str, Wakes, Callable[[bench.Heard], bool]]] = []
    for fit_level in (-10.0, -11.0, -12.0, -13.0, -14.0):
        for margin in (5.0, 6.0, 7.0, 8.0):

            def by_fit(h: bench.Heard, f: float = fit_level, m: float = margin) -> bool:
                return h.by_sound(level, f, m)

            def read_fit(h: bench.Heard, f: float = fit_level) -> bool:
                return h.fit is not None and h.fit >= f

            candidates.append((f"fit >= {fit_level:g}, margin {margin:g}", by_fit, read_fit))
    for name_level in (-4.0, -5.0, -6.0, -7.0, -8.0, -9.0, -10.0, -11.0):
        for margin in (5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 100.0):
            for with_rule in (False, True):

                def by_name(
                    h: bench.Heard, n: float = name_level, m: float = margin, r: bool = with_rule
                ) -> bool:
                    if h.woke:
                        return False
                    if (r and rule(h)) or h.by_words(level):
                        return True
                    return name_at(h) >= n and margin_of(h) >= -m

                def read_name(h: bench.Heard, n: float = name_level, r: bool = with_rule) -> bool:
                    fits = h.fit is not None and h.fit >= listen.wake_fit_above
                    return name_at(h) >= n or (r and fits)

                label = f"name >= {name_level:g}, margin {margin:g}" + (
                    " | the rule" if with_rule else ""
                )
                candidates.append((label, by_name, read_name))
    for late_level in (0.1, 0.2, 0.3, 0.5):
        for extra in (2.0, 4.0, 8.0, 100.0):

            def by_late(h: bench.Heard, lv: float = late_level, x: float = extra) -> bool:
                if h.woke:
                    return False
                if rule(h):
                    return True
                late = h.late if h.late is not None else h.best
                fits = h.fit is not None and h.fit >= listen.wake_fit_above
                return fits and late >= lv and margin_of(h) >= -(listen.wake_fit_margin + x)

            def read_rule(h: bench.Heard) -> bool:
                return h.fit is not None and h.fit >= listen.wake_fit_above

            wider = listen.wake_fit_margin + extra
            label = f"the rule | model 0.5 s after >= {late_level:g}, margin {wider:g}"
            candidates.append((label, by_late, read_rule))

    print(
        f"\nrules tried on {len(draws)} draw(s) (FR 10 dB tuning / held back, pooled | other names "
        "woke tuning + held-back voices, per draw | accepts tuning kinds, all (5 h) | people "
        "transcribed per hour, tuning kinds):"
    )
    best: tuple[float, str, Wakes] | None = None

    def pooled(wakes: Wakes, held_back: bool) -> float:
        missed = total = 0
        for d in draws:
            chosen = [
                t
                for t in d.trials
                if t.snr == 10.0 and (t.voice in bench.HELD_BACK_VOICES) == held_back
            ]
            missed += sum(trial_missed(t, d.cutoff, wakes) for t in chosen)
            total += len(chosen)
        return 100 * missed / max(1, total)

    for label, wakes, reads_words in candidates:
        transcribed = sum(not h.woke and (h.best >= level or reads_words(h)) for h in people) / max(
            tuning_hours, 1e-9
        )
        tuning_fr, held_fr = pooled(wakes, False), pooled(wakes, True)
        others = [(d.others(wakes, False), d.others(wakes, True)) for d in draws]
        accepts = reads.accepts(wakes, bench.TUNING_NEGATIVES), reads.accepts(wakes)
        ok = (
            accepts[0] == 0
            and all(o[0] <= b for o, b in zip(others, base_others, strict=True))
            and transcribed <= bench.MAX_TRANSCRIBED_PER_HOUR
        )
        if ok and (best is None or tuning_fr < best[0]):
            best = (tuning_fr, label, wakes)
        mark = "" if ok else "  (out of bounds)"
        woke = ", ".join(f"{o[0]}+{o[1]}" for o in others)
        print(
            f"  {label:<52} {tuning_fr:5.1f} / {held_fr:5.1f}% | {woke} | "
            f"{accepts[0]}, {accepts[1]} | {transcribed:.1f}/h{mark}"
        )
    print(
        f"  (the fit rule alone: {pooled(rule, False):.1f} / {pooled(rule, True):.1f}%; "
        f"{hours:.2f} h)"
    )
    if best is not None:
        for number, d in enumerate(draws, 1):
            print(f"\nthe rule -> the best on the tuning voices ({best[1]}), draw {number}:")
            side_by_side(d, rule, best[2])


def compare_rules(reads: Reads, fit_above: float, margin: float, rule: Wakes) -> None:
    """The rule at (``fit_above``, ``margin``) -> as configured; and the grid of levels."""
    level = reads.level

    def before(h: bench.Heard) -> bool:
        return h.by_sound(level, fit_above, margin)

    listen = Config().listen
    print(
        f"the rule, fit from {fit_above:g} and margin {margin:g} -> fit from "
        f"{listen.wake_fit_above:g} and margin {listen.wake_fit_margin:g}, or the name from "
        f"{listen.wake_name_fit_above} and margin {listen.wake_name_fit_margin:g}:"
    )
    side_by_side(reads, before, rule)
    print(
        "  the grid: FR 10 dB tuning / held back, other names woke (tuning + held-back "
        "voices), false accepts (5 h)"
    )
    for fit_level in (-10.0, -11.0, -12.0, -13.0, -14.0, -15.0):
        cells = []
        for margin_level in (3.0, 5.0, 6.0, 7.0, 8.0, 10.0):

            def wakes(h: bench.Heard, f: float = fit_level, m: float = margin_level) -> bool:
                return h.by_sound(level, f, m)

            cells.append(
                f"m{margin_level:g} {reads.fr(wakes, False):4.1f}/{reads.fr(wakes, True):4.1f}% "
                f"{reads.others(wakes, False)}+{reads.others(wakes, True)} {reads.accepts(wakes)}"
            )
        print(f"  {fit_level:6.1f}: " + " | ".join(cells))


def respell(reads: Reads) -> int:
    """Apply :mod:`voiceterm.pipeline.wake_words`' spelling rule as it is now to the kept
    transcripts (the reads may be older than a change to it); how many changed."""
    from voiceterm.pipeline.wake_words import WakePhrase

    phrase = WakePhrase("Hey Jarvis")
    changed = 0
    items = [h for t in reads.trials + reads.near for h in t.heard]
    items += [h for kind in reads.heard.values() for h in kind]
    for h in items:
        if h.transcript is not None and h.rest is not None:
            rest = phrase.after(h.transcript)
            changed += rest is None
            h.rest = rest
    return changed


def print_misses(reads: Reads, rule: Wakes) -> None:
    """Every trial at 10 dB the rule misses, and "Hey <another name>" at 10 dB."""

    def line(t: bench.Trial) -> str:
        parts = []
        for h in t.heard:
            own = "-" if h.own is None else f"{h.own:.1f}"
            margin = "-" if h.own is None or h.fit is None else f"{h.fit - h.own:+.1f}"
            fit_text = "-" if h.fit is None else f"{h.fit:.1f}"
            parts.append(
                f"[{h.speech_start:.1f}-{h.speech_end:.1f} s, best {h.best:.2f}, fit {fit_text}, "
                f"own {own}, margin {margin}, {h.transcript!r}]"
            )
        peak = max((p for _, p in t.scores), default=0.0)
        said = " ".join(parts) or "(no utterance: the VAD kept none)"
        return f"{t.voice} {t.label.split(': ', 1)[1]}, peak {peak:.2f}: {said}"

    print("the rule's misses at 10 dB (peak: the model's best score over the whole trial):")
    for t in reads.trials:
        if t.snr == 10.0 and trial_missed(t, reads.cutoff, rule):
            part = "held back" if t.voice in bench.HELD_BACK_VOICES else "tuning"
            print(f"  {part}, {t.label.split(':')[0]}: {line(t)}")
    print('"Hey <another name>" at 10 dB:')
    for t in reads.near:
        if t.snr == 10.0:
            print(f"  {'WOKE' if not trial_missed(t, reads.cutoff, rule) else 'out '} {line(t)}")


def side_by_side(reads: Reads, before: Wakes, after: Wakes) -> None:
    cutoff = reads.cutoff
    bench.print_rejects(
        reads.trials,
        before=lambda t: trial_missed(t, cutoff, before),
        after=lambda t: trial_missed(t, cutoff, after),
        list_voices=True,
    )
    print("  per voice at 10 dB, missed:")
    for name in sorted({t.voice for t in reads.trials}):
        mine = [t for t in reads.trials if t.voice == name and t.snr == 10.0]
        was = sum(trial_missed(t, cutoff, before) for t in mine)
        now = sum(trial_missed(t, cutoff, after) for t in mine)
        tag = " (held back)" if name in bench.HELD_BACK_VOICES else ""
        print(f"    {name:<16} {was:3d} -> {now:3d} of {len(mine)}{tag}")
    print(
        f'  "Hey <another name>" woke it: tuning voices {reads.others(before, False)} -> '
        f"{reads.others(after, False)}, held back {reads.others(before, True)} -> "
        f"{reads.others(after, True)}"
    )
    hours = sum(seconds for seconds, _, _ in reads.kinds.values()) / 3600
    model = sum(count for _, count, _ in reads.kinds.values())
    print(
        f"  false accepts in {hours:.2f} h: {model + reads.accepts(before)} -> "
        f"{model + reads.accepts(after)} (the model itself {model})"
    )


if __name__ == "__main__":
    sys.exit(main())
