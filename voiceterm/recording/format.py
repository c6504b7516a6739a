"""The recording folder's layout, its format version, and private file creation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from voiceterm.errors import VoicetermError

FORMAT_NAME = "voiceterm-recording"
FORMAT_VERSION = 1
"""Grows when a reader of the previous version could misread a new recording."""

SAMPLE_RATE = 16000
CHANNELS = ("mic", "speaker")
SEGMENT_S = 60
SEGMENT_FRAMES = SEGMENT_S * SAMPLE_RATE

SESSION = "session.json"
EVENTS = "events.jsonl"
CLOCK = "clock.jsonl"
AUDIO_INDEX = "audio.jsonl"
TALK = "talk.md"
ACCEPTED = "accepted.json"
"""The turns of a replay someone accepted (``replay --accept``): what later replays expect."""


def accepted_on(folder: Path, cpu: str) -> Path:
    """Where the replay accepted on this kind of CPU is kept (``accepted-<cpu>.json``)."""
    return folder / f"accepted-{cpu}.json"


class RecordingError(VoicetermError):
    """A folder that is not a readable recording (or cannot become one)."""

    title = "Recording error"


def segment_name(index: int, suffix: str) -> str:
    return f"audio-{index:04d}.{suffix}"


def make_private_dir(path: Path) -> None:
    """Create ``path`` (``0700``) for a new recording; an existing one must be empty."""
    if path.exists():
        if not path.is_dir():
            raise RecordingError(f"{path} exists and is not a folder.", hint="Give a new folder.")
        if any(path.iterdir()):
            raise RecordingError(
                f"{path} is not empty: a recording needs a folder of its own.",
                hint="Give a new folder, e.g. --record sessions/$(date +%F-%H%M)",
            )
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is cut by the umask
    except OSError as exc:
        raise RecordingError(f"Cannot create the recording folder {path}: {exc.strerror}.") from exc


def open_private(path: Path, mode: str = "a") -> Any:
    """Open a file created ``0600`` (``a``: append text, ``ab``: append bytes, ``w``...)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8")


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (a kill leaves the old or the new file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
    os.replace(tmp, path)


def read_session(folder: Path) -> dict[str, Any]:
    """``session.json`` of a recording, checked.

    Raises:
        RecordingError: not a folder, not a recording, or a newer format version.
    """
    if not folder.is_dir():
        raise RecordingError(
            f"{folder} is not a folder.",
            hint="Give a recording's folder (made with --record).",
        )
    path = folder / SESSION
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordingError(
            f"{folder} is not a voiceterm recording (it has no {SESSION}).",
            hint="Give a folder made with `voiceterm --record DIR`.",
        ) from None
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path} cannot be read: {exc}.") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise RecordingError(
            f"{folder} is not a voiceterm recording ({SESSION} is something else).",
            hint="Give a folder made with `voiceterm --record DIR`.",
        )
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RecordingError(
            f"{folder} was recorded in format version {version}; this voiceterm reads "
            f"up to version {FORMAT_VERSION}.",
            hint="Update voiceterm to open it.",
        )
    return meta
