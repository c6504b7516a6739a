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


_kinds: dict[str, tuple[type[Any], frozenset[str]] | None] = {}


def _kind(name: str) -> tuple[type[Any], frozenset[str]] | None:
    """The event class of a type name and its field names (cached: view reads 100k lines)."""
    try:
        return _kinds[name]
    except KeyError:
        kind = getattr(event_types, name, None)
        found = None
        if isinstance(kind, type) and is_dataclass(kind):
            found = (kind, frozenset(f.name for f in fields(kind)))
        _kinds[name] = found
        return found


def from_record(record: dict[str, Any]) -> Message | None:
    """The bus message a line stood for (``None``: a type this voiceterm lacks)."""
    found = _kind(str(record.get("type", "")))
    t = record.get("t")
    if found is None or not isinstance(t, int | float):
        return None
    kind, known = found
    values = record.get("e", {})
    if not known.issuperset(values):
        values = {key: value for key, value in values.items() if key in known}
    if "pieces" in values and isinstance(values["pieces"], list):
        values["pieces"] = tuple(values["pieces"])
    try:
        event = kind(**values)
    except TypeError:
        return None
    return Message(str(record.get("src", "")), event, id=record.get("id"), timestamp=t)


def read_records(text: str, types: frozenset[str] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a last line cut by a kill is skipped.

    ``types``: only the lines of these event types (the others are not parsed).
    """
    yield from _parsed(_lines(text, types))


def read_record_batches(
    text: str, types: frozenset[str] | None = None, first: int = 2000, then: int = 1_000_000
) -> Iterator[list[dict[str, Any]]]:
    """``read_records`` a batch of lines at a time, for a reader that shows as it goes:
    a small first batch (``first`` lines: something to show soon), then ``then``."""
    lines = _lines(text, types)
    start, size = 0, first
    while start < len(lines):
        yield list(_parsed(lines[start : start + size]))
        start, size = start + size, then


def _lines(text: str, types: frozenset[str] | None) -> list[str]:
    lines = [line for line in text.splitlines() if line]
    if types is not None:
        lines = [line for line in lines if _type_of(line) in types]
    return lines


def _parsed(lines: list[str]) -> Iterator[dict[str, Any]]:
    try:
        # One parse for the whole file is several times faster than one per line.
        records = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue  # the line being written when the session was killed
    for record in records:
        if isinstance(record, dict):
            yield record


def _type_of(line: str) -> str:
    start = line.find('"type":"')
    if start < 0:
        return ""
    start += 8
    return line[start : line.find('"', start)]
