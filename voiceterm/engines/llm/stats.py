"""What one generation cost: :class:`GenerationStats`, and reading llama.cpp's counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

StopReason = Literal["", "stop", "length", "cancelled", "context_full"]


@dataclass(slots=True)
class GenerationStats:
    """What one ``stream_chat`` call cost (monotonic seconds).

    Attributes:
        started_at: When the call began.
        first_token_at: When the first token was sampled (``None`` if none was).
        finished_at: When the call ended (``None`` while it runs).
        prompt_tokens: Tokens in the rendered prompt.
        prompt_tokens_evaluated: Prompt tokens llama.cpp actually ran; the rest
            came from the KV cache of earlier calls.
        prompt_eval_seconds: llama.cpp's own time for evaluating them.
        tokens_generated: Tokens sampled and handed out (the end-of-turn token
            is not counted).
        messages_dropped: Old messages left out to fit the context window.
        speculated_tokens: Tokens of the reply sampled ahead by ``speculate``.
        stop_reason: ``"stop"`` (end of turn), ``"length"`` (max_tokens),
            ``"cancelled"`` or ``"context_full"``.
    """

    started_at: float = 0.0
    first_token_at: float | None = None
    finished_at: float | None = None
    prompt_tokens: int = 0
    prompt_tokens_evaluated: int = 0
    prompt_eval_seconds: float = 0.0
    tokens_generated: int = 0
    messages_dropped: int = 0
    speculated_tokens: int = 0
    stop_reason: StopReason = ""

    @property
    def prompt_tokens_cached(self) -> int:
        """Prompt tokens reused from the KV cache."""
        return self.prompt_tokens - self.prompt_tokens_evaluated

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from the call to the first token."""
        return None if self.first_token_at is None else self.first_token_at - self.started_at

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed after the first token (``None`` below two tokens)."""
        if self.first_token_at is None or self.finished_at is None or self.tokens_generated < 2:
            return None
        elapsed = self.finished_at - self.first_token_at
        return (self.tokens_generated - 1) / elapsed if elapsed > 0 else None


def tokens_read(llama_cpp: Any, llm: Any) -> tuple[int, float]:
    """Tokens evaluated since the perf counters were reset, and the seconds it took.

    llama.cpp counts multi-token batches as "prompt eval" and single tokens as
    "eval"; before the first token everything evaluated was prompt. It reports
    counts of at least 1 (to spare divisions by zero), so a count only counts
    when time was spent on it.
    """
    perf = llama_cpp.llama_perf_context(llm.ctx)
    evaluated = (perf.n_p_eval if perf.t_p_eval_ms > 0 else 0) + (
        perf.n_eval if perf.t_eval_ms > 0 else 0
    )
    return int(evaluated), (perf.t_p_eval_ms + perf.t_eval_ms) / 1000.0


def reset_counters(llama_cpp: Any, llm: Any) -> None:
    """Start counting what :func:`tokens_read` reports from zero."""
    llama_cpp.llama_perf_context_reset(llm.ctx)
