"""The turns of a session, read from its bus messages, and what changed between two runs.

The same reading serves a recording's events and a replay's: a turn is an
utterance the listener ended (``UserStoppedSpeaking`` that is not discarded) with
what came of it: its transcript (or why it was dropped), the decision that ended
it (the last note in the timeline's "end of turn" lane), whether it cut the agent
off, the tools it called and the answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from voiceterm.bus import Message
from voiceterm.events import (
    AgentInterrupted,
    AgentResponse,
    AgentStoppedSpeaking,
    StageSpan,
    ToolCall,
    TurnMark,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionReceived,
)

_DECIMAL = re.compile(r"\s\d+\.\d+")
_WORD = re.compile(r"[a-z0-9']+")


def heard_words(text: str) -> list[str]:
    """A transcript as a listener hears it: words only, no case or punctuation."""
    return _WORD.findall(text.lower())


def decision_kind(note: str) -> str:
    """An end-of-turn note without its probabilities: what rule ended the turn.

    "model: complete 0.83 at 200 ms" -> "model: complete at 200 ms";
    "unsure: 800 ms of silence (model: ..., the words ...)" -> "unsure: 800 ms of silence".
    """
    return _DECIMAL.sub("", note.split(" (", 1)[0]).strip()


@dataclass(slots=True)
class SpokenTurn:
    """One utterance that ended a turn, and what came of it."""

    speech_start: float
    speech_end: float
    decision: str = ""
    barge_in: bool = False
    transcript: str | None = None
    dropped: str = ""
    tools: list[str] = field(default_factory=list)
    answer: str = ""
    cut_off: bool = False
    ended_at: float = 0.0
    """When the listener ended it (the message's time)."""
    answer_ready: float | None = None
    """When the answer's first audio was ready (``tts_first_audio``)."""
    playback_start: float | None = None
    playback_end: float | None = None
    """When the answer's last sample played (it ended, or was cut off)."""

    @property
    def words(self) -> str:
        if self.transcript is not None:
            return self.transcript
        return f"[dropped: {self.dropped}]" if self.dropped else "[no transcript]"

    @property
    def voice_to_voice(self) -> float | None:
        if self.playback_start is None:
            return None
        return self.playback_start - self.speech_end

    @property
    def compute(self) -> float | None:
        """Seconds from the end of the turn to the answer's first audio (engine time)."""
        if self.answer_ready is None:
            return None
        return self.answer_ready - self.ended_at

    def differences(self, other: SpokenTurn, *, decisions: bool = True) -> list[str]:
        """What a person would notice changed from ``self`` to ``other``.

        ``decisions``: include the rule that ended the turn.
        """
        changes = []
        if heard_words(self.words) != heard_words(other.words):
            changes.append(f"transcript {self.words!r} -> {other.words!r}")
        if decisions and decision_kind(self.decision) != decision_kind(other.decision):
            changes.append(
                f"end of turn {decision_kind(self.decision) or '?'!r} -> "
                f"{decision_kind(other.decision) or '?'!r}"
            )
        if self.barge_in != other.barge_in:
            changes.append("now cuts the agent off" if other.barge_in else "no longer cuts it off")
        if self.tools != other.tools:
            changes.append(f"tools {self.tools} -> {other.tools}")
        return changes

    def to_dict(self, shift: float = 0.0) -> dict[str, Any]:
        """The turn as JSON, its times moved by ``-shift`` (back onto the recording's clock)."""
        return {
            "speech_start": round(self.speech_start - shift, 4),
            "speech_end": round(self.speech_end - shift, 4),
            "decision": self.decision,
            "barge_in": self.barge_in,
            "transcript": self.transcript,
            "dropped": self.dropped,
            "tools": self.tools,
            "answer": self.answer,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], shift: float = 0.0) -> SpokenTurn:
        return cls(
            speech_start=float(data["speech_start"]) + shift,
            speech_end=float(data["speech_end"]) + shift,
            decision=str(data.get("decision", "")),
            barge_in=bool(data.get("barge_in", False)),
            transcript=data.get("transcript"),
            dropped=str(data.get("dropped", "")),
            tools=[str(tool) for tool in data.get("tools", [])],
            answer=str(data.get("answer", "")),
        )


TURN_EVENTS = (
    StageSpan,
    UserStoppedSpeaking,
    UserTranscriptionReceived,
    UserTranscriptionDropped,
    ToolCall,
    AgentResponse,
    AgentInterrupted,
    AgentStoppedSpeaking,
    TurnMark,
)
"""The events :func:`spoken_turns` reads (the others may be left out of its messages)."""


