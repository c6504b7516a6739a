"""A plan of interruptions at random moments of a turn, for the fuzz tests.

tests/unit/test_interruption_fuzz.py runs it on scripted engines,
tests/integration/test_interruption_fuzz_real.py on the real ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from voiceterm.events import (
    AgentAudioChunk,
    AgentSentence,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    UserTranscriptionReceived,
)

MOMENTS: dict[str, type | None] = {
    # The stage a run waits for (the first event of it) before it cuts in.
    "transcribing": None,
    "thinking": UserTranscriptionReceived,
    "first piece": AgentSentence,
    "synthesizing": AgentAudioChunk,
    "playing": AgentStartedSpeaking,
    "after": AgentStoppedSpeaking,
}


@dataclass
class Run:
    number: int
    question: str
    how: str  # "spoken" or "typed"
    moment: str
    extra_s: float
    cut_in: str  # "barge-in" or "typed"
    follow_up: str


def words(text: str) -> list[str]:
    return text.split()


def make_runs(seed: int, count: int, extra_max_s: float = 0.02) -> list[Run]:
    """``count`` runs, the same for the same ``seed``."""
    rng = random.Random(seed)
    runs = []
    for number in range(count):
        runs.append(
            Run(
                number=number,
                question=f"Number {number}, what about Jupiter?",
                how=rng.choice(["spoken", "typed"]),
                moment=rng.choice(list(MOMENTS)),
                extra_s=rng.choice([0.0, 0.0, rng.uniform(0, extra_max_s)]),
                cut_in=rng.choice(["barge-in", "typed"]),
                follow_up=f"Number {number}, why Saturn?",
            )
        )
    return runs


def heard_history(agent: Any) -> list[tuple[str, str]]:
    """The conversation as the model will read it next: (role, text), system prompt left out.

    Agent text is cut to what was heard (the committed events).
    """
    from voiceterm.nodes import ConversationContext

    node = agent.nodes.chat
    assert node is not None
    committed = ConversationContext(node.conversation_events).get_committed_events()
    return [
        (m["role"], m["content"].strip())
        for m in node.format_for_llm(committed)
        if m["role"] != "system"
    ]
