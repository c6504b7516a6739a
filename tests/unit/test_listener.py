"""Barge-in as the Listener decides it: hold the answer, then confirm or let go.

The VAD is scripted here (which frames are voiced, how loud), so each test is
about the listener's rule alone; the real VAD and real devices are exercised by
tests/audio/test_live_app.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tests.listener_fakes import NoFrames
from voiceterm.engines.vad import SpeechEnded, SpeechStarted, VadEvent, VadSettings
from voiceterm.events import (
    AgentInterrupted,
    AudioLevel,
    BargeInDismissed,
    BargeInSuspected,
    Event,
    TurnMark,
    UserSpeechPaused,
    UserStartedSpeaking,
    UserStoppedSpeaking,
)
from voiceterm.pipeline.listen import Listener
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.listening.seams import Frames
from voiceterm.pipeline.listening.settings import ListenerSettings

FRAME_S = 0.02
LOUD, QUIET = -20.0, -45.0


@dataclass
class Frame:
    voiced: bool
    level_db: float = LOUD


class ScriptedVad:
    """Says what the test says: voiced or not, how loud, and start/end of speech."""

    def __init__(self) -> None:
        self.voiced = False
        self.level_db = -90.0
        self.in_speech = False
        self.onset: float | None = None
        self.discarded = 0
        self.trailing_silence_ms = 0
        self.last_voiced = 0.0
        self.next_frame = Frame(False)

    def feed(self, samples: object, t: float) -> list[VadEvent]:
        frame = self.next_frame
        self.voiced, self.level_db = frame.voiced, frame.level_db
        self.trailing_silence_ms = 0 if frame.voiced else self.trailing_silence_ms + 20
        if frame.voiced:
            self.last_voiced = t + FRAME_S
        if frame.voiced and not self.in_speech:
            self.in_speech, self.onset = True, t
            return [SpeechStarted(onset_time=t)]
        return []

    def end(self, t: float) -> list[VadEvent]:
        assert self.onset is not None
        self.in_speech = False
        audio = np.zeros(1600, dtype=np.int16)
        return [SpeechEnded(audio=audio, speech_start=self.onset, speech_end=t)]

    def current_utterance(self, *, pad_tail: bool = True) -> SpeechEnded | None:
        if not self.in_speech or self.onset is None:
            return None
        audio = np.zeros(1600, dtype=np.int16)
        return SpeechEnded(audio=audio, speech_start=self.onset, speech_end=self.last_voiced)

    def discard_utterance(self) -> None:
        self.discarded += 1
        self.in_speech, self.onset = False, None

    def flush(self, t_end: float | None = None) -> list[VadEvent]:
        return []

    @property
    def last_voiced_end(self) -> float | None:
        return self.last_voiced if self.in_speech else None

    def end_utterance(self) -> list[VadEvent]:
        return []

    settings = VadSettings()
    pending_samples = 0


class RelaxingSource(NoFrames):
    """A microphone that can wake less often while nobody talks."""

    relaxed = False


class Rig:
    """A listener fed frame by frame on a simulated capture clock."""

    def __init__(
        self,
        *,
        speaking: bool = True,
        thinking: bool = False,
        hold: bool = True,
        pause_ms: int = 0,
        source: Frames | None = None,
        on_active: Callable[[], None] | None = None,
    ):
        self.events: list[Event] = []
        self.vad = ScriptedVad()
        self.activity = AgentActivity(thinking=thinking, speaking=speaking)
        self.listener = Listener(
            source or NoFrames(),
            self.vad,
            self.events.append,
            self.activity,
            ListenerSettings(
                min_speech_ms=150,
                start_ms=60,  # the VAD's start confirmation counts toward min_speech_ms
                hold=hold,
                hold_settle_ms=200,
                hold_confirm_ms=150,
                hold_quiet_ms=400,
                pause_ms=pause_ms,
            ),
            on_active=on_active,
        )
        self.t = time.monotonic()

    def frames(self, frames: list[Frame]) -> None:
        for frame in frames:
            self.vad.next_frame = frame
            self.listener.hear(np.zeros(320, dtype=np.int16), self.t, self.t + FRAME_S)
            self.t += FRAME_S

    def vad_ends(self) -> None:
        for event in self.vad.end(self.t):
            self.listener.on_vad_event(event, self.t)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]


def talk(ms: int, level: float = LOUD) -> list[Frame]:
    return [Frame(True, level)] * (ms // 20)


def silence(ms: int) -> list[Frame]:
    return [Frame(False, -90.0)] * (ms // 20)


def test_speech_over_the_answer_holds_it_at_once_and_cuts_it_off_when_it_goes_on() -> None:
    rig = Rig()
    rig.frames(talk(20))
    assert len(rig.of(BargeInSuspected)) == 1, "the answer was not held at the onset"
    assert rig.of(AgentInterrupted) == []
    rig.frames(talk(600))
    assert len(rig.of(AgentInterrupted)) == 1
    assert rig.of(BargeInDismissed) == []
    onset = [e for e in rig.of(TurnMark) if isinstance(e, TurnMark)]
    assert [m.at for m in onset if m.name == "barge_in_onset"] == [rig.vad.onset]


def test_sound_that_stops_with_the_held_answer_lets_it_play_on_and_is_no_turn() -> None:
    # Echo of the agent's own voice, or a cough: it is over by the settle time.
    rig = Rig()
    rig.frames(talk(160) + silence(700))
    assert len(rig.of(BargeInSuspected)) == 1
    assert len(rig.of(BargeInDismissed)) == 1
    assert rig.of(AgentInterrupted) == []
    assert rig.vad.discarded == 1, "the echo would have been transcribed as a user turn"
    stops = rig.of(UserStoppedSpeaking)
    assert len(stops) == 1 and stops[0].discarded  # type: ignore[attr-defined]


def test_a_pause_after_the_first_word_does_not_let_the_hold_go() -> None:
    # "Wait, ... tell me about a horse": the comma's pause is not the end.
    rig = Rig()
    rig.frames(talk(200) + silence(300) + talk(300))
    assert rig.of(BargeInDismissed) == []
    assert len(rig.of(AgentInterrupted)) == 1


def test_an_utterance_that_ends_during_the_hold_is_no_turn_and_the_answer_plays_on() -> None:
    rig = Rig()
    rig.frames(talk(80) + silence(100))
    rig.vad_ends()
    assert rig.of(BargeInDismissed) == []  # the hold decides, after its quiet time
    rig.frames(silence(700))
    assert len(rig.of(BargeInDismissed)) == 1
    assert rig.of(AgentInterrupted) == []
    assert all(e.discarded for e in rig.of(UserStoppedSpeaking))  # type: ignore[attr-defined]


def test_words_after_an_utterance_that_ended_during_the_hold_confirm_it() -> None:
    rig = Rig()
    rig.frames(talk(200) + silence(100))
    rig.vad_ends()
    rig.frames(silence(200) + talk(300))
    assert len(rig.of(AgentInterrupted)) == 1
    marks = [m for m in rig.of(TurnMark) if isinstance(m, TurnMark) and m.name == "barge_in_onset"]
    assert len(marks) == 1 and marks[0].at < rig.t - 0.7, "the onset is the first word's"


def test_quiet_sound_while_the_agent_speaks_does_not_hold_it() -> None:
    # Echo residue under barge_in.min_level_db.
    rig = Rig()
    rig.frames(talk(600, level=QUIET))
    assert rig.of(BargeInSuspected) == []
    assert rig.of(AgentInterrupted) == []


def test_quiet_speech_begun_over_the_answer_is_no_turn() -> None:
    rig = Rig()
    rig.frames(talk(600, level=QUIET))
    rig.vad_ends()
    stops = rig.of(UserStoppedSpeaking)
    assert len(stops) == 1 and stops[0].discarded  # type: ignore[attr-defined]


def test_quiet_speech_just_after_the_answer_is_its_echo_not_a_turn() -> None:
    rig = Rig(speaking=False)
    rig.activity.last_sound_end = rig.t - 0.1  # the echo of the last words is still coming
    rig.frames(talk(400, level=QUIET))
    rig.vad_ends()
    stops = rig.of(UserStoppedSpeaking)
    assert len(stops) == 1 and stops[0].discarded  # type: ignore[attr-defined]


def test_echo_gets_no_early_transcript_but_the_users_pause_does() -> None:
    # An early transcript of echo would be answered if the utterance were ever
    # taken for a turn; and it costs Whisper and LLM time for nothing.
    rig = Rig(pause_ms=60)
    rig.frames(talk(400, level=QUIET) + silence(100) + talk(200, level=QUIET))
    assert rig.of(UserSpeechPaused) == []
    rig.vad_ends()
    idle = Rig(speaking=False, pause_ms=60)
    idle.frames(talk(400) + silence(100) + talk(200))
    assert len(idle.of(UserSpeechPaused)) == 1


def test_a_loud_answer_just_after_the_agent_finished_is_a_turn() -> None:
    rig = Rig(speaking=False)
    rig.activity.last_sound_end = rig.t - 0.1
    rig.frames(talk(400))
    rig.vad_ends()
    stops = rig.of(UserStoppedSpeaking)
    assert len(stops) == 1 and not stops[0].discarded  # type: ignore[attr-defined]


def test_speech_begun_as_the_answer_ends_is_a_turn() -> None:
    rig = Rig()
    rig.frames(talk(20, level=QUIET))
    rig.activity.speaking = False  # the answer's last sample
    rig.frames(talk(400))
    rig.vad_ends()
    stops = rig.of(UserStoppedSpeaking)
    assert len(stops) == 1 and stops[0].audio is not None  # type: ignore[attr-defined]


def test_while_the_agent_only_thinks_speech_interrupts_after_min_speech() -> None:
    rig = Rig(speaking=False, thinking=True)
    rig.frames(talk(80))  # 60 ms to confirm the start + 80 ms
    assert rig.of(AgentInterrupted) == []
    rig.frames(talk(20))
    assert len(rig.of(AgentInterrupted)) == 1
    assert rig.of(BargeInSuspected) == []  # nothing is playing: nothing to hold


def test_without_hold_speech_cuts_the_answer_off_after_min_speech() -> None:
    rig = Rig(hold=False)
    rig.frames(talk(80))  # 60 ms to confirm the start + 80 ms
    assert rig.of(AgentInterrupted) == []
    rig.frames(talk(20))
    assert len(rig.of(AgentInterrupted)) == 1
    assert rig.of(BargeInSuspected) == []


def test_an_idle_agent_just_hears_a_turn() -> None:
    rig = Rig(speaking=False)
    rig.frames(talk(400))
    assert len(rig.of(UserStartedSpeaking)) == 1
    assert rig.of(BargeInSuspected) == rig.of(AgentInterrupted) == []
    assert rig.of(UserSpeechPaused) == []


def test_after_echo_was_let_go_the_next_hold_of_that_answer_must_be_louder() -> None:
    rig = Rig()
    rig.frames(talk(160, level=-25.0) + silence(700))  # echo at -25 dBFS, let go
    assert len(rig.of(BargeInDismissed)) == 1
    rig.frames(talk(160, level=-24.0) + silence(700))  # the same echo again: no stutter
    assert len(rig.of(BargeInSuspected)) == 1
    rig.frames(talk(600, level=-18.0))  # a person, louder than the echo
    assert len(rig.of(BargeInSuspected)) == 2
    assert len(rig.of(AgentInterrupted)) == 1


def test_after_loud_echo_was_let_go_a_person_talking_normally_still_cuts_the_answer_off() -> None:
    # Echo the canceller missed (-13 dBFS, on a PipeWire desktop before it found the
    # echo's delay) must not lift the next hold above a person's voice.
    rig = Rig()
    rig.frames(talk(160, level=-13.0) + silence(700))
    assert len(rig.of(BargeInDismissed)) == 1
    rig.frames(talk(600, level=-19.0))
    assert len(rig.of(BargeInSuspected)) == 2
    assert len(rig.of(AgentInterrupted)) == 1


def test_the_microphone_relaxes_only_while_nobody_speaks_and_the_agent_is_idle() -> None:
    source = RelaxingSource()
    rig = Rig(speaking=False, source=source)
    rig.frames(silence(100))
    assert source.relaxed, "an idle app woke the loop for every block"
    rig.frames(talk(40))
    assert not source.relaxed, "speech in progress must be seen block by block"
    rig.vad_ends()
    rig.frames(silence(40))
    assert source.relaxed
    rig.activity.thinking = True
    rig.frames(silence(20))
    assert not source.relaxed, "a barge-in while the agent thinks must be seen at once"
    rig.activity.thinking, rig.activity.speaking = False, True
    rig.frames(silence(20))
    assert not source.relaxed, "a barge-in while the agent speaks must be seen at once"


def test_the_speaker_is_woken_while_the_user_talks_and_the_agent_is_busy() -> None:
    wakes: list[bool] = []
    rig = Rig(speaking=False, on_active=lambda: wakes.append(True))
    rig.frames(silence(100))
    assert not wakes, "an idle app kept the speaker awake"
    rig.frames(talk(40))
    assert wakes, "speech that may need an answer did not wake the speaker"
    rig.vad_ends()
    rig.frames(silence(40))
    count = len(wakes)
    rig.activity.thinking = True
    rig.frames(silence(20))
    assert len(wakes) > count


def test_a_steady_level_is_published_once_a_second_and_a_change_at_once() -> None:
    rig = Rig(speaking=False)

    def frames_for(seconds: float, frame: Frame) -> None:
        # Frames on the wall clock: the level's pace is the loop's, not the capture's.
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rig.frames([frame])
            time.sleep(0.01)

    frames_for(1.5, Frame(False, -60.0))
    levels = [e for e in rig.events if isinstance(e, AudioLevel)]
    assert 1 <= len(levels) <= 3, "a quiet room was published 20 times a second"
    frames_for(0.2, Frame(False, -40.0))
    louder = [e for e in rig.events if isinstance(e, AudioLevel)][len(levels) :]
    assert louder and louder[0].level_db == -40.0
