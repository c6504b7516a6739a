"""Live latency through real devices: the real ``voiceterm --headless`` on the PulseAudio rig.

Everything is measured from the SIGNALS, on one clock: this script plays the
user's speech into the rig's microphone sink (``vt_mic``) and records the rig's
speaker (``vt_speaker.monitor``) through PortAudio, with every sample stamped
with PortAudio's DAC/ADC time mapped onto ``time.monotonic()``
(``tests/audio/live.py: RigIO``). A click check at the start proves the stamps
(a click played into ``vt_mic`` must be captured from ``vt_mic.monitor`` at the
time it was played).

Reported:

* voice-to-voice: last voiced sample of the question (the app's VAD run on the
  clip) -> first audible sample of the answer on the speaker; next to it the
  app's own figure (its timings line) and the file-based figure for the same
  clips in the same session, twice: each clip a fresh conversation
  (``scripts/bench_voice.py``'s streaming turn: ``WavFileSource`` -> pipeline ->
  ``WavFileSink``, paced in real time), and all clips as one conversation, as the
  live app hears them (same opening turn, same order, history kept, each clip
  said after 1.5 s of quiet). The fresh clips are said twice: on the quiet
  machine before the rig starts, and again beside each live turn (engines of
  their own, the idle live app, PulseAudio and this script's recorder running
  alike), for a figure taken side by side. The conversation is the like-for-like
  control for the devices' cost: the live app answers turn 20 with 19 turns of
  history, and a longer prompt takes the LLM longer (``--skip-conversation``
  leaves it out).
* barge-in, echo off: the onset of the user's speech in the microphone signal
  (the VAD's first voiced frame of the clip) -> the last assistant sample on the
  speaker, over chained trials (each barge-in asks for the next answer). Then
  ``--coughs`` fresh answers each get an 80 ms cough; one that cuts the answer off
  is counted, and so is how long the answer fell silent around it (with
  ``barge_in.hold`` a cough holds the answer until the hold is let go).
  ``--hold on off`` and ``--min-speech-ms 150 0`` repeat both for each setting
  (hold off: the answer is cut after min_speech_ms of speech; hold on, the
  default: it is held at the VAD's start and cut once the speech is confirmed).
* echo, with the rig's loopback (speaker -> microphone) at ``--echo-gain`` dB, for
  each ``--echo-modes`` mode: self-interruptions and phantom turns over
  ``--answers`` complete answers, and barge-ins caught over the echo.
  ``off`` (no echo handling) is run as a control over a few answers: it shows
  that the echo path really reaches the app.

Runtime with the defaults (20 turns, 20 barge-ins, 10 coughs, 50 answers per echo
mode, half_duplex and aec): about 45 minutes on 2 cores, most of it the 2 x 50
answers (``--answers`` sets it); ``--quick`` runs 5 of each in about 9 minutes.
Answers are capped at ``--max-tokens`` (48) in the live app and in the
file-based run alike, so that turns take seconds, not half a minute.

Usage: .venv/bin/python scripts/bench_live.py [--turns 20] [--barge-ins 20]
           [--answers 50] [--echo-modes half_duplex aec] [--echo-gain -6]
           [--hold on off] [--min-speech-ms 150 0] [--coughs 10] [--skip-file] [--quick]
           [--json out.json] [--app-flag=--llm-speculate-tokens=0 ...] [-v]
           [--background-load N] [--barge-ins-per-app 3]

``--background-load N`` runs all of it twice: on the idle machine, then beside N
busy programs (pure-Python spin loops, started before the second run and killed
after it, whatever happens), and prints the headline figures side by side.
Needs pulseaudio, pulseaudio-utils and espeak-ng (scripts/setup.sh --dev).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import importlib.util
import itertools
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.audio.live import (  # noqa: E402
    LiveApp,
    LostAudio,
    OutputLine,
    RigControl,
    RigIO,
    Utterance,
    calibrate,
    cough,
    utterance,
)
from tests.busy import background_load  # noqa: E402
from tests.conversation import FileConversation  # noqa: E402
from tests.speech import espeak, speech_corpus  # noqa: E402
from voiceterm.audio.wavio import write_wav  # noqa: E402
from voiceterm.config import Config  # noqa: E402
from voiceterm.pipeline.agent import Engines, load_engines  # noqa: E402
from voiceterm.pipeline.headless import format_turn_timings  # noqa: E402

INTERRUPTED = re.compile(r"\[interrupted: user_speech\]")
APP_V2V = re.compile(r"voice-to-voice (\d+) ms")
APP_BARGE = re.compile(r"barge-in (\d+) ms")
APP_DRY = re.compile(r"the speaker ran dry (once|(\d+) times)")
APP_SPEAKER_CUT = re.compile(r"\[interrupted: speaker_lost\]")
APP_SPEAKER_FAILED = re.compile(r"^error: The speaker failed")

ANIMALS = (
    "dog cat fox owl horse rabbit bear wolf mouse lion tiger duck goat sheep frog turtle "
    "crow whale dolphin eagle squirrel badger otter camel zebra"
).split()
ANSWER_PROMPTS = (
    "Tell me a short story about a brave little {}.",
    "What do you know about the {}?",
)
BARGE_PROMPT = "Wait, tell me all about the {} please."


# --- figures ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), q, method="nearest"))


def ms(value: float) -> str:
    return "   n/a" if value != value else f"{1000 * value:6.0f}"


@dataclass
class Series:
    """Seconds, one per trial."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def row(self, label: str, target: str = "") -> str:
        p50, p95 = percentile(self.values, 50), percentile(self.values, 95)
        return f"  {label:<44}{len(self.values):4d} {ms(p50)} {ms(p95)}   {target}"


