"""The LLM stage's engine: a GGUF model run by llama-cpp-python, streamed token by token.

:class:`LlamaEngine` is a plain synchronous API that the pipeline calls from a
worker thread. It composes the package's parts:

- loads the model (:mod:`.loading`: GGUF checks, llama.cpp's log, the 8-bit copy);
- renders the conversation with the model's own chat template (:mod:`.template`);
- keeps the conversation inside the context window by dropping the oldest turns
  in steps (:mod:`.messages`), and at a trim slides the kept turns' cache cells
  down over the dropped ones instead of reading them again (:mod:`.cache`);
- keeps the KV cache between calls: llama.cpp keeps the evaluated tokens, and
  the next prompt only evaluates what differs from them (a new turn appended
  to the same conversation costs only the new turn);
- samples the reply and checks a ``threading.Event`` before and after every
  token (:mod:`.sampling`), on as many threads as the other engines and programs
  leave free (:mod:`.threads`);
- reports what the last call cost (:mod:`.stats`);
- can start a reply before it is asked for (:meth:`LlamaEngine.speculate`,
  :mod:`.speculation`), and read a conversation ahead (:meth:`LlamaEngine.warm_up`,
  :meth:`LlamaEngine.read_ahead`).

``llama_cpp`` is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from voiceterm.engines.cores import CoreShare
from voiceterm.engines.llm.cache import cache_can_shift, slide_cache_for
from voiceterm.engines.llm.loading import _import_llama_cpp, check_gguf_file, load_model
from voiceterm.engines.llm.messages import (
    ChatMessage,
    ToolSpecs,
    TrimmedWindow,
    reply_budget,
)
from voiceterm.engines.llm.messages import fit_messages as fit_to_budget
from voiceterm.engines.llm.protocol import SampledStart
from voiceterm.engines.llm.sampling import (
    Sampler,
    SamplingSettings,
    decoder_for_utf8,
    flush,
    next_token,
)
from voiceterm.engines.llm.speculation import Speculation
from voiceterm.engines.llm.stats import GenerationStats, reset_counters, tokens_read
from voiceterm.engines.llm.stream import astream_chat
from voiceterm.engines.llm.template import ChatTemplate
from voiceterm.engines.llm.threads import (
    LlamaThreads,
    default_thread_count,
    prompt_thread_count,
)
from voiceterm.engines.llm.words_end import (
    EndProbe,
    TextProbe,
    WordsEnd,
    end_probability,
    user_words_end,
)
from voiceterm.errors import EngineError

log = logging.getLogger(__name__)

# How long a second caller waits for a running generation before giving up.
LOCK_TIMEOUT_S = 30.0


class LlamaEngine:
    """A loaded GGUF chat model with a streaming, cancellable chat call.

    Implements :class:`~voiceterm.engines.llm.protocol.ChatEngine` and all its
    capabilities (``Speculates``, ``WarmsUp``, ``ReadsAhead``, ``HasChatTemplate``).

    One engine runs one generation at a time (a second caller waits for the
    first). ``count_tokens``/``fit_messages`` only use the tokenizer and may be
    called from any thread.

    Args:
        model_path: A ``.gguf`` file (see ``voiceterm.modelstore.resolve_model``).
        n_ctx: Context window in tokens.
        n_threads: CPU threads for generating; ``None`` uses :func:`default_thread_count`.
        n_threads_batch: CPU threads for reading prompts while no other engine
            computes (default: :func:`prompt_thread_count`); ``n_threads`` otherwise,
            and always for ``read_ahead``.
        cores: Shared with the STT and TTS engines: tells when they compute.
        seed: Sampling seed, for repeatable answers.
        temperature: Sampling temperature (0 is greedy). 0.2 and top_p 0.9 are
            SmolLM2's recommended settings.
        top_p: Nucleus sampling threshold.
        top_k: Sample among this many most likely tokens.
        repeat_penalty: Discourages loops, which tiny models fall into.
        max_tokens: Default cap on tokens per answer.
        slide_cache: At a trim, move the kept turns' cache cells down instead of
            reading them again (off only to measure what it spares).
        eight_bit_copy_dir: Run a small 4-bit model from an 8-bit copy kept in
            this directory, made on first use (see :mod:`voiceterm.engines.q8copy`);
            ``None`` loads ``model_path`` as it is.

    Raises:
        ModelError: The file is missing, not GGUF, or llama.cpp cannot load it.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        cores: CoreShare | None = None,
        seed: int = 0,
        temperature: float = 0.2,
        top_p: float = 0.9,
        top_k: int = 40,
        repeat_penalty: float = 1.1,
        max_tokens: int = 160,
        slide_cache: bool = True,
        eight_bit_copy_dir: Path | None = None,
    ) -> None:
        path = Path(model_path).expanduser()
        check_gguf_file(path)
        llama_cpp = _import_llama_cpp()
        self._llama_cpp = llama_cpp
        self.model_path = path
        self._threads = LlamaThreads(
            n_threads or default_thread_count(),
            n_threads_batch or prompt_thread_count(),
            cores or CoreShare(),
            apply=lambda token, prompt: llama_cpp.llama_set_n_threads(self._llm.ctx, token, prompt),
        )
        self.max_tokens = max_tokens
        self._llm, self.weights_path = load_model(
            llama_cpp,
            path,
            eight_bit_copy_dir,
            n_ctx=n_ctx,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads_batch,
            seed=seed,
        )
        """The file the weights were loaded from: ``model_path`` or its 8-bit copy."""
        # llama.cpp may round the context up (384 -> 512), but llama-cpp-python's
        # token buffer keeps the size asked for: the smaller one is the limit.
        self.n_ctx: int = min(n_ctx, int(self._llm.n_ctx()))
        self._template = ChatTemplate(self._llm)
        self._window = TrimmedWindow(self._prompt_size, self._keep_tail)
        self._sampler = Sampler(
            llama_cpp,
            self._llm,
            self.n_ctx,
            self._threads,
            SamplingSettings(temperature, top_p, top_k, repeat_penalty),
        )
        self._lock = threading.Lock()
        self._stats = GenerationStats()
        self._speculation: Speculation | None = None
        self._can_shift = slide_cache and cache_can_shift(llama_cpp, self._llm)
        self.last_read_ahead_tokens = 0
        """Prompt tokens the latest ``warm_up`` or ``read_ahead`` had to read."""
        self.last_words_end: WordsEnd | None = None
        """P(end of the user's message) after the words the latest pause read."""
        self._words_end_key: tuple[int, ...] = ()
        self.words_end_probe: EndProbe | None = None
        """Reads P(end of message) from the whole next-token distribution (else the
        plain probability of the template's end-of-message token)."""

    # --- facts ------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model's own name from its metadata, else the file name."""
        return str(self._llm.metadata.get("general.name") or self.model_path.name)

    @property
    def chat_template_source(self) -> str:
        """``"gguf"`` when the model's own template is used, else ``"chatml-fallback"``."""
        return self._template.source

    @property
    def vocabulary_size(self) -> int:
        """How many tokens the model knows (the length of a row of logits)."""
        return int(self._llm.n_vocab())

    def token_piece(self, token: int) -> str:
        """The text of one token, special tokens written out (``<|im_end|>``)."""
        piece: bytes = self._llm.detokenize([token], special=True)
        return piece.decode("utf-8", errors="replace")

    def token_ids(self, text: str) -> list[int]:
        """``text``'s tokens, special tokens recognised, no BOS."""
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def use_words_end_probe(self, probe: TextProbe) -> None:
        """Read P(end of message) at pauses with ``probe``.

        Raises:
            ModelError: the probe was fitted for another model's vocabulary.
        """
        probe.check(self.token_piece, self.vocabulary_size)
        with self._lock:
            self.words_end_probe = probe
            self._words_end_key = ()

    @property
    def last_stats(self) -> GenerationStats:
        """A copy of the statistics of the last (or running) call."""
        return replace(self._stats)

    @property
    def cores(self) -> CoreShare:
        """Shared with the STT and TTS engines: tells when they compute."""
        return self._threads.cores

    @cores.setter
    def cores(self, cores: CoreShare) -> None:
        self._threads.cores = cores

    @property
    def n_threads(self) -> int:
        """Threads for generating a token (cut to the cores left free)."""
        return self._threads.n_threads

    @property
    def n_threads_batch(self) -> int:
        """Threads for reading a prompt while no other engine computes."""
        return self._threads.n_threads_batch

    @property
    def last_prompt_threads(self) -> int:
        """Threads the latest prompt read ran on (llama.cpp keeps them until changed)."""
        return self._threads.last_prompt_threads

    @property
    def last_token_threads(self) -> int:
        """Threads the latest token was generated on."""
        return self._threads.last_token_threads

    # --- tokens and context -------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this model (no special tokens added)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render_prompt(self, messages: Sequence[ChatMessage], tools: ToolSpecs = None) -> str:
        """The prompt text the model sees, from its own chat template."""
        return self._template.render(messages, tools)

    def prompt_tokens(self, messages: Sequence[ChatMessage], tools: ToolSpecs = None) -> list[int]:
        """The tokens of :meth:`render_prompt`, as they will be evaluated."""
        tokens: list[int] = self._llm.tokenize(
            self.render_prompt(messages, tools).encode("utf-8"), add_bos=False, special=True
        )
        bos = self._llm.token_bos()
        if self._template.add_bos and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def fit_messages(
        self, messages: Sequence[ChatMessage], budget_tokens: int, tools: ToolSpecs = None
    ) -> list[ChatMessage]:
        """Drop the oldest turns until the rendered prompt fits ``budget_tokens``.

        A leading system message is always kept; turns (a user message and what
        follows it) are dropped whole, oldest first; the newest turn is always
        kept, and if it alone is too long, its first message keeps only its end.

        Args:
            messages: The conversation, oldest first.
            budget_tokens: The most prompt tokens allowed.
            tools: Tool specs rendered into the prompt, if any.

        Returns:
            The messages to send, oldest first.

        Raises:
            EngineError: If the system prompt alone does not fit.
        """
        return fit_to_budget(
            messages,
            budget_tokens,
            lambda kept: self._prompt_size(kept, tools),
            self._keep_tail,
        )

    def _prompt_size(self, messages: Sequence[ChatMessage], tools: ToolSpecs) -> int:
        return len(self.prompt_tokens(messages, tools))

    def _keep_tail(self, text: str, room: int) -> str:
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return str(self._llm.detokenize(tokens[-room:]).decode("utf-8", errors="ignore"))

    def _reply_tokens(self, max_tokens: int | None) -> int:
        return reply_budget(max_tokens, self.max_tokens, self.n_ctx)

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
            yield from self._reply(messages, cancel, max_tokens or self.max_tokens, grammar, tools)
        finally:
            self._lock.release()

    def _reply(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        max_tokens: int,
        grammar: str | None,
        tools: ToolSpecs,
    ) -> Generator[str, None, None]:
        stats = GenerationStats(started_at=time.monotonic())
        self._stats = stats
        max_tokens = self._reply_tokens(max_tokens)
        fitted = self._window.fit(messages, self.n_ctx - max_tokens, tools)
        stats.messages_dropped = len(messages) - len(fitted)
        prompt = self.prompt_tokens(fitted, tools)
        stats.prompt_tokens = len(prompt)
        compiled_grammar = self._sampler.compile_grammar(grammar)
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
            reset_counters(self._llama_cpp, self._llm)
            tokens = self._start(prompt, compiled_grammar)
            yield from self._sampler.sample(tokens, cancel, max_tokens, stats, decoder_for_utf8())
            return
        # The start of this very reply was sampled ahead of time: hand it out now and
        # let llama's paused generator go on from there.
        stats.first_token_at = time.monotonic()
        stats.tokens_generated = stats.speculated_tokens = len(speculation.tokens)
        yield from speculation.pieces
        if speculation.generator is None or stats.tokens_generated >= max_tokens:
            stats.stop_reason = "stop" if speculation.generator is None else "length"
            speculation.close()
            yield from flush(speculation.decoder)
            stats.finished_at = time.monotonic()
            return
        yield from self._sampler.sample(
            speculation.generator, cancel, max_tokens, stats, speculation.decoder
        )

    def _start(self, prompt: list[int], compiled_grammar: Any = None) -> Iterator[int]:
        """llama's generator for ``prompt``, after sliding the cache to fit it."""
        if self._can_shift:
            slide_cache_for(self._llama_cpp, self._llm, prompt)
        return self._sampler.start(prompt, compiled_grammar)

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

        For the end-of-speech wait: if the next :meth:`stream_chat` renders the
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
            self._drop_speculation()
            budget = self._reply_tokens(max_tokens)
            fitted = self._window.fit(messages, self.n_ctx - budget, None)
            prompt = self.prompt_tokens(fitted)
            stats = GenerationStats(started_at=time.monotonic())
            decoder = decoder_for_utf8()
            sampled: list[int] = []
            reset_counters(self._llama_cpp, self._llm)
            self._read_words_end(fitted, prompt)
            generator = self._start(prompt)
            pieces = list(
                self._sampler.sample(
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
        finally:
            self._lock.release()

    def _drop_speculation(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            speculation.close()

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
            budget = self._reply_tokens(max_tokens)
            fitted = self._window.fit(messages, self.n_ctx - budget, None)
            self._evaluate(fitted, every_core=True, words_end=True)
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
            budget = self._reply_tokens(max_tokens)
            # One core only: this can take seconds, and the user may start talking
            # (Whisper) meanwhile; all cores would then stall at every layer.
            self._evaluate(
                self._window.fit(messages, self.n_ctx - budget - room, None),
                every_core=False,
            )
        return time.monotonic() - started

    def _evaluate(
        self, messages: Sequence[ChatMessage], *, every_core: bool, words_end: bool = False
    ) -> None:
        """Put the prompt of ``messages`` into the KV cache (the lock must be held).

        With ``words_end``, the prompt is read in two parts, split after the user's
        words, and :attr:`last_words_end` says how likely their message ends there.
        """
        self._drop_speculation()
        prompt = self.prompt_tokens(messages)
        if self._can_shift:
            slide_cache_for(self._llama_cpp, self._llm, prompt)
        reset_counters(self._llama_cpp, self._llm)
        if words_end:
            self._read_words_end(messages, prompt)
        tokens = self._llm.generate(prompt, temp=0.0)
        try:
            with self._threads.compute_step(every_core=every_core):
                next_token(tokens)
        finally:
            tokens.close()
        self.last_read_ahead_tokens, _ = tokens_read(self._llama_cpp, self._llm)

    def _read_words_end(self, messages: Sequence[ChatMessage], prompt: list[int]) -> None:
        """Read ``prompt`` up to the end of the user's words; keep P(end of message) there.

        The rest of the prompt is read by the caller as before and finds this part
        in the KV cache. The same words read again (a speculation after a warm-up)
        cost nothing. Sets :attr:`last_words_end` (``None`` if there are no user
        words to judge).
        """
        import numpy as np

        count = user_words_end(messages, prompt, self.render_prompt, self._special_tokens)
        if count is None:
            self.last_words_end = None
            return
        words = str(messages[-1]["content"])
        key = tuple(prompt[: count + 1])
        if key == self._words_end_key and self.last_words_end is not None:
            self.last_words_end = replace(self.last_words_end, words=words, read_s=0.0)
            return
        llm = self._llm
        if self._can_shift:
            slide_cache_for(self._llama_cpp, llm, prompt)
        cached = llm.input_ids[: llm.n_tokens].tolist()
        same = 0
        for ours, theirs in zip(cached, prompt[: count - 1], strict=False):
            if ours != theirs:
                break
            same += 1
        started = time.monotonic()
        llm.n_tokens = same
        with self._threads.compute_step(every_core=True):
            llm.eval(prompt[same:count])
        logits = np.ctypeslib.as_array(
            self._llama_cpp.llama_get_logits(llm.ctx), shape=(llm.n_vocab(),)
        )
        probe = self.words_end_probe
        self.last_words_end = WordsEnd(
            words=words,
            probability=(
                end_probability(logits, prompt[count])
                if probe is None
                else probe.probability(logits)
            ),
            read_s=time.monotonic() - started,
        )
        self._words_end_key = key

    def _special_tokens(self, text: str) -> list[int]:
        """``text`` as :meth:`prompt_tokens` tokenizes a prompt (BOS included)."""
        tokens: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        bos = self._llm.token_bos()
        if self._template.add_bos and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def words_end_probability(self, words: str) -> float | None:
        """P(end of the user's message) after ``words``, if the latest pause read them."""
        latest = self.last_words_end
        return latest.probability if latest is not None and latest.words == words else None

    # --- housekeeping ---------------------------------------------------------

    def mean_log_probability(self, text: str) -> float:
        """How likely the model finds ``text``: its mean log-probability per token.

        For comparing two builds of one model (an 8-bit copy knows as much as the
        original when this hardly moves). Forgets the KV cache.
        """
        import numpy as np

        with self._lock:
            self._drop_speculation()
            llm = self._llm
            tokens = llm.tokenize(text.encode())
            total = 0.0
            llm.reset()
            for index, token in enumerate(tokens[:-1]):
                llm.eval([token])
                # llama-cpp-python keeps no logits without logits_all: llama.cpp's own.
                logits = np.ctypeslib.as_array(
                    self._llama_cpp.llama_get_logits(llm.ctx), shape=(llm.n_vocab(),)
                ).astype(np.float64)
                peak = float(logits.max())
                normaliser = peak + float(np.log(np.exp(logits - peak).sum()))
                total += float(logits[tokens[index + 1]]) - normaliser
            llm.reset()
            self._window.forget()
            self._words_end_key = ()
        return total / max(1, len(tokens) - 1)

    def reset(self) -> None:
        """Forget the KV cache and the trim position (a cleared conversation).

        Not needed for correctness -- a different prompt simply matches less of
        the cache -- but it makes the next call's cost independent of the last.
        """
        with self._lock:
            self._drop_speculation()
            self._llm.reset()
            self._window.forget()
            self._words_end_key = ()

    def close(self) -> None:
        """Free the model (waits for a running generation to end)."""
        with self._lock:
            self._drop_speculation()
            self._llm.close()

    def __enter__(self) -> LlamaEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
