"""Turn-taking: cut-offs against end-of-turn latency, for several end-of-turn rules.

Two figures, always side by side (as LiveKit's eot-bench prints them):

* **cut-offs**: the share of turns with a pause in them that were ended (answered,
  or split into two turns) before their end;
* **end-of-turn latency**: from the last voiced sample of a complete turn to the
  decision that it is over.

Data: every recording of real people that installs here (Debian's
pocketsphinx-testdata, codec2-examples and linphone-common; PyPI's pyannote.audio,
useful-moonshine-onnx and amfm_decompy: read sentences, commands, radio operators
talking freely, a telephone conversation), cut into whole turns where the speaker
yields (``benchmarks/turn_clips.py``). Each turn with at least five words is also cut
at word boundaries inside the sentence (at least three words before the cut,
two after; the quietest 20 ms between the two words) and ``--pauses`` of
room-level silence are put there. The turns of the held-back speakers
(``benchmarks.turn_clips.HELD_BACK``, about a third) are never used to choose a
threshold or fit a weight (``scripts/fit_turn_end.py``); every figure is printed
for both parts apart.

At each pause of each clip (the real VAD, frame by frame) the real Smart Turn
model is asked at every ``--asks`` silence, real Whisper transcribes the words
so far, and the real LLM reads them and says P(<|im_end|>) after them; the
compute time of Whisper and the LLM is measured, and the rules only use the
words from the silence they would be known at. Rules replayed on those answers:

* ``silence N``: N ms of silence ends the turn;
* ``before Smart Turn``: 300 ms of silence, 400 ms more when the words sound
  unfinished (the rule before the model);
* ``rule``: today's smart_turn rule: complete (>= 0.7) with finished-sounding
  words ends at the check, disagreement at 800 ms, both sure it goes on at the
  1500 ms cap;
* ``Smart Turn alone``: the voice, else the cap;
* ``LLM words alone``: P(end of message) over a threshold ends the turn when
  it is known, else the cap;
* ``learned``: the fitted decision (``voiceterm/pipeline/end_of_turn/learned.py``).

It also prints each signal's ROC AUC at the pause points, against the true ends.

Usage: ``.venv/bin/python scripts/bench_turns.py [--pauses 0.3 0.7 1.0] [--cache F]``
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.corpus import (
    MORE_SPEECH_INSTALL,
    SHORT_PHRASES_INSTALL,
    more_speech_available,
    radio_speech_available,
    real_speech_available,
    short_phrases_available,
)
from benchmarks.stats import percentile
from benchmarks.turn_clips import (
    START_MS,
    Clip,
    Pause,
    analyse,
    ends_at,
    judged,
    learned_end,
    paused_copies,
    read_clips,
    roc_auc,
    synthetic_turns,
    turns_and_sentences,
)
from voiceterm.config import Config
from voiceterm.pipeline.end_of_turn.transcript import sounds_cut_off, sounds_finished


@dataclass(frozen=True, slots=True)
class Rule:
    label: str
    kind: str  # silence | today | smart_turn | words | learned
    silence_ms: int = 300
    ask_ms: int = 160  # silence when the model is asked
    check_ms: int = 160  # silence before its "complete" may end the turn
    threshold: float = 0.5
    unsure_ms: int = 1000  # the silence that ends a turn when the model and the words disagree
    cap_ms: int = 1500
    words: bool = True  # read the words too (the transcript cue); False: the model alone


def decide(rule: Rule, pause: Pause, hold_ms: int, model_ms: float) -> float | None:
    """When (ms after the pause began) ``rule`` ends the turn at this pause, or ``None``."""

    finished_text = sounds_finished(pause.words)

    def held(ends_at: float) -> float | None:
        # The transcript cue: words that sound unfinished wait for more speech, and
        # speech that resumes in that wait joins the turn.
        if finished_text:
            return ends_at
        return ends_at + hold_ms if pause.length_ms + START_MS >= ends_at + hold_ms else None

    if rule.kind == "silence":
        return rule.silence_ms if pause.length_ms >= rule.silence_ms else None
    if rule.kind == "today":
        return held(rule.silence_ms) if pause.length_ms >= rule.silence_ms else None
    if rule.kind == "words":
        # The LLM's P(end of message) alone, once it is known; else the cap.
        known = max(rule.check_ms, pause.words_end_ready_ms)
        if pause.words_end >= rule.threshold and pause.length_ms >= known:
            return known
        return rule.cap_ms if pause.length_ms >= rule.cap_ms else None
    probability = pause.probability.get(rule.ask_ms)
    if probability is None:
        return None  # shorter than the silence before the model is asked
    complete = probability >= rule.threshold
    if complete and (finished_text or not rule.words):
        # The model answers while the silence goes on; speech that resumed first wins.
        decided = max(rule.check_ms, rule.ask_ms + model_ms)
        if pause.length_ms >= decided:
            return decided
    sure_it_goes_on = not complete and (not rule.words or sounds_cut_off(pause.words))
    wait = rule.cap_ms if sure_it_goes_on else rule.unsure_ms
    return wait if pause.length_ms >= wait else None


def model_timing(turn: Any, stt: Any, audio: np.ndarray, runs: int) -> tuple[float, float]:
    """Median ms of one check alone, and while Whisper transcribes on another thread."""
    alone = []
    for _ in range(runs):
        turn.probability(audio)
        alone.append(turn.last_compute_s * 1000)
    busy = []
    stop = threading.Event()

    def transcribe() -> None:
        while not stop.is_set():
            stt.transcribe(audio)

    worker = threading.Thread(target=transcribe, daemon=True)
    worker.start()
    try:
        time.sleep(0.2)
        for _ in range(runs):
            turn.probability(audio)
            busy.append(turn.last_compute_s * 1000)
    finally:
        stop.set()
        worker.join()
    return statistics.median(alone), statistics.median(busy)


def load_clips(args: argparse.Namespace, config: Config) -> tuple[list[Clip], Any, Any]:
    """The analysed clips (from ``--cache`` when it holds them), Smart Turn and Whisper."""
    from faster_whisper import WhisperModel

    from voiceterm.engines.cores import CoreShare
    from voiceterm.engines.llm import LlamaEngine
    from voiceterm.engines.smart_turn import SmartTurn
    from voiceterm.engines.stt import WhisperTranscriber
    from voiceterm.modelstore import resolve_model

    cores = CoreShare()
    print("loading models ...", flush=True)
    stt_path = resolve_model("stt").path
    stt = WhisperTranscriber(stt_path, cores=cores)
    turn = SmartTurn(resolve_model("turn").path, cores=cores)
    cached: dict[tuple[str, str], Clip] = {}
    if args.cache and args.cache.exists():
        old = read_clips(args.cache)
        if all(hasattr(p, "words_end_ready_ms") for c in old for p in c.pauses):
            cached = {(c.kind, c.name): c for c in old}
        else:
            print(f"{args.cache} holds no LLM signal (an older bench): analysing afresh")
    whisper = WhisperModel(str(stt_path), device="cpu", compute_type="int8", local_files_only=True)
    turns, sentences = turns_and_sentences(whisper)
    if args.synthetic:
        synthetic = synthetic_turns()
        turns += synthetic
        sentences += synthetic
    wanted = [(t, "paused") for t, _ in paused_copies(sentences, whisper, args.pauses, args.cuts)]
    wanted += [(t, "whole") for t in turns]
    # Only the clips the cache lacks are analysed (by kind and name; a whole turn's
    # name says where it starts and ends).
    missing = [(t, kind) for t, kind in wanted if (kind, t.name) not in cached]
    if missing:
        llm = LlamaEngine(resolve_model("llm").path, cores=cores)
        checks = sorted(set(args.asks))
        started = time.monotonic()
        for index, (t, kind) in enumerate(missing):
            cached[(kind, t.name)] = analyse(t, kind, turn, stt, llm, checks, config)
            if index % 20 == 19:
                print(f"  {index + 1}/{len(missing)} clips", flush=True)
        llm.close()
        print(f"analysed {len(missing)} clips in {time.monotonic() - started:.0f} s")
    clips = [judged(cached[(kind, t.name)], t) for t, kind in wanted]
    if args.cache is not None:
        args.cache.write_bytes(pickle.dumps(clips))
    return clips, turn, stt


def parts_of(clips: list[Clip]) -> list[str]:
    """The parts present, in the order they are printed."""
    return [p for p in ("tuning", "held-back", "synthetic") if any(c.part == p for c in clips)]


def describe_data(clips: list[Clip]) -> None:
    for part in parts_of(clips):
        whole = [c for c in clips if c.kind == "whole" and c.part == part]
        paused = [c for c in clips if c.kind == "paused" and c.part == part]
        speakers = sorted({c.speaker for c in whole})
        print(
            f"{part}: {len(whole)} whole turns from {len(speakers)} speakers, "
            f"{len(paused)} paused copies ({', '.join(speakers)})"
        )


def separation(clips: list[Clip], weights: Any, ask_ms: int) -> None:
    """ROC AUC of each signal on the pause points against the true ends."""
    from voiceterm.pipeline.end_of_turn.learned import Signals

    print()
    print(
        "ROC AUC at the pause points (true end vs goes on; the pauses of the whole turns "
        f"and of the 700 ms copies; Smart Turn asked at {ask_ms} ms)"
    )
    print(f"{'signal':<44}{'tuning':>8}{'held-back':>11}")
    rows: dict[str, dict[str, float]] = {}
    for part in ("tuning", "held-back"):
        pauses = [
            p
            for c in clips
            if c.part == part and (c.kind == "whole" or c.name.endswith("+700ms"))
            for p in c.pauses
            if ask_ms in p.probability
        ]
        labels = [p.final for p in pauses]
        scores = {
            "Smart Turn (voice)": [p.probability[ask_ms] for p in pauses],
            "LLM P(<|im_end|>) after the words": [p.words_end for p in pauses],
            "word rules: sounds_finished": [float(sounds_finished(p.words)) for p in pauses],
            "word rules: not sounds_cut_off": [float(not sounds_cut_off(p.words)) for p in pauses],
        }
        if weights is not None:
            scores["learned (all signals known)"] = [
                weights.judge(
                    Signals(ask_ms, p.probability[ask_ms], p.words, p.words_end)
                ).probability
                for p in pauses
            ]
        for name, values in scores.items():
            rows.setdefault(name, {})[part] = roc_auc(values, labels)
        rows.setdefault("(pauses: ends / goes on)", {})[part] = float("nan")
        print(f"  {part}: {sum(labels)} true ends, {len(labels) - sum(labels)} pauses that go on")
    for name, auc in rows.items():
        if name.startswith("("):
            continue
        tuning, held = auc.get("tuning", float("nan")), auc.get("held-back", float("nan"))
        print(f"{name:<44}{tuning:8.2f}{held:11.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pauses", type=float, nargs="+", default=[0.3, 0.7, 1.0, 1.5])
    parser.add_argument("--cuts", type=int, default=2, help="pause places per turn")
    parser.add_argument("--asks", type=int, nargs="+", default=[120, 160, 200])
    parser.add_argument("--cache", type=Path, help="keep the signals here (re-runs)")
    parser.add_argument(
        "--weights",
        type=Path,
        nargs="+",
        default=[None],
        help="the learned decision's weights file (default: the shipped one); several: a row "
        "each, side by side",
    )
    parser.add_argument("--verbose", action="store_true", help="print every pause")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="also espeak-ng's questions and commands, a part of their own (fitting only)",
    )
    args = parser.parse_args()
    if not real_speech_available() or not radio_speech_available():
        print(
            "recordings of real people missing: "
            "apt-get install pocketsphinx-testdata codec2-examples"
        )
        return 2
    if not more_speech_available():
        print(f"recordings of real people missing: {MORE_SPEECH_INSTALL}")
        return 2
    if not short_phrases_available():
        print(f"recordings of real people missing: {SHORT_PHRASES_INSTALL}")
        return 2
    from voiceterm.errors import ModelError
    from voiceterm.pipeline.end_of_turn.learned import load_weights

    config = Config()
    clips, turn, stt = load_clips(args, config)
    describe_data(clips)
    learned: list[Any] = []
    for path in args.weights:
        try:
            learned.append(load_weights(path))
            print(f"learned decision: {learned[-1].source} ({learned[-1].fitted_on})")
        except ModelError as error:
            print(f"no learned decision: {error.message}")
    weights = learned[0] if learned else None

    from benchmarks.corpus import real_recordings

    model_ms, model_busy_ms = model_timing(turn, stt, real_recordings()[0].audio, runs=10)
    print(
        f"Smart Turn check (features + model): {model_ms:.0f} ms p50 idle, "
        f"{model_busy_ms:.0f} ms while Whisper transcribes beside it"
    )
    ready = [p.words_end_ready_ms for c in clips for p in c.pauses]
    print(
        f"words and their LLM probability known at {percentile(ready, 50):.0f} ms of silence p50, "
        f"{percentile(ready, 95):.0f} p95 (Whisper + the LLM's read, measured here)"
    )
    separation(clips, weights, 200)

    hold_ms = config.vad.incomplete_wait_ms
    rules: list[tuple[str, Any]] = []

    def add(rule: Rule) -> None:
        rules.append((rule.label, lambda p, r=rule: decide(r, p, hold_ms, model_ms)))

    for ms in (300, 600, 1000):
        add(Rule(f"silence {ms} ms", "silence", silence_ms=ms))
    add(Rule("before Smart Turn: 300 + unfinished 400", "today"))
    add(
        Rule(
            "rule: smart_turn 200/0.7/800/1500 + words",
            "smart_turn",
            ask_ms=200,
            check_ms=200,
            threshold=0.7,
            unsure_ms=800,
            cap_ms=1500,
        )
    )
    for threshold in (0.5, 0.7, 0.9):
        add(
            Rule(
                f"Smart Turn alone {threshold:.1f}, else 1500",
                "smart_turn",
                ask_ms=200,
                check_ms=200,
                threshold=threshold,
                unsure_ms=1500,
                cap_ms=1500,
                words=False,
            )
        )
    for threshold in (0.05, 0.2, 0.5):
        add(
            Rule(
                f"LLM words alone {threshold:.2f}, else 1500",
                "words",
                check_ms=200,
                threshold=threshold,
                cap_ms=1500,
            )
        )
    for fitted in learned:
        name = f" {fitted.source.name}" if len(learned) > 1 else ""
        rules.append(
            (
                f"learned {fitted.first_ms}..{fitted.cap_ms} ms{name}",
                lambda p, w=fitted: learned_end(w, p),
            )
        )
        # The same, had Whisper and the LLM answered by the first check (an idle machine).
        rules.append(
            (
                f"learned, words at the first check{name}",
                lambda p, w=fitted: learned_end(
                    w, dataclasses.replace(p, words_ready_ms=0, words_end_ready_ms=0)
                ),
            )
        )
    for part in parts_of(clips):
        paused = [c for c in clips if c.kind == "paused" and c.part == part]
        whole_clips = [c for c in clips if c.kind == "whole" and c.part == part]
        print()
        print(f"{part}: {len(paused)} paused copies, {len(whole_clips)} whole turns")
        header = f"{'rule':<56}"
        for pause in args.pauses:
            header += f"cut@{pause * 1000:4.0f} "
        header += "  cut all  whole cut   eot p50   eot p95"
        print(header)
        for label, rule_decide in rules:
            row = f"{label:<56}"
            for pause in args.pauses:
                tag = f"+{pause * 1000:.0f}ms"
                group = [c for c in paused if c.name.endswith(tag)]
                cut = sum(ends_at(rule_decide, c)[0] for c in group)
                row += f"{100 * cut / max(1, len(group)):7.0f}% "
            cut_all = sum(ends_at(rule_decide, c)[0] for c in paused)
            results = [ends_at(rule_decide, c) for c in whole_clips]
            whole_cut = sum(r[0] for r in results)
            latency = [r[1] for r in results if r[1] is not None]
            row += (
                f"{100 * cut_all / max(1, len(paused)):7.0f}%  "
                f"{whole_cut:4d}/{len(whole_clips):<4d} "
                f"{percentile(latency, 50):8.0f}  {percentile(latency, 95):8.0f}"
            )
            print(row)
    if args.verbose:
        print_pauses(clips, weights, rules)
    return 0


def print_pauses(clips: list[Clip], weights: Any, rules: list[tuple[str, Any]]) -> None:
    """Every pause of 100 ms or more (and every end): what each signal said, and the waits.

    ``words@`` / ``llm@``: the silence at which Whisper's words and the LLM's
    probability were known; ``rule`` and ``learned``: the silence at which today's
    rule and the learned decision end the turn there (``-``: they do not).
    """
    rule = next(d for label, d in rules if label.startswith("rule:"))
    learned = next((d for label, d in rules if label.startswith("learned ")), None)
    print()
    print(
        "each pause (100 ms or more, and each end): clip, silence, Smart Turn at the first "
        "check, words@, LLM P(end) and llm@, rule / learned end (ms), learned p at the "
        "first check with everything known; the words"
    )
    first = weights.first_ms if weights is not None else 200
    for part in parts_of(clips):
        print(f"-- {part}")
        for clip in clips:
            if clip.part != part:
                continue
            for p in clip.pauses:
                if not p.final and p.length_ms < 100:
                    continue
                length = "END" if p.final else f"{p.length_ms}"
                voice = p.probability.get(first, float("nan"))
                ends = [rule(p), learned(p) if learned is not None else None]
                shown = " / ".join("-" if e is None else f"{e:.0f}" for e in ends)
                fused = float("nan")
                if weights is not None and first in p.probability:
                    from voiceterm.pipeline.end_of_turn.learned import Signals

                    fused = weights.judge(
                        Signals(first, voice, p.words, p.words_end if p.words else None)
                    ).probability
                print(
                    f"  {clip.name[:34]:<34} {length:>5} voice {voice:.2f} "
                    f"words@{p.words_ready_ms:4.0f} "
                    f"llm {p.words_end:.3f}@{p.words_end_ready_ms:4.0f} "
                    f"-> {shown:>11}  p {fused:.2f}  {p.words[-48:]!r}"
                )


if __name__ == "__main__":
    sys.exit(main())
