"""Replies from the in-process model, with its KV cache kept between calls.

:class:`Replies` does the work behind ``LlamaEngine``'s calls (which hold the
model's lock around it):

- fits the conversation into the window (:class:`~.messages.TrimmedWindow`) for
  the room a reply keeps (:func:`~.messages.reply_budget`), the same for every
  call, so a prompt read ahead is the prompt the reply finds in the cache;
- slides the cache over dropped turns instead of reading the kept ones again
  (:mod:`.cache`); llama.cpp then only evaluates what differs from the cache;
- samples a reply (:mod:`.sampling`), or starts one ahead of time and pauses it
  (:mod:`.speculation`), or only reads a prompt into the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from voiceterm.engines.llm.loaded import LoadedLlama
from voiceterm.engines.llm.messages import ChatMessage, ToolSpecs, TrimmedWindow, reply_budget
from voiceterm.engines.llm.protocol import SampledStart
from voiceterm.engines.llm.sampling import Sampler, decoder_for_utf8, flush, next_token
from voiceterm.engines.llm.speculation import Speculation
from voiceterm.engines.llm.stats import GenerationStats, reset_counters, tokens_read
from voiceterm.engines.llm.words_end_reader import WordsEndReader


@dataclass(eq=False)
class Replies:
    """Generates from a loaded model; not thread-safe (the engine's lock guards it)."""

    model: LoadedLlama
    max_tokens: int
    """The default cap on a reply's tokens."""
    sampler: Sampler
    """Samples its tokens, cancellably."""
    words_end: WordsEndReader
    """Reads P(end of message) at pauses."""
    window: TrimmedWindow = field(init=False)
    stats: GenerationStats = field(init=False, default_factory=GenerationStats)
    """Of the last (or running) reply."""
    last_read_tokens: int = field(init=False, default=0)
    """Prompt tokens the latest :meth:`evaluate` had to read."""
    _speculation: Speculation | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.window = TrimmedWindow(self.model.prompts.size, self.model.prompts.keep_tail)

    def fit(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int | None,
        tools: ToolSpecs = None,
        room: int = 0,
    ) -> tuple[int, list[ChatMessage]]:
        """The reply's budget, and ``messages`` fitted to leave it (and ``room``) free."""
        n_ctx = self.model.n_ctx
        budget = reply_budget(max_tokens, self.max_tokens, n_ctx)
        return budget, self.window.fit(messages, n_ctx - budget - room, tools)

    def reply(
        self,
        messages: Sequence[ChatMessage],
        cancel: Any,
        max_tokens: int | None,
        grammar: str | None,
        tools: ToolSpecs,
    ) -> Generator[str, None, None]:
        """The reply's pieces, continuing a speculation for this very prompt if one waits."""
        stats = GenerationStats(started_at=time.monotonic())
        self.stats = stats
        budget, fitted = self.fit(messages, max_tokens, tools)
        stats.messages_dropped = len(messages) - len(fitted)
        prompt = self.model.prompts.tokens(fitted, tools)
        stats.prompt_tokens = len(prompt)
        compiled_grammar = self.sampler.compile_grammar(grammar)
        speculation, self._speculation = self._speculation, None
        if speculation is not None and not speculation.serves(prompt, grammar):
            speculation.close()
            speculation = None
        if cancel.is_set():
            if speculation is not None:
                speculation.close()
            stats.stop_reason = "cancelled"
            stats.finished_at = time.monotonic()
            return
        if speculation is None:
            reset_counters(self.model.llama_cpp, self.model.llm)
            tokens = self._start(prompt, compiled_grammar)
            yield from self.sampler.sample(tokens, cancel, budget, stats, decoder_for_utf8())
            return
        yield from self._continue(speculation, cancel, budget, stats)

    def _continue(
        self, speculation: Speculation, cancel: Any, budget: int, stats: GenerationStats
    ) -> Generator[str, None, None]:
        """The start of this very reply was sampled ahead of time: hand it out, go on."""
        stats.first_token_at = time.monotonic()
        stats.tokens_generated = stats.speculated_tokens = len(speculation.tokens)
        yield from speculation.pieces
        if speculation.generator is None or stats.tokens_generated >= budget:
            stats.stop_reason = "stop" if speculation.generator is None else "length"
            speculation.close()
            yield from flush(speculation.decoder)
            stats.finished_at = time.monotonic()
            return
        yield from self.sampler.sample(
            speculation.generator, cancel, budget, stats, speculation.decoder
        )

    def _start(self, prompt: list[int], compiled_grammar: Any = None) -> Iterator[int]:
        """llama's generator for ``prompt``, after sliding the cache to fit it."""
        self.model.slide_cache(prompt)
        return self.sampler.start(prompt, compiled_grammar)

    def speculate(
        self,
        messages: Sequence[ChatMessage],
        cancel: Any,
        tokens: int,
        max_tokens: int | None,
        enough: Callable[[str], bool] | None,
    ) -> SampledStart:
        """Sample the reply's first ``tokens`` and keep llama's generator paused after them."""
        self.drop_speculation()
        budget, fitted = self.fit(messages, max_tokens)
        prompt = self.model.prompts.tokens(fitted)
        stats = GenerationStats(started_at=time.monotonic())
        decoder = decoder_for_utf8()
        sampled: list[int] = []
        reset_counters(self.model.llama_cpp, self.model.llm)
        self.words_end.read(fitted, prompt)
        generator = self._start(prompt)
        pieces = list(
            self.sampler.sample(
                generator, cancel, min(tokens, budget), stats, decoder, sampled, enough
            )
        )
        if stats.stop_reason not in ("length", "stop"):
            return SampledStart()  # cancelled, or no room left: nothing to go on from
        ended = stats.stop_reason == "stop"  # the whole reply is in ``pieces``
        self._speculation = Speculation(
            prompt=prompt,
            tokens=sampled,
            pieces=pieces,
            decoder=decoder,
            generator=None if ended else generator,
        )
        return SampledStart(pieces=tuple(pieces), whole_reply=ended)

    def drop_speculation(self) -> None:
        """Forget a reply's start sampled ahead (another prompt comes)."""
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            speculation.close()

    def evaluate(
        self, messages: Sequence[ChatMessage], *, every_core: bool, words_end: bool = False
    ) -> None:
        """Put the prompt of ``messages`` (already fitted) into the KV cache.

        With ``words_end``, the prompt is read in two parts, split after the user's
        words, and the words-end reader says how likely their message ends there.
        """
        self.drop_speculation()
        model = self.model
        prompt = model.prompts.tokens(messages)
        model.slide_cache(prompt)
        reset_counters(model.llama_cpp, model.llm)
        if words_end:
            self.words_end.read(messages, prompt)
        tokens = model.llm.generate(prompt, temp=0.0)
        try:
            with model.threads.compute_step(every_core=every_core):
                next_token(tokens)
        finally:
            tokens.close()
        self.last_read_tokens, _ = tokens_read(model.llama_cpp, model.llm)

    def forget(self) -> None:
        """The KV cache is cleared: nothing sampled or fitted ahead holds any more."""
        self.drop_speculation()
        self.window.forget()
        self.words_end.forget()
