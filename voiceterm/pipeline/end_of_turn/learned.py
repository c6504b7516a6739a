"""One end-of-turn decision from every signal at a pause, learned from recordings.

At a pause the listener knows, in this order: the silence so far, Smart Turn's
probability that the voice sounds done, Whisper's words so far (how many, and
their final punctuation) and, once the LLM has read those words, the model's
probability that the user's message ends there (:mod:`voiceterm.engines.llm.words_end`).
A logistic model turns them into one probability ``p`` that the turn is over,
and ``p`` sets the wait, in one of two shapes:

* a schedule: at or above ``sure`` the turn ends at the first check, at or below
  ``unsure`` only the cap ends it, and in between the wait shrinks linearly from
  the cap to the first check (LiveKit's min/max endpointing delay, made
  continuous). The silence so far is one of the model's inputs, so ``p`` grows
  while the silence goes on;
* a threshold for each check (``thresholds``): the models leave the silence out,
  and the bar that ``p`` must reach falls as the silence goes on, each step
  chosen apart. The pauses that go on are not alike at every silence (a breath
  is over by 300 ms, a sentence end inside a passage by 600 ms, a thinking pause
  later), so one linear term for the silence fits them badly.

Either way new signals (the words, their probability) move ``p`` when they arrive.

Until the words (or their probability) are known, a model fitted without them
judges. The weights, and what they were fitted on, sit in one JSON file made by
``scripts/fit_turn_end.py`` on the tuning part of the recordings only;
:func:`load_weights` reads it, and a missing or broken file is a
:class:`~voiceterm.errors.ModelError` (the app then keeps the hand-set rule).
No word lists: only the punctuation Whisper writes, and the models' own numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voiceterm.errors import ModelError
from voiceterm.model_json import read_model_json

WEIGHTS_FILE = Path(__file__).with_name("turn_weights.json")
"""The weights that ship with voiceterm."""

FEATURES = (
    "voice",
    "words",
    "silence_s",
    "word_count",
    "stop",
    "question",
    "trailing",
    "short",
    "voice_short",
)
"""Every input a model may use (see :func:`features`)."""

WORDS_SIGNALS = ("end_token", "probe")
"""What the LLM's probability may be (see :attr:`TurnWeights.words_signal`)."""

SHORT_WORDS = 3
"""A turn of at most this many words is short: a command, a name, a number.

The voice gets a weight of its own there (``voice_short``): on short finished phrases
("Front left.", "Traitor!") Smart Turn is mostly right and the LLM reads them as the
start of a message, while on longer ones the voice is often sure in mid-sentence."""

_WORD = re.compile(r"[A-Za-z0-9']+")
_TRAILING = (",", ";", ":", "-", "…", "...")
_EDGE = 1e-4


@dataclass(frozen=True, slots=True)
class Signals:
    """What is known at a pause."""

    silence_ms: int
    voice: float
    """Smart Turn's probability that the turn is complete."""
    words: str | None = None
    """Whisper's words so far (``None``: not transcribed yet)."""
    words_end: float | None = None
    """The LLM's probability that the user's message ends after ``words``."""


def _logit(probability: float) -> float:
    p = min(1.0 - _EDGE, max(_EDGE, probability))
    return math.log(p / (1.0 - p))


def features(signals: Signals) -> dict[str, float]:
    """The model inputs: log-odds of the probabilities, counts, punctuation flags."""
    words = (signals.words or "").strip()
    count = len(_WORD.findall(words))
    short = float(0 < count <= SHORT_WORDS)
    voice = _logit(signals.voice)
    values = {
        "voice": voice,
        "silence_s": signals.silence_ms / 1000,
        "word_count": math.log1p(count),
        "stop": float(words.endswith((".", "!"))),
        "question": float(words.endswith("?")),
        "trailing": float(words.endswith(_TRAILING)),
        "short": short,
        "voice_short": voice * short,
    }
    if signals.words_end is not None:
        values["words"] = _logit(signals.words_end)
    return values


@dataclass(frozen=True, slots=True)
class Logistic:
    """``p = sigmoid(bias + sum(weight * feature))`` over the named features."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def probability(self, values: dict[str, float]) -> float:
        z = self.bias + sum(w * values[n] for n, w in zip(self.names, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


@dataclass(frozen=True, slots=True)
class Judgement:
    """The decision about one pause, at one moment of its silence."""

    probability: float
    wait_ms: int
    """The silence after which the turn ends, at this probability."""
    voice: float
    words_end: float | None
    model: str
    """Which model judged: ``early`` (every signal says done), ``full``, ``words`` (no LLM
    probability yet) or ``voice``."""

    def done(self, silence_ms: int) -> bool:
        return silence_ms >= self.wait_ms

    def describe(self, silence_ms: int) -> str:
        """The timeline's words: ``voice 0.82 · words 0.91 → done at 140 ms``."""
        words = "?" if self.words_end is None else f"{self.words_end:.2f}"
        head = f"voice {self.voice:.2f} · words {words} (p {self.probability:.2f})"
        if self.done(silence_ms):
            return f"{head} → done at {silence_ms} ms"
        return f"{head} → wait up to {self.wait_ms / 1000:.1f} s"


