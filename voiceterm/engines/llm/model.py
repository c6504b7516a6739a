"""A GGUF chat model loaded by llama-cpp-python: its facts, threads and tokenizer.

:class:`LlamaModel` loads the weights (:mod:`.loading`) on the threads the other
engines leave free (:mod:`.threads`) and renders and counts prompts
(:mod:`.prompts`). :class:`~voiceterm.engines.llm.engine.LlamaEngine` chats with it.

``llama_cpp`` is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

from voiceterm.engines.cores import CoreShare
from voiceterm.engines.llm.loading import check_gguf_file, import_llama_cpp, load_model
from voiceterm.engines.llm.messages import ChatMessage, ToolSpecs
from voiceterm.engines.llm.messages import fit_messages as fit_to_budget
from voiceterm.engines.llm.prompts import ModelPrompts
from voiceterm.engines.llm.threads import (
    LlamaThreads,
    default_thread_count,
    prompt_thread_count,
)


class ModelOptions(TypedDict, total=False):
    """:class:`LlamaModel`'s keyword arguments, for a subclass to take and pass on whole."""

    n_ctx: int
    n_threads: int | None
    n_threads_batch: int | None
    cores: CoreShare | None
    seed: int
    eight_bit_copy_dir: Path | None


class LlamaModel:
    """A loaded GGUF chat model, and what it knows about its prompts.

    Its tokenizer calls (``count_tokens``, ``prompt_tokens``, ``fit_messages``...)
    may be called from any thread; anything that computes takes :attr:`_lock`.

    Args:
        model_path: A ``.gguf`` file (see ``voiceterm.modelstore.resolve_model``).
        n_ctx: Context window in tokens.
        n_threads: CPU threads for generating; ``None`` uses :func:`default_thread_count`.
        n_threads_batch: CPU threads for reading prompts while no other engine
            computes (default: :func:`prompt_thread_count`); ``n_threads`` otherwise,
            and always for ``read_ahead``.
        cores: Shared with the STT and TTS engines: tells when they compute.
        seed: Sampling seed, for repeatable answers.
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
        eight_bit_copy_dir: Path | None = None,
    ) -> None:
        path = Path(model_path).expanduser()
        check_gguf_file(path)
        llama_cpp = import_llama_cpp()
        self.model_path = path
        self.threads = LlamaThreads(
            n_threads or default_thread_count(),
            n_threads_batch or prompt_thread_count(),
            cores or CoreShare(),
            apply=lambda token, prompt: llama_cpp.llama_set_n_threads(self._llm.ctx, token, prompt),
        )
        """The threads each step runs on, the latest ones used, and the cores shared
        with the STT and TTS engines."""
        self._llm, self.weights_path = load_model(
            llama_cpp,
            path,
            eight_bit_copy_dir,
            n_ctx=n_ctx,
            n_threads=self.threads.n_threads,
            n_threads_batch=self.threads.n_threads_batch,
            seed=seed,
        )
        """The file the weights were loaded from: ``model_path`` or its 8-bit copy."""
        # llama.cpp may round the context up (384 -> 512), but llama-cpp-python's
        # token buffer keeps the size asked for: the smaller one is the limit.
        self.n_ctx: int = min(n_ctx, int(self._llm.n_ctx()))
        self._llama_cpp = llama_cpp
        self._lock = threading.Lock()
        self._prompts = ModelPrompts(self._llm)

    # --- facts ------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model's own name from its metadata, else the file name."""
        return str(self._llm.metadata.get("general.name") or self.model_path.name)

    @property
    def chat_template_source(self) -> str:
        """``"gguf"`` when the model's own template is used, else ``"chatml-fallback"``."""
        return self._prompts.template.source

    # --- tokens and context -------------------------------------------------

    @property
    def vocabulary_size(self) -> int:
        """How many tokens the model knows (the length of a row of logits)."""
        return self._prompts.vocabulary_size

    def token_piece(self, token: int) -> str:
        """The text of one token, special tokens written out (``<|im_end|>``)."""
        return self._prompts.token_piece(token)

    def token_ids(self, text: str) -> list[int]:
        """``text``'s tokens, special tokens recognised, no BOS."""
        return self._prompts.token_ids(text)

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this model (no special tokens added)."""
        return self._prompts.count(text)

    def render_prompt(self, messages: Sequence[ChatMessage], tools: ToolSpecs = None) -> str:
        """The prompt text the model sees, from its own chat template."""
        return self._prompts.render(messages, tools)

    def prompt_tokens(self, messages: Sequence[ChatMessage], tools: ToolSpecs = None) -> list[int]:
        """The tokens of :meth:`render_prompt`, as they will be evaluated."""
        return self._prompts.tokens(messages, tools)

    def special_tokens(self, text: str) -> list[int]:
        """``text`` tokenized as :meth:`prompt_tokens` tokenizes a prompt (BOS included)."""
        return self._prompts.special_tokens(text)

    def fit_messages(
        self, messages: Sequence[ChatMessage], budget_tokens: int, tools: ToolSpecs = None
    ) -> list[ChatMessage]:
        """Drop the oldest turns until the rendered prompt fits ``budget_tokens``.

        See :func:`~voiceterm.engines.llm.messages.fit_messages`: the newest turn
        alone too long keeps only its first message's end.

        Raises:
            EngineError: If the system prompt alone does not fit.
        """
        return fit_to_budget(
            messages,
            budget_tokens,
            lambda kept: self._prompts.size(kept, tools),
            self._prompts.keep_tail,
        )
