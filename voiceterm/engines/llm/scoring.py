"""How likely a loaded model finds a text: for comparing two builds of one model."""

from __future__ import annotations

from typing import Any


def mean_log_probability(llama_cpp: Any, llm: Any, text: str) -> float:
    """``text``'s mean log-probability per token under ``llm``; clears its KV cache.

    An 8-bit copy knows as much as the original when this hardly moves.
    """
    import numpy as np

    tokens = llm.tokenize(text.encode())
    total = 0.0
    llm.reset()
    for index, token in enumerate(tokens[:-1]):
        llm.eval([token])
        # llama-cpp-python keeps no logits without logits_all: llama.cpp's own.
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits(llm.ctx), shape=(llm.n_vocab(),)
        ).astype(np.float64)
        peak = float(logits.max())
        normaliser = peak + float(np.log(np.exp(logits - peak).sum()))
        total += float(logits[tokens[index + 1]]) - normaliser
    llm.reset()
    return total / max(1, len(tokens) - 1)
