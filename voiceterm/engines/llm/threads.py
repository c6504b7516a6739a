"""How many threads llama.cpp runs on, step by step, beside the other engines.

llama.cpp keeps two thread counts: one for generating a token, one for reading
a prompt (a batch). :class:`LlamaThreads` sets them before every step from the
cores other programs leave free and from what the STT and TTS engines are doing
(:class:`voiceterm.engines.cores.CoreShare`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from voiceterm.engines.cores import CoreShare


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


@dataclass(eq=False, slots=True)
class LlamaThreads:
    """Chooses llama.cpp's thread counts for each step of a generation."""

    n_threads: int
    """Threads for generating (see :func:`default_thread_count`)."""
    n_threads_batch: int
    """Threads for reading prompts while no other engine computes."""
    cores: CoreShare
    """Shared with the STT and TTS engines: tells when they compute."""
    apply: Callable[[int, int], None]
    """Sets llama.cpp's counts: ``apply(token_threads, prompt_threads)``."""
    last_prompt_threads: int = field(init=False)
    """Threads the latest prompt read ran on (llama.cpp keeps them until changed)."""
    last_token_threads: int = field(init=False)
    """Threads the latest token was generated on."""

    def __post_init__(self) -> None:
        self.last_prompt_threads = self.n_threads_batch
        self.last_token_threads = self.n_threads

    @contextlib.contextmanager
    def compute_step(self, *, every_core: bool, generating: bool = False) -> Iterator[None]:
        """Around the evaluation of a prompt, or of one token (the model's lock held).

        On ``n_threads_batch`` threads when ``every_core`` is asked for and no other
        engine computes (they then wait for the read to end), else on ``n_threads``.
        One token at a time is generated on ``n_threads``, unless ``generating``
        asks for the same as a prompt read. Both are cut to the cores other programs
        leave free (re-checked at every step).
        """
        token_threads = self.token_threads()
        if not every_core:
            self.set_threads(token_threads, token_threads)
            yield
            return
        with self.cores.every_core("llm") as alone:
            threads = self.cores.threads(self.n_threads_batch) if alone else token_threads
            self.set_threads(threads if generating else token_threads, threads)
            yield

    @contextlib.contextmanager
    def answer_token(self, cancel: threading.Event) -> Iterator[None]:
        """Around one token of an answer being spoken (the model's lock held).

        Marked as computing, so that Piper knows not to take every core meanwhile;
        with one core left by other programs, Piper's step goes first.
        """
        self.give_way_to_tts_on_one_core(cancel)
        with self.cores.computing("llm"):
            self.set_threads(self.token_threads(), self.last_prompt_threads)
            yield

    def token_threads(self) -> int:
        """``n_threads``, cut to the cores other programs leave free (at least 1).

        ``n_threads`` below the core count leaves cores to STT, TTS and audio (see
        :func:`default_thread_count`): one of the free cores stays left to them.
        """
        free = self.cores.free_cores.count()
        spare = 1 if self.n_threads < self.cores.free_cores.cores else 0
        return max(1, min(self.n_threads, free - spare))

    def set_threads(self, token: int, prompt: int) -> None:
        """Threads for generating one token and for reading a prompt (llama.cpp keeps them)."""
        if (token, prompt) != (self.last_token_threads, self.last_prompt_threads):
            self.apply(token, prompt)
            self.last_token_threads, self.last_prompt_threads = token, prompt

    def give_way_to_stt(self, cancel: threading.Event) -> None:
        """Hold a speculation while Whisper computes (sharing a core stalls both).

        Whisper then transcribes newer words, which the speculation's are not.
        """
        while self.cores.is_computing("stt") and not cancel.wait(0.005):
            pass

    def give_way_to_tts_on_one_core(self, cancel: threading.Event) -> None:
        """With one core left by other programs, let Piper's step go first.

        Piper turns the words written so far into what the user waits to hear; on
        one core, a token computed beside it only slows it down, and the answer's
        text is far ahead of its speech anyway.
        """
        if self.cores.threads(2) > 1:
            return
        while not cancel.is_set() and not self.cores.wait_until_resting("tts", 0.05):
            pass
