"""What a session ran on: the models (path, size, a hash of the first MiB) and versions."""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from voiceterm.config import Config
from voiceterm.errors import VoicetermError

_HASHED_BYTES = 1 << 20
_DISTRIBUTIONS = (
    "voiceterm",
    "numpy",
    "faster-whisper",
    "ctranslate2",
    "llama-cpp-python",
    "piper-tts",
    "onnxruntime",
    "webrtcvad-wheels",
    "livekit",
    "soundfile",
    "soxr",
    "sounddevice",
)


def _head_hash(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.sha256(handle.read(_HASHED_BYTES)).hexdigest()


def model_identity(path: Path) -> dict[str, Any]:
    """Path, size and the SHA-256 of the first MiB (of the largest file, for a folder)."""
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        largest = max(files, key=lambda p: p.stat().st_size, default=None)
        digest = _head_hash(largest) if largest is not None else ""
        return {"path": str(path), "size": size, "sha256_first_mib": digest}
    return {"path": str(path), "size": path.stat().st_size, "sha256_first_mib": _head_hash(path)}


def models_of(config: Config) -> dict[str, Any]:
    """Each stage's model identity, or why it could not be found."""
    from voiceterm.modelstore import STAGES, resolve_model

    explicit = {
        "stt": config.stt.model,
        "llm": config.llm.model,
        "tts": config.tts.model,
        "turn": config.turn.model,
    }
    found: dict[str, Any] = {}
    for stage in STAGES:
        if stage == "llm" and config.llm.backend == "openai":
            found[stage] = {"server": config.llm.url, "model": config.llm.model}
            continue
        if stage == "turn" and config.turn.detector != "smart_turn":
            continue
        try:
            found[stage] = model_identity(resolve_model(stage, explicit[stage]).path)
        except (VoicetermError, OSError) as exc:
            found[stage] = {"missing": str(exc)}
    return found


def versions() -> dict[str, str]:
    """voiceterm's, Python's and the engines' versions, and the kind of CPU."""
    found = {"python": platform.python_version(), "cpu": cpu_kind()}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def cpu_kind() -> str:
    """The kind of CPU the engines' int8 kernels were chosen for: ``x86-64-avx512``,
    ``x86-64-avx2``, ``x86-64`` or the machine's name (``aarch64``...).

    Whisper (CTranslate2) picks its kernels by the CPU's vector instructions, and
    their int8 sums differ: the same audio can give other words on another kind.
    """
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return machine or "unknown"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return "x86-64"
    flags = set(
        next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "").split()
    )
    if {"avx512f", "avx512bw"} <= flags:
        return "x86-64-avx512"
    return "x86-64-avx2" if "avx2" in flags else "x86-64"


def settings_of(config: Config) -> dict[str, Any]:
    return asdict(config)
