"""What the live benchmark says into the microphone: the corpus's questions, espeak-ng prompts."""

from __future__ import annotations

from benchmarks.corpus import espeak, speech_corpus
from benchmarks.rig import Utterance, utterance

ANIMALS = (
    "dog cat fox owl horse rabbit bear wolf mouse lion tiger duck goat sheep frog turtle "
    "crow whale dolphin eagle squirrel badger otter camel zebra"
).split()


ANSWER_PROMPTS = (
    "Tell me a short story about a brave little {}.",
    "What do you know about the {}?",
)


BARGE_PROMPT = "Wait, tell me all about the {} please."


def speech(text: str) -> Utterance:
    return utterance(espeak(text), text)


def questions(count: int) -> list[Utterance]:
    """The first ``count`` clips of the speech corpus (real people first), cycled."""
    corpus = speech_corpus()
    return [utterance(item.audio, item.text) for item in (corpus * 4)[:count]]


def answer_prompts(count: int) -> list[Utterance]:
    texts = [t.format(animal) for animal in ANIMALS for t in ANSWER_PROMPTS]
    return [speech(text) for text in (texts * 4)[:count]]
