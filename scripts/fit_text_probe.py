"""Fit the words' end-of-turn signal: a linear probe over the LLM's next-token distribution.

At a pause the app reads the user's words into the LLM inside the chat template
(``voiceterm.engines.llm.words_end``). The plain P(<|im_end|>) after them uses
one number of the model's next-token distribution; this probe uses many: the
log-probabilities of the end-of-message token, of punctuation, and of the K
tokens the model most often expects next, weighed by a small logistic model.

It is trained on TEXT ONLY, as LiveKit trained its detector: finished messages
(positive) against the same messages cut at a word boundary (negative). The
texts come from packages that install here (``bash scripts/setup.sh --dev``):

* ``chatterbot-corpus`` (PyPI, BSD-3-Clause): its English dialogues, every line;
* ``home-assistant-intents`` (PyPI, Apache-2.0): its English voice commands,
  templates expanded at random (slot values are generic words written here);
* Debian's ``fortunes`` (public domain and free licences, see its copyright):
  one-sentence sayings of 3-25 words.

Never the benchmarks' recordings: any text sharing five words in a row with a
transcript in ``--cache`` is dropped. The cache's tuning pauses choose between
the probe variants (ROC AUC at the pause points, true end against goes on); the
held-back pauses are printed only.

Writes ``voiceterm/engines/llm/words_end_probe.json`` (``--out``): the token ids
with their text (checked against the model at load), the weights, and how and on
what they were fitted. ``--write-cache FILE`` also writes a copy of the clips
cache whose ``words_end`` is the probe's reading, for ``scripts/fit_turn_end.py``
and ``scripts/bench_turns.py``.

Usage: ``.venv/bin/python scripts/fit_text_probe.py --cache /tmp/eot6/clips.pkl
[--write-cache /tmp/eot7/clips.pkl]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import random
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fitting import fit_logistic
from benchmarks.stats import percentile
from benchmarks.turn_clips import pause_points, read_clips, roc_auc
from voiceterm.engines.llm.words_end import (
    PROBE_FILE,
    TextProbe,
    entropy_of,
    log_softmax,
)

FORTUNES = Path("/usr/share/games/fortunes")
FORTUNE_FILES = ("fortunes", "literature", "riddles", "wisdom", "people", "humorists", "work")
SPECIAL_PIECES = (".", "?", "!", ",", "...", " and", " the", " to", " of", " a")
"""Tokens every variant reads (besides the end-of-message token)."""
SIZES = (0, 16, 64, 256, 1024)
RIDGES = (1.0, 10.0, 100.0)
FLOOR = -30.0
SEED = 7

# Generic slot values for the Home Assistant command templates (written here).
SLOTS = {
    "area": ("kitchen", "living room", "bedroom", "office", "garage", "bathroom", "hallway"),
    "floor": ("upstairs", "downstairs", "first floor", "ground floor"),
    "name": (
        "kitchen light",
        "ceiling fan",
        "front door",
        "TV",
        "heater",
        "desk lamp",
        "garage door",
        "thermostat",
        "speaker",
    ),
    "wildcard": (
        "milk",
        "eggs",
        "pizza",
        "the news",
        "jazz",
        "dinner is ready",
        "pasta",
        "my keys",
        "laundry",
        "Paris",
    ),
}


def chatterbot_lines() -> list[str]:
    """Every line of chatterbot-corpus's English dialogues."""
    from importlib import resources

    import yaml

    folder = resources.files("chatterbot_corpus") / "data" / "english"
    lines: list[str] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yml"):
            continue
        data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        for conversation in data.get("conversations") or []:
            lines += [str(line).strip() for line in conversation if isinstance(line, str)]
    return lines


