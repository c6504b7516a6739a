"""Words read at a pause are not lost when Whisper reads the whole utterance as nothing.

Seen live: a barge-in over loud echo read "These top." at its first pause and ""
whole; the agent stopped, the user saw their words appear, then nothing was answered.
"""

from __future__ import annotations

from typing import Any

from voiceterm.bridge import Bridge
from voiceterm.events import (
    UserSpeechPaused,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionReceived,
)
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.transcribe import SttNode
from voiceterm.testing import RouteHarness

AUDIO = [0] * 1600


class ScriptedTranscriber:
    """Reads each utterance as the next of ``texts``."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def transcribe(self, audio: Any) -> str:
        return self.texts.pop(0)


async def heard(
    transcriber: ScriptedTranscriber, *events: UserSpeechPaused | UserStoppedSpeaking
) -> tuple[list[str], list[str]]:
    """What the STT node answered and why it dropped, for these listener events."""
    harness = RouteHarness()
    node = SttNode(transcriber, Publisher(harness.bus, SttNode.id), incomplete_wait_s=0.0)
    bridge = Bridge(node)
    node.attach(bridge)
    harness.add(bridge)
    async with harness:
        for event in events:
            await harness.send(event)
            await harness.settle()
    received = [e.content for e in harness.events(UserTranscriptionReceived)]
    dropped = [e.reason for e in harness.events(UserTranscriptionDropped)]
    return received, dropped


async def test_a_pause_that_heard_words_answers_when_the_whole_reads_as_nothing() -> None:
    received, dropped = await heard(
        ScriptedTranscriber("Please stop.", ""),
        UserSpeechPaused(audio=AUDIO, speech_start=10.0, speech_end=10.6),
        UserSpeechPaused(audio=AUDIO, speech_start=10.0, speech_end=11.4),
        UserStoppedSpeaking(audio=AUDIO, speech_start=10.0, speech_end=11.4),
    )
    assert (received, dropped) == (["Please stop."], [])


async def test_the_end_read_as_nothing_after_a_pause_with_words_answers_them() -> None:
    received, _ = await heard(
        ScriptedTranscriber("Please stop.", ""),
        UserSpeechPaused(audio=AUDIO, speech_start=10.0, speech_end=10.6),
        UserStoppedSpeaking(audio=AUDIO, speech_start=10.0, speech_end=11.4),
    )
    assert received == ["Please stop."]


async def test_a_pauses_words_do_not_answer_another_utterance() -> None:
    received, dropped = await heard(
        ScriptedTranscriber("Please stop.", ""),
        UserSpeechPaused(audio=AUDIO, speech_start=10.0, speech_end=10.6),
        UserStoppedSpeaking(audio=AUDIO, speech_start=12.0, speech_end=12.8),
    )
    assert (received, dropped) == ([], ["nothing_heard"])


async def test_a_pauses_words_do_not_answer_an_utterance_the_listener_discarded() -> None:
    received, _ = await heard(
        ScriptedTranscriber("Please stop."),
        UserSpeechPaused(audio=AUDIO, speech_start=10.0, speech_end=10.6),
        UserStoppedSpeaking(speech_start=10.0, speech_end=11.4, discarded=True),
    )
    assert received == []
