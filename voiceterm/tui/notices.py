"""The app's notifications for what went wrong, each with a hint at what to do.

A stage that fails reports it (``StageStatus``) and the agent's start may raise the
same error: whichever reaches the app first is shown, once.
"""

from __future__ import annotations

from typing import Protocol

from textual.notifications import SeverityLevel

from voiceterm.errors import VoicetermError
from voiceterm.events import AgentError, AudioGlitches, StageStatus

STAGE_HINTS: dict[str, str] = {
    "mic": "Check that a microphone is connected (`voiceterm devices` lists them); "
    "you can still type.",
    "speaker": "Check the output device (`voiceterm devices`); answers still appear here.",
    "stt": "Run `voiceterm models` to see which speech model is missing; you can still type.",
    "llm": "Run `voiceterm models` to see which language model is missing.",
    "tts": "Run `voiceterm models` to see which voice is missing; answers still appear here.",
    "vad": "Voice detection is off; you can still type.",
    "turn": "Run `voiceterm models`; until it loads, a silence ends your turn.",
}
_KEEPS_RUNNING = "voiceterm keeps running; the log has details."


class Notify(Protocol):
    """``App.notify``: shows a toast."""

    def __call__(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
    ) -> None: ...


class Notices:
    """Turns failures into notifications through ``notify`` (the app's)."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self._failures_shown: set[str] = set()

    def error(self, error: VoicetermError) -> None:
        """A refused request (a setting, a file): its message and hint."""
        self._notify(f"{error.message}\n{error.hint}", title=error.title, severity="error")

    def worker_failed(self, error: BaseException | None) -> None:
        """A call into the agent raised ``error``."""
        if isinstance(error, VoicetermError):
            message = f"{error.message}\n{error.hint}" if error.hint else error.message
            self._failure(error.message, message, error.title)
            return
        self._notify(
            f"{type(error).__name__}: {error}\n{_KEEPS_RUNNING}",
            title="Something went wrong",
            severity="error",
            timeout=12,
        )

    def stage_failed(self, status: StageStatus) -> None:
        """A stage said it failed: what failed, and what to do about it."""
        hint = STAGE_HINTS.get(status.stage, "Check the log for details.")
        detail = status.detail or f"The {status.stage} stage failed."
        self._failure(detail, f"{detail}\n{hint}", f"{status.stage.upper()} not available")

    def agent_error(self, event: AgentError) -> None:
        """A stage crashed on one piece of work; the pipeline goes on."""
        self._notify(
            f"{event.error}\n{_KEEPS_RUNNING}",
            title=f"The {event.stage} failed",
            severity="error",
            timeout=10,
        )

    def glitches(self, event: AudioGlitches) -> None:
        """The sound dropped out."""
        self._notify(
            f"{event.describe()}\n{event.HINT}",
            title="Audio dropouts",
            severity="warning",
            timeout=8,
        )

    def _failure(self, key: str, message: str, title: str) -> None:
        if key in self._failures_shown:
            return
        self._failures_shown.add(key)
        self._notify(message, title=title, severity="error", timeout=15)
