"""Nothing leaves the machine: every dependency's phone-home turned off.

What each dependency does, checked under ``strace -f -e trace=socket,connect,sendto``
(``tests/integration/test_offline.py``, ``tests/audio/test_offline_live.py``):

- onnxruntime (Piper's voice, any other ONNX model) has native telemetry on Linux
  since 1.29. Importing it writes a device id and an event cache under
  ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``, and about 9 s later it looks up
  ``mobile.events.data.microsoft.com`` to upload them. Only ``ORT_DISABLE_TELEMETRY=1``
  set *before the import* stops all of it;
  ``onnxruntime.disable_telemetry_events()`` after the import still lets the
  start-up event go out (checked with 1.32).
- huggingface_hub (imported by faster-whisper) downloads models when asked for one
  by name and sends telemetry with downloads: ``HF_HUB_OFFLINE`` and
  ``HF_HUB_DISABLE_TELEMETRY`` forbid both (voiceterm only loads local paths).
- ``DO_NOT_TRACK=1`` is the common opt-out (https://donottrack.sh/), for any
  library that honours it.
- CTranslate2, llama.cpp, Piper's espeak-ng, webrtcvad, livekit's echo canceller
  and PortAudio open no network socket (PortAudio talks to PulseAudio over its
  Unix socket); Textual connects to its devtools only when the user sets
  ``TEXTUAL=devtools``.

The app calls :func:`keep_offline` once at start-up; an engine that loads an ONNX
model gets onnxruntime from :func:`onnxruntime_offline`, which also works when the
engine is used without the app.
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType
from typing import Final

__all__ = ["OFFLINE_ENVIRONMENT", "keep_offline", "onnxruntime_offline"]

log = logging.getLogger(__name__)

OFFLINE_ENVIRONMENT: Final = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}
"""The environment that keeps every dependency off the network (read at their import)."""


def keep_offline() -> None:
    """Set :data:`OFFLINE_ENVIRONMENT` in this process, over any other value.

    Cheap and idempotent; call it before the libraries are imported, as they read
    the environment then. A variable already right is not written again, so that
    later calls never touch the environment while other threads may read it.
    """
    for name, value in OFFLINE_ENVIRONMENT.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def onnxruntime_offline() -> ModuleType:
    """Import onnxruntime with its telemetry off; call it before making any session.

    Cheap and idempotent: every engine that runs an ONNX model gets onnxruntime
    from here instead of importing it (or a library that imports it, like
    ``piper``) first.

    Returns:
        The ``onnxruntime`` module.

    Raises:
        ImportError: onnxruntime is not installed.
    """
    if "onnxruntime" in sys.modules and os.environ.get("ORT_DISABLE_TELEMETRY") != "1":
        log.warning(
            "onnxruntime was imported before its telemetry was turned off: its start-up "
            "event may still be sent (call keep_offline() before importing it)"
        )
    keep_offline()
    import onnxruntime  # type: ignore[import-untyped]

    # The environment variable stops everything; this covers an onnxruntime
    # imported earlier, whose later events it still suppresses.
    onnxruntime.disable_telemetry_events()
    module: ModuleType = onnxruntime
    return module
