"""How the microphone hands the device's blocks to the event loop, without a device.

A reader thread takes each int16 block with PortAudio's blocking read (several at once
while relaxed) and the loop turns their bytes into 16 kHz frames. Every sample must
come out once, in order, stamped with its capture time, relaxed or not and when the
listener switches between the two; and a stream that stops delivering must be
noticed without any block arriving to wake the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

import numpy as np
import pytest

from voiceterm.audio.frames import AudioFrame
from voiceterm.audio.microphone import FrameCutter, MicrophoneSource
from voiceterm.errors import AudioDeviceError

BLOCK = 160  # 10 ms at 16 kHz


class FakeStream:
    """A running blocking input stream at 16 kHz, as the reader thread uses it.

    Blocks the test ``put`` wait in its buffer; like a device, a read returns them as
    soon as enough are in, and otherwise delivers silence after a block's time.
    """

    def __init__(self) -> None:
        self.active = True
        self.broken = False
        self._samples: deque[tuple[np.ndarray, bool]] = deque()
        self._ready = threading.Condition()

    def put(self, block: np.ndarray, overflow: bool = False) -> None:
        with self._ready:
            self._samples.append((block, overflow))
            self._ready.notify_all()

    @property
    def read_available(self) -> int:
        with self._ready:
            return sum(len(block) for block, _ in self._samples)

    def read(self, frames: int) -> tuple[bytes, bool]:
        with self._ready:
            self._ready.wait_for(lambda: self._held() >= frames or self.broken, timeout=0.01)
            if self.broken:
                raise RuntimeError("Unanticipated host error")
            if self._held() < frames:
                return bytes(2 * frames), False  # nothing came: the room is silent
            parts: list[np.ndarray] = []
            overflowed = False
            while frames:
                block, overflow = self._samples.popleft()
                taken, rest = block[:frames], block[frames:]
                if len(rest):
                    self._samples.appendleft((rest, False))
                parts.append(taken)
                overflowed |= overflow
                frames -= len(taken)
            return np.concatenate(parts).tobytes(), overflowed

    def _held(self) -> int:
        return sum(len(block) for block, _ in self._samples)

    def abort(self) -> None:
        self.active = False

    def close(self) -> None:
        self.active = False


def attached_microphone(relaxed: bool = False) -> tuple[MicrophoneSource, FakeStream]:
    """A microphone whose stream is "open" at 16 kHz, its reader thread running."""
    mic = MicrophoneSource(block_ms=10, reopen=False)
    mic._loop = asyncio.get_running_loop()
    mic._wake_event = asyncio.Event()
    mic.device_rate = 16000
    mic.relaxed = relaxed
    stream = FakeStream()
    mic._stream = stream
    mic._start_reader(stream, 16000, BLOCK)
    return mic, stream


async def take(mic: MicrophoneSource, count: int) -> list[AudioFrame]:
    frames: list[AudioFrame] = []
    async for frame in mic.frames():
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


def counting(blocks: int) -> np.ndarray:
    return np.arange(1, blocks * BLOCK + 1, dtype=np.int64).astype(np.int16)


def spoken(frames: list[AudioFrame]) -> list[AudioFrame]:
    """From the first frame that is not the fake device's silence."""
    first = next(index for index, frame in enumerate(frames) if frame.samples.any())
    return frames[first:]


@pytest.mark.parametrize("relaxed", [False, True])
async def test_every_block_comes_out_once_in_order_as_frames(relaxed: bool) -> None:
    mic, stream = attached_microphone(relaxed)
    sound = counting(12)
    handed_over = time.monotonic()
    for index in range(12):
        stream.put(sound[index * BLOCK : (index + 1) * BLOCK])
    frames = spoken(await asyncio.wait_for(take(mic, 40), 5))[:12]
    mic.close()
    assert np.array_equal(np.concatenate([frame.samples for frame in frames]), sound)
    offsets = [frame.offset for frame in frames]
    assert offsets == [offsets[0] + index * BLOCK for index in range(12)]
    assert frames[0].samples.flags.writeable  # later stages may work on it in place
    # Stamped when captured: 120 ms of audio that waited in the device when it was read
    # began 110 ms before the read (PortAudio's callback stamped a block one block
    # late), one frame every 10 ms.
    assert handed_over - 0.115 <= frames[0].t_start <= time.monotonic() - 0.105
    starts = np.array([frame.t_start for frame in frames])
    assert np.allclose(np.diff(starts), 0.01, atol=0.002)
    assert mic.dropped == 0 and mic.overflows == 0


async def test_switching_between_relaxed_and_not_loses_and_repeats_nothing() -> None:
    mic, stream = attached_microphone(relaxed=True)
    sound = counting(60)
    frames: list[AudioFrame] = []

    async def collect() -> None:
        async for frame in mic.frames():
            frames.append(frame)

    task = asyncio.create_task(collect())
    for index in range(60):
        stream.put(sound[index * BLOCK : (index + 1) * BLOCK])
        if index % 7 == 0:
            mic.relaxed = not mic.relaxed  # the listener: somebody speaks, then stops
        await asyncio.sleep(0.002)
    for _ in range(200):
        if sum(frame.samples.any() for frame in frames) >= 60:
            break
        await asyncio.sleep(0.01)
    mic.close()
    await asyncio.wait_for(task, 5)
    heard = np.concatenate([frame.samples for frame in frames])
    assert np.array_equal(heard[heard != 0], sound)  # the device's silence aside
    assert [frame.offset for frame in frames] == [index * BLOCK for index in range(len(frames))]


async def test_an_overflow_the_device_reports_is_counted() -> None:
    mic, stream = attached_microphone()
    stream.put(np.ones(BLOCK, np.int16), overflow=True)
    stream.put(np.ones(BLOCK, np.int16))
    await asyncio.wait_for(take(mic, 2), 5)
    mic.close()
    assert mic.overflows == 1


async def test_a_stream_that_stops_is_reported_though_no_block_wakes_the_loop() -> None:
    mic, stream = attached_microphone()
    stream.broken = True  # the sound server went away: reads fail, no block comes
    with pytest.raises(AudioDeviceError, match="stopped delivering audio"):
        await asyncio.wait_for(take(mic, 1000), 5)


async def test_a_stream_that_is_no_longer_active_is_reported() -> None:
    mic, stream = attached_microphone(relaxed=True)
    stream.active = False  # PortAudio says the stream stopped
    with pytest.raises(AudioDeviceError, match="stopped delivering audio"):
        await asyncio.wait_for(take(mic, 1000), 5)


@pytest.mark.parametrize("first_late_s", [0.02, 0.08])
def test_a_streams_late_first_stamp_leaves_the_frames_evenly_timed(first_late_s: float) -> None:
    # PortAudio stamps a stream's first read late (5-30 ms on the rig, once 70 ms on a
    # busy machine); the reads after it agree. Frames must still start when the sound
    # was captured and follow each other every 10 ms, without a step back.
    cutter = FrameCutter(BLOCK)
    cutter.restart(16000)
    sound = counting(6)
    frames: list[AudioFrame] = []
    for index in range(6):
        captured = 100.0 + index * 0.01
        stamp = captured + (first_late_s if index == 0 else 0.0)
        frames += cutter.cut(sound[index * BLOCK : (index + 1) * BLOCK], stamp, 16000, False)
    assert np.array_equal(np.concatenate([frame.samples for frame in frames]), sound)
    assert frames[0].t_start == pytest.approx(100.0, abs=0.001)
    assert np.allclose(np.diff([frame.t_start for frame in frames]), 0.01, atol=0.0005)
