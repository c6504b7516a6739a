"""The STT node: each finished utterance becomes a transcript, in a worker thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.events import (
    Event,
    StageSpan,
    TurnMark,
    UserStoppedSpeaking,
    UserTranscriptionReceived,
)


class Transcriber(Protocol):
    """What the STT node needs (``WhisperTranscriber`` fits)."""

    def transcribe(self, audio: Any) -> Any: ...


class SttNode:
    """Transcribes utterances one after another; drops empty results."""

    id = "stt"

    def __init__(self, transcriber: Transcriber) -> None:
        self._transcriber = transcriber

    def attach(self, bridge: Bridge) -> None:
        bridge.on(UserStoppedSpeaking).stream(self.transcribe).broadcast()

    async def transcribe(self, message: Message) -> AsyncIterator[Event]:
        utterance: UserStoppedSpeaking = message.event
        if utterance.audio is None or len(utterance.audio) == 0:
            return
        start = time.monotonic()
        result = await asyncio.to_thread(self._transcriber.transcribe, utterance.audio)
        end = time.monotonic()
        text = str(getattr(result, "text", result)).strip()
        yield TurnMark(name="stt_done", at=end, detail=text)
        yield StageSpan(stage="stt", start=start, end=end, content=text or "(nothing heard)")
        if text:
            yield UserTranscriptionReceived(content=text)
