"""What the status line says the conversation is doing, from the bus's events.

One of ``starting``, ``listening``, ``hearing``, ``thinking`` and ``speaking``
(the app shows ``muted`` over any of them while the microphone is off).
"""

from __future__ import annotations

from voiceterm.events import (
    AgentError,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    BargeInDismissed,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionReceived,
)


class ActivityTracker:
    """Follows the bus's events to the activity each one leads to.

    It remembers whether the agent is speaking: a sound dismissed as no turn goes
    back to ``speaking`` then, not to ``listening``.
    """

    def __init__(self) -> None:
        self.agent_speaking = False

    def after(self, event: object, activity: str) -> str:
        """The activity once ``event`` happened (``activity`` if it changes nothing)."""
        if isinstance(event, AgentError):
            return "listening" if activity == "thinking" else activity
        if isinstance(event, UserStartedSpeaking):
            return "hearing"
        if (isinstance(event, UserStoppedSpeaking) and event.discarded) or isinstance(
            event, UserTranscriptionDropped
        ):
            # A cough, a click, or the agent's own echo: nothing to answer.
            return "speaking" if self.agent_speaking else "listening"
        if isinstance(event, BargeInDismissed):
            return "speaking" if self.agent_speaking else activity
        if isinstance(event, UserStoppedSpeaking | UserTranscriptionReceived):
            return "thinking"
        if isinstance(event, AgentStartedSpeaking):
            self.agent_speaking = True
            return "speaking"
        if isinstance(event, AgentStoppedSpeaking | AgentInterrupted):
            self.agent_speaking = False
            return "listening" if activity != "hearing" else activity
        if isinstance(event, AgentGenerationComplete) and event.total_length == 0:
            return "listening" if activity == "thinking" else activity
        return activity
