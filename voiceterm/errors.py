"""One error hierarchy, so every failure reaches the user as one clear sentence.

    VoicetermError(message, title, hint)
    ├── ConfigError          bad config file or flag
    ├── ModelError           a model is missing, corrupt or cannot load
    ├── AudioDeviceError     no device, a busy device, a device that vanished
    ├── EngineError          a stage failed while running (STT, LLM, TTS, VAD)
    └── AudioFileError       an input WAV that cannot be read

Before the TUI starts, the CLI prints ``str(error)`` (and the hint) to stderr and
exits with status 2. Inside the TUI the same text becomes a notification.
"""

from __future__ import annotations


class VoicetermError(Exception):
    """Base class: ``message`` says what happened, ``hint`` what to do about it."""

    title = "voiceterm error"

    def __init__(self, message: str, *, hint: str = "", title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


class ConfigError(VoicetermError):
    title = "Configuration error"


class ModelError(VoicetermError):
    title = "Model error"


class AudioDeviceError(VoicetermError):
    title = "Audio device error"


class AudioFileError(VoicetermError):
    title = "Audio file error"


class EngineError(VoicetermError):
    title = "Engine error"
