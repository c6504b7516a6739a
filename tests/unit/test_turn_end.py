"""End of turn as the listener decides it: ask the model at each pause, or let the cap end it.

The VAD is scripted (voiced or not, frame by frame) and the model is a stand-in
that returns set probabilities, so each test is about the policy alone; the real
model on real recordings is in tests/integration/test_turn_taking.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tests.listener_fakes import NoFrames
from voiceterm.audio.frames import AudioFrame
from voiceterm.engines.vad import SpeechEnded, SpeechStarted, VadEvent, VadSettings
from voiceterm.events import (
    AgentInterrupted,
    Event,
    PauseChecked,
    StageSpan,
    UserStoppedSpeaking,
)
from voiceterm.pipeline.end_of_turn.learned import Logistic, TurnWeights
from voiceterm.pipeline.end_of_turn.policy import TurnPolicy
from voiceterm.pipeline.listen import Listener
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.listening.pauses import PauseAnnouncer
from voiceterm.pipeline.listening.settings import ListenerSettings, TurnJudging
from voiceterm.pipeline.listening.turn_judge import TurnJudge
from voiceterm.recording.latency import FixedLatency
from voiceterm.recording.replay import AudioClock

FRAME_S = 0.02
CAP_MS = 1000


class ScriptedVad:
    """Voiced or not, as the test says; the utterance stays open until ended."""

    def __init__(self) -> None:
        self.settings = VadSettings(hangover_ms=CAP_MS)
        self.pending_samples = 0
        self.voiced = False
        self.level_db = -20.0
        self.in_speech = False
        self.onset: float | None = None
        self.last_voiced = 0.0
        self.trailing_silence_ms = 0
        self.next_voiced = False

    @property
    def last_voiced_end(self) -> float | None:
        return self.last_voiced if self.in_speech else None

    def feed(self, samples: object, t: float) -> list[VadEvent]:
        self.voiced = self.next_voiced
        events: list[VadEvent] = []
        if self.voiced:
            self.trailing_silence_ms = 0
            self.last_voiced = t + FRAME_S
            if not self.in_speech:
                self.in_speech, self.onset = True, t
                events.append(SpeechStarted(onset_time=t))
        elif self.in_speech:
            self.trailing_silence_ms += 20
            if self.trailing_silence_ms >= CAP_MS:
                events += self.end_utterance()
        return events

    def current_utterance(self, *, pad_tail: bool = True) -> SpeechEnded | None:
        if not self.in_speech or self.onset is None:
            return None
        return SpeechEnded(
            audio=np.zeros(1600, np.int16), speech_start=self.onset, speech_end=self.last_voiced
        )

    def end_utterance(self) -> list[VadEvent]:
        ended = self.current_utterance()
        self.in_speech, self.onset, self.trailing_silence_ms = False, None, 0
        return [ended] if ended is not None else []

    def discard_utterance(self) -> None:
        self.in_speech, self.onset = False, None

    def flush(self, t_end: float | None = None) -> list[VadEvent]:
        return self.end_utterance()


@dataclass
class StandInModel:
    """Returns the next of ``answers`` at each check; blocks while ``gate`` is clear."""

    answers: list[float]
    gate: threading.Event | None = None
    asked: int = 0

    def probability(self, audio: Any) -> float:
        if self.gate is not None:
            self.gate.wait(5)
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return answer


@dataclass(frozen=True)
class KindLatency:
    """Each kind of pause check answered so many seconds after it is asked."""

    seconds_of: dict[str, float]

    def seconds(self, kind: str, speech_end: float) -> float:
        return self.seconds_of[kind]


UNSURE_MS = 600
UNFINISHED, FINISHED = "I would like to book a table for", "What time is it?"


class Rig:
    def __init__(
        self,
        model: StandInModel,
        *,
        speaking: bool = False,
        words: str | None = UNFINISHED,
        weights: TurnWeights | None = None,
        words_end: float | None = None,
        latency: float | dict[str, float] | None = None,
        pause_ms: int = 0,
        barge_in: bool = True,
        file: list[bool] | None = None,
        audio_time: bool = False,
    ) -> None:
        self.words = words
        self.words_end = words_end
        self.unread = 0  # the next reads of the words find them not transcribed yet
        self.reads: list[int] = []  # the frame at which each read came
        self.frame = 0
        self.events: list[Event] = []
        self.vad = ScriptedVad()
        self.activity = AgentActivity(speaking=speaking)
        self.t = time.monotonic()
        # On audio time (as a replay runs), the listener's clock is the frames'.
        self.clock = AudioClock()
        self.clock.now = self.t
        self.listener = Listener(
            NoFrames() if file is None else FileSource(self, file),
            self.vad,
            self.events.append,
            self.activity,
            ListenerSettings(barge_in=barge_in, pause_ms=pause_ms, quick_end_ms=300),
            turn=TurnJudging(
                model,
                TurnPolicy(check_ms=160, threshold=0.5, unsure_ms=UNSURE_MS, cap_ms=CAP_MS),
                weights=weights,
                words_so_far=self.words_so_far,
                words_end=lambda words: self.words_end,
                latency=(
                    None
                    if latency is None
                    else KindLatency(latency)
                    if isinstance(latency, dict)
                    else FixedLatency(latency)
                ),
            ),
            clock=self.clock if audio_time else time.monotonic,
        )

    def words_so_far(self, speech_end: float) -> str | None:
        self.reads.append(self.frame)
        if self.unread:
            self.unread -= 1
            return None
        return self.words

    async def frames(self, voiced: bool, count: int) -> None:
        for _ in range(count):
            self.vad.next_voiced = voiced
            self.clock.now = self.t + FRAME_S
            self.listener.hear(np.zeros(320, dtype=np.int16), self.t, self.t + FRAME_S)
            self.t += FRAME_S
            await asyncio.sleep(0)

    async def settle(self) -> None:
        assert self.listener.judge is not None
        await self.listener.judge.end_of_turn.settle()
        await asyncio.sleep(0)

    def turns(self) -> list[UserStoppedSpeaking]:
        return [e for e in self.events if isinstance(e, UserStoppedSpeaking) and not e.discarded]

    def decisions(self) -> list[str]:
        return [e.content for e in self.events if isinstance(e, StageSpan) and e.stage == "turn"]


async def test_a_pause_the_model_calls_complete_ends_the_turn_at_the_first_check() -> None:
    rig = Rig(StandInModel([0.93]), words=FINISHED)
    await rig.frames(True, 40)
    await rig.frames(False, 8)  # 160 ms of silence: the check
    await rig.settle()
    assert len(rig.turns()) == 1
    assert rig.decisions() == ["model: complete 0.93 at 160 ms"]


async def test_an_incomplete_pause_keeps_listening_and_the_next_pause_is_asked() -> None:
    model = StandInModel([0.08, 0.91])
    rig = Rig(model)
    rig.words = UNFINISHED
    await rig.frames(True, 40)
    await rig.frames(False, 35)  # a 700 ms pause mid-sentence
    await rig.settle()
    assert rig.turns() == []
    await rig.frames(True, 30)  # the rest of the sentence
    rig.words = FINISHED
    await rig.frames(False, 8)
    await rig.settle()
    turns = rig.turns()
    assert len(turns) == 1 and model.asked == 2
    assert turns[0].speech_start is not None and turns[0].speech_end is not None
    assert turns[0].speech_end - turns[0].speech_start > 100 * FRAME_S  # both halves
    assert rig.decisions() == [
        "model: incomplete 0.08 at 160 ms",
        "model: complete 0.91 at 160 ms",
    ]


async def test_the_cap_ends_a_turn_the_model_and_the_words_say_goes_on() -> None:
    rig = Rig(StandInModel([0.1]), words=UNFINISHED)
    await rig.frames(True, 40)
    await rig.frames(False, 8)
    await rig.settle()
    assert rig.turns() == []
    await rig.frames(False, CAP_MS // 20)
    assert len(rig.turns()) == 1
    assert rig.decisions()[-1] == f"cap: {CAP_MS} ms of silence (model: incomplete 0.10 at 160 ms)"


async def test_when_the_voice_and_the_words_disagree_a_shorter_silence_ends_the_turn() -> None:
    # Whisper wrote a full stop, the voice sounds unfinished: wait, but not for the cap.
    rig = Rig(StandInModel([0.2]), words=FINISHED)
    await rig.frames(True, 40)
    await rig.frames(False, 8)
    await rig.settle()
    await rig.frames(False, (UNSURE_MS - 160) // 20 - 1)
    assert rig.turns() == []
    await rig.frames(False, 1)
    assert len(rig.turns()) == 1
    assert rig.decisions()[-1] == (
        f"unsure: {UNSURE_MS} ms of silence (model: incomplete 0.20 at 160 ms, "
        "the words sound finished)"
    )


async def test_a_short_command_ending_on_that_waits_the_shorter_silence_not_the_cap() -> None:
    # "Cancel that." as the soak said it: Whisper wrote "cancelled that" (no full stop,
    # ending on a word that usually leads on) and Smart Turn called it incomplete, so
    # it waited the cap.
    rig = Rig(StandInModel([0.3]), words="cancelled that")
    await rig.frames(True, 40)
    await rig.frames(False, 8)
    await rig.settle()
    await rig.frames(False, (UNSURE_MS - 160) // 20)
    assert len(rig.turns()) == 1
    assert rig.decisions()[-1] == (
        f"unsure: {UNSURE_MS} ms of silence (model: incomplete 0.30 at 160 ms, "
        "the words may end there)"
    )


async def test_a_voice_that_sounds_done_after_unfinished_words_waits_the_shorter_silence() -> None:
    rig = Rig(StandInModel([0.9]), words=UNFINISHED)
    await rig.frames(True, 40)
    await rig.frames(False, UNSURE_MS // 20)
    await rig.settle()
    assert len(rig.turns()) == 1
    assert rig.decisions() == [
        "model: complete 0.90 at 160 ms",
        "the words sound unfinished: waiting",
        f"unsure: {UNSURE_MS} ms of silence (model: complete 0.90 at 160 ms, "
        "the words sound unfinished)",
    ]


async def test_a_verdict_about_a_pause_the_user_talked_through_is_dropped() -> None:
    gate = threading.Event()
    rig = Rig(StandInModel([0.95], gate=gate))
    await rig.frames(True, 40)
    await rig.frames(False, 8)  # asked; the model is slow to answer
    await rig.frames(True, 5)  # ... and the user goes on meanwhile
    gate.set()
    await rig.settle()
    assert rig.turns() == []
    assert rig.decisions() == []
    # Still told, with when it came: a recording keeps how late it was.
    checks = [e for e in rig.events if isinstance(e, PauseChecked)]
    assert [c.kind for c in checks] == ["turn"] and checks[0].answered_at > checks[0].asked_at


async def test_a_pause_while_the_agent_is_silent_is_never_a_barge_in() -> None:
    rig = Rig(StandInModel([0.05, 0.9]), words=UNFINISHED)
    await rig.frames(True, 40)
    await rig.frames(False, 40)
    await rig.settle()
    await rig.frames(True, 40)
    rig.words = FINISHED
    await rig.frames(False, 8)
    await rig.settle()
    assert not any(isinstance(e, AgentInterrupted) for e in rig.events)
    assert len(rig.turns()) == 1


async def test_speech_over_the_agent_that_may_be_its_echo_is_not_judged() -> None:
    model = StandInModel([0.9])
    rig = Rig(model, speaking=True, barge_in=False)  # only the echo rule, no hold
    await rig.frames(True, 5)  # quiet speech begun over the agent's voice: maybe echo
    rig.activity.speaking = False
    await rig.frames(False, 20)
    await rig.settle()
    assert model.asked == 0
    stopped = [e for e in rig.events if isinstance(e, UserStoppedSpeaking)]
    assert len(stopped) == 1 and stopped[0].discarded  # ended at the quick end, not a turn


def stand_in_weights() -> TurnWeights:
    """Hand-set weights for the listener's part only: p is the mean of the two probabilities."""
    half = Logistic(("voice", "words"), (0.5, 0.5), 0.0)
    voice = Logistic(("voice",), (1.0,), 0.0)
    return TurnWeights(
        models={"full": half, "words": voice, "voice": voice},
        first_ms=160,
        cap_ms=CAP_MS,
        sure=0.8,
        unsure=0.2,
        fitted_on="a test",
        source=Path("stand-in.json"),
    )


