"""What the agent is doing, as far as the listener cares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class AgentActivity:
    """What the agent is doing, as far as barge-in cares (the agent updates it)."""

    thinking: bool = False
    speaking: bool = False
    last_sound_end: float = 0.0

    @property
    def busy(self) -> bool:
        return self.thinking or self.speaking
