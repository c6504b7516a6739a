"""The LLM's reading of the user's words at a pause: P(end of message), on the real model."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from voiceterm.engines.llm import ChatMessage, LlamaEngine, SamplingSettings
from voiceterm.engines.llm.words_end import load_probe
from voiceterm.modelstore import resolve_model

pytestmark = [pytest.mark.models]

SYSTEM: ChatMessage = {"role": "system", "content": "You are a helpful voice assistant."}


def said(words: str) -> list[ChatMessage]:
    return [SYSTEM, {"role": "user", "content": words}]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    with LlamaEngine(
        resolve_model("llm").path, max_tokens=24, sampling=SamplingSettings(temperature=0.0)
    ) as loaded:
        yield loaded


def end_after(engine: LlamaEngine, words: str) -> float:
    engine.warm_up(said(words))
    probability = engine.words_end_probability(words)
    assert probability is not None
    return probability


def test_a_finished_question_ends_the_message_more_likely_than_its_cut_start(
    engine: LlamaEngine,
) -> None:
    finished = end_after(engine, "What is the capital of France?")
    cut = end_after(engine, "What is the capital of")
    assert finished > cut
    assert finished > 0.3 > cut


def test_the_words_probe_reads_a_finished_question_as_the_end_more_than_its_cut_start(
    engine: LlamaEngine,
) -> None:
    engine.use_words_end_probe(load_probe())
    try:
        finished = end_after(engine, "What is the capital of France?")
        cut = end_after(engine, "What is the capital of")
    finally:
        engine.words_end_probe = None
        engine.reset()
    assert finished > cut


def test_the_words_of_another_pause_have_no_probability(engine: LlamaEngine) -> None:
    end_after(engine, "Tell me a joke.")
    assert engine.words_end_probability("Tell me a") is None


def test_the_answer_after_a_read_pause_is_the_same_as_without_it(engine: LlamaEngine) -> None:
    # The split read leaves the cache as one read would: the answer does not change.
    question = "What is the capital of France?"
    engine.reset()
    plain = "".join(engine.generate(said(question), threading.Event()))
    engine.reset()
    engine.warm_up(said(question))
    after_read = "".join(engine.generate(said(question), threading.Event()))
    assert after_read == plain


def test_a_speculation_reads_the_probability_too(engine: LlamaEngine) -> None:
    engine.reset()
    engine.speculate(said("Cancel that."), threading.Event(), tokens=2)
    probability = engine.words_end_probability("Cancel that.")
    assert probability is not None and 0.0 < probability <= 1.0
