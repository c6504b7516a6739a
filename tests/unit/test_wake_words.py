"""Reading the wake phrase in a transcript: Whisper's spellings of it, and what follows."""

from __future__ import annotations

import pytest

from voiceterm.pipeline.wake_words import WakePhrase


@pytest.mark.parametrize(
    ("transcript", "turn"),
    [
        ("Hey Jarvis, what time is it?", "What time is it?"),
        ("Hey, Jervis. What time is it?", "What time is it?"),
        ("Hi Javis, tell me a joke.", "Tell me a joke."),
        ("Hey, Jardwis.", ""),
        ("A Jar vis, how much is seven times eight?", "How much is seven times eight?"),
        ("Jarvis, turn off the lights.", "Turn off the lights."),
        ("Hey Jarvis.", ""),
        ("hey jarvis", ""),
        ("Hey! Jarvis!", ""),
    ],
)
def test_whispers_spellings_of_the_phrase_wake_it_and_the_rest_is_the_turn(
    transcript: str, turn: str
) -> None:
    assert WakePhrase("Hey Jarvis").after(transcript) == turn


@pytest.mark.parametrize(
    "transcript",
    [
        "Hey, what is the weather like in Paris?",
        "Harvest the carrots, Travis.",
        "Hey Travis, what time is it?",
        "Hey Davis, what time is it?",
        "Hey Mavis.",
        "Hey service.",
        "Hey.",
        "What time is it, Jarvis?",  # the name must open it, as the model hears it
        "",
    ],
)
def test_words_that_do_not_begin_with_the_phrase_do_not_wake_it(transcript: str) -> None:
    assert WakePhrase("Hey Jarvis").after(transcript) is None


def test_the_forms_come_from_the_models_phrase() -> None:
    assert WakePhrase("Okay Nabu").after("OK, Nabu, what time is it?") == "What time is it?"
    assert WakePhrase("Hey Mycroft").after("Hey Mike Roft, stop.") == "Stop."
    assert WakePhrase("Alexa").after("Alexa, stop.") == "Stop."
    assert WakePhrase("Alexa").after("A Lexa stop") == "Stop"