@dataclass
class BargeInResult:
    min_speech_ms: int
    echo: str
    hold: str = "on"
    """barge_in.hold: on pauses the answer at the VAD's start and confirms later."""
    signal: Series = field(default_factory=Series)
    continuous: Series = field(default_factory=Series)
    """Only cuts of an answer that sounded without a pause from before the onset."""
    app: Series = field(default_factory=Series)
    trials: int = 0
    caught: int = 0
    not_talking: int = 0
    unheard: int = 0
    """Trials (barge-ins and coughs) not counted: this bench's recorder lost audio in
    them, and silence it made up would flatter the figures."""
    coughs: int = 0
    cough_cuts: int = 0
    cough_silences: Series = field(default_factory=Series)
    """The longest silence in the answer from 0.2 s before to 1.6 s after a cough."""


@dataclass
class EchoResult:
    mode: str
    answers: int = 0
    self_interruptions: int = 0
    phantom_turns: int = 0
    unanswered: int = 0
    runaways: int = 0
    """Times it answered its own voice on and on, and had to be restarted."""
    v2v: Series = field(default_factory=Series)
    barge: BargeInResult | None = None


@dataclass
class Report:
    calibration_ms: list[float] = field(default_factory=list)
    file_v2v: Series = field(default_factory=Series)
    """Each clip a fresh conversation, on the quiet machine before the rig starts."""
    file_fresh_beside_v2v: Series = field(default_factory=Series)
    """Each clip a fresh conversation, said right beside its live turn (same load)."""
    file_conversation_v2v: Series = field(default_factory=Series)
    """The same clips as one conversation from a file, history kept as in the live app."""
    paired_differences: Series = field(default_factory=Series)
    """live - file-based (one conversation), clip by clip."""
    live_v2v: Series = field(default_factory=Series)
    app_v2v: Series = field(default_factory=Series)
    unanswered: int = 0
    first_turn: float | None = None
    first_turn_app: str | None = None
    barge_ins: list[BargeInResult] = field(default_factory=list)
    echo: list[EchoResult] = field(default_factory=list)
    latencies: dict[str, float] = field(default_factory=dict)
    speaker_underflows: int = 0
    """The app's speaker underflows (clicks), summed over every app started."""
    speaker_stops: int = 0
    """The app's reports that the speaker stopped playing (a lost device, or one
    taken for lost), summed over every app started."""
    speaker_cut_answers: int = 0
    """Answers the app cut off because the speaker stopped (``speaker_lost``)."""
    apps: int = 0
    load: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    busy: int = 0
    """Busy programs (pure-Python spin loops) that ran beside everything."""


