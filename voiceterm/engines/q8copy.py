"""An 8-bit copy of a small 4-bit GGUF model: read faster on a CPU, made once, kept.

llama.cpp multiplies 8-bit weights (Q8_0) by the 8-bit activations with integer
dot products (AVX2, AVX512-VNNI); 4-bit blocks (Q4_0, Q4_1, Q5_0, Q5_1) are
unpacked first. For a model small enough to be limited by arithmetic rather
than by memory, the 8-bit copy is faster although it is twice the size. The
embedded SmolLM2-135M (Q4_1) on the 2-core reference machine, side by side in one
run (``scripts/bench_llm.py``, section "Weights", 10 runs in a 10-turn
conversation, two runs): reading a new turn's words 44-53 against 66-77 ms, the
speculation of the answer's first four words 75-83 against 93-107 ms, a token on
one core 11.5-12.0 against 14.1-14.5 ms.

The copy is made with llama.cpp's own quantizer (``llama_model_quantize``, about
0.3 s for 135M parameters) into the user's cache directory and reused while the
source file stays the same (its size and modification time name the copy). Each
install of the package gives the model file a new modification time, so a new
copy replaces the copies of the same file (same name and size) made before;
without that, every reinstall left another 145 MB behind. A
Q8_0 block keeps each 4-bit weight to within 1/254 of the block's range, far
inside the 4-bit step itself: the copy knows what the original knows (mean
log-probability of a test text -3.42 against -3.48 per token; greedy answers to
8 questions: 4 the same word for word, the others as good).

Large models are left alone: they are limited by memory bandwidth, where twice
the bytes are slower, and a copy would take minutes and gigabytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# llama_ftype values (llama.h) of the 4-bit and 5-bit block formats.
COPIED_FILE_TYPES: frozenset[int] = frozenset({2, 3, 8, 9})  # Q4_0, Q4_1, Q5_0, Q5_1
Q8_0_FILE_TYPE = 7
MAX_SOURCE_BYTES = 512 * 1024 * 1024


def copy_path(source: Path, cache_dir: Path) -> Path:
    """The copy's file name: it changes whenever the source file does."""
    stat = source.stat()
    return cache_dir / f"{source.stem}-{stat.st_size}-{stat.st_mtime_ns}.q8_0.gguf"


def worth_copying(source: Path, metadata: Mapping[str, str]) -> bool:
    """Whether ``source`` (with its GGUF metadata) is a small model in a 4-bit block format."""
    try:
        file_type = int(metadata.get("general.file_type", "-1"))
    except ValueError:
        return False
    return file_type in COPIED_FILE_TYPES and source.stat().st_size <= MAX_SOURCE_BYTES


def make_copy(llama_cpp: Any, source: Path, cache_dir: Path) -> Path | None:
    """Write the 8-bit copy of ``source`` into ``cache_dir``; ``None`` if that failed.

    The copy only gets its final name once complete, so an interrupted run never
    leaves a truncated copy to be loaded later.
    """
    target = copy_path(source, cache_dir)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = Q8_0_FILE_TYPE
        params.allow_requantize = True
        failed = llama_cpp.llama_model_quantize(
            str(source).encode(), str(partial).encode(), ctypes.byref(params)
        )
        if failed:
            raise OSError(f"llama_model_quantize returned {failed}")
        os.replace(partial, target)
    except OSError as error:
        log.warning("llm: no 8-bit copy of %s (%s); using it as it is", source.name, error)
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        return None
    log.info("llm: made an 8-bit copy of %s in %s", source.name, target)
    remove_older_copies(target)
    return target


def remove_older_copies(kept: Path) -> list[Path]:
    """Delete the copies made of an earlier install of ``kept``'s source; returns what went.

    They are named as ``kept`` is (:func:`copy_path`) but for the modification
    time. A process still running from one keeps its mapping (Linux frees the file
    once the last user closes it); one started later makes its copy again.
    """
    same_file = kept.name.rsplit("-", 1)[0]  # the source's name and size
    removed: list[Path] = []
    for older in kept.parent.iterdir():
        name = older.name
        if older != kept and name.endswith(".q8_0.gguf") and name.rsplit("-", 1)[0] == same_file:
            with contextlib.suppress(OSError):
                older.unlink()
                removed.append(older)
    if removed:
        log.info("llm: removed %d older 8-bit copies of %s", len(removed), same_file)
    return removed
