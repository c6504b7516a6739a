"""Sharing the CPU between engines that run at the same time.

llama.cpp's threads meet at a barrier after every layer, and so do CTranslate2's
(Whisper): when two engines each run a thread per core, every barrier waits for a
thread that has no core, and both crawl. One engine alone on all cores is much
faster, unless another process holds a core: then one thread is faster than two
(docs/BENCHMARKS.md, ``python -m benchmarks.llm``).

So the engines take turns for the whole CPU: the LLM reads a prompt (and samples
the answer's first words in the end-of-speech wait) on every core only when
nothing else computes (``every_core``), and Whisper and Piper wait for such a
step to end before they start (``computing``). A step is one batch of a turn's
words or one token, tens of milliseconds at most. Piper takes every core the same
way for the answer's first piece made ahead; the LLM marks the tokens of an
answer as ``computing``, so Piper then keeps to its own core. With one core
left by other programs, the answer's tokens wait for Piper's steps instead.

Other programs share the CPU too: every engine also sizes its threads from the
cores they leave free (``threads``, see :mod:`voiceterm.engines.freecores`), so
with one core of two taken, everything runs on one thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from voiceterm.engines.freecores import FreeCores

# An engine never waits longer than this for the cores (a safety net: a prompt
# read on every core takes tens of milliseconds).
MAX_WAIT_S = 1.0


class CoreShare:
    """Which engines compute right now, and who holds every core (thread-safe).

    Args:
        free_cores: What other programs leave free; default: read from ``/proc``.
    """

    def __init__(self, free_cores: FreeCores | None = None) -> None:
        self.free_cores = free_cores or FreeCores()
        self._changed = threading.Condition()
        self._running: dict[str, int] = {}
        self._holder: str | None = None

    @contextlib.contextmanager
    def computing(self, engine: str) -> Iterator[None]:
        """Mark ``engine`` as computing for the ``with`` block.

        Waits first (up to :data:`MAX_WAIT_S`) while another engine holds every core.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._holder in (None, engine), timeout=MAX_WAIT_S)
            self._running[engine] = self._running.get(engine, 0) + 1
        try:
            yield
        finally:
            with self._changed:
                self._running[engine] -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def every_core(self, engine: str) -> Iterator[bool]:
        """Take every core for the ``with`` block if no other engine computes.

        Yields whether they were taken; if not, ``engine`` should use its share.
        """
        with self._changed:
            alone = self._holder is None and not self._others_running(engine)
            if alone:
                self._holder = engine
        try:
            yield alone
        finally:
            if alone:
                with self._changed:
                    self._holder = None
                    self._changed.notify_all()

    @contextlib.contextmanager
    def first(self, engine: str) -> Iterator[None]:
        """Hold every core for a short step that everything else waits for.

        For the end-of-turn check: the answer can start only once it is known.
        Waits (up to :data:`MAX_WAIT_S`) for another holder's step to end; steps
        that start meanwhile wait for this one, while steps already under way run on.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._holder in (None, engine), timeout=MAX_WAIT_S)
            self._holder = engine
        try:
            with self.computing(engine):
                yield
        finally:
            with self._changed:
                if self._holder == engine:
                    self._holder = None
                self._changed.notify_all()

    def threads(self, wanted: int) -> int:
        """``wanted`` threads, or as many as other programs leave cores free (at least 1)."""
        return self.free_cores.threads(wanted)

    def wait_until_resting(self, engine: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``engine`` to stop computing; whether it has."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._running.get(engine), timeout=timeout)

    def others_computing(self, engine: str) -> bool:
        """Whether any engine but ``engine`` computes now."""
        with self._changed:
            return self._others_running(engine)

    def is_computing(self, engine: str) -> bool:
        """Whether ``engine`` computes now."""
        with self._changed:
            return self._running.get(engine, 0) > 0

    def _others_running(self, engine: str) -> bool:
        return any(count for name, count in self._running.items() if name != engine)