def _expand(template: str, rules: dict[str, str], lists: dict[str, Any], rng: random.Random) -> str:
    """One random sentence of a Home Assistant template: (a|b), [optional], <rule>, {slot}."""
    out: list[str] = []
    index = 0
    while index < len(template):
        char = template[index]
        if char in "([":
            depth, end = 0, index
            for end in range(index, len(template)):
                if template[end] in "([":
                    depth += 1
                elif template[end] in ")]":
                    depth -= 1
                    if depth == 0:
                        break
            inner = template[index + 1 : end]
            index = end + 1
            if char == "[" and rng.random() < 0.5:
                continue
            options, depth, start = [], 0, 0
            for position, piece in enumerate(inner):
                if piece in "([":
                    depth += 1
                elif piece in ")]":
                    depth -= 1
                elif piece == "|" and depth == 0:
                    options.append(inner[start:position])
                    start = position + 1
            options.append(inner[start:])
            out.append(_expand(rng.choice(options), rules, lists, rng))
        elif char == "<":
            end = template.index(">", index)
            out.append(_expand(rules.get(template[index + 1 : end], ""), rules, lists, rng))
            index = end + 1
        elif char == "{":
            end = template.index("}", index)
            out.append(_slot(template[index + 1 : end].split(":")[0], rules, lists, rng))
            index = end + 1
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _slot(name: str, rules: dict[str, str], lists: dict[str, Any], rng: random.Random) -> str:
    listed = lists.get(name) or {}
    if "values" in listed:
        value = rng.choice(listed["values"])
        return _expand(str(value["in"] if isinstance(value, dict) else value), rules, lists, rng)
    if "range" in listed:
        low, high = int(listed["range"].get("from", 0)), int(listed["range"].get("to", 100))
        return str(rng.randint(low, min(high, low + 60)))
    return rng.choice(SLOTS.get(name, SLOTS["wildcard"]))


def home_assistant_commands(rng: random.Random, per_template: int = 2) -> list[str]:
    """Home Assistant's English voice command templates, expanded at random."""
    from importlib import resources

    data = json.loads(
        (resources.files("home_assistant_intents") / "data" / "en.json").read_text("utf-8")
    )
    rules, lists = data["expansion_rules"], data["lists"]
    found: list[str] = []
    for intent in data["intents"].values():
        for block in intent["data"]:
            for template in block["sentences"]:
                for _ in range(per_template):
                    text = re.sub(r"\s+", " ", _expand(template, rules, lists, rng)).strip()
                    if text:
                        found.append(text[0].upper() + text[1:])
    return found


def fortune_lines(rng: random.Random) -> list[str]:
    """One-sentence sayings of 3-25 words from Debian's fortunes."""
    found: list[str] = []
    for name in FORTUNE_FILES:
        path = FORTUNES / name
        if not path.exists():
            continue
        for block in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [line for line in block.strip().splitlines() if line.strip()]
            if not lines or any("\t" in line or line.lstrip().startswith("--") for line in lines):
                continue
            text = " ".join(line.strip() for line in lines)
            if ":" in text or '"' in text or not 3 <= len(text.split()) <= 25:
                continue
            if len(re.findall(r"[.!?](\s|$)", text)) == 1 and text.endswith((".", "!", "?")):
                found.append(text)
    return found


