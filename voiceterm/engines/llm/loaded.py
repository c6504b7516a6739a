"""One loaded model as the parts that work on it share it: :class:`LoadedLlama`.

The sampler, the replies and the words-end reader each run llama.cpp calls on the
same model, under the engine's lock; this is what they all need to do so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voiceterm.engines.llm.cache import slide_cache_for
from voiceterm.engines.llm.prompts import ModelPrompts
from voiceterm.engines.llm.threads import LlamaThreads


@dataclass(frozen=True, slots=True)
class LoadedLlama:
    """A loaded model's handles (not thread-safe: the engine's lock guards their use).

    Attributes:
        llama_cpp: The ``llama_cpp`` module.
        llm: The ``llama_cpp.Llama``.
        n_ctx: The context window the engine keeps to.
        prompts: Its prompts (the template, the tokenizer).
        threads: Its threads.
        can_shift: Its KV cache can slide over dropped turns.
    """

    llama_cpp: Any
    llm: Any
    n_ctx: int
    prompts: ModelPrompts
    threads: LlamaThreads
    can_shift: bool

    def slide_cache(self, prompt: Sequence[int]) -> None:
        """Slide the kept turns' cache cells over dropped ones, where the cache can."""
        if self.can_shift:
            slide_cache_for(self.llama_cpp, self.llm, prompt)
