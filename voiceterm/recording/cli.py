"""``voiceterm replay DIR`` and ``voiceterm view DIR|FILE``.

voiceterm replay DIR [--set section.key=value ...] [--latency recorded|MS] [--expect-same]
                 [--output F]
voiceterm view DIR            (a recording) or a Chrome trace from --trace / the timeline's e
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from voiceterm.errors import ConfigError, VoicetermError
from voiceterm.recording.turns import Change, SpokenTurn, match
from voiceterm.timeline import format_seconds

if TYPE_CHECKING:
    from voiceterm.recording.replay import ReplayResult


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voiceterm", description="Recorded sessions.")
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser(
        "replay",
        help="run a recording through today's code and settings; print what changed",
        description=(
            "Feed a recording's microphone (and its speaker sound, for echo cancellation) "
            "through today's pipeline, in lockstep on audio time, and print turn by turn "
            "what changed: turns split or merged, transcripts, end-of-turn decisions, "
            "barge-ins, tools, answers; voice-to-voice as it was recorded."
        ),
    )
    replay.add_argument("folder", type=Path, help="the recording (made with --record)")
    replay.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change a setting from the recorded one (repeatable)",
    )
    replay.add_argument(
        "--expect-same", action="store_true", help="exit 1 if anything changed (a regression test)"
    )
    replay.add_argument(
        "--accept",
        action="store_true",
        help="keep this replay's turns in the recording: later replays are compared with them",
    )
    replay.add_argument(
        "--latency",
        default="recorded",
        metavar="recorded|MS",
        help=(
            "how long after a pause the end-of-turn verdict and the words so far count: "
            "as long as they took in the recorded session (default), or MS milliseconds "
            "(0: a machine with no compute time)"
        ),
    )
    replay.add_argument("--output", type=Path, help="write the replayed answers to this WAV file")
    replay.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    view = commands.add_parser("view", help="open a recording's timeline in the TUI")
    view.add_argument("path", type=Path, help="a recording's folder, or a Chrome trace JSON")
    view.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "replay":
            return run_replay(
                args.folder,
                args.set,
                args.expect_same,
                args.output,
                accept=args.accept,
                check_latency_s=check_latency(args.latency),
            )
        from voiceterm.recording.view import run_view

        return run_view(args.path)
    except VoicetermError as error:
        print(f"voiceterm: {error}", file=sys.stderr)  # the message, then "hint: ..."
        return 2
    except KeyboardInterrupt:
        return 130


def check_latency(value: str) -> float | None:
    """``--latency``: ``None`` for "recorded", else seconds.

    Raises:
        ConfigError: neither "recorded" nor a number of milliseconds from 0 up.
    """
    if value.strip().lower() == "recorded":
        return None
    try:
        ms = float(value)
    except ValueError:
        ms = -1.0
    if not 0 <= ms <= 10_000:
        raise ConfigError(
            f"--latency {value!r} is neither 'recorded' nor milliseconds.",
            hint="e.g. --latency recorded, or --latency 0 for a machine with no compute time",
        )
    return ms / 1000


def run_replay(
    folder: Path,
    sets: list[str],
    expect_same: bool,
    output: Path | None,
    *,
    accept: bool = False,
    check_latency_s: float | None = None,
    out: TextIO | None = None,
) -> int:
    """Replay ``folder``; print what changed; 1 for a change with ``expect_same``."""
    out = out or sys.stdout
    from voiceterm.recording.reader import Recording
    from voiceterm.recording.replay import replay, replay_config

    recording = Recording.open(folder)
    config, notes = replay_config(recording, sets)
    recording.audio()  # a truncated file is found before the models load
    result = asyncio.run(
        replay(
            recording,
            config,
            keep_answers=output is not None,
            check_latency_s=check_latency_s,
        )
    )
    if output is not None:
        from voiceterm.audio.wavio import write_wav

        write_wav(output, result.answers, 22050)
    if not recording.complete:
        notes.append("the session did not end normally (killed?): replayed up to where it stops")
    reference = _reference_turns(folder, result, accept, notes)
    notes.append(result.latency)
    changes = match(reference, result.replayed)
    _print_report(notes, changes, result, output, out)
    changed = [c for c in changes if c.kind != "same"]
    if expect_same and changed and not accept:
        print(f"voiceterm: {len(changed)} turn(s) changed (--expect-same)", file=sys.stderr)
        return 1
    return 0


def _reference_turns(
    folder: Path, result: ReplayResult, accept: bool, notes: list[str]
) -> list[SpokenTurn]:
    """What the replay is compared with: the accepted replay's turns if the recording
    has them (``--accept`` writes this replay's), else the recorded session's.

    A replay is accepted for the kind of CPU it ran on (Whisper's int8 kernels differ
    between kinds, and so may its words); ``accepted.json`` serves the others.
    """
    import json

    from voiceterm.recording import format as fmt
    from voiceterm.recording.identity import cpu_kind

    for_this_cpu = fmt.accepted_on(folder, cpu_kind())
    if accept:
        turns = [turn.to_dict(result.shift) for turn in result.replayed]
        fmt.write_private(for_this_cpu, json.dumps({"turns": turns}, indent=1))
        notes.append(f"accepted: later replays are compared with these turns ({for_this_cpu})")
        return result.recorded
    accepted_path = for_this_cpu if for_this_cpu.exists() else folder / fmt.ACCEPTED
    if not accepted_path.exists():
        return result.recorded
    try:
        accepted = json.loads(accepted_path.read_text(encoding="utf-8"))["turns"]
        reference = [SpokenTurn.from_dict(turn, result.shift) for turn in accepted]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fmt.RecordingError(f"{accepted_path} cannot be read ({exc}).") from exc
    live = [c for c in match(result.recorded, result.replayed) if c.kind != "same"]
    notes.append(
        f"compared with the accepted replay ({accepted_path.name}); the live session differs "
        f"from this replay in {len(live)} place(s)"
    )
    return reference


def _print_report(
    notes: list[str],
    changes: list[Change],
    result: ReplayResult,
    output: Path | None,
    out: TextIO,
) -> None:
    for note in notes:
        print(f"note: {note}", file=out)
    print(format_changes(changes), file=out)
    print(f"{result.audio_s:.1f} s of audio replayed in {result.wall_s:.1f} s", file=out)
    if output is not None:
        print(f"answers written to {output}", file=out)


def format_changes(changes: list[Change]) -> str:
    """Turn by turn what changed, then a summary."""
    lines = []
    for number, change in enumerate(changes, 1):
        kind = change.kind
        before = " | ".join(repr(t.words) for t in change.recorded) or "-"
        after = " | ".join(repr(t.words) for t in change.replayed) or "-"
        if kind == "same":
            lines.append(f"{number:3} same     {after}")
        elif kind in ("changed", "decided"):
            lines.append(f"{number:3} {kind:<8} {'; '.join(change.details())}")
        else:
            lines.append(f"{number:3} {kind:<8} {before} -> {after}")
        for recorded, replayed in zip(change.recorded, change.replayed, strict=False):
            if recorded.answer.strip() != replayed.answer.strip():
                lines.append(
                    f"      answer {recorded.answer.strip()!r} -> {replayed.answer.strip()!r}"
                )
        figures = []
        recorded_v2v = [t.voice_to_voice for t in change.recorded if t.voice_to_voice is not None]
        compute = [t.compute for t in change.replayed if t.compute is not None]
        if recorded_v2v:
            figures.append(f"voice-to-voice {format_seconds(recorded_v2v[0])} recorded")
        if compute:
            figures.append(f"work left after the turn now {format_seconds(compute[0])}")
        if figures:
            lines.append(f"      {', '.join(figures)}")
    kinds = [c.kind for c in changes]
    recorded_count = sum(len(c.recorded) for c in changes)
    replayed_count = sum(len(c.replayed) for c in changes)
    counts = ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds) if k != "same")
    lines.append(
        f"summary: {recorded_count} recorded turn(s), {replayed_count} replayed; "
        f"{kinds.count('same')} same" + (f", {counts}" if counts else "")
    )
    return "\n".join(lines)