QUESTION = re.compile(
    r"^(what|what's|how|who|where|when|why|which|is|are|can|could|do|does|will|would|should)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    finished: bool
    source: str


def samples(texts: Iterable[tuple[str, str]], rng: random.Random) -> list[Sample]:
    """Each finished text, and one copy cut at a word boundary.

    Whisper writes a full stop after most finished sentences, but not after many
    short commands; it writes none after most cut ones, and a comma where the
    speaker paused. So: a finished text keeps its final punctuation half the time
    (a command gets "." or "?" half the time), and a cut one ends as the cut left
    it. A cut right after a sentence end inside the text is not taken (it would be
    an end), nor one that is itself a finished text ("Stop" of "Stop the timer").
    """
    texts = list(texts)
    finished = {norm(text) for text, _ in texts}
    out: list[Sample] = []
    for text, source in texts:
        words = text.split()
        if not words:
            continue
        final = text
        if final.endswith((".", "!", "?")) and rng.random() < 0.5:
            final = final.rstrip(".!?")
        elif not final.endswith((".", "!", "?")) and rng.random() < 0.5:
            final += "?" if QUESTION.match(final) else "."
        out.append(Sample(final, True, source))
        cuts = [i for i in range(1, len(words)) if not words[i - 1].endswith((".", "!", "?"))]
        if cuts:
            cut = " ".join(words[: rng.choice(cuts)])
            if norm(cut) not in finished:
                out.append(Sample(cut, False, source))
    return out


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def clean(texts: list[str], banned: set[tuple[str, ...]]) -> list[str]:
    """Unique texts, without any that shares five words in a row with a benchmark transcript."""
    kept, seen = [], set()
    for text in texts:
        key = text.lower()
        if key in seen or not text.strip():
            continue
        seen.add(key)
        if banned & set(ngrams(text)):
            continue
        kept.append(text)
    return kept


def ngrams(text: str, n: int = 5) -> list[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


class Reader:
    """The log-softmax rows after the user's words, read exactly as the app's pause read."""

    def __init__(self) -> None:
        from voiceterm.config import Config
        from voiceterm.engines.llm import LlamaEngine
        from voiceterm.modelstore import resolve_model

        self.engine = LlamaEngine(resolve_model("llm").path)
        self.engine.words_end_probe = self
        self.system = {"role": "system", "content": Config().llm.system_prompt}
        self._row: Any = None
        self.spent: list[float] = []

    def probability(self, logits: Any) -> float:
        started = time.process_time()
        self._row = log_softmax(logits).astype(np.float16)
        self.spent.append(time.process_time() - started)
        return 0.5

    def rows(self, texts: list[str], label: str) -> Any:
        out = np.empty((len(texts), self.engine.vocabulary_size), dtype=np.float16)
        started = time.monotonic()
        for index, text in enumerate(texts):
            self._row = None
            self.engine.warm_up([self.system, {"role": "user", "content": text}])
            # No reading (the app has none either): the words are also in the template's tail.
            out[index] = np.nan if self._row is None else self._row
            if index % 500 == 499:
                print(f"  {label}: {index + 1}/{len(texts)} ({time.monotonic() - started:.0f} s)")
        return out

    def piece(self, token: int) -> str:
        return self.engine.token_piece(token)

    def token(self, piece: str) -> int | None:
        ids = self.engine.token_ids(piece)
        return ids[0] if len(ids) == 1 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="bench_turns.py --cache FILE")
    parser.add_argument("--out", type=Path, default=PROBE_FILE)
    parser.add_argument("--rows", type=Path, help="keep the read rows here (a rerun reuses them)")
    parser.add_argument("--write-cache", type=Path, help="the clips with the probe's words_end")
    parser.add_argument("--per-source", type=int, default=2000, help="at most this many texts")
    args = parser.parse_args()
    rng = random.Random(SEED)
    clips = read_clips(args.cache)
    banned = {g for c in clips for p in c.pauses for g in ngrams(p.words)}
    sources = {
        "chatterbot-corpus": clean(chatterbot_lines(), banned),
        "home-assistant-intents": clean(home_assistant_commands(rng), banned),
        "Debian fortunes": clean(fortune_lines(rng), banned),
    }
    for texts in sources.values():
        rng.shuffle(texts)
        del texts[args.per_source :]
    for name, texts in sources.items():
        print(f"{name}: {len(texts)} texts, e.g. {texts[:: max(1, len(texts) // 4)][:4]}")
    data = samples(((t, name) for name, texts in sources.items() for t in texts), rng)
    labels = np.array([s.finished for s in data], dtype=float)
    print(f"{len(data)} samples, {int(labels.sum())} finished, {int(len(data) - labels.sum())} cut")
    pause_words = sorted({p.words for c in clips for p in c.pauses if p.words.strip()})

    reader = Reader()
    load = os.getloadavg()[0]
    if args.rows is not None and args.rows.exists():
        stored = np.load(args.rows)
        rows, clip_rows = stored["rows"], stored["clip_rows"]
        assert len(rows) == len(data) and len(clip_rows) == len(pause_words)
    else:
        rows = reader.rows([s.text for s in data], "corpus")
        clip_rows = reader.rows(pause_words, "pauses")
        if args.rows is not None:
            np.savez(args.rows, rows=rows, clip_rows=clip_rows)
    read_ok = ~np.isnan(rows[:, 0])
    if not read_ok.all():
        print(f"dropped {int((~read_ok).sum())} texts the template gives no reading for")
        rows, labels = rows[read_ok], labels[read_ok]
        data = [s for s, ok in zip(data, read_ok, strict=True) if ok]
    of_words = {w: i for i, w in enumerate(pause_words) if not np.isnan(clip_rows[i, 0])}
    end_token = reader.token("<|im_end|>")
    assert end_token is not None
    specials = [end_token] + [t for t in map(reader.token, SPECIAL_PIECES) if t is not None]
    # The K tokens the model most expects after the corpus's texts (mean probability).
    mean_p = np.exp(rows.astype(np.float32)).mean(axis=0)
    by_mass = [int(t) for t in np.argsort(-mean_p) if int(t) not in specials]

    # Text-wise split of the corpus for a sanity check of the fit itself.
    test = np.array([i % 5 == 0 for i in range(len(data))])
    parts = {part: pause_points(clips, part) for part in ("tuning", "held-back")}

    def spread(matrix: Any) -> Any:
        return np.concatenate(
            [
                entropy_of(matrix[i : i + 1000].astype(np.float32))
                for i in range(0, len(matrix), 1000)
            ]
        )

    entropies = {id(rows): spread(rows), id(clip_rows): spread(clip_rows)}

    def features(matrix: Any, tokens: list[int], entropy: bool) -> Any:
        x = np.maximum(matrix[:, tokens].astype(np.float64), FLOOR)
        if entropy:
            x = np.hstack([x, entropies[id(matrix)][:, None]])
        return x

    def clip_scores(tokens: list[int], entropy: bool, w: Any, b: float, part: str) -> list[float]:
        idx = [of_words.get(p.words, -1) for p in parts[part]]
        x = features(clip_rows, tokens, entropy)[[max(0, i) for i in idx]]
        z = x @ w + b
        return [float(v) if i >= 0 else 0.0 for v, i in zip(z, idx, strict=True)]

    plain = {part: [p.words_end for p in pauses] for part, pauses in parts.items()}
    truth = {part: [p.final for p in pauses] for part, pauses in parts.items()}
    print(
        f"\nROC AUC at the pause points (true end vs goes on; tuning {len(parts['tuning'])}, "
        f"held back {len(parts['held-back'])} pauses; held back printed only, never chosen on)"
    )
    print(
        f"  plain P(<|im_end|>): tuning {roc_auc(plain['tuning'], truth['tuning']):.3f}, "
        f"held back {roc_auc(plain['held-back'], truth['held-back']):.3f}"
    )
    plain_auc = roc_auc(plain["tuning"], truth["tuning"])
    print(f"{'variant':<32} {'corpus test':>11} {'tuning':>7} {'held back':>9}")
    best: tuple[float, str, list[int], bool, float] | None = None
    for size in SIZES:
        tokens = specials + by_mass[:size]
        for entropy in (False, True):
            for ridge in RIDGES:
                x = features(rows, tokens, entropy)
                w, b = fit_logistic(x[~test], labels[~test], ridge=ridge)
                corpus = roc_auc(list(x[test] @ w + b), list(labels[test] > 0))
                tuning = roc_auc(clip_scores(tokens, entropy, w, b, "tuning"), truth["tuning"])
                held = roc_auc(clip_scores(tokens, entropy, w, b, "held-back"), truth["held-back"])
                name = f"K={size:<4} entropy={'y' if entropy else 'n'} ridge={ridge:g}"
                print(f"{name:<32} {corpus:11.3f} {tuning:7.3f} {held:9.3f}")
                if best is None or tuning > best[0]:
                    best = (tuning, name, tokens, entropy, ridge)
    assert best is not None
    tuning_auc, name, tokens, entropy, ridge = best
    x = features(rows, tokens, entropy)
    w, b = fit_logistic(x, labels, ridge=ridge)
    held = roc_auc(clip_scores(tokens, entropy, w, b, "held-back"), truth["held-back"])
    print(f"\nchosen on the tuning pauses: {name} (tuning {tuning_auc:.3f}; held back {held:.3f})")
    probe = TextProbe(
        tokens=tuple(tokens),
        pieces=tuple(reader.piece(t) for t in tokens),
        weights=tuple(float(v) for v in w[: len(tokens)]),
        entropy_weight=float(w[len(tokens)]) if entropy else 0.0,
        bias=b,
        floor=FLOOR,
        model=reader.engine.model_name,
        fitted_on="",
        source=args.out,
    )
    for text in ("What is the capital of France?", "What is the capital of", "Cancel that."):
        messages: Any = [reader.system, {"role": "user", "content": text}]
        reader.engine.words_end_probe = probe
        reader.engine.warm_up(messages)
        latest = reader.engine.last_words_end
        print(f"  {text!r}: {latest.probability if latest else float('nan'):.3f}")
    reader.engine.words_end_probe = reader
    spent = []
    for row in clip_rows[:200]:
        started = time.process_time()
        probe.probability(row.astype(np.float32))
        spent.append(1000 * (time.process_time() - started))
    print(
        f"the probe's cost per pause: {percentile(spent, 50):.2f} ms CPU p50 on the logits "
        f"(log-softmax of the row and the weights; 200 rows, load {os.getloadavg()[0]:.1f})"
    )
    counts = {n: sum(s.source == n for s in data) for n in sources}
    data_json = {
        "format": 1,
        "model": probe.model,
        "fitted_on": (
            f"{len(data)} samples of {sum(len(t) for t in sources.values())} texts, none from "
            "the benchmarks' recordings (any sharing five words in a row with their transcripts "
            "dropped); samples: "
            + "; ".join(f"{n} {c}" for n, c in counts.items())
            + " (chatterbot-corpus: English dialogue lines; home-assistant-intents: English "
            "command templates expanded at random; Debian fortunes: one-sentence sayings); "
            "each finished text (positive) and the same cut at a word boundary (negative)"
        ),
        "fitted_by": (
            "scripts/fit_text_probe.py (logistic regression on standardised log-probabilities "
            f"floored at {FLOOR:g}, Newton, ridge {ridge:g}; the variant ({name}) chosen by "
            "ROC AUC at the tuning pauses of the end-of-turn recordings, "
            f"{tuning_auc:.3f}; plain P(<|im_end|>) {plain_auc:.3f})"
        ),
        "fitted_at": datetime.date.today().isoformat(),
        "load": round(load, 1),
        "tokens": list(probe.tokens),
        "pieces": list(probe.pieces),
        "weights": [round(v, 5) for v in probe.weights],
        "entropy_weight": round(probe.entropy_weight, 5),
        "bias": round(probe.bias, 5),
        "floor": FLOOR,
    }
    args.out.write_text(json.dumps(data_json, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    if args.write_cache is not None:
        read = {
            words: probe.probability(clip_rows[i].astype(np.float32))
            for words, i in of_words.items()
        }
        new = [
            replace(
                c, pauses=[replace(p, words_end=read.get(p.words, p.words_end)) for p in c.pauses]
            )
            for c in clips
        ]
        args.write_cache.write_bytes(pickle.dumps(new))
        print(f"wrote {args.write_cache}")
    reader.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
