"""Where other tools keep the GGUF models they downloaded, read as they lay them out.

- Ollama: ``$OLLAMA_MODELS``, ``~/.ollama/models`` or the Linux service's
  ``/usr/share/ollama/.ollama/models``. ``manifests/<host>/<namespace>/<model>/<tag>``
  is a JSON manifest whose layer of media type ``application/vnd.ollama.image.model``
  names the GGUF by digest: ``blobs/sha256-<hex>``.
- Hugging Face's cache: ``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or
  ``~/.cache/huggingface/hub``; ``models--<org>--<name>/snapshots/<revision>/...gguf``,
  usually symlinks into the repository's ``blobs/``.
- LM Studio: ``<home>/models/<publisher>/<repo>/*.gguf``, where the home is named in
  ``~/.lmstudio-home-pointer`` or is ``~/.lmstudio``; older versions used
  ``~/.cache/lm-studio/models``.
- voiceterm's own ``models/llm/`` (and ``models/``).

Each finds candidate files only; :mod:`voiceterm.discovery.catalog` reads their
headers. Nothing here writes or downloads anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

Source = Literal["Ollama", "Hugging Face cache", "LM Studio", "models/"]
OLLAMA: Final = "Ollama"
HUGGING_FACE: Final = "Hugging Face cache"
LM_STUDIO: Final = "LM Studio"
MODELS_DIR: Final = "models/"
_OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
_OLLAMA_REGISTRY = "registry.ollama.ai"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file a tool says is a model, under the name that tool gives it."""

    source: Source
    name: str
    path: Path
    aliases: tuple[str, ...] = ()
    problem: str = ""  # set when the tool's own records are broken (a missing blob)


@dataclass(frozen=True, slots=True)
class Place:
    """A folder that was searched, and whether it exists."""

    source: Source
    path: Path

    @property
    def exists(self) -> bool:
        return not self.absence

    @property
    def absence(self) -> str:
        """Why the folder cannot be searched (``""`` when it can)."""
        try:
            if not self.path.is_dir():
                return "not there"
        except OSError:  # e.g. Ollama's service home, closed to other users
            return "cannot be read"
        return "" if os.access(self.path, os.R_OK | os.X_OK) else "cannot be read"


OLLAMA_SERVICE_MODELS = Path("/usr/share/ollama/.ollama/models")  # Linux installer's service user


def places(
    env: Mapping[str, str], home: Path, models_dirs: list[Path], *, system: bool = True
) -> list[Place]:
    """Every folder to search, in the order models are listed (duplicates removed);
    ``system=False`` leaves out folders outside ``home`` and the environment's."""
    ollama = [Path(env["OLLAMA_MODELS"])] if env.get("OLLAMA_MODELS") else []
    ollama += [home / ".ollama" / "models", *([OLLAMA_SERVICE_MODELS] if system else [])]
    hf_home = Path(
        env.get("HF_HOME") or Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "huggingface"
    )
    hugging_face = [
        Path(env[key]) for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE") if env.get(key)
    ]
    hugging_face += [hf_home / "hub", home / ".cache" / "huggingface" / "hub"]
    lm_studio = [_lm_studio_home(home) / "models", home / ".cache" / "lm-studio" / "models"]
    found: list[Place] = []
    searched: tuple[tuple[Source, list[Path]], ...] = (
        (MODELS_DIR, models_dirs),
        (OLLAMA, ollama),
        (HUGGING_FACE, hugging_face),
        (LM_STUDIO, lm_studio),
    )
    for source, paths in searched:
        for path in paths:
            place = Place(source, path.expanduser())
            if not any(_same_dir(place.path, other.path) for other in found):
                found.append(place)
    return found


