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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from voiceterm.engines.llm.messages import ChatMessage


@dataclass(frozen=True, slots=True)
class WordsEnd:
    """The probability that the user's message ends after ``words``."""

    words: str
    probability: float
    read_s: float
    """Seconds the first part of the split read took (the words' own tokens)."""


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
