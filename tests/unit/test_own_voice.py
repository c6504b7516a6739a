"""The agent does not answer its own voice come back through the microphone."""

from __future__ import annotations

from typing import Any

import pytest

from voiceterm.bridge import Bridge
from voiceterm.bus import Bus
from voiceterm.events import (
    Event,
    UserSpeechPaused,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
)
from voiceterm.pipeline.own_voice import OwnVoice
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.transcribe import SttNode
from voiceterm.testing import RouteHarness

ANSWER = (
    "Luna was a brave little fox with a heart full of love and a spirit that could "
    "conquer any challenge."
)


def agent_spoke(text: str = ANSWER, start: float = 100.0, end: float | None = 106.0) -> OwnVoice:
    voice = OwnVoice(tail_s=1.0)
    voice.said(text, start - 0.2)
    voice.started(start)
    if end is not None:
        voice.stopped(end)
    return voice


@pytest.mark.parametrize(
    "transcript",
    [
        # Echo as Whisper heard it on the test rig: garbled, but in the agent's order.
        "So was the brain heart full of love and the spirit and the posture and challenge.",
        "a brave little fox with a heart",
        "Conquer any challenge.",
    ],
)
def test_the_agents_words_heard_while_it_spoke_are_its_own(transcript: str) -> None:
    assert agent_spoke().heard_in(transcript, 103.0, 104.5)


@pytest.mark.parametrize(
    "transcript",
    [
        "Stop, what is the weather like tomorrow?",
        "Tell me about the fox.",
        "What do you know about the little cat?",
    ],
)
def test_a_person_talking_over_it_is_not_its_voice(transcript: str) -> None:
    assert not agent_spoke().heard_in(transcript, 103.0, 104.5)


def test_its_words_long_after_it_stopped_are_the_users() -> None:
    voice = agent_spoke()
    assert voice.heard_in("a heart full of love", 106.5, 107.5)  # the echo's tail
    assert not voice.heard_in("a heart full of love", 108.0, 109.0)


def test_one_word_is_its_own_only_while_it_still_speaks() -> None:
    voice = agent_spoke(text="Would you like the fox or the cat?", end=106.0)
    assert voice.heard_in("Fox.", 105.0, 105.4)
    # Answering its question right after it: the user's word, not echo.
    assert not voice.heard_in("Fox.", 106.3, 106.7)


def test_an_answer_still_playing_counts_as_audible() -> None:
    assert agent_spoke(end=None).heard_in("a spirit that could conquer", 200.0, 201.0)


def test_old_answers_are_forgotten() -> None:
    voice = OwnVoice(tail_s=1.0, keep_s=60.0)
    voice.said("The old answer about a heart full of love.", 0.0)
    voice.said("The new answer about the weather.", 100.0)
    voice.started(100.0)
    assert not voice.heard_in("a heart full of love", 101.0, 102.0)
    assert voice.heard_in("the new answer about", 101.0, 102.0)


class FixedTranscriber:
    def __init__(self, text: str) -> None:
        self.text = text

    def transcribe(self, audio: Any) -> str:
        return self.text


def unused_publisher() -> Publisher:
    """For a node whose events are read from ``transcribe`` itself."""
    return Publisher(Bus(), "stt")


def stt_hearing(text: str, own_voice: OwnVoice | None = None) -> SttNode:
    """An STT node whose every utterance transcribes to ``text``."""
    return SttNode(FixedTranscriber(text), unused_publisher(), own_voice=own_voice)


def answered(events: list[Event]) -> list[str]:
    return [e.content for e in events if isinstance(e, UserTranscriptionReceived)]


async def transcripts(node: SttNode, utterance: UserStoppedSpeaking) -> list[Event]:
    return [event async for event in node.transcribe(utterance)]


def utterance(start: float, end: float) -> UserStoppedSpeaking:
    return UserStoppedSpeaking(audio=[0] * 1600, speech_start=start, speech_end=end)


async def test_the_stt_node_drops_its_own_voice_and_says_why() -> None:
    node = stt_hearing("a heart full of love and a spirit", agent_spoke())
    events = await transcripts(node, utterance(103.0, 104.0))
    assert answered(events) == []
    dropped = [e for e in events if isinstance(e, UserTranscriptionDropped)]
    assert [(d.reason, d.content) for d in dropped] == [
        ("own_voice", "a heart full of love and a spirit")
    ]


async def test_the_same_words_after_the_echo_died_are_answered() -> None:
    node = stt_hearing("a heart full of love and a spirit.", agent_spoke())
    events = await transcripts(node, utterance(110.0, 111.0))
    assert answered(events) == ["a heart full of love and a spirit."]


async def test_an_unfinished_sentence_before_the_echo_is_still_answered() -> None:
    transcriber = FixedTranscriber("Tell me about the")
    harness = RouteHarness()
    node = SttNode(
        transcriber,
        Publisher(harness.bus, SttNode.id),
        incomplete_wait_s=0.05,
        own_voice=agent_spoke(),
    )
    bridge = Bridge(node)
    node.attach(bridge)
    harness.add(bridge)
    async with harness:
        await harness.send(utterance(90.0, 91.0))  # held: it sounds unfinished
        await harness.settle()
        transcriber.text = "a heart full of love"
        await harness.send(UserStartedSpeaking(onset_time=103.0))  # the echo starts
        await harness.send(utterance(103.0, 104.0))
        await harness.wait_for(UserTranscriptionDropped)
        received = await harness.wait_for(UserTranscriptionReceived)
    assert [r.content for r in received] == ["Tell me about the"]


async def test_nothing_heard_is_reported_as_dropped() -> None:
    node = stt_hearing("")
    events = await transcripts(node, utterance(1.0, 2.0))
    assert [(e.reason, e.content) for e in events if isinstance(e, UserTranscriptionDropped)] == [
        ("nothing_heard", "")
    ]


async def test_a_barge_in_is_answered_even_in_the_agents_words() -> None:
    # It was confirmed after the held answer fell silent: a person, not echo.
    node = stt_hearing("No, a heart full of love is not enough.", agent_spoke())
    barge_in = UserStoppedSpeaking(
        audio=[0] * 1600, speech_start=103.0, speech_end=104.0, barge_in=True
    )
    events = await transcripts(node, barge_in)
    assert answered(events) == ["No, a heart full of love is not enough."]


async def test_echo_the_listener_discarded_is_not_answered_from_its_early_transcript() -> None:
    # The pause's transcript was made while it was unclear whose voice it was.
    harness = RouteHarness()
    node = SttNode(FixedTranscriber("And love, very meaningful."), Publisher(harness.bus, "stt"))
    bridge = Bridge(node)
    node.attach(bridge)
    harness.add(bridge)
    async with harness:
        audio = [0] * 1600
        await harness.send(UserSpeechPaused(audio=audio, speech_start=103.0, speech_end=104.0))
        await harness.wait_for(UserTranscriptionPartial)
        await harness.send(UserStoppedSpeaking(speech_end=104.0, discarded=True))
        await harness.settle()
    assert harness.events(UserTranscriptionReceived) == []
