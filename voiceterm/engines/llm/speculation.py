"""The start of a reply sampled before it is asked for (``LlamaEngine.speculate``).

While the user may still be talking, the engine samples the first tokens of the
reply to the words so far and pauses llama's generator after them. When the same
prompt then comes for real, the reply starts with the tokens already sampled and
the paused generator continues after them, exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Speculation:
    """The start of a reply sampled ahead of time.

    Attributes:
        prompt: The tokens of the prompt it answers.
        tokens: The reply's tokens sampled so far.
        pieces: Their text pieces, as handed out.
        decoder: The UTF-8 decoder after ``tokens``: a split character continues.
        generator: llama's own generator, paused after ``tokens``: resuming it
            continues the very same sampling (its sampler remembers the tokens
            for the repeat penalty). ``None``: the reply ended within ``tokens``.
    """

    prompt: list[int]
    tokens: list[int]
    pieces: list[str]
    decoder: Any
    generator: Iterator[int] | None

    def serves(self, prompt: list[int], grammar: str | None) -> bool:
        """Whether a reply to ``prompt`` can start with it (never under a grammar)."""
        return self.prompt == prompt and grammar is None

    def close(self) -> None:
        """Free llama's paused generator (the KV cache keeps what it evaluated)."""
        if self.generator is not None:
            with contextlib.suppress(Exception):
                self.generator.close()  # type: ignore[attr-defined]
            self.generator = None
