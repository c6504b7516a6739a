"""The ``voiceterm`` command.

    voiceterm                              the TUI on the default devices
    voiceterm --headless                   live, without the TUI, printing each turn
    voiceterm --input q.wav --output a.wav answer a recording, write the spoken answer
    voiceterm models                       where each model comes from, and whether it loads
    voiceterm devices                      sound devices
    voiceterm --record DIR                 record the session into DIR (any mode)
    voiceterm replay DIR                   run a recording through today's code, say what changed
    voiceterm view DIR                     open a recording's (or a trace's) timeline

Every setting of the config file is also a flag (``--vad-hangover-ms 250``); a
flag wins over the file only when it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceterm import paths
from voiceterm.config import (
    Config,
    apply_values,
    check_config,
    load_config,
    settings_help,
)
from voiceterm.engines.offline import keep_offline
from voiceterm.errors import VoicetermError

if TYPE_CHECKING:
    from voiceterm.timeline import Timeline

_ALIASES = {
    "audio.input_device": ["--input-device"],
    "audio.output_device": ["--output-device"],
    "audio.echo": ["--echo"],
    "listen.mode": ["--listen"],
    "listen.wake_word": ["--wake-word"],
    "stt.model": ["--stt-model"],
    "llm.model": ["--llm-model"],
    "tts.model": ["--tts-model"],
}


def build_parser() -> argparse.ArgumentParser:
    settings = "\n".join(
        f"  --{key.replace('.', '-').replace('_', '-'):<28} {doc} (default {default})"
        for key, default, doc in settings_help()
    )
    parser = argparse.ArgumentParser(
        prog="voiceterm",
        description="An offline voice assistant in the terminal.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"settings (config file [section] key = value, or flag):\n{settings}\n\n"
            f"config file: --config PATH, else {paths.config_file()}"
        ),
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["run", "models", "devices"],
        default="run",
        help="run (default), models, or devices (and: replay DIR, view DIR; see their --help)",
    )
    parser.add_argument("--config", type=Path, help="TOML config file")
    parser.add_argument("--headless", action="store_true", help="live mode without the TUI")
    parser.add_argument("--input", type=Path, help="answer the speech in this WAV file")
    parser.add_argument("--output", type=Path, help="write the spoken answer to this WAV file")
    parser.add_argument(
        "--fast", action="store_true", help="with --input: as fast as possible, not real time"
    )
    parser.add_argument(
        "--trace", type=Path, help="on exit, write the timeline as Chrome trace JSON"
    )
    parser.add_argument("--markdown", type=Path, help="on exit, write the conversation as Markdown")
    parser.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record the session (microphone, speaker, events, settings) into this new folder",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    group = parser.add_argument_group("settings (see below)")
    for key, _default, doc in settings_help():
        flag = "--" + key.replace(".", "-").replace("_", "-")
        group.add_argument(
            flag, *_ALIASES.get(key, []), dest=key, default=None, help=argparse.SUPPRESS
        )
        del doc
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    config = load_config(args.config, explicit=args.config is not None)
    overrides: dict[str, dict[str, Any]] = {}
    for section in fields(config):
        for key in (f.name for f in fields(getattr(config, section.name))):
            value = getattr(args, f"{section.name}.{key}", None)
            if value is not None:
                overrides.setdefault(section.name, {})[key] = value
    return check_config(apply_values(config, overrides, "command line"))


def main(argv: list[str] | None = None) -> int:
    keep_offline()  # before any engine imports its library: nothing leaves the machine
    arguments = sys.argv[1:] if argv is None else argv
    if arguments and arguments[0] in ("replay", "view"):
        from voiceterm.recording.cli import main as recording_main

        return recording_main(arguments)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
        if args.record is not None:
            from voiceterm.recording.format import make_private_dir

            make_private_dir(args.record)  # a folder that cannot hold it fails here, not later
            config.session.record = True
            config.session.record_dir = str(args.record)
        if args.command == "models":
            from voiceterm.pipeline.report import print_models

            return print_models(config)
        if args.command == "devices":
            from voiceterm.audio.portaudio import list_devices

            print(list_devices())
            return 0
        from voiceterm.engines.wake import resolve_wake_model

        resolve_wake_model(config.listen.wake_word)  # a wrong wake word: exit 2, before the app
        if args.input is not None or args.output is not None:
            return _run_file(args, config)
        if args.headless:
            from voiceterm.pipeline.headless import run_live

            _export(args, asyncio.run(run_live(config)).timeline)
            return 0
        from voiceterm.tui.launch import run_app

        _export(args, run_app(config))
        return 0
    except VoicetermError as error:
        print(f"voiceterm: {error}", file=sys.stderr)  # the message, then "hint: ..."
        return 2
    except KeyboardInterrupt:
        return 130


def _run_file(args: argparse.Namespace, config: Config) -> int:
    from voiceterm.errors import AudioFileError
    from voiceterm.pipeline.headless import run_file

    if args.input is None or args.output is None:
        raise AudioFileError(
            "--input and --output go together.",
            hint="voiceterm --input question.wav --output answer.wav",
        )
    agent = asyncio.run(run_file(config, args.input, args.output, realtime=not args.fast))
    _export(args, agent.timeline)
    return 0


def _export(args: argparse.Namespace, timeline: Timeline) -> None:
    """Write the session's timeline where ``--trace`` and ``--markdown`` asked."""
    if args.trace or args.markdown:
        from voiceterm.timeline_export import export_markdown, export_timeline

        if args.trace:
            export_timeline(timeline, args.trace)
        if args.markdown:
            export_markdown(timeline, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
