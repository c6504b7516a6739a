"""The follow-up window on the microphone's clock (the gate alone, a deaf detector)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from voiceterm.events import ListeningChanged
from voiceterm.pipeline.wake import ListenGate
from voiceterm.pipeline.wake_words import FitRule

FRAME_S = 0.01


@dataclass
class Agent:
    busy: bool = False
    last_sound_end: float = 0.0


class Deaf:
    """A wake word detector that never hears the wake word."""

    cutoff = 0.97

    def feed(self, samples: Any, t_first_sample: float, *, listening: bool = True) -> list[Any]:
        return []


def hear(gate: ListenGate, start: float, seconds: float) -> float:
    """Quiet frames from ``start`` (capture times) for ``seconds``; returns the time after."""
    frame = np.zeros(160, np.int16)
    t = start
    for _ in range(round(seconds / FRAME_S)):
        gate.hear(frame, t, voiced=False)
        t += FRAME_S
    return t


def test_the_follow_up_window_counts_on_the_microphones_clock_not_the_players() -> None:
    # A replayed recording: its frames carry the recording's times (around 5000 s), while
    # the player reports the end of an answer on another clock (12 s).
    agent = Agent()
    shown: list[ListeningChanged] = []
    gate = ListenGate(
        lambda event: shown.append(event) if isinstance(event, ListeningChanged) else None,
        agent,
        mode="wake_word",
        follow_up_s=8.0,
        detector=Deaf(),
        phrase="Hey Jarvis",
    )
    t = hear(gate, 5000.0, 1.0)
    assert not gate.is_open(t)
    agent.busy = True  # a typed question is answered
    t = hear(gate, t, 2.0)
    assert gate.is_open(t)
    agent.busy, agent.last_sound_end = False, 12.0  # the answer has been heard
    answer_end = t
    t = hear(gate, t, 7.0)
    assert gate.is_open(t), "the window closed before follow_up_s"
    assert shown[-1].state == "open" and shown[-1].until is not None
    assert abs(shown[-1].until - (answer_end + 8.0)) < 0.05
    t = hear(gate, t, 1.5)
    assert not gate.is_open(t), "the window stayed open after follow_up_s"
    assert shown[-1].state == "asleep"


class Scripted:
    """A wake word detector that scores ``peak`` around ``at`` (capture time), 0 elsewhere."""

    cutoff = 0.97

    def __init__(self, peak: float, at: float) -> None:
        self.peak, self.at = peak, at

    def feed(self, samples: Any, t_first_sample: float, *, listening: bool = True) -> list[Any]:
        from voiceterm.engines.wake import WakeScore

        end = t_first_sample + FRAME_S
        score = self.peak if abs(end - self.at) < 0.1 else 0.0
        return [WakeScore(at=end, probability=score)]


def near_miss_gate(peak: float, by_words_above: float | None) -> tuple[ListenGate, list[Any]]:
    published: list[Any] = []
    gate = ListenGate(
        published.append,
        Agent(),
        mode="wake_word",
        detector=Scripted(peak, at=1.5),
        phrase="Hey Jarvis",
        by_words_above=by_words_above,
    )
    hear(gate, 0.0, 3.0)
    return gate, published


def utterance(start: float, end: float) -> Any:
    from voiceterm.engines.vad import SpeechEnded

    audio = np.zeros(round((end - start + 0.3) * 16000), np.int16)
    return SpeechEnded(audio=audio, speech_start=start, speech_end=end, audio_start=start - 0.3)


def test_a_near_miss_is_a_turn_when_its_words_begin_with_the_phrase() -> None:
    from voiceterm.events import WakeWordHeard
    from voiceterm.pipeline.wake import WordCheck

    gate, published = near_miss_gate(0.35, by_words_above=0.2)
    check = gate.decide(utterance(1.0, 2.5))
    assert isinstance(check, WordCheck) and check.probability == 0.35
    assert gate.confirm_by_words(2.5, "Hey, Jervis. What time is it?") == "What time is it?"
    heard = [e for e in published if isinstance(e, WakeWordHeard)]
    assert [(e.by_words, e.near_miss) for e in heard] == [(True, False)]
    assert "by its words" in heard[0].describe()


def test_a_near_miss_said_alone_opens_the_window() -> None:
    gate, published = near_miss_gate(0.35, by_words_above=0.2)
    assert gate.decide(utterance(1.0, 1.8)) is not None
    assert gate.confirm_by_words(1.8, "Hey Jarvis.") == ""
    assert gate.is_open(3.0)
    opened = [e for e in published if isinstance(e, ListeningChanged) and e.state == "open"]
    assert opened and opened[-1].until == 1.8 + gate.follow_up_s


def test_a_near_miss_whose_words_are_not_the_phrase_is_not_a_turn() -> None:
    from voiceterm.events import WakeWordHeard

    gate, published = near_miss_gate(0.35, by_words_above=0.2)
    assert gate.decide(utterance(1.0, 2.5)) is not None
    assert gate.confirm_by_words(2.5, "Harvest the carrots, Travis.") is None
    assert not gate.is_open(3.0)
    heard = [e for e in published if isinstance(e, WakeWordHeard)]
    assert [(e.by_words, e.near_miss) for e in heard] == [(False, True)]


def test_below_the_level_or_with_the_setting_off_nothing_is_checked() -> None:
    gate, _ = near_miss_gate(0.1, by_words_above=0.2)
    assert gate.decide(utterance(1.0, 2.5)) is None
    gate, _ = near_miss_gate(0.35, by_words_above=None)
    assert gate.decide(utterance(1.0, 2.5)) is None


class Reader:
    """Whisper as the check sees it: a fixed fit to the phrase, fixed words, reads counted."""

    def __init__(
        self,
        fit: float,
        words: str,
        after: str = "",
        end_s: float = 0.9,
        own: float = -7.0,
        name: float = -9.0,
    ) -> None:
        self.fit, self.words, self.after, self.end_s, self.own = fit, words, after, end_s, own
        self.name = name
        """Of ``fit``, the name's share."""
        self.transcribed: list[str] = []
        """What each transcript was asked: "hinted", "own" or "after <phrase>"."""
        self.readings = 0

    def reading(self, audio: Any) -> Reading:
        self.readings += 1
        return Reading(self)


