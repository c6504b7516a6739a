"""Sliding the KV cache over dropped turns (llama.cpp's context shift).

When old turns are dropped, the prompt keeps its start (the system prompt) but
everything after it moves up, so llama-cpp-python's prefix match would read all
kept turns again (~6 ms a token on one core: seconds in a long conversation).
Instead, the dropped turns' cells are removed and the kept ones moved down to
their new positions (llama.cpp re-rotates their keys), as llama.cpp's own
context shift does. The kept turns' cells were computed with the dropped turns
before them; llama.cpp's chat programs live with that too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Slide cached turns down over dropped ones only when it spares at least this
# many tokens of reading (a shift re-rotates every cached key: not free either).
MIN_SHIFT_TOKENS = 32


@dataclass(frozen=True)
class CacheSlide:
    """Cached tokens that can move down to serve a prompt that dropped some turns.

    The prompt equals the cache up to ``start``; the cache's next ``dropped``
    tokens are gone from the prompt; the ``kept`` tokens after them come next in
    the prompt.
    """

    start: int
    dropped: int
    kept: int


def find_slide(cached: Sequence[int], prompt: Sequence[int], min_kept: int) -> CacheSlide | None:
    """Where ``prompt`` skips a stretch of ``cached`` and then goes on with it.

    The slide keeps at most ``len(prompt) - 1`` tokens, so at least one prompt
    token is read afresh (its logits give the first token). None when fewer than
    ``min_kept`` tokens would be spared.
    """
    start = 0
    for cached_token, prompt_token in zip(cached, prompt, strict=False):
        if cached_token != prompt_token:
            break
        start += 1
    room = len(prompt) - 1 - start
    if room < min_kept or len(cached) - start <= min_kept:
        return None
    best: CacheSlide | None = None
    first = prompt[start]
    for resume in range(start + 1, len(cached) - min_kept + 1):
        if cached[resume] != first:
            continue
        kept = 0
        limit = min(room, len(cached) - resume)
        while kept < limit and cached[resume + kept] == prompt[start + kept]:
            kept += 1
        if kept >= min_kept and (best is None or kept > best.kept):
            best = CacheSlide(start=start, dropped=resume - start, kept=kept)
            if kept == limit:
                break
    return best


def cache_can_shift(llama_cpp: Any, llm: Any) -> bool:
    """Whether ``llm``'s KV cache can move positions (:func:`slide_cache_for` works)."""
    # llama-cpp-python before 0.3.10 has no llama_memory_* calls; some caches
    # (recurrent models) cannot move positions.
    if not hasattr(llama_cpp, "llama_memory_seq_add"):
        return False
    return bool(llama_cpp.llama_memory_can_shift(llama_cpp.llama_get_memory(llm.ctx)))


def slide_cache_for(llama_cpp: Any, llm: Any, prompt: Sequence[int]) -> None:
    """Slide the cached turns that ``prompt`` kept down over the ones it dropped.

    Does nothing when no slide spares :data:`MIN_SHIFT_TOKENS`; the caller holds
    the model and has checked :func:`cache_can_shift`.
    """
    if llm.n_tokens == 0:
        return
    cached: list[int] = llm.input_ids[: llm.n_tokens].tolist()
    slide = find_slide(cached, prompt, MIN_SHIFT_TOKENS)
    if slide is None:
        return
    memory = llama_cpp.llama_get_memory(llm.ctx)
    end = slide.start + slide.dropped + slide.kept
    if not llama_cpp.llama_memory_seq_rm(memory, -1, slide.start, slide.start + slide.dropped):
        return  # a model whose cache cannot lose a middle part: read as before
    llama_cpp.llama_memory_seq_rm(memory, -1, end, -1)
    llama_cpp.llama_memory_seq_add(memory, 0, slide.start + slide.dropped, end, -slide.dropped)
    llm.input_ids[slide.start : slide.start + slide.kept] = cached[
        slide.start + slide.dropped : end
    ]
    llm.n_tokens = slide.start + slide.kept
    log.debug("llm: slid %d cached tokens down over %d dropped ones", slide.kept, slide.dropped)
