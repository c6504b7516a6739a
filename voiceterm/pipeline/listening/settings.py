"""What the listener is told: the settings it reads, and how the end of a turn is judged."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voiceterm.pipeline.end_of_turn.learned import TurnWeights
from voiceterm.pipeline.end_of_turn.policy import CheckLatency, TurnModel, TurnPolicy


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """The ``[barge_in]``, ``[vad]`` and ``[audio]`` values the listener works with."""

    barge_in: bool = True
    """Whether the user's speech may interrupt the agent."""
    min_speech_ms: int = 150
    """Voiced speech that interrupts a thinking agent (or a speaking one, without hold)."""
    min_level_db: float = -32.0
    """Speech over the agent's voice must be this loud to hold it."""
    start_ms: int = 60
    """The voice detector's start confirmation: its voiced frames count toward a barge-in."""
    hold: bool = True
    """Hold the answer at speech over it, then confirm or let go (else: cut at once)."""
    hold_settle_ms: int = 200
    """After a hold, the echo still on its way: speech counts again after this."""
    hold_confirm_ms: int = 150
    """Speech after the settle that makes a hold a barge-in."""
    hold_quiet_ms: int = 400
    """Silence after the settle that lets a hold go (the answer plays on)."""
    echo: str = "off"
    """``"half_duplex"``: the microphone is ignored while the agent speaks."""
    pause_ms: int = 40
    """A pause this long is announced (``UserSpeechPaused``); 0: never."""
    quick_end_ms: int = 300
    """Silence that ends speech which is not a turn to judge (maybe echo, or no wake word)."""


@dataclass(frozen=True, slots=True)
class TurnJudging:
    """How the end of a turn is judged when an end-of-turn model is in use.

    Attributes:
        model: the end-of-turn model (Smart Turn), asked at each pause.
        policy: when to ask, the threshold, the unsure wait and the cap.
        weights: the learned decision that replaces the hand-set rules (``None``: the rules).
        words_so_far: the words transcribed up to a pause, once read (``None``: no reading).
        words_end: the LLM's P(end of message) after those words, once read.
        latency: each check's answer held back as long as it took live (a replay).
    """

    model: TurnModel
    policy: TurnPolicy = TurnPolicy()
    weights: TurnWeights | None = None
    words_so_far: Callable[[float], str | None] | None = None
    words_end: Callable[[str], float | None] | None = None
    latency: CheckLatency | None = None
