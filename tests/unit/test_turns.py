from __future__ import annotations

import pytest

from voiceterm.pipeline.turns import sounds_finished


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
