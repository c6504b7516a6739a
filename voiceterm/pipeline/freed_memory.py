"""Freed memory handed back to the system once an answer has been spoken.

The engines free hundreds of MB after each turn (Piper's tensors, Whisper's and
llama.cpp's buffers). glibc keeps freed memory in per-thread arenas for reuse, so
over a long conversation the resident size crept up by the size of those peaks
(+120 MB from turn 20 to 60, and swinging by as much) while the memory in use
stayed flat. Trimming once an answer has played kept it within 11 MB
(docs/BENCHMARKS.md, "Long sessions").
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class FreedMemory:
    """Returns the pages malloc keeps but nobody uses (glibc's ``malloc_trim``).

    On a C library without ``malloc_trim`` (musl, macOS) :meth:`give_back` does
    nothing.
    """

    def __init__(self) -> None:
        self._trim = _find_malloc_trim()

    @property
    def available(self) -> bool:
        """Whether this C library can give freed memory back."""
        return self._trim is not None

    def give_back(self) -> None:
        """Return freed pages to the system; takes a few ms, blocks while it runs."""
        if self._trim is None:
            return
        started = time.perf_counter()
        self._trim(0)
        logger.debug("freed memory given back in %.1f ms", 1000 * (time.perf_counter() - started))


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim
