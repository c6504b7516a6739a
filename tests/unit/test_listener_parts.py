"""The listener's parts, each alone: the level meter, the echo gate, barge-in, push-to-talk.

Frames are given as the voice detector would read them (voiced or not, how loud), on
a capture clock that the parts also read as their own, so each test is about one
part's rule; the listener that composes them is in test_listener.py and
test_turn_end.py (which also has the turn judge alone).
"""

from __future__ import annotations

from collections.abc import Iterator

from voiceterm.events import (
    AgentInterrupted,
    AudioLevel,
    BargeInDismissed,
    BargeInSuspected,
    Event,
)
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.listening.barge_in import BargeIn
from voiceterm.pipeline.listening.echo_gate import EchoGate
from voiceterm.pipeline.listening.level import LevelMeter
from voiceterm.pipeline.listening.push_to_talk import PushToTalk
from voiceterm.pipeline.listening.seams import Heard
from voiceterm.pipeline.listening.settings import ListenerSettings

FRAME_S = 0.02
LOUD, QUIET = -20.0, -45.0
SETTINGS = ListenerSettings(
    min_speech_ms=150,
    start_ms=60,
    min_level_db=-32.0,
    hold_settle_ms=200,
    hold_confirm_ms=150,
    hold_quiet_ms=400,
)


class Capture:
    """The capture clock: each frame is heard at its end, as live."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def frames(self, ms: int, *, voiced: bool = True, level_db: float = LOUD) -> Iterator[Heard]:
        for _ in range(ms // 20):
            start, self.now = self.now, self.now + FRAME_S
            yield Heard(start, self.now, voiced, level_db)


class BargeInRig:
    def __init__(self, *, speaking: bool = False, thinking: bool = False) -> None:
        self.events: list[Event] = []
        self.clock = Capture()
        self.activity = AgentActivity(thinking=thinking, speaking=speaking)
        self.barge_in = BargeIn(self.activity, self.events.append, SETTINGS, self.clock)
        self.onset: float | None = None
        self.let_go = 0

    def talk(self, ms: int, level_db: float = LOUD) -> None:
        if self.onset is None:
            self.onset = self.clock.now
            self.barge_in.speech_started()
        self.feed(self.clock.frames(ms, level_db=level_db))

    def silence(self, ms: int) -> None:
        self.feed(self.clock.frames(ms, voiced=False, level_db=-90.0))

    def feed(self, frames: Iterator[Heard]) -> None:
        for heard in frames:
            self.let_go += self.barge_in.feed(heard, self.onset)

    def count(self, kind: type[Event]) -> int:
        return sum(isinstance(event, kind) for event in self.events)


def test_barge_in_while_the_agent_thinks_needs_min_speech_ms_of_voice() -> None:
    # 150 ms, the VAD's 60 ms start confirmation included: 80 ms more is not enough.
    rig = BargeInRig(thinking=True)
    rig.talk(80)
    assert rig.count(AgentInterrupted) == 0
    rig.talk(20)
    assert rig.count(AgentInterrupted) == 1


def test_a_cough_while_the_agent_thinks_does_not_interrupt_it() -> None:
    rig = BargeInRig(thinking=True)
    rig.talk(60)
    rig.silence(600)  # the VAD's hangover keeps it "in speech": silence does not count
    assert rig.count(AgentInterrupted) == 0


def test_speech_over_the_answer_holds_it_at_once_and_cuts_it_after_settle_and_confirm() -> None:
    rig = BargeInRig(speaking=True)
    rig.talk(20)
    assert rig.count(BargeInSuspected) == 1, "the answer played on over the user"
    rig.talk(320)  # the 200 ms settle and most of the 150 ms to confirm
    assert rig.count(AgentInterrupted) == 0
    rig.talk(60)
    assert rig.count(AgentInterrupted) == 1
    assert rig.count(BargeInDismissed) == 0 and rig.let_go == 0


def test_a_held_answer_plays_on_when_the_sound_stops_with_it() -> None:
    rig = BargeInRig(speaking=True)
    rig.talk(100)
    rig.silence(480)  # the hold began 580 ms ago: under the settle (200) and quiet (400) time
    assert rig.count(BargeInDismissed) == 0
    rig.silence(60)
    assert rig.count(BargeInDismissed) == 1 and rig.let_go == 1
    assert rig.count(AgentInterrupted) == 0


def test_quiet_sound_over_the_answer_does_not_hold_it() -> None:
    rig = BargeInRig(speaking=True)
    rig.talk(600, level_db=QUIET)
    assert rig.count(BargeInSuspected) == rig.count(AgentInterrupted) == 0


def test_half_duplex_mutes_the_microphone_while_the_agent_speaks_and_its_echo_dies() -> None:
    activity = AgentActivity(speaking=True)
    gate = EchoGate(activity, ListenerSettings(echo="half_duplex"))
    assert gate.mutes(10.0)
    activity.speaking, activity.last_sound_end = False, 10.0
    assert gate.mutes(10.2), "the room's reverb after the last sample was heard as the user"
    assert not gate.mutes(10.4)
    full_duplex = EchoGate(AgentActivity(speaking=True), ListenerSettings(echo="off"))
    assert not full_duplex.mutes(10.0)


def test_speech_begun_over_the_agent_is_suspected_echo_until_it_is_loud_after_it() -> None:
    activity = AgentActivity(speaking=True)
    clock = Capture()
    gate = EchoGate(activity, SETTINGS)
    gate.speech_started(clock.now)
    for heard in clock.frames(400, level_db=QUIET):
        gate.feed(heard, in_utterance=True)
    assert gate.suspects()
    activity.speaking, activity.last_sound_end = False, clock.now
    for heard in clock.frames(200):  # the echo's way back: loud or not, it does not count
        gate.feed(heard, in_utterance=True)
    assert gate.suspects()
    for heard in clock.frames(200):  # more than min_speech_ms (150) of loud speech
        gate.feed(heard, in_utterance=True)
    assert not gate.suspects(), "the user's loud speech after the answer was taken for echo"


def test_speech_in_a_quiet_room_is_never_suspected_echo() -> None:
    gate = EchoGate(AgentActivity(), SETTINGS)
    gate.speech_started(1000.0)
    assert not gate.suspects()


def test_the_meter_shows_a_change_at_once_and_a_steady_level_once_a_second() -> None:
    levels: list[Event] = []
    meter = LevelMeter(levels.append)
    now = 1000.0
    for _ in range(50):  # one second of a steady, quiet room at 20 ms blocks
        meter.feed(-60.0, False, now)
        now += 0.02
    assert len(levels) == 1, "a quiet room was published at every block"
    meter.feed(-40.0, True, now)
    assert len(levels) == 2
    assert isinstance(levels[-1], AudioLevel) and levels[-1].level_db == -40.0
    meter.feed(-40.0, True, now + 1.0)
    assert len(levels) == 3  # redrawn once a second however steady


def test_push_to_talk_mutes_the_microphone_until_the_key_and_letting_go_ends_the_turn() -> None:
    talk = PushToTalk()
    assert not talk.mutes(), "always listening muted the microphone"
    talk.enabled = True
    assert talk.mutes()
    assert not talk.press(True)
    assert not talk.mutes()
    assert talk.press(False), "letting go of the key did not end the utterance"
    assert talk.mutes()
    talk.enabled = False
    talk.press(True)
    assert not talk.press(False)  # without push-to-talk the key ends nothing