def spoken_turns(messages: Iterable[Message]) -> list[SpokenTurn]:
    """The turns in a stream of bus messages (in broadcast order)."""
    turns: list[SpokenTurn] = []
    note = ""
    heard: SpokenTurn | None = None  # waiting for its transcript
    answering: SpokenTurn | None = None
    for message in messages:
        event = message.event
        if isinstance(event, StageSpan) and event.stage == "turn":
            note = event.content
        elif isinstance(event, UserStoppedSpeaking):
            if event.discarded:
                note = ""
                continue
            heard = SpokenTurn(
                speech_start=event.speech_start or event.speech_end or 0.0,
                speech_end=event.speech_end or 0.0,
                decision=note,
                barge_in=event.barge_in,
                ended_at=message.timestamp,
            )
            note = ""
            turns.append(heard)
        elif isinstance(event, UserTranscriptionReceived) and message.source != "keyboard":
            if heard is not None:
                heard.transcript = event.content
                answering, heard = heard, None
        elif isinstance(event, UserTranscriptionDropped):
            if heard is not None:
                heard.dropped = event.reason
                heard = None
        elif isinstance(event, ToolCall) and answering is not None:
            answering.tools.append(event.tool_name)
        elif isinstance(event, AgentResponse) and answering is not None:
            answering.answer += event.content
        elif isinstance(event, AgentInterrupted) and answering is not None:
            if event.reason == "user_speech" and answering.playback_start is not None:
                answering.cut_off = True
        elif isinstance(event, TurnMark) and answering is not None:
            if event.name == "tts_first_audio" and answering.answer_ready is None:
                answering.answer_ready = event.at
            elif event.name == "playback_start" and answering.playback_start is None:
                answering.playback_start = event.at
        elif isinstance(event, AgentStoppedSpeaking) and answering is not None:
            if answering.playback_start is not None and event.last_sample_time is not None:
                answering.playback_end = event.last_sample_time
    return turns


@dataclass(slots=True)
class Change:
    """Recorded turns and the replayed turns that cover the same stretch of audio."""

    recorded: list[SpokenTurn]
    replayed: list[SpokenTurn]

    @property
    def kind(self) -> str:
        if not self.replayed:
            return "gone"
        if not self.recorded:
            return "new"
        if len(self.recorded) == 1 and len(self.replayed) > 1:
            return "split"
        if len(self.recorded) > 1 and len(self.replayed) == 1:
            return "merged"
        if len(self.recorded) != len(self.replayed):
            return "regrouped"
        if not self.details():
            return "same"
        if not self.details(decisions=False):
            # The same speech and words: only the rule that ended the turn differs
            # (live, a signal can come too late for a check that lockstep waits for).
            return "decided"
        return "changed"

    def details(self, *, decisions: bool = True) -> list[str]:
        if len(self.recorded) != len(self.replayed):
            return []
        found = []
        for before, after in zip(self.recorded, self.replayed, strict=True):
            found += before.differences(after, decisions=decisions)
        return found


def match(recorded: list[SpokenTurn], replayed: list[SpokenTurn]) -> list[Change]:
    """Group turns whose speech overlaps (on one clock), in order."""
    changes: list[Change] = []
    i = j = 0
    while i < len(recorded) or j < len(replayed):
        if i == len(recorded):
            changes.append(Change([], [replayed[j]]))
            j += 1
            continue
        if j == len(replayed):
            changes.append(Change([recorded[i]], []))
            i += 1
            continue
        a, b = recorded[i], replayed[j]
        if not _overlap(a, b):
            if a.speech_end < b.speech_end:
                changes.append(Change([a], []))
                i += 1
            else:
                changes.append(Change([], [b]))
                j += 1
            continue
        group_a, group_b = [a], [b]
        i += 1
        j += 1
        grew = True
        while grew:
            grew = False
            while i < len(recorded) and _overlap(recorded[i], group_b[-1]):
                group_a.append(recorded[i])
                i += 1
                grew = True
            while j < len(replayed) and _overlap(group_a[-1], replayed[j]):
                group_b.append(replayed[j])
                j += 1
                grew = True
        changes.append(Change(group_a, group_b))
    return changes


def _overlap(a: SpokenTurn, b: SpokenTurn) -> bool:
    # A few blocks of slack: the same speech may start or end a block apart.
    slack = 0.05
    return a.speech_start - slack <= b.speech_end and b.speech_start - slack <= a.speech_end
