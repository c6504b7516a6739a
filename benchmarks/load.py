"""Other programs that keep cores busy, for benchmarks of voiceterm beside them."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

SPIN = "while True: pass"


@contextlib.contextmanager
def background_load(
    processes: int, settle_s: float = 1.0
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``processes`` pure-Python busy loops beside the block, each a program of its own.

    As ``python3 -c "while True: pass"`` run by a user: each takes a whole core.
    They are killed when the block ends, whatever happens in it. ``settle_s``
    gives voiceterm's load watcher time to see them before the block starts.
    """
    started: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(processes):
            started.append(subprocess.Popen([sys.executable, "-c", SPIN]))
        if started:
            time.sleep(settle_s)
        yield started
    finally:
        for process in started:
            process.kill()
        for process in started:
            process.wait()
