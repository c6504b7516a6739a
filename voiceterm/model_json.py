"""Reading the JSON files that come with models: configs, manifests, fitted weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from voiceterm.errors import ModelError


def read_model_json(
    path: Path, *, what: str, hint: str, missing_hint: str | None = None
) -> dict[str, Any]:
    """The JSON object in ``path``; ``what`` names the file in errors ("The wake word
    manifest"), ``hint`` says how to get a good one, ``missing_hint`` (default ``hint``)
    where to put one that is not there.

    Raises:
        ModelError: the file is missing, unreadable, not JSON, or not a JSON object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{what} {path} does not exist.", hint=missing_hint or hint) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{what} {path} could not be read: {error}.", hint=hint) from None
    if not isinstance(data, dict):
        raise ModelError(f"{what} {path} is not a JSON object.", hint=hint)
    return data
