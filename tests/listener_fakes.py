"""Stand-ins the listener's tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

from voiceterm.audio.frames import AudioFrame


class NoFrames:
    """A source the test feeds by hand (``Listener.hear``): it gives no frames itself."""

    async def frames(self) -> AsyncIterator[AudioFrame]:
        return
        yield
