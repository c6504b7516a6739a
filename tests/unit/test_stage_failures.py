"""A stage that fails: the app says which one, the timeline shows it, the talk goes on.

The whole pipeline (``VoiceAgent``: every node, route, the timeline and the
player) runs on scripted engines that raise on a chosen call, as a real engine
raises in its worker thread; tests/integration/test_stage_failures_real.py does
the same with the real engines.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator

import pytest

from tests.pipeline_fakes import (
    ScriptedChatModel,
    ScriptedTranscriber,
    ScriptedVoice,
    SimulatedSpeaker,
    say,
    scripted_agent,
    scripted_engines,
    until,
)
from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.events import (
    AgentError,
    AgentSentence,
    AgentStoppedSpeaking,
)
from voiceterm.nodes import ConversationContext
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.glitches import SpeakerLosses
from voiceterm.pipeline.headless import TurnPrinter


class Watched:
    """An agent and everything broadcast on its bus, with what headless printed."""

    def __init__(self, agent: VoiceAgent) -> None:
        self.agent = agent
        self.messages: list[Message] = []
        agent.bus.tap(self.messages.append)
        self.printed = io.StringIO()
        self.printer = printer = TurnPrinter(agent.timeline, self.printed)
        bridge = Bridge(printer)
        printer.attach(bridge)
        agent.bus.register_bridge(bridge)

    def events(self, kind: type) -> list:  # type: ignore[type-arg]
        return [m.event for m in self.messages if isinstance(m.event, kind)]

    def answers_played(self) -> int:
        return sum(not stop.interrupted for stop in self.events(AgentStoppedSpeaking))

    def history(self) -> list[tuple[str, str]]:
        node = self.agent.nodes.chat
        assert node is not None
        committed = ConversationContext(node.conversation_events).get_committed_events()
        messages = node.format_for_llm(committed)
        return [(m["role"], m["content"].strip()) for m in messages if m["role"] != "system"]


@contextlib.asynccontextmanager
async def watched(**engines: object) -> AsyncIterator[Watched]:
    agent = scripted_agent(scripted_engines(**engines))  # type: ignore[arg-type]
    watch = Watched(agent)
    await agent.start()
    try:
        yield watch
    finally:
        await agent.stop()


async def test_a_failing_transcriber_is_named_and_the_next_utterance_is_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with watched() as watch:
        agent = watch.agent
        assert agent.engines is not None
        assert isinstance(agent.engines.transcriber, ScriptedTranscriber)
        agent.engines.transcriber.fail_next()
        await say(agent, "What is the moon made of?")
        await until(lambda: watch.events(AgentError))
        await say(agent, "Tell me about the sun.")
        await until(lambda: watch.answers_played() == 1)
        assert not agent.activity.busy
    [error] = watch.events(AgentError)
    assert error.source == "stt" and "the transcriber crashed" in error.error
    assert "speech recognition (stt) failed" in capsys.readouterr().err
    failed, answered = agent.timeline.turns
    assert failed.user_text == "" and not failed.awaiting_transcript
    assert "stt_failed" in failed.marks
    assert any("crashed" in span.content for span in failed.lane_spans("stt"))
    assert failed.errors
    assert answered.user_text == "Tell me about the sun."
    assert "playback_end" in answered.marks and not answered.errors
    assert watch.history()[0] == ("user", "Tell me about the sun.")


@pytest.mark.parametrize("words_before", [0, 3])
async def test_a_failing_language_model_is_named_and_the_next_turn_is_answered(
    capsys: pytest.CaptureFixture[str], words_before: int
) -> None:
    model = ScriptedChatModel(fail_after_words=words_before)
    async with watched(llm=model) as watch:
        agent = watch.agent
        model.fail_next()
        await say(agent, "What is the moon made of?")
        await until(lambda: watch.events(AgentError) and not agent.activity.busy)
        await say(agent, "Tell me about the sun.")
        await until(lambda: watch.answers_played() == (2 if words_before else 1))
        assert not agent.activity.busy
    [error] = watch.events(AgentError)
    assert error.source == "llm" and "the language model crashed" in error.error
    assert "language model (llm) failed" in capsys.readouterr().err
    failed, answered = agent.timeline.turns
    assert "llm_failed" in failed.marks and failed.errors
    assert failed.spoken_text.strip() == "The moon is"[: len("The moon is") * bool(words_before)]
    # The next answer starts clean: nothing of the failed one is left in the sentence stage.
    sentences = [e.content for e in watch.events(AgentSentence) if e.content]
    assert sentences[-4:] == [
        "The moon is",
        "far away.",
        "It is made of rock and dust.",
        "Ask me more.",
    ]
    assert answered.spoken_text.strip() == model.answer
    if words_before:
        asked = [
            ("user", "What is the moon made of?"),
            ("assistant", "The moon is"),
            ("user", "Tell me about the sun."),
        ]
    else:  # a question left without an answer is asked again with the next one
        asked = [("user", "What is the moon made of? Tell me about the sun.")]
    assert watch.history() == [*asked, ("assistant", model.answer)]


async def test_a_failing_voice_loses_its_piece_only_and_the_next_turn_is_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    voice = ScriptedVoice()
    async with watched(tts=voice) as watch:
        agent = watch.agent
        # The first piece, then the first sentence's rest: that one fails.
        voice.calls, voice.fail_calls = 0, {2}
        await say(agent, "What is the moon made of?")
        await until(lambda: watch.answers_played() == 1)
        await say(agent, "Tell me about the sun.")
        await until(lambda: watch.answers_played() == 2)
        assert not agent.activity.busy
    [error] = watch.events(AgentError)
    assert error.source == "tts" and "the voice crashed" in error.error
    assert "speech synthesis (tts) failed" in capsys.readouterr().err
    failed, answered = agent.timeline.turns
    assert "tts_failed" in failed.marks and failed.errors
    lost = voice.texts[1]
    assert failed.spoken_text.strip() == "The moon is It is made of rock and dust. Ask me more."
    assert lost == "far away."
    assert answered.spoken_text.strip() == ScriptedChatModel().answer
    assert watch.history()[1] == ("assistant", failed.spoken_text.strip())


async def test_the_speaker_lost_mid_answer_cuts_the_answer_and_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    voice = ScriptedVoice(chunks=20)  # 200 ms a piece: long enough to lose the speaker
    async with watched(tts=voice) as watch:
        agent = watch.agent
        speaker = agent.sink
        assert isinstance(speaker, SimulatedSpeaker)
        await say(agent, "What is the moon made of?")
        # Half the piece has played: its first words were heard, its last were not.
        await until(lambda: len(speaker.played) >= 20)
        speaker.lose_device()
        await until(lambda: watch.events(AgentError) and not agent.activity.busy)
        lost_at = speaker.lost_at
        speaker.restore_device()
        await say(agent, "Tell me about the sun.")
        await until(lambda: watch.answers_played() == 1)
        assert not agent.activity.busy
    [error] = watch.events(AgentError)
    assert error.source == "speaker" and "stopped playing" in error.error
    assert "speaker failed" in capsys.readouterr().err
    failed, answered = agent.timeline.turns
    assert failed.errors and "playback_failed" in failed.marks
    assert failed.interrupted and failed.interrupt_reason == "speaker_lost"
    assert speaker.heard_between(lost_at, speaker.restored_at) == 0
    # What was heard before the loss, and no more, is what the agent said.
    heard = failed.spoken_text.strip()
    assert heard and "The moon is far away.".startswith(heard)
    assert watch.history()[1] == ("assistant", heard)
    assert answered.spoken_text.strip() == ScriptedChatModel().answer
    # The summary at exit counts the loss and the answer it cut off.
    losses = SpeakerLosses.of(watch.printer.speaker_reports, agent.timeline.turns)
    assert losses.describe() == "The speaker stopped playing once; answers cut off by it: 1."
