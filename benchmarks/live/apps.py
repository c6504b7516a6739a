"""Fresh apps on the rig for each run, and what each one reported about its speaker."""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.live.clips import answer_prompts
from benchmarks.live.figures import BargeInResult, EchoResult
from benchmarks.live.session import Session
from benchmarks.live.trials import barge_ins, echo_answers
from benchmarks.rig import LiveApp, OutputLine, RigIO

APP_DRY = re.compile(r"the speaker ran dry (once|(\d+) times)")


APP_SPEAKER_CUT = re.compile(r"\[interrupted: speaker_lost\]")


APP_SPEAKER_FAILED = re.compile(r"^error: The speaker failed")


@dataclass
class Bench:
    """What every live run shares: the rig, the test's mouth and ear, the app's flags."""

    env: dict[str, str]
    io: RigIO
    config_home: Path
    common: list[str]
    verbose: bool = False
    speaker_underflows: int = 0
    """Summed over every app started: the last count each one printed."""
    speaker_stops: int = 0
    speaker_cut_answers: int = 0
    apps: int = 0

    @contextlib.contextmanager
    def app(self, flags: list[str]) -> Iterator[Session]:
        """A freshly started app with ``flags`` (plus the common ones), stopped at the end."""
        app = LiveApp(self.env, [*flags, *self.common], config_home=self.config_home)
        print(f"live: starting voiceterm {' '.join(app.args)}", flush=True)
        app.start()
        try:
            yield Session(app, self.io, verbose=self.verbose)
        finally:
            app.stop()
            self.apps += 1
            self.speaker_underflows += speaker_underflows(app)
            self.speaker_stops += count_lines(app.stderr, APP_SPEAKER_FAILED)
            self.speaker_cut_answers += count_lines(app.stdout, APP_SPEAKER_CUT)


def speaker_underflows(app: LiveApp) -> int:
    """The app's last printed count of speaker underflows (it prints them as they grow)."""
    count = 0
    for line in app.lines():
        match = APP_DRY.search(line.text)
        if match:
            count = 1 if match.group(1) == "once" else int(match.group(2))
    return count


def count_lines(lines: list[OutputLine], pattern: re.Pattern[str]) -> int:
    """How many of the app's lines match ``pattern``."""
    return sum(bool(pattern.search(line.text)) for line in lines)


def barge_in_runs(
    bench: Bench, flags: list[str], trials: int, result: BargeInResult, per_app: int = 3
) -> None:
    """Barge-in trials until ``trials`` counted, on a fresh app every ``per_app`` tries.

    Why fresh: each cut-off answer enters the history as the few words heard, and
    after two or three of them the tiny model imitates them and answers every
    question with two words, too short to be cut off.
    """
    run = 0
    while result.trials < trials and run <= 3 * trials:
        with bench.app(flags) as session:
            barge_ins(session, per_app, trials, result, seed=run)
        run += 1


def echo_run(bench: Bench, mode: str, answers: int, args: argparse.Namespace) -> EchoResult:
    """``answers`` complete answers with echo, then barge-ins over the echo."""
    result = EchoResult(mode)
    prompts = answer_prompts(answers)
    flags = ["--audio-echo", mode]
    while result.answers < answers:
        with bench.app(flags) as session:
            if echo_answers(session, prompts[result.answers :], result):
                break
        # It talked to itself without end: restarted (the control shows it once).
        if mode == "off":
            break
    if mode != "off":
        wanted = args.barge_ins if args.echo_barge_ins is None else args.echo_barge_ins
        trials = wanted if mode != "half_duplex" else min(5, wanted)
        result.barge = BargeInResult(args.min_speech_ms[0], mode)
        barge_in_runs(bench, flags, trials, result.barge, args.barge_ins_per_app)
    return result
