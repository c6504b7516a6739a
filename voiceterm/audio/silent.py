"""A speaker that could not be opened: answers are shown, and "played" at once."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from voiceterm.audio.frames import (
    IdleCallback,
    PlaybackPosition,
    PlaybackTag,
    StartedCallback,
    TagDoneCallback,
)

if TYPE_CHECKING:
    from voiceterm.audio.frames import Int16Array


class SilentSink:
    """Stands in for a speaker that could not be opened: every chunk "plays" at once.

    It reports playback like a real sink, so the conversation moves on exactly as
    it would with sound (the answer counts as delivered: it is on the screen).
    """

    def __init__(self) -> None:
        self.on_started: StartedCallback | None = None
        self.on_tag_done: TagDoneCallback | None = None
        self.on_idle: IdleCallback | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_turns: set[int] = set()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()

    def enqueue(self, audio: Int16Array, sample_rate: int, tag: PlaybackTag) -> None:
        if self._loop is None:
            return
        now = time.monotonic()
        if tag.turn_id not in self._started_turns:
            self._started_turns.add(tag.turn_id)
            self._loop.call_soon(self._started, tag, now)
        self._loop.call_soon(self._tag_done, tag, now)
        self._loop.call_soon(self._idle, now)

    # Callbacks are looked up when they run: whoever listens may attach after enqueue.
    def _started(self, tag: PlaybackTag, t: float) -> None:
        if self.on_started is not None:
            self.on_started(tag, t)

    def _tag_done(self, tag: PlaybackTag, t: float) -> None:
        if self.on_tag_done is not None:
            self.on_tag_done(tag, t)

    def _idle(self, t: float) -> None:
        if self.on_idle is not None:
            self.on_idle(t)

    def stop_now(self) -> float:
        return time.monotonic()

    def pause(self) -> float:
        return time.monotonic()

    def resume(self) -> None:
        pass

    def position(self, at: float | None = None) -> PlaybackPosition | None:
        return None

    def close(self) -> None:
        self._loop = None
