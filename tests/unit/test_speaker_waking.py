"""A speaker stream that is slow to start is waited for, not taken for a lost device.

A sound server that suspended an idle sink (PulseAudio's module-suspend-on-idle)
takes the stream's first buffer at once and then calls back again only when the
sink runs, up to 2 s later. The answer must wait for that whole, be stamped with
when it is really heard, and the wait must be told; a stream PortAudio reports
stopped is still a lost device.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np

from voiceterm.audio.frames import PlaybackTag
from voiceterm.audio.playback import PlaybackEngine
from voiceterm.audio.portaudio import STREAM_STALL_S, STREAM_START_GRACE_S, StreamClock
from voiceterm.audio.speaker import Player
from voiceterm.errors import AudioDeviceError

RATE = 1000
BLOCK = 10  # 10 ms blocks at 1 kHz


class FakeStream:
    """A PortAudio stream as the player's watchdog sees it."""

    def __init__(self) -> None:
        self.active = True
        self.starts = 0

    def abort(self) -> None:
        self.active = False

    def start(self) -> None:
        self.active = True
        self.starts += 1

    def close(self) -> None:
        self.active = False


def callback(player: Player) -> np.ndarray:
    """One PortAudio callback, as the device thread makes it; returns the block."""
    out = np.full((BLOCK, 1), 7, dtype=np.int16)
    timing = SimpleNamespace(outputBufferDacTime=1.02, currentTime=1.0)
    player._callback(out, BLOCK, timing, SimpleNamespace(output_underflow=False))
    return out[:, 0]


def prefill(player: Player, blocks: int = 8) -> list[np.ndarray]:
    """The callbacks that fill a new stream's buffer, back to back."""
    return [callback(player) for _ in range(blocks)]


def started_player() -> tuple[Player, FakeStream, list[str]]:
    player = Player(block_ms=BLOCK, sleep_after_s=None)
    player._engine = PlaybackEngine(RATE, player._callbacks.post_threadsafe)
    player._priority_asked = True  # no thread-priority call from the test's thread
    stream = FakeStream()
    player._stream = stream
    player._stream_clock.started()
    events: list[str] = []
    player.on_error = lambda error: events.append(f"error: {error.message}")
    player.on_woke = lambda since, until: events.append(f"woke after {until - since:.2f}")
    return player, stream, events


def test_a_stream_filling_its_buffer_is_starting_and_flows_once_paced() -> None:
    clock = StreamClock(block_s=0.01)
    clock.started()
    stream = FakeStream()
    now = time.monotonic()
    for i in range(8):
        clock.beat(now + i * 1e-5)
    assert not clock.flowing
    assert clock.state(stream, now + 1.9) == "starting", "a server resuming its sink is slow"
    assert clock.state(stream, now + STREAM_START_GRACE_S + 0.1) == "stalled"
    assert clock.beat(now + 1.9), "a callback at the device's pace shows the stream flows"
    assert clock.state(stream, now + 1.95) == "running"
    assert clock.state(stream, now + 1.9 + STREAM_STALL_S + 0.1) == "stalled"
    stream.active = False
    assert clock.state(stream, now + 1.95) == "gone"


def test_after_an_underflow_the_stream_must_show_it_flows_again() -> None:
    clock = StreamClock(block_s=0.01)
    now = time.monotonic()
    clock.beat(now)
    assert clock.beat(now + 0.01)
    # ALSA restarts the device: the late callback that reports it, then a new buffer.
    assert not clock.beat(now + 0.05, underflow=True)
    for i in range(8):
        clock.beat(now + 0.05 + i * 1e-5)
    assert not clock.flowing, "sound written now would wait unheard behind the new buffer"
    assert clock.beat(now + 1.5), "the device consumes again"


def test_an_answer_waits_whole_for_the_stream_to_flow_and_the_wait_is_told() -> None:
    async def run() -> tuple[list[np.ndarray], np.ndarray, list[str]]:
        player, _, events = started_player()
        player._loop = asyncio.get_running_loop()
        player._callbacks.bind_loop(player._loop)
        answer = np.arange(1000, 1040, dtype=np.int16)
        player.enqueue(answer, RATE, PlaybackTag(turn_id=1))
        buffered = prefill(player)
        await asyncio.sleep(0.05)  # the sink resumes: the next callback is paced
        first_heard = callback(player)
        await asyncio.sleep(0)  # the loop hears that the stream flows
        await asyncio.sleep(0)
        return buffered, first_heard, events

    buffered, first_heard, events = asyncio.run(run())
    assert not any(block.any() for block in buffered), "sound went into a buffer not played"
    assert list(first_heard) == list(range(1000, 1010)), "the answer did not start whole"
    assert len(events) == 1 and events[0].startswith("woke after"), events


def test_a_slow_start_is_waited_for_and_a_stopped_stream_is_still_a_lost_device() -> None:
    async def run() -> tuple[list[str], bool, list[str]]:
        player, stream, events = started_player()
        player._loop = asyncio.get_running_loop()
        player._callbacks.bind_loop(player._loop)
        player.reopen = False  # report once, do not try to reopen the fake
        player.enqueue(np.arange(1000, 1040, dtype=np.int16), RATE, PlaybackTag(turn_id=1))
        prefill(player)
        watchdog = asyncio.get_running_loop().create_task(player._watch_device())
        await asyncio.sleep(2.2)  # longer than the 1 s that used to count as lost
        while_slow = list(events)
        kept = player.busy
        stream.active = False  # the sound server went away
        try:
            await asyncio.wait_for(watchdog, timeout=2.0)
        finally:
            watchdog.cancel()
        return while_slow, kept, events

    while_slow, kept, events = asyncio.run(run())
    assert while_slow == [], f"a slow start was reported: {while_slow}"
    assert kept, "the queued answer was dropped while the stream was starting"
    assert events == [], "reopen=False only logs; the watchdog ended on the lost stream"


def test_a_lost_stream_drops_the_answer_and_reports_it() -> None:
    async def run() -> tuple[list[str], bool]:
        player, stream, events = started_player()
        player._loop = asyncio.get_running_loop()
        player._callbacks.bind_loop(player._loop)
        reported = asyncio.Event()

        def lost(error: AudioDeviceError) -> None:
            events.append(f"error: {error.message}")
            reported.set()

        player.on_error = lost
        player.enqueue(np.arange(1000, 1040, dtype=np.int16), RATE, PlaybackTag(turn_id=1))
        prefill(player)
        stream.active = False
        watchdog = asyncio.get_running_loop().create_task(player._watch_device())
        try:
            await asyncio.wait_for(reported.wait(), timeout=2.0)
        finally:
            player._closed = True
            watchdog.cancel()
        return events, player.busy

    events, busy = asyncio.run(run())
    # A prefill slowed by a busy machine may look paced, and tell a wake first.
    errors = [event for event in events if event.startswith("error: ")]
    assert errors and errors[0].startswith("error: The output device"), events
    assert not busy, "a lost device's queue must be dropped (it would play late)"


def test_a_stalled_stream_is_started_again_before_it_counts_as_lost() -> None:
    player, stream, _ = started_player()
    prefill(player)
    assert player._restart()
    assert stream.starts == 1 and stream.active
    assert not player._stream_clock.flowing, "a restarted stream must show it flows again"
