"""Answering during the end-of-speech wait: the LLM samples the answer's start, the
sentence stage says what its first piece will be, and TTS makes that piece ahead.

Scripted engines stand in for llama.cpp and Piper; tests/integration/test_llm.py
checks on the real model that a speculated start gives the very same answer.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from voiceterm.bus import Message
from voiceterm.engines.llm import SampledStart
from voiceterm.events import (
    AgentAudioChunk,
    AgentGenerationComplete,
    AgentResponse,
    AgentSentence,
    AgentSpeculation,
    AgentSpeechSent,
    AgentStoppedSpeaking,
    SpeculativeSentence,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
)
from voiceterm.nodes import ConversationContext
from voiceterm.pipeline.respond import ChatNode
from voiceterm.pipeline.speak import SentenceNode, TtsNode
from voiceterm.tools.registry import default_registry

ANSWER = ["The", " moon", " is", " a", " big", " rock", " that", " orbits", " Earth", "."]


class ScriptedModel:
    """Records what it was asked to do; ``speculate`` samples from ``ANSWER``."""

    chat_template_source = ""
    n_ctx = 2048

    def __init__(self, answer: Sequence[str] = ANSWER) -> None:
        self.answer = list(answer)
        self.speculated: list[list[dict[str, Any]]] = []
        self.warmed: list[list[dict[str, Any]]] = []
        self.read: list[list[dict[str, Any]]] = []

    def speculate(
        self,
        messages: Sequence[Mapping[str, Any]],
        cancel: threading.Event,
        *,
        tokens: int = 12,
        max_tokens: int | None = None,
        enough: Callable[[str], bool] | None = None,
    ) -> SampledStart:
        self.speculated.append([dict(m) for m in messages])
        pieces: list[str] = []
        for piece in self.answer[:tokens]:
            pieces.append(piece)
            if enough is not None and enough("".join(pieces)):
                break
        return SampledStart(pieces=tuple(pieces), whole_reply=pieces == self.answer)

    async def stream_chat(
        self, messages: Sequence[Mapping[str, Any]], **options: Any
    ) -> AsyncGenerator[str, None]:
        for piece in self.answer:
            yield piece

    def read_ahead(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> float:
        self.read.append([dict(m) for m in messages])
        return 0.0

    def warm_up(
        self, messages: Sequence[Mapping[str, Any]], max_tokens: int | None = None
    ) -> float:
        self.warmed.append([dict(m) for m in messages])
        return 0.0


class CountingSynthesizer:
    sample_rate = 22050

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.every_core: list[bool] = []

    def synthesize(
        self, text: str, cancel: threading.Event | None = None, *, every_core: bool = False
    ) -> Iterator[Any]:
        self.texts.append(text)
        self.every_core.append(every_core)
        yield np.full(100, len(self.texts), dtype=np.int16)


def partial(text: str) -> Message:
    return Message("stt", UserTranscriptionPartial(content=text))


async def test_a_finished_sounding_partial_gets_the_answers_start_sampled() -> None:
    model = ScriptedModel()
    node = ChatNode(model, system_prompt="Be brief.", first_piece_words=6)
    speculation = (await node.prefill(partial("Tell me about the moon."))).speculation
    assert speculation is not None
    # Sampled until the seventh word began: enough for a six-word first piece.
    assert speculation.pieces == tuple(ANSWER[:7])
    assert speculation.transcript == "Tell me about the moon."
    assert model.speculated[0][-1] == {"role": "user", "content": "Tell me about the moon."}


async def test_an_unfinished_partial_only_warms_the_cache() -> None:
    model = ScriptedModel()
    node = ChatNode(model, system_prompt="Be brief.")
    assert (await node.prefill(partial("Tell me about the"))).speculation is None
    assert model.speculated == [] and len(model.warmed) == 1


async def test_a_partial_left_over_from_a_turn_already_answered_is_skipped() -> None:
    # It waited in the queue behind other work while the turn ended: sampling for
    # it now would only keep the model from the answer.
    model = ScriptedModel()
    node = ChatNode(model, system_prompt="Be brief.", tools=None)
    stale = partial("Tell me about the moon.")
    turn = ConversationContext([UserTranscriptionReceived(content="Tell me about the moon.")])
    answer = [item async for item in node.process_context(turn)]
    assert answer
    assert (await node.prefill(stale)).speculation is None
    assert model.speculated == [] and model.warmed == []
    assert (await node.prefill(partial("And the sun?"))).speculation is not None, (
        "the next turn's words"
    )


async def test_after_an_answer_the_history_as_heard_is_read_ahead() -> None:
    model = ScriptedModel()
    node = ChatNode(model, system_prompt="Be brief.", tools=None)
    node.add_event(UserTranscriptionReceived(content="Tell me about the moon."))
    node.add_event(AgentResponse(content="The moon is far away."))
    await node._after_speech(Message("player", AgentSpeechSent(content="The moon is far away. ")))
    assert model.read == [], "the answer is still playing"
    await node._after_speech(Message("player", AgentStoppedSpeaking()))
    assert model.read[-1][-2:] == [
        {"role": "user", "content": "Tell me about the moon."},
        {"role": "assistant", "content": "The moon is far away."},
    ]


async def test_no_speculation_when_it_is_turned_off() -> None:
    model = ScriptedModel()
    node = ChatNode(model, system_prompt="Be brief.", speculate_tokens=0)
    assert (await node.prefill(partial("Tell me about the moon."))).speculation is None
    assert model.speculated == []


class StreamOnlyModel:
    """Only what every backend has (``ChatEngine``): no speculation, no read-ahead."""

    n_ctx = 2048

    def __init__(self) -> None:
        self.asked: list[list[dict[str, Any]]] = []

    async def stream_chat(
        self, messages: Sequence[Mapping[str, Any]], **options: Any
    ) -> AsyncGenerator[str, None]:
        self.asked.append([dict(m) for m in messages])
        for piece in ANSWER:
            yield piece


async def test_a_backend_without_speculation_or_read_ahead_still_answers() -> None:
    model = StreamOnlyModel()
    node = ChatNode(model, system_prompt="Be brief.", tools=None)
    assert (await node.prefill(partial("Tell me about the moon."))).speculation is None
    assert (await node.prefill(partial("Tell me about the"))).speculation is None
    node.add_event(UserTranscriptionReceived(content="Tell me about the moon."))
    await node._after_speech(Message("player", AgentStoppedSpeaking()))
    assert model.asked == [], "nothing was asked of the model ahead of the turn"
    turn = ConversationContext([UserTranscriptionReceived(content="Tell me about the moon.")])
    said = [
        item.content async for item in node.process_context(turn) if isinstance(item, AgentResponse)
    ]
    assert "".join(said) == "".join(ANSWER)
    assert model.asked[0][-1] == {"role": "user", "content": "Tell me about the moon."}


def test_the_speculated_first_piece_is_the_one_the_answer_starts_with() -> None:
    sentences = SentenceNode(first_piece_words=6)
    spec = AgentSpeculation(transcript="Tell me about the moon.", pieces=tuple(ANSWER[:7]))
    ahead = sentences.first_piece_of(Message("llm", spec))
    assert isinstance(ahead, SpeculativeSentence)
    real = SentenceNode(first_piece_words=6)
    first = next(
        event
        for piece in ANSWER
        for event in real.handle(Message("llm", AgentResponse(content=piece)))
        if isinstance(event, AgentSentence)
    )
    assert ahead.content == first.content == "The moon is a big rock"


def first_pieces(answer: Sequence[str], *, complete: bool) -> tuple[str | None, str]:
    """The first piece said ahead of an answer, and the one the answer really starts with."""
    spec = AgentSpeculation(transcript="Is it far?", pieces=tuple(answer), complete=complete)
    ahead = SentenceNode().first_piece_of(Message("llm", spec))
    real = SentenceNode()
    responses: list[Any] = [AgentResponse(content=piece) for piece in answer]
    said = [
        event
        for response in [*responses, AgentGenerationComplete()]
        for event in real.handle(Message("llm", response))
        if isinstance(event, AgentSentence)
    ]
    return (ahead.content if ahead is not None else None), said[0].content


def test_a_short_answer_sampled_whole_is_said_ahead_whole() -> None:
    # Two words never make a first piece by themselves: only knowing that the
    # answer ended there lets its sound be made during the wait.
    assert first_pieces(["Yes", "."], complete=True) == ("Yes.", "Yes.")
    assert first_pieces(["Yes", "."], complete=False) == (None, "Yes.")


async def test_a_short_reply_that_ended_is_announced_as_the_whole_answer() -> None:
    model = ScriptedModel(answer=["Yes", "."])
    node = ChatNode(model, system_prompt="Be brief.", tools=None)
    speculation = (await node.prefill(partial("Is the moon far away?"))).speculation
    assert speculation is not None and speculation.complete
    assert speculation.pieces == ("Yes", ".")
    longer = (
        await ChatNode(ScriptedModel(), system_prompt="Be brief.").prefill(
            partial("Tell me about the moon.")
        )
    ).speculation
    assert longer is not None and not longer.complete


async def test_a_tools_answer_is_announced_ahead_without_the_model() -> None:
    model = ScriptedModel()
    node = ChatNode(model, system_prompt="Be brief.", tools=default_registry())
    question = "What is twelve times seven?"
    prefilled = await node.prefill(partial(question))
    speculation = prefilled.speculation
    assert model.speculated == [] and model.warmed == []
    assert speculation is not None and speculation.complete
    # The model still reads the words, after the answer is announced.
    assert prefilled.unread is not None
    assert prefilled.unread[-1] == {"role": "user", "content": question}
    turn = ConversationContext([UserTranscriptionReceived(content=question)])
    said = [
        item.content async for item in node.process_context(turn) if isinstance(item, AgentResponse)
    ]
    assert list(speculation.pieces) == said and "84" in said[0]


async def chunks_of(tts: TtsNode, sentence: AgentSentence) -> list[AgentAudioChunk]:
    return [
        item
        async for item in tts.synthesize(Message("sentences", sentence))
        if isinstance(item, AgentAudioChunk)
    ]


async def test_a_piece_made_ahead_is_played_without_being_synthesized_again() -> None:
    synthesizer = CountingSynthesizer()
    tts = TtsNode(synthesizer)
    await tts.synthesize_ahead(Message("sentences", SpeculativeSentence(content="The moon is")))
    chunks = await chunks_of(tts, AgentSentence(content="The moon is", index=0))
    assert synthesizer.texts == ["The moon is"]
    sound = [c for c in chunks if c.audio is not None]
    assert len(sound) == 1 and sound[0].text == "The moon is"
    assert chunks[-1].audio is None and chunks[-1].last_of_sentence
    assert tts.ahead_used == 1


async def test_a_piece_made_ahead_for_other_words_is_not_played() -> None:
    synthesizer = CountingSynthesizer()
    tts = TtsNode(synthesizer)
    await tts.synthesize_ahead(Message("sentences", SpeculativeSentence(content="The sun is")))
    chunks = await chunks_of(tts, AgentSentence(content="The moon is", index=0))
    assert synthesizer.texts == ["The sun is", "The moon is"]
    assert [c.text for c in chunks if c.audio is not None] == ["The moon is"]
    assert int(chunks[0].audio[0]) == 2, "the audio made ahead was played"
    assert tts.ahead_used == 0


async def test_an_answer_starting_like_the_one_before_is_made_ahead_too() -> None:
    # A small model opens many answers the same way ("That's a great question").
    synthesizer = CountingSynthesizer()
    tts = TtsNode(synthesizer)
    for _turn in range(2):
        await tts.synthesize_ahead(Message("sentences", SpeculativeSentence(content="Well,")))
        await chunks_of(tts, AgentSentence(content="Well,", index=0))
        await chunks_of(tts, AgentSentence(content="it is.", index=1, final=True))
    assert synthesizer.texts == ["Well,", "it is.", "Well,", "it is."]
    assert tts.ahead_used == 2


async def test_a_piece_already_being_said_is_not_made_ahead_again() -> None:
    synthesizer = CountingSynthesizer()
    tts = TtsNode(synthesizer)
    await chunks_of(tts, AgentSentence(content="Well,", index=0))
    # The speculation's news came after the answer itself: nothing more to make.
    await tts.synthesize_ahead(Message("sentences", SpeculativeSentence(content="Well,")))
    assert synthesizer.texts == ["Well,"]


async def test_only_the_piece_made_ahead_asks_for_every_core() -> None:
    # It is made in the end-of-speech wait; the others beside the model's writing.
    synthesizer = CountingSynthesizer()
    tts = TtsNode(synthesizer)
    await tts.synthesize_ahead(Message("sentences", SpeculativeSentence(content="The sun is")))
    await chunks_of(tts, AgentSentence(content="The moon is", index=0))
    assert synthesizer.every_core == [True, False]
    modest = CountingSynthesizer()
    tts = TtsNode(modest, ahead_on_every_core=False)
    await tts.synthesize_ahead(Message("sentences", SpeculativeSentence(content="The sun is")))
    assert modest.every_core == [False]


class WarmsUpOnlyModel(StreamOnlyModel):
    """A server backend's shape: it can read the words so far, nothing more."""

    def __init__(self) -> None:
        super().__init__()
        self.warmed: list[list[dict[str, Any]]] = []

    def warm_up(
        self, messages: Sequence[Mapping[str, Any]], *, max_tokens: int | None = None
    ) -> float:
        self.warmed.append([dict(m) for m in messages])
        return 0.0


async def test_a_backend_that_only_warms_up_reads_the_words_at_a_pause_only() -> None:
    model = WarmsUpOnlyModel()
    node = ChatNode(model, system_prompt="Be brief.", tools=None)
    assert (await node.prefill(partial("Tell me about the moon."))).speculation is None
    assert model.warmed[-1][-1] == {"role": "user", "content": "Tell me about the moon."}
    node.add_event(UserTranscriptionReceived(content="Tell me about the moon."))
    await node._after_speech(Message("player", AgentStoppedSpeaking()))
    assert len(model.warmed) == 1, "a backend without read_ahead is not asked after an answer"
    assert model.asked == []
