"""How the microphone hands PortAudio's blocks to the event loop, without a device.

PortAudio's thread gives the raw bytes of each int16 block; the loop turns them into
16 kHz frames. Every sample must come out once, in order, stamped with its capture
time, relaxed or not; and a stream that stops delivering must be noticed without
any block arriving to wake the loop.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from voiceterm.audio.devices import MicrophoneSource
from voiceterm.audio.frames import AudioFrame
from voiceterm.errors import AudioDeviceError

BLOCK = 160  # 10 ms at 16 kHz


class Flags:
    """PortAudio's status flags as sounddevice passes them (false when all clear)."""

    def __init__(self, overflow: bool = False) -> None:
        self.input_overflow = overflow

    def __bool__(self) -> bool:
        return self.input_overflow


class FakeStream:
    """A running PortAudio stream, as the microphone's health check sees it."""

    active = True

    def abort(self) -> None:
        self.active = False

    def close(self) -> None:
        self.active = False


def attached_microphone() -> MicrophoneSource:
    """A microphone whose stream is "open" at 16 kHz; blocks come through ``_callback``."""
    mic = MicrophoneSource(block_ms=10, reopen=False)
    mic._loop = asyncio.get_running_loop()
    mic._wake_event = asyncio.Event()
    mic.device_rate = 16000
    mic._stream = FakeStream()
    return mic


def deliver(
    mic: MicrophoneSource, block: np.ndarray, adc_time: float, overflow: bool = False
) -> None:
    """What PortAudio's thread does: the block's bytes and its ADC time."""
    timing = SimpleNamespace(inputBufferAdcTime=adc_time, currentTime=adc_time + 0.005)
    mic._callback(memoryview(block.tobytes()), len(block), timing, Flags(overflow))


async def take(mic: MicrophoneSource, count: int) -> list[AudioFrame]:
    frames: list[AudioFrame] = []
    async for frame in mic.frames():
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


@pytest.mark.parametrize("relaxed", [False, True])
async def test_every_block_comes_out_once_in_order_as_frames(relaxed: bool) -> None:
    mic = attached_microphone()
    mic.relaxed = relaxed
    sound = np.arange(12 * BLOCK, dtype=np.int64).astype(np.int16)
    handed_over = time.monotonic()
    for index in range(12):
        deliver(mic, sound[index * BLOCK : (index + 1) * BLOCK], 100.0 + index / 100)
    frames = await asyncio.wait_for(take(mic, 12), 5)
    mic.close()
    assert np.array_equal(np.concatenate([frame.samples for frame in frames]), sound)
    assert [frame.offset for frame in frames] == [index * BLOCK for index in range(12)]
    assert frames[0].samples.flags.writeable  # later stages may work on it in place
    # Stamped when captured: the callback's time less the age PortAudio reports (5 ms).
    assert handed_over - 0.006 <= frames[0].t_start <= time.monotonic()
    assert mic.dropped == 0 and mic.overflows == 0


async def test_an_overflow_the_device_reports_is_counted() -> None:
    mic = attached_microphone()
    deliver(mic, np.zeros(BLOCK, np.int16), 5.0, overflow=True)
    deliver(mic, np.zeros(BLOCK, np.int16), 5.01)
    await asyncio.wait_for(take(mic, 2), 5)
    mic.close()
    assert mic.overflows == 1


async def test_a_stream_that_stops_is_reported_though_no_block_wakes_the_loop() -> None:
    mic = attached_microphone()
    mic._stream.active = False  # the sound server went away: no more callbacks
    with pytest.raises(AudioDeviceError, match="stopped delivering audio"):
        await asyncio.wait_for(take(mic, 1), 5)
