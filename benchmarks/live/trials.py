"""The trials on a running app: live turns, barge-ins, coughs, answers with echo."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np

from benchmarks.conversation import FileConversation
from benchmarks.live.clips import ANIMALS, BARGE_PROMPT, speech
from benchmarks.live.figures import BargeInResult, EchoResult, Report, ms
from benchmarks.live.file_turns import file_figure
from benchmarks.live.session import APP_BARGE, APP_V2V, INTERRUPTED, Session, app_figure, wait_until
from benchmarks.rig import LostAudio, Utterance, cough


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
