"""Sampling a reply token by token, cancellable between any two tokens.

:class:`Sampler` starts llama-cpp-python's own generator for a prompt and hands
out the text of its tokens until the turn ends, the reply is long enough, the
context is full, or a ``threading.Event`` is set. The flag is checked before and
after every token, so an interruption stops it within one token and the token
computed meanwhile is never handed out.
"""

from __future__ import annotations

import codecs
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from voiceterm.engines.llm.loaded import LoadedLlama
from voiceterm.engines.llm.stats import GenerationStats, tokens_read
from voiceterm.errors import EngineError


def json_schema_grammar(schema: Mapping[str, Any]) -> str:
    """Turn a JSON schema into a GBNF grammar for ``stream_chat(grammar=...)``.

    Args:
        schema: A JSON schema (objects, enums, strings, numbers...).

    Returns:
        GBNF text that only lets the model write JSON matching the schema.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return str(json_schema_to_gbnf(json.dumps(schema)))


def decoder_for_utf8() -> Any:
    """Bytes of tokens -> text; a character split over two tokens comes out whole."""
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def flush(decoder: Any) -> Iterator[str]:
    """The decoder's held-back bytes, as a last piece (if any)."""
    tail = str(decoder.decode(b"", final=True))
    if tail:
        yield tail


@dataclass(frozen=True, slots=True)
class SamplingSettings:
    """How the next token is picked.

    Attributes:
        temperature: Sampling temperature (0 is greedy). 0.2 and top_p 0.9 are
            SmolLM2's recommended settings.
        top_p: Nucleus sampling threshold.
        top_k: Sample among this many most likely tokens.
        repeat_penalty: Discourages loops, which tiny models fall into.
    """

    temperature: float = 0.2
    top_p: float = 0.9
    top_k: int = 40
    repeat_penalty: float = 1.1


class Sampler:
    """Runs llama-cpp-python's generator for one loaded model (its lock held by the caller).

    Args:
        model: The model (its threads are set before every step).
        settings: How tokens are picked.
    """

    def __init__(self, model: LoadedLlama, settings: SamplingSettings) -> None:
        self._model = model
        self._vocab = model.llm._model.vocab
        self.settings = settings
        self._grammars: dict[str, Any] = {}

    def start(self, prompt: list[int], compiled_grammar: Any = None) -> Iterator[int]:
        """llama's generator for ``prompt``: nothing is computed before the first ``next``.

        ``compiled_grammar`` comes from :meth:`compile_grammar`.
        """
        settings = self.settings
        tokens: Iterator[int] = self._model.llm.generate(
            prompt,
            temp=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            repeat_penalty=settings.repeat_penalty,
            grammar=compiled_grammar,
        )
        return tokens

    def sample(
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
        threads = self._model.threads
        keep_open = False
        text = ""
        try:
            while True:
                if sampled is not None and stats.first_token_at is not None:
                    threads.give_way_to_stt(cancel)
                if cancel.is_set():
                    stats.stop_reason = "cancelled"
                    break
                token = self._next_token(tokens, cancel, stats, speculating=sampled is not None)
                if token is None:
                    stats.stop_reason = "stop"
                    break
                if cancel.is_set():  # computed while we were being cancelled: drop it
                    stats.stop_reason = "cancelled"
                    break
                if self._ends_turn(token):
                    stats.stop_reason = "stop"
                    break
                stats.tokens_generated += 1
                if sampled is not None:
                    sampled.append(token)
                piece = decoder.decode(self._model.llm.detokenize([token]))
                if piece:
                    yield piece
                    text += piece
                if stats.tokens_generated >= max_tokens or (enough is not None and enough(text)):
                    stats.stop_reason = "length"
                    keep_open = sampled is not None
                    break
                if self._model.llm.n_tokens + 1 >= self._model.n_ctx:
                    stats.stop_reason = "context_full"
                    break
            if stats.stop_reason != "cancelled" and not keep_open:
                yield from flush(decoder)
        finally:
            # Closing llama's generator leaves its state consistent: the KV cache
            # holds the prompt and the tokens evaluated so far, and the next call
            # reuses whatever prefix still matches.
            if not keep_open:
                tokens.close()  # type: ignore[attr-defined]
            stats.finished_at = time.monotonic()

    def _next_token(
        self,
        tokens: Iterator[int],
        cancel: threading.Event,
        stats: GenerationStats,
        *,
        speculating: bool,
    ) -> int | None:
        """The next token, computed on the cores this step may have (``None``: no more)."""
        threads = self._model.threads
        if stats.first_token_at is None:  # a fresh generator reads the prompt first
            with threads.compute_step(every_core=True):
                token = next_token(tokens)
        elif speculating:
            # A speculation runs in the end-of-speech wait, when nothing else
            # should compute: its tokens are the answer's first words.
            with threads.compute_step(every_core=True, generating=True):
                token = next_token(tokens)
        else:
            with threads.answer_token(cancel):
                token = next_token(tokens)
        if token is not None and stats.first_token_at is None:
            stats.first_token_at = time.monotonic()
            # Before the first token, everything evaluated was prompt.
            stats.prompt_tokens_evaluated, stats.prompt_eval_seconds = tokens_read(
                self._model.llama_cpp, self._model.llm
            )
        return token

    def _ends_turn(self, token: int) -> bool:
        # End-of-generation tokens end the turn; so does any other control token
        # (a small model may start "<|im_start|>user" to invent the next turn).
        llama_cpp = self._model.llama_cpp
        return bool(
            llama_cpp.llama_vocab_is_eog(self._vocab, token)
            or llama_cpp.llama_vocab_is_control(self._vocab, token)
        )

    def compile_grammar(self, grammar: str | None) -> Any:
        """GBNF text compiled for llama.cpp (cached; ``None`` for no grammar)."""
        if grammar is None:
            return None
        if grammar not in self._grammars:
            from llama_cpp.llama_grammar import LlamaGrammar

            self._grammars[grammar] = LlamaGrammar.from_string(grammar, verbose=False)
        return self._grammars[grammar]


def next_token(tokens: Iterator[int]) -> int | None:
    """The generator's next token; ``None`` when it ended.

    Raises:
        EngineError: llama.cpp failed while decoding.
    """
    try:
        return next(tokens)
    except StopIteration:
        return None
    except (RuntimeError, ValueError) as error:  # llama_decode failures, buffer overruns
        raise EngineError(
            f"llama.cpp failed while generating: {error}.",
            hint="try again; if it repeats, lower the context size",
        ) from None
