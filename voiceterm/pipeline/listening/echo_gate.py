"""The agent's own voice in the microphone: half duplex, and speech that may be echo.

With ``echo="half_duplex"`` the microphone is ignored while the agent speaks (and for
a short tail after), for rooms where the speaker would otherwise be heard as the user.
Otherwise speech begun over the agent's voice (or its echo's tail) is suspected to
be what echo cancellation left of it until enough loud speech clears it.
"""

from __future__ import annotations

from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.listening.seams import Heard
from voiceterm.pipeline.listening.settings import ListenerSettings

_HALF_DUPLEX_TAIL_S = 0.3  # room reverb after the last played sample
# Speech that starts this soon after the agent's last sample may still be its echo
# (the echo path's delay, the canceller's tail): it must be loud to be a turn.
_ECHO_TAIL_S = 0.6


class EchoGate:
    """Mutes the microphone in half duplex; tracks whether an utterance may be echo."""

    def __init__(self, activity: AgentActivity, settings: ListenerSettings) -> None:
        self._activity = activity
        self._half_duplex = settings.echo == "half_duplex"
        self._min_level_db = settings.min_level_db
        self._settle_s = settings.hold_settle_ms / 1000
        self._min_speech_s = settings.min_speech_ms / 1000
        self.over_agent = False
        """The utterance in progress began while the agent spoke (or its echo came back)."""
        self.loud_s = 0.0
        """Voiced audio above ``min_level_db`` in the utterance, clear of the agent's voice."""

    def mutes(self, t: float) -> bool:
        """Whether the frame captured at ``t`` is ignored (half duplex, the agent audible)."""
        if not self._half_duplex:
            return False
        activity = self._activity
        return activity.speaking or t < activity.last_sound_end + _HALF_DUPLEX_TAIL_S

    def speech_started(self, onset: float) -> None:
        activity = self._activity
        self.over_agent = activity.speaking or (
            not self._half_duplex and onset < activity.last_sound_end + _ECHO_TAIL_S
        )
        self.loud_s = 0.0

    def feed(self, heard: Heard, in_utterance: bool) -> None:
        activity = self._activity
        if (
            in_utterance
            and heard.voiced
            and heard.level_db >= self._min_level_db
            and not activity.speaking
            and heard.t_start >= activity.last_sound_end + self._settle_s
        ):
            # Loud speech clear of the agent's voice and of its echo's way back.
            self.loud_s += heard.t_end - heard.t_start

    def suspects(self) -> bool:
        """Whether the utterance in progress, begun over the agent, is too quiet to be a turn.

        That is: begun over the agent's voice (or its echo's tail), with too little loud
        speech since the echo died down. A confirmed barge-in clears it (the caller's).
        """
        return self.over_agent and self.loud_s < self._min_speech_s
