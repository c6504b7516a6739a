"""Bus messages as JSON lines, and back.

A line holds the message's time (``t``, monotonic seconds), its id, its source (the
stage that sent it), the turn it belongs to, the event's type and its fields. Audio
payloads are left out: the recording's audio files hold the sound.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any

from voiceterm import events as event_types
from voiceterm.bus import Message

_PAYLOADS = frozenset({"audio"})
_fields_of: dict[type[Any], tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return repr(value)


def to_line(message: Message, turn: int) -> str:
    """One JSON line (with its newline) for a bus message."""
    event = message.event
    kind = type(event)
    names = _fields_of.get(kind)
    if names is None:
        names = tuple(f.name for f in fields(event)) if is_dataclass(event) else ()
        _fields_of[kind] = names
    values: dict[str, Any] = {}
    for name in names:
        if name in _PAYLOADS:
            continue
        values[name] = _plain(getattr(event, name))
    if not names:
        values["repr"] = repr(event)
    record = {
        "t": message.timestamp,
        "id": message.id,
        "src": message.source,
        "turn": turn,
        "type": kind.__name__,
        "e": values,
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"


def from_record(record: dict[str, Any]) -> Message | None:
    """The bus message a line stood for (``None``: a type this voiceterm lacks)."""
    kind = getattr(event_types, str(record.get("type", "")), None)
    if not isinstance(record.get("t"), int | float):
        return None
    if not isinstance(kind, type) or not is_dataclass(kind):
        return None
    known = {f.name for f in fields(kind)}
    values = {key: value for key, value in record.get("e", {}).items() if key in known}
    if "pieces" in values and isinstance(values["pieces"], list):
        values["pieces"] = tuple(values["pieces"])
    try:
        event = kind(**values)
    except TypeError:
        return None
    return Message(str(record.get("src", "")), event, id=record.get("id"), timestamp=record["t"])


def read_records(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a last line cut by a kill is skipped."""
    for line in text.splitlines():
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the line being written when the session was killed
        if isinstance(record, dict):
            yield record
