"""A spoken conversation from files: one agent that keeps its history, fed turn by turn.

Used by ``benchmarks.live`` (the like-for-like control of the live app) and
``benchmarks.soak`` (hundreds of turns through the real engines).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from benchmarks.rig import Utterance
from voiceterm.audio.frames import CAPTURE_RATE, AudioFrame
from voiceterm.audio.wavio import WavFileSink
from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.config import Config
from voiceterm.events import TurnMark
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.loading import Engines

T = TypeVar("T")


class TurnTakingSource:
    """A microphone in a quiet room that a person speaks into, one clip at a time.

    Frames of silence flow in real time (as from the rig's microphone) until
    ``say()`` hands over a clip; its samples then go out in the next frames.
    """

    def __init__(self, block_ms: int = 20) -> None:
        self.muted = False
        self._frame = CAPTURE_RATE * block_ms // 1000
        self._pending = np.zeros(0, np.int16)
        self._closed = False

    def start(self) -> None:
        self._closed = False

    def say(self, audio: np.ndarray) -> float:
        """Queue ``audio`` (16 kHz int16); returns how long it lasts, in seconds."""
        assert audio.dtype == np.int16
        self._pending = np.concatenate((self._pending, audio))
        return len(audio) / CAPTURE_RATE

    async def frames(self) -> AsyncIterator[AudioFrame]:
        n = self._frame
        t0 = time.monotonic()
        for index in itertools.count():
            if self._closed:
                return
            t_start = t0 + index * n / CAPTURE_RATE
            # A microphone delivers a frame once its last sample has been captured.
            delay = t_start + n / CAPTURE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            samples = np.zeros(n, np.int16)
            if len(self._pending):
                chunk = self._pending[:n]
                samples[: len(chunk)] = chunk
                self._pending = self._pending[n:]
            if self.muted:
                samples[:] = 0
            yield AudioFrame(samples=samples, t_start=t_start, offset=index * n)

    def close(self) -> None:
        self._closed = True


class FileConversation:
    """The live run's conversation, said to the same pipeline from a file, turn by turn.

    One ``VoiceAgent`` on a ``TurnTakingSource`` and a real-time ``WavFileSink``
    keeps its history like the live app; its asyncio loop runs in a thread of its
    own, so a bench can take a file turn right before or after each live turn
    (load on the machine then hits both alike). What the agent says is recorded
    into ``recording`` (``None``: kept nowhere, for long runs); without
    ``realtime_speaker`` every answer "plays" the moment it is synthesized. Each
    clip is said once the agent has been quiet for ``SETTLE_S``, like
    ``Session.settle`` does for the app.
    """

    SETTLE_S = 1.5

    def __init__(
        self,
        config: Config,
        engines: Engines,
        recording: Path | None,
        *,
        realtime_speaker: bool = True,
    ) -> None:
        self.source = TurnTakingSource(config.audio.block_ms)
        sink = WavFileSink(recording, realtime=realtime_speaker)
        self.agent = VoiceAgent(config, source=self.source, sink=sink, engines=engines)
        self._marks: dict[str, float] = {}
        collector = Bridge("bench", queue_size=4096)
        collector.on(TurnMark).map(self._collect)
        self.agent.bus.register_bridge(collector)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="file-conversation", daemon=True
        )

    def __enter__(self) -> FileConversation:
        self._thread.start()
        self._run(self.agent.start())
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.source.close()
            self._run(self.agent.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def turn(self, clip: Utterance) -> dict[str, float]:
        """Say ``clip`` and wait for the answer to end; returns the turn's marks."""
        assert clip.rate == CAPTURE_RATE
        return self._run(self._turn(clip))

    def record(self, folder: Path) -> Path:
        """Start recording the session into ``folder``, on the agent's loop.

        Between two microphone blocks, as the app's record command does: from another
        thread the start could fall mid-block, and the recording would note another
        voice-detector phase than the blocks it holds (a replay then frames the audio
        10 ms off).
        """

        async def start() -> Path:
            return self.agent.recording.start(folder)

        return self._run(start())

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=180.0)

    async def _turn(self, clip: Utterance) -> dict[str, float]:
        await self._settle()
        self._marks.clear()
        await asyncio.sleep(self.source.say(clip.audio))
        await self._settle()
        return dict(self._marks)

    async def _settle(self) -> None:
        deadline = time.monotonic() + 90.0
        while time.monotonic() < deadline:
            if self.agent.quiet.quiet_for() >= self.SETTLE_S:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the file-based agent never went quiet")

    def _collect(self, message: Message) -> None:
        event = message.event
        if isinstance(event, TurnMark) and event.name not in self._marks:
            self._marks[event.name] = event.at
