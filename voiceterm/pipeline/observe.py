"""What the agent learns from the bus: whether it is busy, and what it said.

Every message goes to the timeline; events that change what the agent is doing
update :class:`~voiceterm.pipeline.listen.AgentActivity` (which barge-in and the
wake word window read) and :class:`~voiceterm.pipeline.own_voice.OwnVoice`
(which drops the agent's own words heard back through the microphone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from voiceterm.bus import Message
from voiceterm.events import (
    AgentError,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentSentence,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    AudioGlitches,
    AudioLevel,
    UserTranscriptionReceived,
)
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.own_voice import OwnVoice
from voiceterm.timeline import Timeline


class Reactions(Protocol):
    """What the agent does when the bus tells it something happened."""

    def answer_spoken(self) -> None:
        """An answer stopped playing (freed memory can be given back once all is quiet)."""
        ...

    def failed(self, error: AgentError) -> None:
        """A stage failed."""
        ...

    def no_more_sound(self, error: AgentError) -> bool:
        """Whether a failed stage leaves the answer without any sound to come."""
        ...


@dataclass(slots=True, eq=False)
class Observer:
    """A tap on the bus: sees messages in broadcast order, which routes do not keep."""

    timeline: Timeline
    activity: AgentActivity
    own_voice: OwnVoice
    reactions: Reactions | None = field(default=None, init=False)
    """Set once the agent has wired its nodes (nothing to react with before)."""
    last_activity: float = field(default_factory=time.monotonic, init=False)
    """When anything but a level or glitch count last happened (monotonic)."""

    def __call__(self, message: Message) -> None:
        self.timeline.record(message)
        event = message.event
        if isinstance(event, UserTranscriptionReceived):
            self.activity.thinking = True
        elif isinstance(event, AgentSentence):
            self.own_voice.said(event.content, event.timestamp)
        elif isinstance(event, AgentStartedSpeaking):
            self.activity.speaking = True
            self.own_voice.started(event.playback_start or event.timestamp)
        elif isinstance(event, AgentStoppedSpeaking):
            self._stopped_speaking(event)
        elif isinstance(event, AgentInterrupted):
            self.activity.thinking = False
        elif isinstance(event, AgentGenerationComplete) and event.total_length == 0:
            self.activity.thinking = False
        elif isinstance(event, AgentError) and self.reactions is not None:
            if not self.activity.speaking and self.reactions.no_more_sound(event):
                self.activity.thinking = False
            self.reactions.failed(event)
        if not isinstance(event, AudioLevel | AudioGlitches):
            self.last_activity = time.monotonic()

    def _stopped_speaking(self, event: AgentStoppedSpeaking) -> None:
        activity = self.activity
        activity.speaking = False
        activity.thinking = False
        activity.last_sound_end = event.last_sample_time or time.monotonic()
        self.own_voice.stopped(activity.last_sound_end)
        if self.reactions is not None:
            self.reactions.answer_spoken()
