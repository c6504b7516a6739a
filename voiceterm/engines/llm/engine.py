"""The LLM stage's engine: a GGUF model run by llama-cpp-python, streamed token by token.

:class:`LlamaEngine` chats with a loaded model (:class:`~.model.LlamaModel`: the
weights, threads and tokenizer). Its blocking calls run one at a time under the
model's lock, and ``stream_chat`` runs the blocking reply in a worker thread
(:mod:`.stream`). It composes the package's parts:

- renders and tokenizes the conversation with the model's own chat template
  (:mod:`.prompts`, :mod:`.template`);
- generates (:mod:`.replies`): keeps the conversation inside the context window
  by dropping the oldest turns in steps (:mod:`.messages`), slides the kept
  turns' cache cells over the dropped ones (:mod:`.cache`), keeps the KV cache
  between calls (the next prompt only evaluates what differs), samples
  cancellably (:mod:`.sampling`) on the cores the other engines leave free
  (:mod:`.threads`), starts a reply ahead of time (:mod:`.speculation`);
- reads P(end of the user's message) at a pause (:mod:`.words_end_reader`);
- reports what the last call cost (:mod:`.stats`).

``llama_cpp`` is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Unpack

from voiceterm.engines.llm.cache import cache_can_shift
from voiceterm.engines.llm.loaded import LoadedLlama
from voiceterm.engines.llm.messages import ChatMessage, ToolSpecs
from voiceterm.engines.llm.model import LlamaModel, ModelOptions
from voiceterm.engines.llm.protocol import SampledStart
from voiceterm.engines.llm.replies import Replies
from voiceterm.engines.llm.sampling import Sampler, SamplingSettings
from voiceterm.engines.llm.scoring import mean_log_probability
from voiceterm.engines.llm.stats import GenerationStats
from voiceterm.engines.llm.stream import astream_chat
from voiceterm.engines.llm.words_end import EndProbe, TextProbe, WordsEnd
from voiceterm.engines.llm.words_end_reader import WordsEndReader
from voiceterm.errors import EngineError

log = logging.getLogger(__name__)

# How long a second caller waits for a running generation before giving up.
LOCK_TIMEOUT_S = 30.0

DEFAULT_SAMPLING = SamplingSettings()
"""SmolLM2's recommended sampling (temperature 0.2, top_p 0.9)."""