def candidates(place: Place) -> Iterator[Candidate]:
    """The models a tool keeps in ``place`` (nothing when the folder does not exist)."""
    if not place.exists:
        return
    if place.source == OLLAMA:
        yield from _ollama(place.path)
    elif place.source == HUGGING_FACE:
        yield from _hugging_face(place.path)
    elif place.source == LM_STUDIO:
        for path in sorted(place.path.glob("*/*/**/*.gguf")):
            yield Candidate(LM_STUDIO, path.relative_to(place.path).as_posix(), path)
    else:
        for path in sorted([*place.path.glob("llm/*.gguf"), *place.path.glob("*.gguf")]):
            yield Candidate(MODELS_DIR, path.name, path)


def _ollama(root: Path) -> Iterator[Candidate]:
    manifests = root / "manifests"
    for manifest in sorted(p for p in manifests.glob("*/*/*/*") if p.is_file()):
        host, namespace, model, tag = manifest.relative_to(manifests).parts
        name, aliases = _ollama_name(host, namespace, model, tag)
        digest = _ollama_model_digest(manifest)
        if digest is None:
            no_gguf = "its manifest has no GGUF layer (a cloud model, or a format only Ollama runs)"
            yield Candidate(OLLAMA, name, manifest, aliases, no_gguf)
            continue
        blob = root / "blobs" / digest.replace(":", "-")
        if not blob.is_file() and (root / "blobs" / digest).is_file():
            blob = root / "blobs" / digest  # as older Ollama versions named them
        problem = ""
        if not blob.is_file():
            problem = (
                f"its manifest points at {blob.name}, which is not in {blob.parent} "
                f"(`ollama pull {name}` fetches it again)"
            )
        yield Candidate(OLLAMA, name, blob, aliases, problem)


def _ollama_model_digest(manifest: Path) -> str | None:
    """The digest of the manifest's GGUF layer, or ``None`` when it has none."""
    try:
        layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
        return next(
            str(layer["digest"])
            for layer in layers
            if layer.get("mediaType") == _OLLAMA_MODEL_LAYER
        )
    except (OSError, ValueError, AttributeError, KeyError, TypeError, StopIteration):
        return None


def _ollama_name(host: str, namespace: str, model: str, tag: str) -> tuple[str, tuple[str, ...]]:
    """The name ``ollama list`` shows (``llama3.2:3b``), and what else a user may type."""
    if host == _OLLAMA_REGISTRY and namespace == "library":
        base = model
    elif host == _OLLAMA_REGISTRY:
        base = f"{namespace}/{model}"
    else:
        base = f"{host}/{namespace}/{model}"
    aliases = (base,) if tag == "latest" else ()
    return f"{base}:{tag}", aliases


def _hugging_face(cache: Path) -> Iterator[Candidate]:
    for repo in sorted(cache.glob("models--*")):
        repo_id = repo.name.removeprefix("models--").replace("--", "/")
        seen: set[str] = set()
        for snapshot in _snapshots_newest_first(repo):
            for path in sorted(snapshot.rglob("*.gguf")):
                relative = path.relative_to(snapshot).as_posix()
                if relative in seen:
                    continue  # an older revision of the same file
                seen.add(relative)
                problem = ""
                if not path.exists():  # a symlink whose blob is gone
                    problem = f"it points at a blob missing from {repo / 'blobs'}"
                yield Candidate(HUGGING_FACE, f"{repo_id}/{relative}", path, problem=problem)


def _snapshots_newest_first(repo: Path) -> list[Path]:
    """The revision ``refs/main`` names first, then the others, newest first."""
    snapshots = [p for p in (repo / "snapshots").glob("*") if p.is_dir()]
    snapshots.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    try:
        main = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        return snapshots
    return sorted(snapshots, key=lambda p: p.name != main)


def _lm_studio_home(home: Path) -> Path:
    """LM Studio's home: the folder ``~/.lmstudio-home-pointer`` names, else ``~/.lmstudio``."""
    try:
        pointed = (home / ".lmstudio-home-pointer").read_text(encoding="utf-8").strip()
    except OSError:
        pointed = ""
    return Path(pointed) if pointed else home / ".lmstudio"


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b
