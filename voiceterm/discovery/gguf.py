"""A GGUF file's header, read cheaply: enough to tell a chat model from the rest.

Only the key/value block at the start of the file is read, and only up to the
tokenizer's keys: llama.cpp's converter writes ``general.*``, then the
architecture's own keys (``<arch>.pooling_type``, ...), then ``tokenizer.*``; a
writer that sorts its keys puts them before ``tokenizer.*`` too (for every
architecture whose name sorts before it). What comes before is a few kilobytes;
the tokenizer's vocabulary can be megabytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"GGUF"
# Value types of the GGUF spec, by size when they are fixed.
_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_SCALAR_FORMATS |= {10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_KEYS = 10_000  # a corrupt count must not keep us reading

# Architectures that encode text or images but do not generate it.
_NOT_CHAT_ARCHITECTURES = {
    "clip": "a vision projector (mmproj)",
    "bert": "an embedding model",
    "nomic-bert": "an embedding model",
    "nomic-bert-moe": "an embedding model",
    "jina-bert-v2": "an embedding model",
    "jina-bert-v3": "an embedding model",
    "neo-bert": "an embedding model",
    "modern-bert": "an embedding model",
    "t5encoder": "a text encoder",
    "wavtokenizer-dec": "an audio decoder",
}
_NOT_CHAT_TYPES = {
    "adapter": "a LoRA adapter",
    "mmproj": "a vision projector (mmproj)",
    "imatrix": "an importance matrix",
}
SPLIT_PART = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


class NotGguf(ValueError):
    """The file is not a GGUF file, or its header is cut short."""


@dataclass(frozen=True, slots=True)
class GgufHeader:
    """What the header says about the model (empty strings where it says nothing)."""

    architecture: str = ""
    file_type: str = ""  # general.type: "model", "adapter", "mmproj", ...
    name: str = ""
    pooling: bool = False  # <arch>.pooling_type: an embedding or reranking model
    split_count: int = 0


def read_gguf_header(path: Path) -> GgufHeader:
    """Read the header of ``path``; :class:`NotGguf` when it has none."""
    try:
        with path.open("rb") as file:
            return _read(file)
    except (OSError, struct.error, UnicodeDecodeError) as error:
        raise NotGguf(f"its GGUF header cannot be read ({error})") from error


def not_chat_reason(header: GgufHeader) -> str | None:
    """Why a model with this header is not a chat model, or ``None`` if it may be one."""
    if header.file_type in _NOT_CHAT_TYPES:
        return _NOT_CHAT_TYPES[header.file_type]
    if header.architecture in _NOT_CHAT_ARCHITECTURES:
        return _NOT_CHAT_ARCHITECTURES[header.architecture]
    if header.pooling:
        return "an embedding or reranking model"
    return None


def _read(file: BinaryIO) -> GgufHeader:
    if file.read(4) != _MAGIC:
        raise NotGguf("it is not a GGUF file")
    version, _tensors, key_count = struct.unpack("<IQQ", _exactly(file, 20))
    if version < 2:
        raise NotGguf(f"it is GGUF version {version}, which llama.cpp no longer reads")
    values: dict[str, object] = {}
    for _ in range(min(key_count, _MAX_KEYS)):
        key = _string(file)
        if key.startswith("tokenizer."):
            break
        (value_type,) = struct.unpack("<I", _exactly(file, 4))
        values[key] = _value(file, value_type)
    architecture = str(values.get("general.architecture", ""))
    split_count = values.get("split.count", 0)
    return GgufHeader(
        architecture=architecture,
        file_type=str(values.get("general.type", "")),
        name=str(values.get("general.name", "")),
        pooling=f"{architecture}.pooling_type" in values,
        split_count=split_count if isinstance(split_count, int) else 0,
    )


def _value(file: BinaryIO, value_type: int) -> object:
    if value_type == _STRING:
        return _string(file)
    if value_type in _SCALAR_FORMATS:
        fmt = _SCALAR_FORMATS[value_type]
        return struct.unpack(fmt, _exactly(file, struct.calcsize(fmt)))[0]
    if value_type == _ARRAY:
        item_type, count = struct.unpack("<IQ", _exactly(file, 12))
        if item_type in _FIXED_SIZES:
            file.seek(_FIXED_SIZES[item_type] * count, 1)
        else:
            for _ in range(count):
                _value(file, item_type)
        return None
    raise NotGguf(f"its header has an unknown value type {value_type}")


def _string(file: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", _exactly(file, 8))
    if length > 1 << 20:
        raise NotGguf("its header has a string longer than 1 MB")
    return _exactly(file, length).decode("utf-8")


def _exactly(file: BinaryIO, size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise NotGguf("its GGUF header is cut short")
    return data
