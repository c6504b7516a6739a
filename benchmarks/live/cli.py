"""The live benchmark's command line: every run, once per load, then the report."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import benchmarks.live
from benchmarks.conversation import FileConversation
from benchmarks.live.apps import Bench, barge_in_runs, echo_run
from benchmarks.live.clips import questions
from benchmarks.live.devices import device_latencies
from benchmarks.live.figures import BargeInResult, Report
from benchmarks.live.file_turns import file_based_v2v, file_config, fresh_turn
from benchmarks.live.report import load_label, print_report, print_side_by_side
from benchmarks.live.trials import coughs, voice_to_voice
from benchmarks.load import background_load
from benchmarks.rig import RigControl, RigIO, calibrate
from voiceterm.pipeline.loading import Engines, load_engines

ROOT = Path(__file__).resolve().parents[2]


def aec_wired() -> bool:
    pipeline = ROOT / "voiceterm" / "pipeline"
    return any("make_echo_canceller" in path.read_text() for path in pipeline.glob("*.py"))


def run_bench(args: argparse.Namespace, busy: int) -> Report:
    """Everything, once; beside ``busy`` busy programs that run from start to end."""
    report = Report(load=[f"{os.getloadavg()[0]:.2f}"], busy=busy)
    with background_load(busy):
        clips = questions(args.turns)
        config = file_config(args.max_tokens, args.temperature)
        engines: Engines | None = None
        fresh_engines: Engines | None = None
        if not args.skip_file:
            print("file-based: loading models ...", flush=True)
            engines = load_engines(config)
            file_based_v2v(config, engines, clips, report)
            # The fresh turns beside the live ones get engines of their own: on the
            # conversation's, they would evict its history from the LLM's cache.
            fresh_engines = load_engines(config)

        modes = list(args.echo_modes)
        if "aec" in modes and not aec_wired():
            modes.remove("aec")
            report.notes.append(
                "aec not run: voiceterm/pipeline does not wire make_echo_canceller yet, so "
                "--audio-echo aec behaves like off"
            )

        with tempfile.TemporaryDirectory(prefix="vt-bench-rig-") as rig_dir:
            rig = RigControl(Path(rig_dir))
            env = rig.start()
            config_home = Path(rig_dir) / "config"
            config_home.mkdir()
            common = ["--llm-max-tokens", str(args.max_tokens), *args.app_flag]
            if args.temperature is not None:
                common += ["--llm-temperature", str(args.temperature)]
            try:
                report.calibration_ms = calibrate(env).errors_ms
                device_latencies(env, report)
                with RigIO(env) as io:
                    bench = Bench(env, io, config_home, common, verbose=args.verbose)
                    settings = [(m, h) for h in args.hold for m in args.min_speech_ms]
                    for index, (min_speech, hold) in enumerate(settings):
                        flags = ["--audio-echo", "off", "--barge-in-min-speech-ms", str(min_speech)]
                        flags += ["--barge-in-hold", hold]
                        barge = BargeInResult(min_speech, "off", hold)
                        with bench.app(flags) as session:
                            if index == 0:
                                conversation = None
                                if engines is not None and not args.skip_conversation:
                                    recording = Path(rig_dir) / "conversation.wav"
                                    conversation = FileConversation(config, engines, recording)
                                fresh = None
                                if fresh_engines is not None:
                                    fresh = functools.partial(fresh_turn, config, fresh_engines)
                                with conversation or contextlib.nullcontext():
                                    voice_to_voice(session, clips, report, conversation, fresh)
                                del engines, conversation, fresh, fresh_engines
                                gc.collect()
                            coughs(session, args.coughs, barge)
                        barge_in_runs(bench, flags, args.barge_ins, barge, args.barge_ins_per_app)
                        report.barge_ins.append(barge)
                    rig.set_echo(args.echo_gain)
                    runs = [(mode, args.answers) for mode in modes]
                    if args.control_answers:
                        runs.append(("off", args.control_answers))
                    for mode, answers in runs:
                        report.echo.append(echo_run(bench, mode, answers, args))
                    report.speaker_underflows = bench.speaker_underflows
                    report.speaker_stops = bench.speaker_stops
                    report.speaker_cut_answers = bench.speaker_cut_answers
                    report.apps = bench.apps
                    if io.restarts or io.overflows:
                        report.notes.append(
                            f"the bench's own streams: {io.restarts} reopened, "
                            f"{io.overflows} input overflows (times stay true across both)"
                        )
            finally:
                rig.stop()
    report.load.append(f"{os.getloadavg()[0]:.2f}")
    if "half_duplex" in modes:
        report.notes.append(
            "half_duplex ignores the microphone while it speaks: no barge-in by voice, by design"
        )
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live",
        description=(benchmarks.live.__doc__ or "").splitlines()[0],
    )
    parser.add_argument("--turns", type=int, default=20, help="voice-to-voice turns")
    parser.add_argument("--barge-ins", type=int, default=20, help="barge-in trials per setting")
    parser.add_argument(
        "--echo-barge-ins", type=int, help="barge-ins over echo (default: --barge-ins)"
    )
    parser.add_argument(
        "--barge-ins-per-app",
        type=int,
        default=3,
        help="barge-in trials per fresh app (1: more app runs, e.g. to count underflows)",
    )
    parser.add_argument("--answers", type=int, default=50, help="answers per echo mode")
    parser.add_argument("--echo-modes", nargs="*", default=["half_duplex", "aec"])
    parser.add_argument("--echo-gain", type=float, default=-6.0, help="loopback gain, dB")
    parser.add_argument("--control-answers", type=int, default=5, help="answers with echo=off")
    parser.add_argument("--min-speech-ms", type=int, nargs="+", default=[150])
    parser.add_argument(
        "--hold", nargs="+", choices=["on", "off"], default=["on"], help="barge_in.hold values"
    )
    parser.add_argument("--coughs", type=int, default=10, help="cough trials per setting")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument(
        "--temperature",
        type=float,
        help="the LLM's sampling temperature, live and file-based alike (default: the app's)",
    )
    parser.add_argument("--skip-file", action="store_true", help="no file-based run")
    parser.add_argument(
        "--skip-conversation",
        action="store_true",
        help="file-based: only fresh clips, not also the clips as one conversation",
    )
    parser.add_argument("--quick", action="store_true", help="5 of everything")
    parser.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="run everything again beside N busy processes; print both side by side",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the app's lines")
    parser.add_argument(
        "--app-flag", action="append", default=[], help="extra voiceterm flag (repeatable)"
    )
    args = parser.parse_args()
    if args.quick:
        args.turns, args.barge_ins, args.answers, args.coughs = 5, 5, 5, 5
        args.control_answers = min(args.control_answers, 3)
    os.environ["HF_HUB_OFFLINE"] = "1"
    loads = [0] if args.background_load <= 0 else [0, args.background_load]
    reports = [run_bench(args, busy) for busy in loads]
    for report in reports:
        print_report(report, args)
    if len(reports) > 1:
        print_side_by_side(reports)
    if args.json:
        figures: Any = asdict(reports[0])
        if len(reports) > 1:
            figures = {load_label(report.busy): asdict(report) for report in reports}
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0
