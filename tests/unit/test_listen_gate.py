"""The follow-up window on the microphone's clock (the gate alone, a deaf detector)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from voiceterm.events import ListeningChanged
from voiceterm.pipeline.wake import ListenGate

FRAME_S = 0.01


@dataclass
class Agent:
    busy: bool = False
    last_sound_end: float = 0.0


class Deaf:
    """A wake word detector that never hears the wake word."""

    cutoff = 0.97

    def feed(self, samples: Any, t_first_sample: float, *, listening: bool = True) -> list[Any]:
        return []


def hear(gate: ListenGate, start: float, seconds: float) -> float:
    """Quiet frames from ``start`` (capture times) for ``seconds``; returns the time after."""
    frame = np.zeros(160, np.int16)
    t = start
    for _ in range(round(seconds / FRAME_S)):
        gate.hear(frame, t, voiced=False)
        t += FRAME_S
    return t


def test_the_follow_up_window_counts_on_the_microphones_clock_not_the_players() -> None:
    # A replayed recording: its frames carry the recording's times (around 5000 s), while
    # the player reports the end of an answer on another clock (12 s).
    agent = Agent()
    shown: list[ListeningChanged] = []
    gate = ListenGate(
        lambda event: shown.append(event) if isinstance(event, ListeningChanged) else None,
        agent,
        mode="wake_word",
        follow_up_s=8.0,
        detector=Deaf(),
        phrase="Hey Jarvis",
    )
    t = hear(gate, 5000.0, 1.0)
    assert not gate.is_open(t)
    agent.busy = True  # a typed question is answered
    t = hear(gate, t, 2.0)
    assert gate.is_open(t)
    agent.busy, agent.last_sound_end = False, 12.0  # the answer has been heard
    answer_end = t
    t = hear(gate, t, 7.0)
    assert gate.is_open(t), "the window closed before follow_up_s"
    assert shown[-1].state == "open" and shown[-1].until is not None
    assert abs(shown[-1].until - (answer_end + 8.0)) < 0.05
    t = hear(gate, t, 1.5)
    assert not gate.is_open(t), "the window stayed open after follow_up_s"
    assert shown[-1].state == "asleep"
