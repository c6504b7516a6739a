"""How late the answers of pause checks came in a recorded session.

Live, the end-of-turn model's verdict and the transcript of the words so far come
some tens of milliseconds after they are asked; a user who goes on within that time
has gone on before the verdict could end the turn. A replay in lockstep has every
answer at once, as a machine with no compute time would, and may split such a turn.
``RecordedLatency`` gives a replay each check's live latency instead: the recorded
check at the same pause, or the session's median for a pause it did not check.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from voiceterm.bus import Message
from voiceterm.events import PauseChecked

SAME_PAUSE_S = 0.005
"""A recorded check whose pause began this close to the replayed one's is the same check."""


@dataclass(slots=True)
class RecordedLatency:
    """Each recorded pause check's latency (seconds, by kind, at its pause's speech end)."""

    checks: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    @classmethod
    def of(cls, messages: list[Message]) -> RecordedLatency:
        checks: dict[str, list[tuple[float, float]]] = {}
        for message in messages:
            event = message.event
            if isinstance(event, PauseChecked) and event.speech_end is not None:
                late = max(0.0, event.answered_at - event.asked_at)
                checks.setdefault(event.kind, []).append((event.speech_end, late))
        return cls(checks)

    def seconds(self, kind: str, speech_end: float) -> float:
        """The live latency of this kind of check at the pause after ``speech_end``.

        A pause the session did not check (the replay's settings made it, or the check
        was cancelled live) gets the session's median; a session that recorded no such
        checks, none (an answer at once).
        """
        checks = self.checks.get(kind)
        if not checks:
            return 0.0
        distance, late = min((abs(end - speech_end), late) for end, late in checks)
        if distance <= SAME_PAUSE_S:
            return late
        return statistics.median(late for _end, late in checks)

    def summary(self) -> str:
        """A line for a person: how many checks of each kind, and their median latency."""
        parts = []
        for kind, checks in sorted(self.checks.items()):
            median_ms = 1000 * statistics.median(late for _end, late in checks)
            parts.append(f"{len(checks)} {kind} check(s), median {median_ms:.0f} ms")
        return "; ".join(parts) if parts else "no pause checks recorded"


@dataclass(frozen=True, slots=True)
class FixedLatency:
    """Every pause check answered this long after it is asked (0: a machine with no
    compute time)."""

    late_s: float

    def seconds(self, kind: str, speech_end: float) -> float:
        return self.late_s