# --- speech --------------------------------------------------------------------------


def speech(text: str) -> Utterance:
    return utterance(espeak(text), text)


def questions(count: int) -> list[Utterance]:
    """The first ``count`` clips of the speech corpus (real people first), cycled."""
    corpus = speech_corpus()
    return [utterance(item.audio, item.text) for item in (corpus * 4)[:count]]


def answer_prompts(count: int) -> list[Utterance]:
    texts = [t.format(animal) for animal in ANIMALS for t in ANSWER_PROMPTS]
    return [speech(text) for text in (texts * 4)[:count]]


# --- the file-based figure -----------------------------------------------------------


def file_config(max_tokens: int, temperature: float | None) -> Config:
    """The live app's defaults, with the bench's answer cap and temperature."""
    config = Config()
    config.llm.max_tokens = max_tokens
    if temperature is not None:
        config.llm.temperature = temperature
    return config


def file_based_v2v(
    config: Config, engines: Engines, clips: list[Utterance], report: Report
) -> None:
    """bench_voice.py's streaming turn on the same clips (WAV in, WAV out, real time).

    Each clip is a fresh conversation: the history is cleared after every turn.
    """
    for index, clip in enumerate(clips):
        report.file_v2v.add(file_figure("file", index, clip, fresh_turn(config, engines, clip)))


@functools.cache
def bench_voice_module() -> Any:
    """scripts/bench_voice.py, loaded once (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(
        "bench_voice", ROOT / "scripts" / "bench_voice.py"
    )
    assert spec is not None and spec.loader is not None
    bench_voice = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_voice)
    return bench_voice


def fresh_turn(config: Config, engines: Engines, clip: Utterance) -> dict[str, float]:
    """bench_voice.py's streaming turn on one clip, a fresh conversation; its marks."""
    bench_voice = bench_voice_module()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "question.wav"
        write_wav(wav, clip.audio, clip.rate)
        marks: dict[str, float] = asyncio.run(
            bench_voice.streaming_turn(config, engines, wav, Path(tmp) / "answer.wav")
        )
    return marks


def file_figure(label: str, index: int, clip: Utterance, marks: dict[str, float]) -> float | None:
    """Voice-to-voice of a file-based turn from its marks (None: no answer), printed."""
    if "speech_end" not in marks or "playback_start" not in marks:
        print(f"  {label} {index:2d}    no answer  {clip.text[:50]!r}", flush=True)
        return None
    value = marks["playback_start"] - marks["speech_end"]
    print(f"  {label} {index:2d} {1000 * value:6.0f} ms  {clip.text[:50]!r}", flush=True)
    print(f"      | {format_turn_timings(marks)}", flush=True)
    return value


# --- live turns ----------------------------------------------------------------------


