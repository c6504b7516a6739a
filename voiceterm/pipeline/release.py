"""Letting go of what an agent holds, in order, each step even should one before fail."""

from __future__ import annotations

from voiceterm.audio.frames import AudioSink, AudioSource
from voiceterm.bus import Bus
from voiceterm.recording.control import RecordingControl


async def release(
    recording: RecordingControl, source: AudioSource, sink: AudioSink, bus: Bus
) -> None:
    """Stop recording, close the devices and stop the bus (each, should one before fail)."""
    recording.stop()
    try:
        source.close()
    finally:
        try:
            sink.close()
        finally:
            await bus.stop()