class Reading:
    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def fit(self, phrase: str) -> Any:
        """``fit`` for the wake phrase, ``own`` for Whisper's own first words."""
        from voiceterm.engines.stt import PhraseFit

        reader = self.reader
        if phrase == "Hey Jarvis":
            return PhraseFit(
                reader.fit, reader.end_s, 0.0, spelling="Hey, Jarvis", last_word_logprob=reader.name
            )
        return PhraseFit(reader.own, reader.end_s, 0.0)

    def transcribe(self, *, hint: str = "") -> Any:
        self.reader.transcribed.append("hinted" if hint else "own")
        text = self.reader.words if hint else self.reader.after
        return type("Transcript", (), {"text": text})()

    def transcribe_after(self, phrase: str) -> Any:
        self.reader.transcribed.append(f"after {phrase}")
        return type("Transcript", (), {"text": ", " + self.reader.after})()


def test_with_a_fit_every_utterance_is_checked_and_one_that_fits_is_a_turn() -> None:
    from voiceterm.events import WakeWordHeard
    from voiceterm.pipeline.wake import WordCheck

    gate, published = near_miss_gate(0.0, by_words_above=0.2)
    gate.fit = FitRule(-15.0, 5.0)
    check = gate.decide(utterance(1.0, 2.5))
    assert isinstance(check, WordCheck) and check.probability == 0.0
    # Words no spelling rule takes; the sound fits: the turn is what follows the phrase.
    reader = Reader(-6.0, "K-Jeter Biss, what time is it?", after="what time is it?")
    audio = np.zeros(round(1.8 * 16000), np.int16)
    read = gate.read_check(reader, audio, 2.5)
    assert read.how == "sound" and read.rest == "What time is it?"
    # One reading of the audio (one encode); the turn is read on from the phrase as it fit.
    assert reader.readings == 1 and reader.transcribed[-1] == "after Hey, Jarvis"
    assert gate.confirm_read(2.5, read) == "What time is it?"
    heard = [e for e in published if isinstance(e, WakeWordHeard)]
    assert [(e.by_words, e.near_miss) for e in heard] == [(True, False)]
    assert "woke by its sound" in heard[0].describe()


def test_an_utterance_that_does_not_fit_is_not_even_transcribed() -> None:
    from voiceterm.events import WakeWordHeard

    gate, published = near_miss_gate(0.0, by_words_above=0.2)
    gate.fit = FitRule(-15.0)
    assert gate.decide(utterance(1.0, 2.5)) is not None
    reader = Reader(-21.0, "Hey Jarvis, what time is it?")
    read = gate.read_check(reader, np.zeros(16000, np.int16), 2.5)
    assert read.rest is None and reader.transcribed == []
    assert gate.confirm_read(2.5, read) is None
    assert not gate.is_open(3.0)
    assert not [e for e in published if isinstance(e, WakeWordHeard)]


