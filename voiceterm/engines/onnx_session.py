"""An ONNX Runtime session on a model file, or a :class:`ModelError` that says why not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voiceterm.errors import ModelError


def open_session(
    onnxruntime: Any, path: Path, options: Any, providers: list[Any], *, model: str, hint: str
) -> Any:
    """``onnxruntime.InferenceSession`` on ``path`` (``model``: what it is, for a person).

    Raises:
        ModelError: the file is corrupt or not an ONNX model.
    """
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(
            f"{model} {path.name} could not be loaded: the file is corrupt or not an ONNX model.",
            hint=hint,
        ) from exc
