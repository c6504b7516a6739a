"""Opening the microphone and speaker for an agent, and saying when they come and go.

A device that cannot be opened is reported (``StageStatus`` "failed") and the rest
keeps working: without a speaker answers are text only (:class:`SilentSink`),
without a microphone typing still works. A device lost mid-session is reported
(``AgentError``) and, once its driver has reopened it, reported back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voiceterm.audio.abilities import cancels_echo, reports_loss
from voiceterm.audio.frames import AudioSink, AudioSource
from voiceterm.audio.playback import SilentSink
from voiceterm.errors import VoicetermError
from voiceterm.events import AgentError, AgentInterrupted, StageStatus
from voiceterm.pipeline.listening.activity import AgentActivity

Publish = Callable[[StageStatus | AgentError | AgentInterrupted], None]


class DeviceWatch:
    """Opens the devices and reports them under their names (``mic``, ``speaker``)."""

    def __init__(self, publish: Publish, activity: AgentActivity, names: dict[str, str]) -> None:
        self._publish = publish
        self._activity = activity
        self.names = names

    def open_speaker(self, sink: AudioSink) -> tuple[AudioSink, VoicetermError | None]:
        """The started sink, or a silent one in its place and why."""
        try:
            sink.start(asyncio.get_running_loop())
        except VoicetermError as error:
            self._publish(StageStatus(stage="speaker", state="failed", detail=error.message))
            silent = SilentSink()
            silent.start(asyncio.get_running_loop())
            return silent, error
        self._ready("speaker")
        if reports_loss(sink):
            sink.on_error = self._speaker_lost
            sink.on_restored = lambda: self._ready("speaker")
        return sink, None

    def open_microphone(self, source: AudioSource) -> VoicetermError | None:
        """Start ``source``; why it could not be opened, or ``None``."""
        try:
            source.start()
        except VoicetermError as error:
            self._publish(StageStatus(stage="mic", state="failed", detail=error.message))
            return error
        self._ready("mic")
        microphone = source.source if cancels_echo(source) else source
        if reports_loss(microphone):
            microphone.on_error = self._mic_lost
            microphone.on_restored = lambda: self._ready("mic")
        return None

    def _ready(self, device: str) -> None:
        self._publish(StageStatus(stage=device, state="ready", detail=self.names[device]))

    def _speaker_lost(self, error: VoicetermError) -> None:
        """The speaker stopped mid-session (the player reopens it when it returns).

        An answer being spoken is cut off where the sound stopped, as if the user had
        interrupted it: the conversation then holds what was heard, and the next turn
        is answered (on the speaker, once it is back).
        """
        self._publish(AgentError(error=error.message, source="speaker"))
        if self._activity.busy:
            self._publish(AgentInterrupted(reason="speaker_lost"))

    def _mic_lost(self, error: VoicetermError) -> None:
        self._publish(AgentError(error=error.message, source="mic"))