@dataclass(frozen=True, slots=True)
class TurnWeights:
    """The fitted models and the wait they set (one weights file)."""

    models: dict[str, Logistic]
    first_ms: int
    cap_ms: int
    sure: float
    unsure: float
    fitted_on: str
    source: Path
    early_sure: float | None = None
    """With every signal known, the ``early`` model (fitted without the silence, on the
    pauses as they stood at the first check) ends the turn at once when its probability
    reaches this; ``None`` (or no ``early`` model): only the wait schedule decides."""
    words_signal: str = "end_token"
    """What the ``words`` feature was fitted on: ``end_token``, the plain probability of
    the template's end-of-message token; ``probe``, the text probe's reading of the
    whole next-token distribution (:class:`voiceterm.engines.llm.words_end.TextProbe`)."""
    thresholds: tuple[tuple[int, float], ...] = ()
    """(silence in ms, the ``p`` that ends the turn from then on), the silences rising and
    the bars falling; before the first silence listed only the cap ends the turn. Empty:
    ``sure`` and ``unsure`` set the wait instead."""

    def wait_ms(self, probability: float) -> int:
        """The silence that ends the turn at ``probability`` (first check .. cap)."""
        if self.thresholds:
            for silence, bar in self.thresholds:
                if probability >= bar:
                    return max(silence, self.first_ms)
            return self.cap_ms
        if probability >= self.sure:
            return self.first_ms
        if probability <= self.unsure:
            return self.cap_ms
        share = (self.sure - probability) / (self.sure - self.unsure)
        return round(self.first_ms + share * (self.cap_ms - self.first_ms))

    def judge(self, signals: Signals) -> Judgement:
        """The probability that the turn is over, and the wait it sets."""
        values = features(signals)
        if signals.words is None:
            name = "voice"
        elif "words" in values and "full" in self.models:
            name = "full"
        else:
            name = "words"
        early = self.models.get("early")
        if name == "full" and early is not None and self.early_sure is not None:
            sure_now = early.probability(values)
            if sure_now >= self.early_sure:
                return Judgement(
                    probability=sure_now,
                    wait_ms=self.first_ms,
                    voice=signals.voice,
                    words_end=signals.words_end,
                    model="early",
                )
        probability = self.models[name].probability(values)
        return Judgement(
            probability=probability,
            wait_ms=self.wait_ms(probability),
            voice=signals.voice,
            words_end=signals.words_end if name == "full" else None,
            model=name,
        )


def _logistic(name: str, model: Any) -> Logistic:
    names = tuple(str(n) for n in model["features"])
    weights = tuple(float(w) for w in model["weights"])
    if len(names) != len(weights) or set(names) - set(FEATURES):
        raise ValueError(f"model {name}: features and weights do not match")
    return Logistic(names, weights, float(model["bias"]))


def load_weights(path: str | Path | None = None) -> TurnWeights:
    """Read a weights file (default: the one voiceterm ships).

    Raises:
        ModelError: the file is missing, not JSON, or lacks a model or a setting.
    """
    path = Path(path).expanduser() if path else WEIGHTS_FILE
    hint = "reinstall voiceterm, refit with scripts/fit_turn_end.py, or set turn.detector"
    data = read_model_json(path, what="The end-of-turn weights file", hint=hint)
    try:
        models = {
            name: _logistic(name, data["models"][name]) for name in ("voice", "words", "full")
        }
        if "early" in data["models"]:  # optional: older files have no early decision
            models["early"] = _logistic("early", data["models"]["early"])
            if "silence_s" in models["early"].names:
                raise ValueError("model early: the early decision does not read the silence")
        wait = data["wait"]
        early_sure = wait.get("early_sure")
        # Optional: older files have only the schedule (sure, unsure), which the bars replace.
        thresholds = tuple((int(ms), float(bar)) for ms, bar in wait.get("thresholds", ()))
        weights_file = TurnWeights(
            models=models,
            first_ms=int(wait["first_ms"]),
            cap_ms=int(wait["cap_ms"]),
            sure=float(wait["sure"]) if not thresholds else 1.0,
            unsure=float(wait["unsure"]) if not thresholds else 0.0,
            fitted_on=str(data.get("fitted_on", "")),
            source=path,
            early_sure=None if early_sure is None or "early" not in models else float(early_sure),
            words_signal=str(data.get("words_signal", "end_token")),
            thresholds=thresholds,
        )
        if weights_file.words_signal not in WORDS_SIGNALS:
            raise ValueError(f"unknown words_signal {weights_file.words_signal!r}")
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(
            f"The end-of-turn weights {path} are not a weights file ({error}).", hint=hint
        ) from None
    silences = [ms for ms, _ in thresholds]
    bars = [bar for _, bar in thresholds]
    if (
        not 0 < weights_file.first_ms <= weights_file.cap_ms
        or not 0.0 <= weights_file.unsure < weights_file.sure <= 1.0
        or silences != sorted(set(silences))
        or bars != sorted(bars, reverse=True)
        or not all(0.0 <= bar <= 1.0 for bar in bars)
        or any(ms >= weights_file.cap_ms for ms in silences)
    ):
        raise ModelError(f"The end-of-turn weights {path} hold an impossible wait.", hint=hint)
    return weights_file