class LlamaEngine(LlamaModel):
    """A loaded GGUF chat model with a streaming, cancellable chat call.

    Implements :class:`~voiceterm.engines.llm.protocol.ChatEngine` and all its
    capabilities (``Speculates``, ``WarmsUp``, ``ReadsAhead``, ``HasChatTemplate``).

    One engine runs one generation at a time (a second caller waits for the
    first); :class:`~.replies.Replies` does the work.

    Args:
        model_path, model_options: The model to load, as :class:`~.model.LlamaModel`
            takes it (``n_ctx``, ``n_threads``, ``cores``, ``seed``...).
        sampling: How the next token is picked (``SamplingSettings(temperature=0.0)``
            is greedy).
        max_tokens: Default cap on tokens per answer.
        slide_cache: At a trim, move the kept turns' cache cells down instead of
            reading them again (off only to measure what it spares).

    Raises:
        ModelError: The file is missing, not GGUF, or llama.cpp cannot load it.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        sampling: SamplingSettings = DEFAULT_SAMPLING,
        max_tokens: int = 160,
        slide_cache: bool = True,
        **model_options: Unpack[ModelOptions],
    ) -> None:
        super().__init__(model_path, **model_options)
        model = LoadedLlama(
            self._llama_cpp,
            self._llm,
            self.n_ctx,
            self._prompts,
            self.threads,
            can_shift=slide_cache and cache_can_shift(self._llama_cpp, self._llm),
        )
        self._words_end = WordsEndReader(model)
        self._replies = Replies(model, max_tokens, Sampler(model, sampling), self._words_end)

    # --- facts ------------------------------------------------------------

    @property
    def last_stats(self) -> GenerationStats:
        """A copy of the statistics of the last (or running) call."""
        return replace(self._replies.stats)

    @property
    def last_read_ahead_tokens(self) -> int:
        """Prompt tokens the latest ``warm_up`` or ``read_ahead`` had to read."""
        return self._replies.last_read_tokens

    # --- generation ---------------------------------------------------------

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: ToolSpecs = None,
    ) -> AsyncGenerator[str, None]:
        """:meth:`generate` in a worker thread, streamed on the event loop (``ChatEngine``).

        Tool calls come out as the text the model writes
        (``voiceterm.tools.intent.ToolCallStreamFilter`` reads them).
        """
        return astream_chat(self, messages, max_tokens=max_tokens, grammar=grammar, tools=tools)

    def generate(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: ToolSpecs = None,
    ) -> Generator[str, None, None]:
        """Generate the assistant's reply to ``messages`` in this thread, piece by piece.

        Args:
            messages: The conversation, oldest first, ending with the user's turn.
            cancel: Set it (from any thread) to stop; checked before and after
                every token, so at most the token being computed is wasted.
            max_tokens: Cap on generated tokens (default: the engine's).
            grammar: GBNF text constraining the output (see ``json_schema_grammar``).
            tools: OpenAI-style tool specs, rendered by templates that support them.

        Yields:
            Text pieces (usually one per token; a multi-byte character split over
            tokens comes out whole).

        Raises:
            EngineError: If another generation holds the model for too long, the
                grammar is invalid, or llama.cpp fails while decoding.
        """
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise EngineError(
                "Another generation is still running on this model.",
                hint="cancel it and wait for it to end before starting the next one",
            )
        try:
            yield from self._replies.reply(messages, cancel, max_tokens, grammar, tools)
        finally:
            self._lock.release()

    def speculate(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        *,
        tokens: int = 12,
        max_tokens: int | None = None,
        enough: Callable[[str], bool] | None = None,
    ) -> SampledStart:
        """Sample the first ``tokens`` of the reply to ``messages`` ahead of time.

        Sampling stops early once ``enough(text so far)`` holds.

        For the end-of-speech wait: if the next :meth:`generate` renders the
        very same prompt (and has no grammar), it hands these pieces out at once
        and continues after them, exactly as if it had sampled them itself.
        Any other call simply forgets them. ``max_tokens`` must be the one the
        real call will use (it decides how the conversation is fitted).

        Returns:
            The text pieces sampled, and whether they are the whole reply.
        """
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            return SampledStart()
        try:
            return self._replies.speculate(messages, cancel, tokens, max_tokens, enough)
        finally:
            self._lock.release()

    def warm_up(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None) -> float:
        """Evaluate ``messages`` ahead of time (the system prompt, or the words so far).

        The next call then finds that prefix in the KV cache and only evaluates
        what follows, which cuts its time to first token. The conversation is
        fitted as a reply of ``max_tokens`` (default: the engine's) will fit it:
        unfitted, a long conversation would bring back the turns a trim dropped
        and read them all again (seconds, with the lock held).

        Returns:
            Seconds spent.
        """
        started = time.monotonic()
        with self._lock:
            _budget, fitted = self._replies.fit(messages, max_tokens)
            self._replies.evaluate(fitted, every_core=True, words_end=True)
        return time.monotonic() - started

    def read_ahead(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None, room: int = 64
    ) -> float:
        """Evaluate the conversation so far, fitted as the next turn will fit it.

        For the quiet moment after an answer: when the history has outgrown the
        window, dropping old turns changes the prompt's start and the whole of it
        must be evaluated again (seconds, not milliseconds). Done here, the next
        turn finds it in the KV cache and only reads the user's new words. ``room``
        tokens are kept free for those words, so that the next turn needs no trim
        of its own.

        Returns:
            Seconds spent.
        """
        started = time.monotonic()
        with self._lock:
            _budget, fitted = self._replies.fit(messages, max_tokens, room=room)
            # One core only: this can take seconds, and the user may start talking
            # (Whisper) meanwhile; all cores would then stall at every layer.
            self._replies.evaluate(fitted, every_core=False)
        return time.monotonic() - started

    # --- P(end of the user's message), read at a pause -----------------------

    @property
    def last_words_end(self) -> WordsEnd | None:
        """P(end of the user's message) after the words the latest pause read."""
        return self._words_end.latest

    @property
    def words_end_probe(self) -> EndProbe | None:
        """Reads P(end of message) from the whole next-token distribution (else the
        plain probability of the template's end-of-message token)."""
        return self._words_end.probe

    @words_end_probe.setter
    def words_end_probe(self, probe: EndProbe | None) -> None:
        self._words_end.probe = probe

    def use_words_end_probe(self, probe: TextProbe) -> None:
        """Read P(end of message) at pauses with ``probe``.

        Raises:
            ModelError: the probe was fitted for another model's vocabulary.
        """
        probe.check(self.token_piece, self.vocabulary_size)
        with self._lock:
            self._words_end.probe = probe
            self._words_end.forget()

    def words_end_probability(self, words: str) -> float | None:
        """P(end of the user's message) after ``words``, if the latest pause read them."""
        return self._words_end.probability(words)

    # --- housekeeping ---------------------------------------------------------

    def mean_log_probability(self, text: str) -> float:
        """How likely the model finds ``text``: its mean log-probability per token.

        For comparing two builds of one model. Forgets the KV cache.
        """
        with self._lock:
            self._replies.drop_speculation()
            score = mean_log_probability(self._llama_cpp, self._llm, text)
            self._replies.forget()
        return score

    def reset(self) -> None:
        """Forget the KV cache and the trim position (a cleared conversation).

        Not needed for correctness -- a different prompt simply matches less of
        the cache -- but it makes the next call's cost independent of the last.
        """
        with self._lock:
            self._replies.forget()
            self._llm.reset()

    def close(self) -> None:
        """Free the model (waits for a running generation to end)."""
        with self._lock:
            self._replies.drop_speculation()
            self._llm.close()

    def __enter__(self) -> LlamaEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
