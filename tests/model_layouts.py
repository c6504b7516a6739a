"""Model folders laid out the way Ollama, Hugging Face's cache and LM Studio write them.

Each helper puts a GGUF file where that tool would and returns the path a loader
ends up reading. The files are real: the embedded SmolLM2 model (hard-linked, so
that every store holds its own file, or copied where links are not possible), or
a GGUF header written by :func:`write_gguf` for models that need not load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path

_STRING, _UINT32 = 8, 4


def place_file(source: Path, target: Path) -> Path:
    """``source`` at ``target``: a hard link (a file of its own to path tools), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # Ollama keeps one blob for every tag of the same model
        return target
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target


def write_gguf(path: Path, metadata: Mapping[str, str | int]) -> Path:
    """A GGUF v3 file with these header keys and no tensors: enough for anything that
    reads headers, and nothing that loads."""
    body = b""
    for key, value in metadata.items():
        name = key.encode()
        body += struct.pack("<Q", len(name)) + name
        if isinstance(value, str):
            data = value.encode()
            body += struct.pack("<IQ", _STRING, len(data)) + data
        else:
            body += struct.pack("<II", _UINT32, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)) + body)
    return path


def ollama_pull(root: Path, name: str, gguf: Path | None, *, host: str = "") -> Path:
    """What ``ollama pull name`` leaves in ``root`` (``~/.ollama/models``): a manifest in
    ``manifests/<host>/<namespace>/<model>/<tag>`` and the GGUF as ``blobs/sha256-<hex>``.

    ``gguf=None`` writes the manifest only, as when the blob was deleted; the
    returned path is then the blob that is missing.
    """
    base, _, tag = name.partition(":")
    namespace, _, model = base.rpartition("/")
    manifest = (
        root / "manifests" / (host or "registry.ollama.ai") / (namespace or "library") / model
    ) / (tag or "latest")
    digest = hashlib.sha256(name.encode() if gguf is None else gguf.read_bytes()).hexdigest()
    blob = root / "blobs" / f"sha256-{digest}"
    if gguf is not None:
        place_file(gguf, blob)
    template = root / "blobs" / "sha256-template"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text("{{ .Prompt }}")
    layers = [
        {
            "mediaType": "application/vnd.ollama.image.model",
            "digest": f"sha256:{digest}",
            "size": gguf.stat().st_size if gguf is not None else 1,
        },
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:template"},
    ]
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": "sha256:config",
                    "size": 2,
                },
                "layers": layers,
            }
        )
    )
    return blob


def hf_download(
    hub: Path, repo_id: str, filename: str, gguf: Path | None, revision: str = "0123abcd"
) -> Path:
    """What ``hf_hub_download(repo_id, filename)`` leaves in ``hub``: the file in
    ``models--<org>--<name>/blobs/<hash>``, a relative symlink to it in
    ``snapshots/<revision>/<filename>``, and ``refs/main``. ``gguf=None`` leaves the
    symlink pointing at a blob that is not there."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    blob = repo / "blobs" / hashlib.sha256(f"{repo_id}/{filename}".encode()).hexdigest()
    if gguf is not None:
        place_file(gguf, blob)
    link = repo / "snapshots" / revision / filename
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return link


def lm_studio_download(models: Path, name: str, gguf: Path) -> Path:
    """A model in LM Studio's ``models/<publisher>/<repo>/<file>.gguf``."""
    return place_file(gguf, models / name)