class Session:
    """One running app and the rig I/O, with the turn-taking helpers."""

    def __init__(self, app: LiveApp, io: RigIO, *, verbose: bool = False) -> None:
        self.app = app
        self.io = io
        self.verbose = verbose
        """Print the app's output for each v2v turn and each odd barge-in."""

    def settle(self, quiet_s: float = 1.5, timeout: float = 90.0) -> None:
        """Wait until the app printed nothing and played nothing for ``quiet_s``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            lines = self.app.lines()
            printed_quiet = not lines or now - lines[-1].t >= quiet_s
            if printed_quiet and self.io.recorded(now - quiet_s).last_loud() is None:
                self.io.forget_before(now - 30.0)
                return
            time.sleep(0.1)
        raise RuntimeError(f"the app never went quiet:\n{self.app.transcript()[-3000:]}")

    def say(self, clip: Utterance) -> tuple[int, float, float]:
        """Play ``clip`` to the end; returns (stdout mark, t of its onset, t of its speech end)."""
        mark = self.app.mark()
        _, t_start = self.io.play_and_wait(clip.audio, clip.rate)
        return mark, t_start + clip.onset, t_start + clip.speech_end

    def answer_v2v(self, mark: int, speech_end: float, timeout: float = 30.0) -> float | None:
        """Seconds from ``speech_end`` to the first audible answer sample (None: no answer)."""
        try:
            self.app.wait_for(r"^you:", since=mark, timeout=10)
        except TimeoutError:
            return None
        first = self.io.wait_for_sound(speech_end, timeout)
        return None if first is None else first - speech_end

    def wait_turn_end(self, mark: int, timeout: float = 90.0) -> str | None:
        """The timings line of the turn (printed when its playback stops), if any."""
        try:
            return self.app.wait_for(APP_V2V.pattern, since=mark, timeout=timeout).text
        except TimeoutError:
            return None


def app_figure(pattern: re.Pattern[str], text: str | None) -> float | None:
    match = pattern.search(text or "")
    return int(match.group(1)) / 1000 if match else None


def voice_to_voice(
    session: Session,
    clips: list[Utterance],
    report: Report,
    conversation: FileConversation | None = None,
    fresh: Callable[[Utterance], dict[str, float]] | None = None,
) -> None:
    """The live turns; with ``conversation``, each clip is also said from a file.

    The file turn goes first on even clips and second on odd ones, so whatever
    one side leaves running (the LLM reading ahead after an answer) slows both
    sides alike. With ``fresh`` (a fresh conversation per clip, on engines of its
    own), each clip is also said that way, on the other side of the live turn.
    """
    # The app's first turn pays for Whisper's and Piper's first run (they are not
    # warmed up at load): measured apart, the file-based run has warm engines.
    opening = speech("Hello there, how are you today?")
    if conversation is not None:
        conversation.turn(opening)
    session.settle()
    mark, _, speech_end = session.say(opening)
    first = session.answer_v2v(mark, speech_end)
    timings = session.wait_turn_end(mark)
    report.first_turn = first
    report.first_turn_app = timings
    print(f"  first turn after start: {ms(first if first is not None else float('nan'))} ms")
    print(f"      | {timings}")
    for index, clip in enumerate(clips):
        if fresh is not None and index % 2 == 1:
            report.file_fresh_beside_v2v.add(file_figure("fresh", index, clip, fresh(clip)))
        if conversation is None:
            live_turn(session, index, clip, report)
        elif index % 2 == 0:
            file = file_figure("conv", index, clip, conversation.turn(clip))
            live = live_turn(session, index, clip, report)
        else:
            live = live_turn(session, index, clip, report)
            file = file_figure("conv", index, clip, conversation.turn(clip))
        if conversation is not None:
            report.file_conversation_v2v.add(file)
            if live is not None and file is not None:
                report.paired_differences.add(live - file)
        if fresh is not None and index % 2 == 0:
            report.file_fresh_beside_v2v.add(file_figure("fresh", index, clip, fresh(clip)))


def live_turn(session: Session, index: int, clip: Utterance, report: Report) -> float | None:
    session.settle()
    mark, _, speech_end = session.say(clip)
    value = session.answer_v2v(mark, speech_end)
    timings = session.wait_turn_end(mark)
    app_value = app_figure(APP_V2V, timings)
    if value is None:
        report.unanswered += 1
    report.live_v2v.add(value)
    report.app_v2v.add(app_value)
    shown = "   no answer" if value is None else f"{1000 * value:6.0f} ms"
    own = "" if app_value is None else f"(app {1000 * app_value:4.0f} ms)"
    print(f"  live {index:2d} {shown} {own:<14} {clip.text[:50]!r}", flush=True)
    if session.verbose:
        for line in session.app.lines(mark):
            print(f"      | {line.text}", flush=True)
    return value


def barge_ins(
    session: Session, tries: int, until: int, result: BargeInResult, seed: int = 0
) -> None:
    """``tries`` chained barge-ins (fewer once ``until`` trials count): each asks for the
    next answer, which the next one cuts.

    The user's speech starts 0.25-0.55 s into the answer, while its first piece is
    surely playing: after many cut-off turns the tiny model's answers can shrink
    to a few words (see the notes in the report).
    """
    rng = np.random.default_rng(seed)
    io = session.io
    first_sound: float | None = None
    animals = iter(ANIMALS * 40)
    answers = 0
    questions = 0
    while answers < tries and result.trials < until and questions < tries + 3:
        if first_sound is None:
            session.settle()
            questions += 1
            question = speech(f"Tell me a long story about a {next(animals)}.")
            mark, _, speech_end = session.say(question)
            if session.answer_v2v(mark, speech_end) is None:
                continue
            first_sound = io.wait_for_sound(speech_end, 1.0)
            if first_sound is None:
                continue
        answers += 1
        barge = speech(BARGE_PROMPT.format(next(animals)))
        mark = session.app.mark()
        wait_until(first_sound + 0.25 + 0.3 * float(rng.random()) - barge.onset)
        playback = io.play(barge.audio, barge.rate)
        t_barge = io.started_at(playback)
        onset, speech_end = t_barge + barge.onset, t_barge + barge.speech_end
        playback.done.wait(barge.audio.size / barge.rate + 5)
        time.sleep(0.35)
        judge_barge_in(session, result, mark, onset, speech_end)
        # The barge-in asked for something: its answer is the next trial's target.
        first_sound = io.wait_for_sound(speech_end + 0.25, 20)
        if session.app.find(r"^you:", mark) is None:
            first_sound = None


def coughs(session: Session, count: int, result: BargeInResult) -> None:
    """An 80 ms cough 0.25 s into fresh answers: does it cut the answer off?"""
    io = session.io
    burst = cough(0.08)
    animals = iter(ANIMALS * 10)
    tries = 0
    while result.coughs < count and tries < 3 * count:
        tries += 1
        session.settle()
        mark, _, speech_end = session.say(speech(f"Tell me a long story about a {next(animals)}."))
        if session.answer_v2v(mark, speech_end) is None:
            continue
        first_sound = io.wait_for_sound(speech_end, 1.0)
        if first_sound is None:
            continue
        wait_until(first_sound + 0.05)
        t_cough = io.started_at(io.play(burst, 16000)) + 0.2
        time.sleep(1.8)
        cut = session.app.find(INTERRUPTED.pattern, mark) is not None
        try:
            around = io.heard(t_cough - 0.2, t_cough + 1.6)
        except LostAudio as lost:
            result.unheard += 1
            print(f"  cough not counted: {lost}", flush=True)
            continue
        spans = around.spans(0.05)
        silences = [later[0] - earlier[1] for earlier, later in itertools.pairwise(spans)]
        went_on = around.between(t_cough + 0.6, t_cough + 1.0).last_loud() is not None
        if not cut and not went_on:
            continue  # the answer ended by itself right after the cough: nothing learnt
        result.coughs += 1
        result.cough_cuts += cut
        if not cut:
            result.cough_silences.add(max(silences, default=0.0))
        print(f"  cough {result.coughs:2d}: {'CUT THE ANSWER OFF' if cut else 'ignored'}")


def judge_barge_in(
    session: Session, result: BargeInResult, barge_mark: int, onset: float, speech_end: float
) -> None:
    """Was it caught, how fast, and was the answer sounding when the user spoke?"""
    io = session.io
    # Up to when the app could start answering the barge-in itself.
    try:
        window = io.heard(onset - 0.3, speech_end + 0.25)
    except LostAudio as lost:
        result.unheard += 1
        print(f"  barge-in not counted: {lost}", flush=True)
        return
    last = window.last_loud()
    said = session.app.find(INTERRUPTED.pattern, barge_mark)
    caught = said is not None and last is not None and last - onset < 1.0
    before = window.between(onset - 0.3, onset).last_loud()
    # An answer that ended by itself at (or just before) the onset proves nothing.
    # So does one already cut off before the onset (by its own echo, say).
    talking = (
        before is not None
        and last is not None
        and ((caught and last > onset) or last > onset + 0.3)
    )
    if not talking:
        result.not_talking += 1
    else:
        result.trials += 1
    if talking and caught and last is not None:
        result.caught += 1
        result.signal.add(max(0.0, last - onset))
        # Sounding without a pause from before the onset to the cut: the answer did
        # not happen to fall silent between two of its pieces (which flatters).
        final = window.between(onset - 0.3, last + 0.01).spans(0.08)
        if final and final[-1][0] < onset < last:
            result.continuous.add(last - onset)
    timings = session.app.find(APP_BARGE.pattern, barge_mark)
    result.app.add(app_figure(APP_BARGE, timings.text if timings else None))
    shown = "n/a" if last is None else f"{1000 * (last - onset):4.0f} ms"
    state = " (the answer had stopped by itself)" if not talking else ""
    state += "" if caught else " NOT CAUGHT"
    print(
        f"  barge-in {result.trials + result.not_talking:2d} (echo {result.echo}, "
        f"hold {result.hold}, {result.min_speech_ms} ms): {shown}{state}",
        flush=True,
    )
    if session.verbose and (not caught or not talking):
        spans = io.recorded(onset - 3.0, speech_end + 0.25).spans(0.1)
        rounded = [(round(a - onset, 2), round(b - onset, 2)) for a, b in spans]
        print(f"      sound (s from the onset): {rounded}")
        for line in session.app.lines(barge_mark):
            print(f"      | {line.t - onset:+.2f} {line.text}")


def wait_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


SLOW_ANSWER_S = 3.0  # an answer this late is shown in full with -v


def echo_answers(session: Session, prompts: list[Utterance], result: EchoResult) -> bool:
    """Complete answers with echo: count self-interruptions and phantom turns.

    Returns False when the app talked to itself without end (a runaway loop of
    hearing its own answer as a question); the caller restarts it.
    """
    for clip in prompts:
        index = result.answers
        try:
            session.settle(timeout=30.0)
        except RuntimeError:
            result.runaways += 1
            return False
        mark, _, speech_end = session.say(clip)
        value = session.answer_v2v(mark, speech_end)
        result.answers += 1
        if value is None:
            result.unanswered += 1
        result.v2v.add(value)
        session.wait_turn_end(mark)
        try:
            session.settle(timeout=30.0)
        except RuntimeError:
            quiet = False
        else:
            quiet = True
        lines = [line.text for line in session.app.lines(mark)]
        cuts = sum(1 for text in lines if INTERRUPTED.search(text))
        turns = sum(1 for text in lines if text.startswith("you:"))
        result.self_interruptions += cuts
        result.phantom_turns += max(0, turns - 1)
        flag = ""
        if cuts or turns > 1:
            flag = f"  SELF-INTERRUPTED x{cuts}, {turns} turns: {lines[:6]}"
        shown = "no answer" if value is None else f"{1000 * value:4.0f} ms"
        print(f"  echo {result.mode} {index:2d}: v2v {shown}{flag}", flush=True)
        if session.verbose and (value is None or value > SLOW_ANSWER_S):
            for text in lines:  # what the app said about a lost or very late answer
                print(f"      | {text}", flush=True)
        if not quiet:
            result.runaways += 1
            print(f"  echo {result.mode}: the app keeps answering itself; restarting it")
            return False
    return True


# --- device latencies ------------------------------------------------------------------


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


def device_latencies(env: dict[str, str], report: Report) -> None:
    """PortAudio's latencies for the app's Player and MicrophoneSource on the rig."""
    from voiceterm.audio.microphone import MicrophoneSource
    from voiceterm.audio.speaker import Player
    from voiceterm.config import Config
    from voiceterm.pipeline.devices import speaker_latency

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        audio = Config().audio
        block_ms = audio.block_ms
        output_block_ms = int(getattr(audio, "output_block_ms", block_ms))

        async def measure() -> None:
            player = Player(block_ms=output_block_ms, latency=speaker_latency(audio))
            player.start(asyncio.get_running_loop())
            report.latencies["player output latency"] = player.output_latency
            player.close()
            mic = MicrophoneSource(block_ms=block_ms)
            mic.start()
            await asyncio.sleep(0.2)
            stream = getattr(mic, "_stream", None)
            if stream is not None:
                report.latencies["microphone input latency"] = float(stream.latency)
            mic.close()

        asyncio.run(measure())
        report.latencies["capture block"] = block_ms / 1000
        report.latencies["playback block"] = output_block_ms / 1000
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- the report --------------------------------------------------------------------------


def print_report(report: Report, args: argparse.Namespace) -> None:
    print()
    print("=" * 78)
    print(
        "voiceterm live benchmark: real `voiceterm --headless` on the PulseAudio rig"
        + (f", beside {report.busy} busy programs" if report.busy else "")
    )
    print(
        "  (null sinks at 48 kHz, real PortAudio via ALSA's pulse plugin; "
        f"answers <= {args.max_tokens} tokens)"
    )
    print(f"  load average: {' -> '.join(report.load)}")
    if report.calibration_ms:
        cal = report.calibration_ms
        print(
            f"  time-stamp check: clicks into vt_mic found in vt_mic.monitor "
            f"{np.median(cal):+.1f} ms median, {np.max(np.abs(cal)):.1f} ms worst (n={len(cal)})"
        )
    if report.latencies:
        parts = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in report.latencies.items())
        print(f"  PortAudio on the rig: {parts}")
    print(
        f"  the app's speaker ran dry {report.speaker_underflows} times "
        f"over {report.apps} app runs (PortAudio underflows: clicks); it stopped playing "
        f"{report.speaker_stops} times, cutting {report.speaker_cut_answers} answers off "
        "(speaker_lost)"
    )
    print()
    print("voice-to-voice (ms)                              n    p50    p95")
    print(report.file_v2v.row("file-based, each clip a fresh conversation"))
    print(report.file_fresh_beside_v2v.row("  the same, said beside each live turn"))
    print(report.file_conversation_v2v.row("file-based, one conversation (as live)"))
    print(report.live_v2v.row("live, from the signals"))
    print(report.app_v2v.row("live, the app's own timeline"))
    live = report.live_v2v.values
    for label, series in (
        ("fresh", report.file_v2v),
        ("fresh, beside", report.file_fresh_beside_v2v),
        ("one conversation", report.file_conversation_v2v),
    ):
        if series.values and live:
            extra = percentile(live, 50) - percentile(series.values, 50)
            verdict = "ok" if extra <= 0.1 else "MISSED"
            print(
                f"  live - file-based ({label}) at p50: {1000 * extra:+.0f} ms"
                f" (target <= +100 ms: {verdict})"
            )
    paired = report.paired_differences.values
    if paired:
        print(
            f"  live - file-based (one conversation), clip by clip: median"
            f" {1000 * float(np.median(paired)):+.0f} ms over {len(paired)} clips"
        )
    if report.unanswered:
        print(f"  questions without an answer: {report.unanswered}")
    if report.first_turn is not None:
        print(
            f"  first turn after start (not in the figures above): {ms(report.first_turn)} ms;"
            f" app: {(report.first_turn_app or '').strip()}"
        )
    for barge in report.barge_ins:
        if not barge.trials and not barge.coughs:
            continue
        print()
        print(
            f"barge-in, echo {barge.echo}, barge_in.hold={barge.hold}, "
            f"min_speech_ms={barge.min_speech_ms} "
            "(onset in the mic signal -> last assistant sample)"
        )
        print("                                                   n    p50    p95")
        p50 = percentile(barge.continuous.values, 50)
        p95 = percentile(barge.continuous.values, 95)
        ok = "ok" if p50 <= 0.15 and p95 <= 0.25 else "MISSED"
        print(barge.signal.row("from the signals, every caught barge-in"))
        print(
            barge.continuous.row(
                "  only cuts of speech sounding at the onset", f"target p50<=150, p95<=250: {ok}"
            )
        )
        print(barge.app.row("the app's own timeline"))
        print(barge.cough_silences.row("answer silent around an 80 ms cough (longest)"))
        valid = barge.trials
        print(
            f"  caught {barge.caught}/{valid}"
            + (
                f" ({barge.not_talking} more not counted: the answer had stopped by itself)"
                if barge.not_talking
                else ""
            )
            + f"; 80 ms coughs that cut an answer off: {barge.cough_cuts}/{barge.coughs}"
            + (
                f"; {barge.unheard} trials not counted (the bench's recorder lost audio)"
                if barge.unheard
                else ""
            )
        )
    if report.echo:
        print()
        print(f"echo: loopback speaker -> microphone at {args.echo_gain:g} dB")
        print(
            "  mode          answers  self-interrupt.  phantom turns  runaways  v2v p50"
            "  barge-ins caught"
        )
        for echo in report.echo:
            caught = "not run"
            if echo.barge is not None:
                valid = echo.barge.trials
                caught = f"{echo.barge.caught}/{valid}"
                if valid:
                    caught += f" ({100 * echo.barge.caught / valid:.0f}%)"
            print(
                f"  {echo.mode:<13} {echo.answers:7d}  {echo.self_interruptions:15d}  "
                f"{echo.phantom_turns:13d}  {echo.runaways:8d}  "
                f"{ms(percentile(echo.v2v.values, 50))}   {caught}"
            )
        print("  targets: 0 self-interruptions in 50 answers; >= 95% of barge-ins caught over echo")
    for note in report.notes:
        print(f"  note: {note}")


def load_label(busy: int) -> str:
    return "idle" if busy == 0 else f"{busy} busy"


def print_side_by_side(reports: list[Report]) -> None:
    """The headline figures of each run in one table (p50 / p95 in ms)."""

    def both(series: Series) -> str:
        values = series.values
        return f"{ms(percentile(values, 50)).strip()} / {ms(percentile(values, 95)).strip()}"

    rows: list[tuple[str, list[str]]] = [
        ("voice-to-voice, live (signals)", [both(r.live_v2v) for r in reports]),
        ("voice-to-voice, live (app)", [both(r.app_v2v) for r in reports]),
        ("voice-to-voice, file, fresh clips", [both(r.file_v2v) for r in reports]),
        (
            "voice-to-voice, file, one conversation",
            [both(r.file_conversation_v2v) for r in reports],
        ),
        (
            "barge-in, echo off (continuous speech)",
            [both(r.barge_ins[0].continuous) if r.barge_ins else "n/a" for r in reports],
        ),
    ]
    for index, echo in enumerate(reports[0].echo):
        rows.append(
            (
                f"voice-to-voice, echo {echo.mode}",
                [both(r.echo[index].v2v) if index < len(r.echo) else "n/a" for r in reports],
            )
        )
    rows.append(
        (
            "speaker ran dry / app runs",
            [f"{r.speaker_underflows} / {r.apps}" for r in reports],
        )
    )
    rows.append(
        (
            "speaker stopped / answers cut",
            [f"{r.speaker_stops} / {r.speaker_cut_answers}" for r in reports],
        )
    )
    rows.append(("unanswered questions", [str(r.unanswered) for r in reports]))
    rows.append(("load average (1 min)", [" -> ".join(r.load) for r in reports]))
    print()
    print("=" * 78)
    print(
        "side by side (p50 / p95, ms)".ljust(42)
        + "".join(f"{load_label(r.busy):>18}" for r in reports)
    )
    for label, cells in rows:
        print(f"  {label:<40}" + "".join(f"{cell:>18}" for cell in cells))
    print(
        "  targets with one core busy: voice-to-voice p50 <= 800, p95 <= 1500; barge-in p95 <= 250"
    )


# --- main --------------------------------------------------------------------------------


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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


if __name__ == "__main__":
    sys.exit(main())
