"""This process's memory, as a long session sees it: RSS, and what malloc has handed out."""

from __future__ import annotations

import ctypes
from pathlib import Path


def rss_mb() -> float:
    """This process's resident set size (``VmRSS`` in /proc/self/status), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # noqa: RUF012 (ctypes reads it from the class)
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def malloc_in_use_mb() -> float:
    """Bytes glibc's malloc has handed out and not had back (``mallinfo2``), in MB.

    Against RSS: what grows here is memory still held by someone (Python, the
    engines' native code); RSS growth beyond it is freed memory malloc keeps, or
    memory mapped outside malloc.
    """
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return float("nan")
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return float(info.uordblks + info.hblkhd) / 2**20
