"""Does the user's message end here? The model's own answer, read at a pause.

At each pause the user's words so far are read into the KV cache, inside the
chat template that the answer will use ("Answering during the wait"). Right
after the words, the template puts its end-of-message token (``<|im_end|>`` for
SmolLM2). The model's probability of that token at the position of the last
word is its reading of whether the message is over: high after "What is the
capital of France?", low after "What is the capital of". (LiveKit's first
end-of-turn detector was this idea, with a fine-tuned model; here it is the
instruct model that answers, as it is.)

The prompt is read in two parts, split after the user's words: llama.cpp keeps
the logits of the last position of each read, so the split gives the signal for
the price of one more ``llama_decode`` call (``scripts/bench_turns.py`` measures
it against ``logits_all`` and a one-token read).

On an OpenAI-compatible server (``llm.backend = "openai"``) the logits are not at
hand: the template text up to the user's words goes to ``/v1/completions`` for
one token with its top ``logprobs``, and the end-of-message marker's
probability is read from those (:func:`server_end_probability`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from voiceterm.engines.llm.messages import ChatMessage
from voiceterm.errors import ModelError
from voiceterm.model_json import read_model_json


@dataclass(frozen=True, slots=True)
class WordsEnd:
    """The probability that the user's message ends after ``words``."""

    words: str
    probability: float
    read_s: float
    """Seconds the first part of the split read took (the words' own tokens)."""


class EndProbe(Protocol):
    """Turns the logits after the user's words into P(end of the user's message)."""

    def probability(self, logits: Any) -> float: ...


def user_words_end(
    messages: Sequence[ChatMessage],
    prompt: Sequence[int],
    render: Callable[[Sequence[ChatMessage]], str],
    tokens_of: Callable[[str], list[int]],
) -> int | None:
    """How many tokens of ``prompt`` run to the end of the last user message's words.

    ``None`` when the last message is not the user's, or when the template's text
    does not split cleanly there (the next token would then not be the template's
    own end-of-message token).
    """
    if not messages or messages[-1]["role"] != "user":
        return None
    words = messages[-1]["content"]
    if not isinstance(words, str) or not words.strip():
        return None
    text = render(messages)
    at = text.rfind(words)
    if at < 0:
        return None
    head = tokens_of(text[: at + len(words)])
    count = len(head)
    if count < 1 or count >= len(prompt) or list(prompt[:count]) != head:
        return None
    return count


def end_probability(logits: Any, token: int) -> float:
    """Softmax of ``logits`` (one position's row) at ``token``."""
    import numpy as np

    row = np.asarray(logits, dtype=np.float64)
    peak = float(row.max())
    return float(np.exp(row[token] - peak) / np.exp(row - peak).sum())


# A chat template's end-of-message marker: ``<|im_end|>``, ``<|eot_id|>``, ``</s>``,
# ``<end_of_turn>``: whatever markup the template writes first after the words.
_MARKER = re.compile(r"<\|[^<>|]+\|>|</?[A-Za-z_]+>")


def end_marker(after_words: str) -> str | None:
    """The template's end-of-message marker at the start of the text after the words."""
    found = _MARKER.match(after_words)
    return found.group(0) if found else None


def server_end_probability(logprobs: Any, marker: str) -> float | None:
    """P(``marker`` next) from a completion's ``logprobs`` for its first token.

    Takes both shapes servers send: the completions API's ``top_logprobs`` (a
    list of ``{text: logprob}``; llama-cpp-python's server writes a special token
    as ``""``), and the chat API's ``content[0].top_logprobs`` (a list of
    ``{token, logprob}``, as llama-server sends). A marker missing from a full
    list is at most as likely as the least likely token listed: that bound is
    returned. ``None``: the server listed nothing.
    """
    top = _first_top_logprobs(logprobs)
    if not top:
        return None
    for text in (marker, ""):
        if text in top:
            return math.exp(top[text])
    return math.exp(min(top.values()))


def _first_top_logprobs(logprobs: Any) -> dict[str, float]:
    if not isinstance(logprobs, Mapping):
        return {}
    listed = logprobs.get("top_logprobs")
    if isinstance(listed, list) and listed and isinstance(listed[0], Mapping):
        return {str(k): float(v) for k, v in listed[0].items()}
    content = logprobs.get("content")
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        entries = content[0].get("top_logprobs") or []
        return {
            str(e.get("token", "")): float(e["logprob"])
            for e in entries
            if isinstance(e, Mapping) and "logprob" in e
        }
    return {}


PROBE_FILE = Path(__file__).with_name("words_end_probe.json")
"""The probe that ships with voiceterm (``scripts/fit_text_probe.py``)."""


def log_softmax(logits: Any) -> Any:
    """The log-probabilities of one position's logits (a float32 row)."""
    import numpy as np

    row = np.asarray(logits, dtype=np.float32)
    shifted = row - row.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def entropy_of(log_probs: Any, floor: float = -30.0) -> Any:
    """The entropy (nats) of each row of log-probabilities: how unsure the model is."""
    import numpy as np

    rows = np.asarray(log_probs, dtype=np.float32)
    return -(np.exp(rows) * np.maximum(rows, floor)).sum(axis=-1)


@dataclass(frozen=True, slots=True)
class TextProbe:
    """P(end of the user's message) from the whole next-token distribution after the words.

    A logistic model over the log-probabilities of a few tokens (the end-of-message
    token, punctuation, the tokens the model most often expects next) and the
    distribution's entropy, fitted on text only by ``scripts/fit_text_probe.py``.
    The token ids belong to one model's vocabulary (``model``): :meth:`check`
    compares their text with the loaded model's.
    """

    tokens: tuple[int, ...]
    pieces: tuple[str, ...]
    weights: tuple[float, ...]
    entropy_weight: float
    bias: float
    floor: float
    model: str
    fitted_on: str
    source: Path

    def probability(self, logits: Any) -> float:
        import numpy as np

        row = log_softmax(logits)
        values = np.maximum(row[list(self.tokens)].astype(np.float64), self.floor)
        z = self.bias + float(values @ np.asarray(self.weights))
        if self.entropy_weight:
            z += self.entropy_weight * float(entropy_of(row, self.floor))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def check(self, piece_of: Callable[[int], str], vocabulary: int) -> None:
        """Raise :class:`ModelError` unless the loaded model has the probe's tokens."""
        wrong = [
            (token, piece)
            for token, piece in zip(self.tokens, self.pieces, strict=True)
            if token >= vocabulary or piece_of(token) != piece
        ]
        if wrong:
            token, piece = wrong[0]
            raise ModelError(
                f"The words' end-of-turn probe {self.source} was fitted for {self.model}: "
                f"token {token} is not {piece!r} in this model.",
                hint="refit it with scripts/fit_text_probe.py, or set turn.detector",
            )


def load_probe(path: str | Path | None = None) -> TextProbe:
    """Read a probe file (default: the one voiceterm ships).

    Raises:
        ModelError: the file is missing, not JSON, or not a probe.
    """
    path = Path(path).expanduser() if path else PROBE_FILE
    hint = "reinstall voiceterm, refit with scripts/fit_text_probe.py, or set turn.detector"
    data = read_model_json(path, what="The words' end-of-turn probe", hint=hint)
    try:
        probe = TextProbe(
            tokens=tuple(int(t) for t in data["tokens"]),
            pieces=tuple(str(p) for p in data["pieces"]),
            weights=tuple(float(w) for w in data["weights"]),
            entropy_weight=float(data.get("entropy_weight", 0.0)),
            bias=float(data["bias"]),
            floor=float(data["floor"]),
            model=str(data["model"]),
            fitted_on=str(data.get("fitted_on", "")),
            source=path,
        )
        if not probe.tokens or not len(probe.tokens) == len(probe.pieces) == len(probe.weights):
            raise ValueError("tokens, pieces and weights do not match")
        if any(t < 0 for t in probe.tokens) or not all(
            math.isfinite(v) for v in (*probe.weights, probe.bias, probe.entropy_weight)
        ):
            raise ValueError("a token or a weight is out of range")
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(
            f"The words' end-of-turn probe {path} is not a probe file ({error}).", hint=hint
        ) from None
    return probe