def test_the_phrase_fitting_alone_opens_the_window() -> None:
    gate, _ = near_miss_gate(0.0, by_words_above=0.2)
    gate.fit = FitRule(-15.0)
    assert gate.decide(utterance(1.0, 1.8)) is not None
    # The speech ends 0.1 s after the phrase's aligned end: too little for a question.
    reader = Reader(-8.0, "K-J office", after="is", end_s=1.0)
    read = gate.read_check(reader, np.zeros(round(1.4 * 16000), np.int16), 1.8)
    assert read.rest == "" and reader.transcribed == ["hinted", "own"]
    assert gate.confirm_read(1.8, read) == ""
    assert gate.is_open(3.0)


def test_a_fit_is_not_enough_when_whisper_reads_another_name_far_more_surely() -> None:
    gate, _ = near_miss_gate(0.0, by_words_above=0.2)
    gate.fit = FitRule(-15.0, 5.0)
    assert gate.decide(utterance(1.0, 2.5)) is not None
    # "Hey Charlie" fits the phrase at -12, and Whisper reads its own words at -2.
    reader = Reader(-12.0, "Hey Charlie, what time is it?", after="Hey Charlie", own=-2.0)
    read = gate.read_check(reader, np.zeros(round(1.8 * 16000), np.int16), 2.5)
    assert read.rest is None and read.own == -2.0
    assert gate.confirm_read(2.5, read) is None
    assert not gate.is_open(3.0)


def test_the_name_fitting_wakes_it_when_the_greeting_does_not() -> None:
    gate, _ = near_miss_gate(0.0, by_words_above=0.2)
    gate.fit = FitRule(-12.0, 6.0)
    # "Hey" lost (the phrase fits at -13), "Jarvis" clear (-3); Whisper's own words -5.
    reader = Reader(-13.0, "Please are a bitch", after="", name=-3.0, own=-5.0, end_s=1.0)
    audio = np.zeros(round(1.4 * 16000), np.int16)
    assert gate.decide(utterance(1.0, 1.8)) is not None
    assert gate.read_check(reader, audio, 1.8).rest is None  # the name's rule is off
    gate.fit = replace(gate.fit, name_above=-6.0, name_margin=10.0)
    assert gate.decide(utterance(1.0, 1.9)) is not None
    read = gate.read_check(reader, audio, 1.9)
    assert read.how == "sound" and read.rest == "" and read.name_fit == -3.0
    assert gate.confirm_read(1.9, read) == ""
    assert gate.is_open(3.0)


def test_the_name_fitting_is_not_enough_when_whisper_reads_far_more_surely() -> None:
    gate, _ = near_miss_gate(0.0, by_words_above=0.2)
    gate.fit = FitRule(-12.0, 6.0, -6.0, 10.0)
    reader = Reader(-13.0, "Hey Travis", after="Hey Travis", name=-5.0, own=-1.0)
    assert gate.decide(utterance(1.0, 1.8)) is not None
    read = gate.read_check(reader, np.zeros(round(1.4 * 16000), np.int16), 1.8)
    assert read.rest is None and read.own == -1.0
    assert not gate.is_open(3.0)


def test_a_check_read_at_the_pause_is_not_read_again_at_its_end() -> None:
    from voiceterm.events import WakeWordHeard

    gate, published = near_miss_gate(0.0, by_words_above=0.2)
    gate.fit = FitRule(-15.0, 5.0)
    reader = Reader(-6.0, "Hey Jarvis, what time is it?")
    audio = np.zeros(round(1.8 * 16000), np.int16)
    # A pause, then more speech: each pause's utterance so far is read.
    for speech_end, readings in ((2.0, 1), (2.5, 2)):
        assert gate.check_so_far(utterance(1.0, speech_end)) is not None
        ahead = gate.read_check(reader, audio, speech_end)
        assert reader.readings == readings
    assert ahead.rest == "What time is it?"
    # Nothing is decided or announced at a pause.
    assert not [e for e in published if isinstance(e, WakeWordHeard)]
    assert not gate.is_open(2.6)
    # The end, with nothing said since the last pause: its read, Whisper not asked again.
    assert gate.decide(utterance(1.0, 2.5)) is not None
    assert gate.read_check(reader, audio, 2.5) is ahead and reader.readings == 2
    assert gate.confirm_read(2.5, ahead) == "What time is it?"


def test_nothing_is_checked_at_a_pause_in_always_mode() -> None:
    gate, _ = near_miss_gate(0.0, by_words_above=0.2)
    gate.fit = FitRule(-15.0)
    gate.set_mode("always")
    assert gate.check_so_far(utterance(1.0, 2.5)) is None