async def test_learned_sure_signals_end_the_turn_at_the_first_check() -> None:
    rig = Rig(StandInModel([0.9]), words=FINISHED, weights=stand_in_weights(), words_end=0.95)
    await rig.frames(True, 40)
    await rig.frames(False, 8)
    await rig.settle()
    await rig.frames(False, 1)
    assert len(rig.turns()) == 1
    assert rig.decisions()[-1].startswith("voice 0.90 · words 0.95")
    assert rig.decisions()[-1].endswith("→ done at 160 ms")


async def test_learned_doubt_waits_longer_and_the_cap_still_ends_it() -> None:
    rig = Rig(StandInModel([0.3]), words=UNFINISHED, weights=stand_in_weights(), words_end=0.01)
    await rig.frames(True, 40)
    await rig.frames(False, 8)
    await rig.settle()
    await rig.frames(False, 10)
    assert rig.turns() == []
    assert any("wait up to 1.0 s" in d for d in rig.decisions()), rig.decisions()
    await rig.frames(False, CAP_MS // 20)
    assert len(rig.turns()) == 1


async def test_learned_bars_per_check_end_an_unsure_turn_once_the_silence_lowers_the_bar() -> None:
    # p 0.6: under the bar until 600 ms of silence, over it from then on.
    weights = replace(stand_in_weights(), thresholds=((400, 0.8), (600, 0.5)))
    rig = Rig(StandInModel([0.6]), words=FINISHED, weights=weights, words_end=0.6)
    await rig.frames(True, 40)
    await rig.frames(False, 8)
    await rig.settle()
    await rig.frames(False, 20)
    assert rig.turns() == []
    assert any("(p 0.60) → wait up to 0.6 s" in d for d in rig.decisions()), rig.decisions()
    await rig.frames(False, 4)
    assert len(rig.turns()) == 1
    assert rig.decisions()[-1].endswith("→ done at 600 ms"), rig.decisions()


async def test_learned_words_that_arrive_late_join_the_decision() -> None:
    # The voice alone is unsure; the LLM's reading of the words, once there, is sure.
    rig = Rig(StandInModel([0.7]), words=None, weights=stand_in_weights(), words_end=None)
    await rig.frames(True, 40)
    await rig.frames(False, 8)
    await rig.settle()
    await rig.frames(False, 2)
    assert rig.turns() == []
    rig.words, rig.words_end = FINISHED, 0.99
    await rig.frames(False, 1)
    assert len(rig.turns()) == 1
    assert rig.decisions()[0].startswith("voice 0.70 · words ? ")
    assert "voice 0.70 · words 0.99" in rig.decisions()[-1]


async def test_on_audio_time_a_verdict_later_than_the_users_pause_does_not_end_the_turn() -> None:
    # "Yes, please.": a 200 ms pause at the comma. Answered at once, the verdict about
    # it ends the turn at "Yes,"; answered 100 ms after it is asked (as live), the user
    # has already gone on, and the turn is whole.
    turns = {}
    for latency in (0.0, 0.1):
        rig = Rig(StandInModel([0.95]), words=None, latency=latency, audio_time=True)
        await rig.frames(True, 20)
        await rig.frames(False, 8)  # asked at 160 ms of silence
        await rig.settle()
        await rig.frames(False, 2)  # 200 ms: the user goes on
        await rig.frames(True, 20)
        await rig.frames(False, 8)
        await rig.settle()
        await rig.frames(False, 6)
        turns[latency] = [(t.speech_end or 0) - (t.speech_start or 0) for t in rig.turns()]
    assert len(turns[0.0]) == 2  # split at the comma
    assert len(turns[0.1]) == 1 and turns[0.1][0] > 40 * FRAME_S  # both halves, one turn


async def test_on_audio_time_words_not_yet_read_do_not_hold_a_complete_verdict() -> None:
    # The voice sounds done; the words so far sound unfinished, but live they were read
    # only 300 ms after the pause: at the verdict nothing was read, so the turn ended.
    decisions = {}
    for words_s in (0.0, 0.3):
        latency = {"turn": 0.0, "words": words_s}
        rig = Rig(
            StandInModel([0.9]), words=UNFINISHED, latency=latency, pause_ms=20, audio_time=True
        )
        await rig.frames(True, 40)
        await rig.frames(False, 8)
        await rig.settle()
        await rig.frames(False, 1)
        decisions[words_s] = (len(rig.turns()), rig.decisions()[:2])
    assert decisions[0.0] == (
        0,
        ["model: complete 0.90 at 160 ms", "the words sound unfinished: waiting"],
    )
    assert decisions[0.3] == (1, ["model: complete 0.90 at 160 ms"])


A_QUESTION = [True] * 40 + [False] * (CAP_MS // 20 + 5)


class FileSource:
    """Frames as a file gives them: faster than real time, so the listener waits for checks."""

    realtime = False

    def __init__(self, rig: Rig, voiced: list[bool]) -> None:
        self.rig, self.voiced = rig, voiced

    async def frames(self) -> AsyncIterator[AudioFrame]:
        rig = self.rig
        for voiced in self.voiced:
            rig.vad.next_voiced = voiced
            yield AudioFrame(
                samples=np.zeros(round(FRAME_S * 16000), dtype=np.int16), t_start=rig.t
            )
            rig.t += FRAME_S
            rig.frame += 1


async def test_a_file_read_does_not_wait_for_words_nobody_was_asked_to_read() -> None:
    # No pause announced (pause_ms 0): Whisper never reads the words at the pause, so
    # the learned decision goes on without them at once instead of polling for them.
    rig = Rig(
        StandInModel([0.7]), words=None, weights=stand_in_weights(), pause_ms=0, file=A_QUESTION
    )
    await rig.listener.run()
    assert len(rig.turns()) == 1
    assert rig.decisions()[0].startswith("voice 0.70 · words ? ")
    reads_per_frame = Counter(rig.reads)
    assert max(reads_per_frame.values()) <= 2, "the words were polled for at a pause"


async def test_a_file_read_waits_for_the_words_of_an_announced_pause() -> None:
    # The pause was announced: its words are on their way, and they decide the turn.
    rig = Rig(
        StandInModel([0.7]),
        words=FINISHED,
        weights=stand_in_weights(),
        words_end=0.99,
        pause_ms=20,
        file=A_QUESTION,
    )
    rig.unread = 4
    await rig.listener.run()
    assert len(rig.turns()) == 1
    assert "voice 0.70 · words 0.99" in rig.decisions()[-1]
    assert rig.decisions()[-1].endswith("→ done at 160 ms"), rig.decisions()


class HeardUtterance:
    """The listener as the turn judge sees it: the utterance's onset, and how it ended."""

    def __init__(self, vad: ScriptedVad) -> None:
        self.vad = vad
        self.endings: list[str] = []

    @property
    def onset(self) -> float | None:
        return self.vad.onset if self.vad.in_speech else None

    def in_doubt(self) -> bool:
        return False

    def end_now(self, reason: str) -> None:
        self.endings.append(reason)
        self.vad.end_utterance()


async def judge_alone(model: StandInModel, words: str, pause_ms: int) -> HeardUtterance:
    """The turn judge alone: a second of speech, then ``pause_ms`` of silence."""
    vad, events = ScriptedVad(), list[Event]()
    utterance = HeardUtterance(vad)
    pauses = PauseAnnouncer(vad, events.append, time.monotonic, pause_ms=0, gate=None)
    policy = TurnPolicy(check_ms=160, threshold=0.5, unsure_ms=UNSURE_MS, cap_ms=CAP_MS)
    judging = TurnJudging(model, policy, words_so_far=lambda speech_end: words)
    judge = TurnJudge(
        judging, vad, events.append, utterance, pauses, time.monotonic, quick_end_ms=300, gate=None
    )
    t = time.monotonic()
    for voiced in [True] * 50 + [False] * (pause_ms // 20):
        vad.next_voiced = voiced
        vad.feed(np.zeros(320, dtype=np.int16), t)
        t += FRAME_S
        judge.feed(echo=False)
        await judge.end_of_turn.settle()
    return utterance


async def test_the_judge_alone_holds_a_700_ms_pause_while_the_model_says_it_goes_on() -> None:
    utterance = await judge_alone(StandInModel([0.1]), UNFINISHED, pause_ms=700)
    assert utterance.endings == [], "a thinking pause was taken for the end of the turn"
    done = await judge_alone(StandInModel([0.9]), FINISHED, pause_ms=700)
    assert done.endings == [""], "a finished question waited for the cap"
