"""A timeline's exports: Chrome trace-event JSON (and back), Markdown, and the files.

:func:`to_chrome_trace` opens in Perfetto; :func:`from_chrome_trace` reads it back
for ``voiceterm view``; :func:`to_markdown` is the conversation with its timings;
:func:`export_timeline` and :func:`export_markdown` write them to files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from voiceterm.errors import VoicetermError
from voiceterm.timeline import (
    HEADLINES,
    LANE_TITLES,
    LANES,
    Span,
    Timeline,
    ToolUse,
    Turn,
    format_seconds,
    format_tool_call,
    format_wall,
    summarize,
)

# --- Chrome trace-event JSON -----------------------------------------------------------

_TURN_TID = 1
_MARKS_TID = 2
_FIRST_LANE_TID = 10


def to_chrome_trace(turns: Sequence[Turn], *, clock_offset: float = 0.0) -> dict[str, Any]:
    """The turns as a Chrome trace-event document (open it in https://ui.perfetto.dev).

    One thread per lane (plus one for whole turns and one for marks); every span
    is a complete (``"X"``) event with ``ts``/``dur`` in microseconds from the
    first turn's start, its content in ``args``; marks are instant events.

    Args:
        turns: the turns to export.
        clock_offset: added to monotonic times for the absolute ``wall_time`` args.
    """
    t0 = min((t.started_at for t in turns), default=0.0)
    lanes: list[str] = list(LANES)
    for turn in turns:
        lanes.extend(lane for lane in turn.lanes() if lane not in lanes)
    tids = {lane: _FIRST_LANE_TID + index for index, lane in enumerate(lanes)}
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "voiceterm"}},
        _thread_name(_TURN_TID, "turns"),
        _thread_name(_MARKS_TID, "marks"),
    ]
    events.extend(_thread_name(tid, LANE_TITLES.get(lane, lane)) for lane, tid in tids.items())
    for turn in turns:
        events.append(_turn_event(turn, t0))
        events.extend(
            _mark_event(turn, name, at, t0)
            for name, at in sorted(turn.marks.items(), key=lambda item: item[1])
        )
        events.extend(
            _span_event(turn, span, tids[span.lane], t0, clock_offset)
            for span in sorted(turn.spans, key=lambda s: s.start)
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"clock": "monotonic", "t0": t0, "t0_unix": t0 + clock_offset},
    }


def _micros(t: float, t0: float) -> float:
    return round((t - t0) * 1e6, 1)


def _turn_event(turn: Turn, t0: float) -> dict[str, Any]:
    end = max([turn.started_at, *turn.marks.values(), *(s.end for s in turn.spans)], default=0.0)
    played, cut = turn.cut_off_text()
    return {
        "ph": "X",
        "name": f"turn {turn.number}",
        "cat": "turn",
        "pid": 1,
        "tid": _TURN_TID,
        "ts": _micros(turn.started_at, t0),
        "dur": round((end - turn.started_at) * 1e6, 1),
        "args": {
            "source": turn.source,
            "user": turn.user_text,
            "agent": turn.agent_text,
            "spoken": played,
            "cut_off": cut,
            "interrupted": turn.interrupted,
            "tools": [_tool_dict(tool) for tool in turn.tools],
            "headline_ms": {
                key: None if value is None else round(value * 1000, 1)
                for key, value in turn.headline().items()
            },
        },
    }


def _mark_event(turn: Turn, name: str, at: float, t0: float) -> dict[str, Any]:
    return {
        "ph": "i",
        "s": "t",
        "name": name,
        "cat": "mark",
        "pid": 1,
        "tid": _MARKS_TID,
        "ts": _micros(at, t0),
        "args": {"turn": turn.number, "relative_ms": round((at - turn.anchor) * 1000, 1)},
    }


def _span_event(turn: Turn, span: Span, tid: int, t0: float, clock_offset: float) -> dict[str, Any]:
    return {
        "ph": "X",
        "name": _span_name(span),
        "cat": span.lane,
        "pid": 1,
        "tid": tid,
        "ts": _micros(span.start, t0),
        "dur": round(span.duration * 1e6, 1),
        "args": {
            "turn": turn.number,
            "content": span.content,
            "derived": span.derived,
            "relative_ms": round((span.start - turn.anchor) * 1000, 1),
            "wall_time": format_wall(span.start + clock_offset),
        },
    }


def _thread_name(tid: int, name: str) -> dict[str, Any]:
    return {"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}}


def _span_name(span: Span) -> str:
    text = " ".join(span.content.split())
    if not text:
        return span.lane
    return text if len(text) <= 40 else text[:39] + "…"


def _tool_dict(tool: ToolUse) -> dict[str, Any]:
    return {
        "name": tool.name,
        "args": tool.args,
        "result": None if tool.result is None else str(tool.result),
        "error": tool.error,
    }


def from_chrome_trace(document: dict[str, Any]) -> Timeline:
    """A timeline rebuilt from :func:`to_chrome_trace`'s document (for ``voiceterm view``).

    Turns keep their words, marks and spans; what the trace does not hold (partial
    transcripts, metrics, errors) is left empty.

    Raises:
        ValueError: the document is not a voiceterm Chrome trace.
    """
    events = document.get("traceEvents")
    other = document.get("otherData", {})
    if not isinstance(events, list) or not isinstance(other, dict) or "t0" not in other:
        raise ValueError("not a voiceterm Chrome trace")
    t0 = float(other["t0"])
    offset = float(other.get("t0_unix", t0)) - t0
    timeline = Timeline(max_turns=100_000, clock_offset=offset)
    turns: dict[int, Turn] = {}
    for event in events:
        if event.get("tid") == _TURN_TID and event.get("ph") == "X":
            turn = _turn_from(event, t0)
            turns[turn.number] = turn
    for event in events:
        args = event.get("args", {})
        owner = turns.get(args.get("turn", -1)) if isinstance(args, dict) else None
        if owner is None:
            continue
        if event.get("cat") == "mark":
            owner._set_mark(str(event.get("name", "")), _seconds(event, t0), explicit=True)
        elif event.get("ph") == "X" and event.get("tid") != _TURN_TID:
            start = _seconds(event, t0)
            span = Span(
                lane=str(event.get("cat", "")),
                start=start,
                end=start + float(event.get("dur", 0.0)) / 1e6,
                content=str(args.get("content", "")),
                derived=bool(args.get("derived", False)),
            )
            owner.spans.append(span)
    timeline.restore(turns.values())
    return timeline


def _seconds(event: dict[str, Any], t0: float) -> float:
    """An event's ``ts`` back as a monotonic time."""
    return t0 + float(event.get("ts", 0.0)) / 1e6


def _turn_from(event: dict[str, Any], t0: float) -> Turn:
    """A turn (its words and tools) from its whole-turn trace event."""
    args = event.get("args", {})
    number = int(str(event.get("name", "turn 0")).rsplit(" ", 1)[-1])
    turn = Turn(
        number=number, started_at=_seconds(event, t0), source=str(args.get("source", "voice"))
    )
    turn.user_text = str(args.get("user", ""))
    turn.agent_text = str(args.get("agent", ""))
    turn.spoken_text = str(args.get("spoken", ""))
    turn.interrupted = bool(args.get("interrupted", False))
    for tool in args.get("tools", []):
        turn.tools.append(
            ToolUse(
                call_id="",
                name=str(tool.get("name", "")),
                args=tool.get("args", {}),
                called_at=turn.started_at,
                result=tool.get("result"),
                error=tool.get("error"),
                finished_at=turn.started_at,
            )
        )
    return turn


# --- Markdown ----------------------------------------------------------------------------


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_~|<>[]#"})


def _md(text: str) -> str:
    return " ".join(text.split()).translate(_MD_SPECIAL)


def to_markdown(turns: Sequence[Turn], *, clock_offset: float = 0.0) -> str:
    """The conversation as Markdown: each turn's words, tools and timings, then p50/p95.

    The part of an answer that was cut off by a barge-in is struck through.
    """
    turns = [turn for turn in turns if not turn.is_empty]
    lines = ["# voiceterm conversation", ""]
    for turn in turns:
        when = format_wall(turn.started_at + clock_offset)
        lines += [f"## Turn {turn.number} · {when} · {turn.source}", ""]
        if turn.user_text:
            lines += [f"**You:** {_md(turn.user_text)}", ""]
        played, cut = turn.cut_off_text()
        if turn.agent_text:
            answer = _md(played)
            if cut.strip():
                answer = f"{answer} ~~{_md(cut)}~~ *(cut off)*".strip()
            lines += [f"**voiceterm:** {answer}", ""]
        for tool in turn.tools:
            outcome = f"error: {tool.error}" if tool.error else str(tool.result)
            lines.append(f"- tool `{format_tool_call(tool)}` → `{outcome}`")
        for error in turn.errors:
            lines.append(f"- error: {_md(error)}")
        if turn.tools or turn.errors:
            lines.append("")
        headline = turn.headline()
        lines += [
            "| " + " | ".join(label for _, label in HEADLINES) + " |",
            "|" + "---|" * len(HEADLINES),
            "| " + " | ".join(format_seconds(headline[key]) for key, _ in HEADLINES) + " |",
            "",
        ]
    stats = summarize(turns)
    lines += [
        "## Summary",
        "",
        f"{len(turns)} turns.",
        "",
        "| figure | turns | p50 | p95 |",
        "|---|---|---|---|",
    ]
    for key, label in HEADLINES:
        s = stats[key]
        lines.append(f"| {label} | {s.count} | {format_seconds(s.p50)} | {format_seconds(s.p95)} |")
    return "\n".join(lines) + "\n"


def _write(path: str | Path, text: str, suffix: str) -> Path:
    target = Path(path).expanduser()
    if target.is_dir():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = target / f"voiceterm-{stamp}{suffix}"
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise VoicetermError(
            f"Could not write {target}: {exc.strerror or exc}.",
            hint="Choose a folder you can write to.",
            title="Export failed",
        ) from exc
    return target


def export_timeline(timeline: Timeline, path: str | Path) -> Path:
    """Write the timeline as Chrome trace-event JSON; return the file written.

    ``path`` may be a folder: a file named ``voiceterm-<date>-<time>.trace.json``
    is made in it. Raises ``VoicetermError`` (with a hint) if it cannot be written.
    """
    trace = to_chrome_trace(timeline.turns, clock_offset=timeline.clock_offset)
    return _write(path, json.dumps(trace, ensure_ascii=False), ".trace.json")


def export_markdown(timeline: Timeline, path: str | Path) -> Path:
    """Write the conversation as Markdown with timings; return the file written.

    ``path`` may be a folder (see :func:`export_timeline`).
    """
    return _write(path, to_markdown(timeline.turns, clock_offset=timeline.clock_offset), ".md")
