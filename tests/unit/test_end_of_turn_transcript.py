from __future__ import annotations

import pytest

from voiceterm.pipeline.end_of_turn.transcript import sounds_cut_off, sounds_finished


@pytest.mark.parametrize(
    "text",
    [
        "What time is it?",
        "Tell me about the moon.",
        "Stop!",
        "It's 84.",
        "Thanks, that's all.",
        # Short commands and numbers, which Whisper leaves unpunctuated.
        "10 of clubs",
        "5 5",
        "29340",
        "stop",
    ],
)
def test_finished_sentences(text: str) -> None:
    assert sounds_finished(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I'd like to go to the",
        "I'd like to go to the.",  # Whisper often adds a period where the user paused
        "Tell me about,",
        "So I was thinking...",
        "What is twelve and",
        "Um.",
        "Can you tell me",
        "Tell me about",
        "What is",
        "I think that",
    ],
)
def test_unfinished_sentences(text: str) -> None:
    assert not sounds_finished(text)


@pytest.mark.parametrize(
    "text",
    [
        "I would like to book a table and",
        "I would like to book a table and.",
        "I'd like to go to the.",
        "I would like to book a table for",  # long and left open
        "Tell me about,",
        "So I was thinking...",
        "Um.",
        "Can you tell me",
    ],
)
def test_words_that_stop_mid_sentence_are_cut_off(text: str) -> None:
    assert sounds_cut_off(text)


@pytest.mark.parametrize(
    "text",
    [
        "What time is it?",
        "stop",
        # Short commands ending on a word that usually leads on: unfinished-sounding,
        # but the command may be all there ("cancelled that": Whisper on "Cancel that.").
        "Cancel that.",
        "cancelled that",
        "turn it on",
        "What is this?",
        "",  # nothing read
    ],
)
def test_short_commands_and_no_words_are_not_cut_off(text: str) -> None:
    assert not sounds_cut_off(text)
