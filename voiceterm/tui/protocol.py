"""What the TUI needs from the voice pipeline, as a Protocol.

``voiceterm.pipeline.starting.StartingAgent`` satisfies it (what ``voiceterm``
runs: the models load in its ``start`` while the app shows), and so do
``voiceterm.pipeline.agent.VoiceAgent`` (made on loaded models), the scripted
:class:`voiceterm.tui.demo.ScriptedAgent` and the tests' fake agent. The app only
talks to the pipeline through these methods and hears it through ``bus``.
"""

from __future__ import annotations

from typing import Protocol

from voiceterm.bus import Bus
from voiceterm.timeline import Timeline


class AgentLike(Protocol):
    """The pipeline facade the app drives."""

    bus: Bus
    """Every event of the pipeline is broadcast here; the app listens with its own bridge."""
    timeline: Timeline
    """Fed by the agent from the bus; the app reads it to draw turns and the timeline."""

    async def start(self) -> None:
        """Load models (if not loaded yet) and open devices, emitting ``StageStatus``
        events as it goes."""
        ...

    async def stop(self) -> None:
        """Stop listening and playing and release the devices."""
        ...

    async def submit_text(self, text: str) -> None:
        """Answer a typed message, with voice as usual (typed while the models load:
        once they are in; a load that fails fails it)."""
        ...

    async def interrupt(self) -> None:
        """Cut the agent off: stop generating, synthesizing and playing."""
        ...

    def set_muted(self, muted: bool) -> None:
        """Stop (or resume) hearing the microphone."""
        ...

    def set_push_to_talk(self, enabled: bool) -> None:
        """Listen only while the talk key is down (``True``) or always (``False``)."""
        ...

    def set_listen_mode(self, mode: str) -> None:
        """``listen.mode``: ``always``, ``wake_word`` or ``push_to_talk`` (may raise
        ``VoicetermError``: the wake word model does not load)."""
        ...

    def push_to_talk(self, pressed: bool) -> None:
        """The talk key went down (``True``) or up (``False``)."""
        ...

    def clear_conversation(self) -> None:
        """Forget the conversation so far (the LLM's context)."""
        ...

    def describe(self) -> dict[str, str]:
        """Human names of what is in use: ``stt``, ``llm``, ``tts``, ``mic``, ``speaker``."""
        ...
