"""The speaker: what Player plays is what the sound server hears, when it says so.

Two independent listeners check it: ``parecord`` (PulseAudio's own recorder) for
the content, and an "ear" (a MicrophoneSource on ``vt_speaker.monitor``, stamped with
PortAudio's ADC times) for the timing.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.audio.conftest import DEVICE, Rig, best_correlation, envelope_correlation
from voiceterm.audio.frames import AudioFrame, AudioSink, PlaybackTag
from voiceterm.audio.microphone import MicrophoneSource
from voiceterm.audio.resample import resample_int16
from voiceterm.audio.speaker import Player
from voiceterm.audio.wavio import read_wav
from voiceterm.bus import Message
from voiceterm.errors import AudioDeviceError
from voiceterm.events import AudioGlitches
from voiceterm.pipeline.glitches import GlitchWatch
from voiceterm.pipeline.headless import TurnPrinter
from voiceterm.timeline import Timeline

pytestmark = pytest.mark.audio

PIPER_RATE = 22050
BLOCK_MS = 10


def tone(
    seconds: float, rate: int = PIPER_RATE, freq: float = 440.0, lead_silence: float = 0.0
) -> npt.NDArray[np.int16]:
    body = (np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate) * 12000).astype(
        np.int16
    )
    return np.concatenate((np.zeros(int(lead_silence * rate), np.int16), body))


class Events:
    """The player's callbacks, in the order the loop received them."""

    def __init__(self, player: Player) -> None:
        self.log: list[tuple[str, PlaybackTag | None, float]] = []
        self.idle = asyncio.Event()
        self.started = asyncio.Event()
        player.on_started = self._on_started
        player.on_tag_done = lambda tag, t: self.log.append(("done", tag, t))
        player.on_idle = self._on_idle

    def _on_started(self, tag: PlaybackTag, t: float) -> None:
        self.log.append(("started", tag, t))
        self.started.set()

    def _on_idle(self, t: float) -> None:
        self.log.append(("idle", None, t))
        self.idle.set()

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.log]

    def times(self, kind: str) -> list[float]:
        return [t for k, _, t in self.log if k == kind]


class Ear:
    """Listens to the speaker sink's monitor with timestamps on time.monotonic()."""

    def __init__(self) -> None:
        self.frames: list[AudioFrame] = []
        saved = os.environ.get("PULSE_SOURCE")
        os.environ["PULSE_SOURCE"] = "vt_speaker.monitor"  # read by the pulse plugin at open
        try:
            self.mic = MicrophoneSource(device=DEVICE, block_ms=10)
            self.mic.start()
        finally:
            os.environ["PULSE_SOURCE"] = saved or "vt_mic.monitor"
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for frame in self.mic.frames():
            self.frames.append(frame)

    def loud_times(self, threshold: int = 2000) -> npt.NDArray[np.float64]:
        """Monotonic times of every sample louder than ``threshold``."""
        times = [
            f.t_start + np.flatnonzero(np.abs(f.samples.astype(np.int32)) > threshold) / 16000
            for f in self.frames
        ]
        return np.concatenate(times) if times else np.zeros(0)

    def clear(self) -> None:
        """Forget what was heard so far."""
        self.frames.clear()

    def assert_heard_all(self, since: float, until: float) -> None:
        """Every sample from ``since`` to ``until`` was recorded: silence there is real."""
        frames = [f for f in self.frames if f.t_end > since and f.t_start < until]
        assert frames and frames[0].t_start <= since and frames[-1].t_end >= until, (
            "the ear did not record the whole window"
        )
        for before, after in zip(frames, frames[1:], strict=False):
            # A frame lost in the device leaves a jump in the capture times.
            assert after.t_start - before.t_end < 0.005, (
                f"the ear lost audio at {after.t_start - since:.3f} s "
                f"({self.mic.overflows} input overflows): its silence proves nothing"
            )

    async def close(self) -> None:
        self.mic.close()
        await asyncio.wait_for(self._task, timeout=5)


@pytest.fixture
async def player(rig: Rig) -> AsyncIterator[Player]:
    player = Player(device=DEVICE, block_ms=BLOCK_MS)
    player.start()
    await asyncio.sleep(0.3)  # past the stream's start-up
    try:
        yield player
    finally:
        player.close()


@pytest.fixture
async def ear(rig: Rig) -> AsyncIterator[Ear]:
    ear = Ear()
    await asyncio.sleep(0.5)
    try:
        yield ear
    finally:
        await ear.close()


async def test_speech_played_reaches_the_speaker_sink(
    rig: Rig, player: Player, speech_wav: Path, tmp_path: Path
) -> None:
    assert isinstance(player, AudioSink)
    speech, rate = read_wav(speech_wav)
    events = Events(player)
    tag = PlaybackTag(
        turn_id=1, sentence_index=0, text="The quick brown fox jumps over the lazy dog."
    )
    with rig.record_speaker(tmp_path / "heard.wav"):
        player.enqueue(speech, rate, tag)
        await asyncio.wait_for(events.idle.wait(), timeout=10)
    assert events.kinds() == ["started", "done", "idle"]
    assert all(t == tag for _, t, _ in events.log[:2])
    heard, heard_rate = read_wav(tmp_path / "heard.wav")
    assert heard_rate == 16000
    reference = resample_int16(speech, rate, 16000)
    # On a quiet machine both are ~0.99. Under heavy load a dropout or two lowers
    # them, but other speech scores ~0.5 and ~0.05, and noise ~0.2 and ~0.
    overloaded = player.underflows > 0
    assert envelope_correlation(heard, reference) > (0.6 if overloaded else 0.8)
    assert best_correlation(heard, reference) > 0.4  # the same samples, not look-alikes


async def test_chunks_play_back_to_back_without_gaps(player: Player, ear: Ear) -> None:
    whole = tone(1.0)
    cuts = [0, 1234, 4000, 4001, 9999, 15000, len(whole)]  # odd sizes, one of a single sample
    events = Events(player)
    underflows = player.underflows
    for index, (start, end) in enumerate(zip(cuts, cuts[1:], strict=False)):
        player.enqueue(whole[start:end], PIPER_RATE, PlaybackTag(1, index))
    await asyncio.wait_for(events.idle.wait(), timeout=5)
    await asyncio.sleep(0.2)
    dropouts = player.underflows - underflows  # an overloaded machine, not a seam
    loud = ear.loud_times(threshold=1000)
    assert loud.size
    assert loud[-1] - loud[0] == pytest.approx(1.0, abs=0.02 + 0.05 * dropouts)
    # A 440 Hz tone crosses the threshold every ~1.1 ms: a seam between two chunks
    # would leave a longer hole where it falls.
    (t_started,) = events.times("started")
    for cut in cuts[1:-1]:
        t_seam = t_started + cut / PIPER_RATE
        near = loud[np.abs(loud - t_seam) < 0.02]
        assert near.size and np.max(np.diff(near), initial=0.0) < 0.004
    assert events.kinds().count("started") == 1 and events.kinds().count("done") == 6
    assert player.gaps == 0


async def test_on_started_reports_when_sound_is_really_heard(player: Player, ear: Ear) -> None:
    events = Events(player)
    t_enqueue = time.monotonic()
    player.enqueue(tone(0.3, lead_silence=0.1), PIPER_RATE, PlaybackTag(5))
    await asyncio.wait_for(events.idle.wait(), timeout=5)
    await asyncio.sleep(0.2)
    (t_audible,) = events.times("started")
    # After the chunk's 100 ms of leading silence and the device's output latency...
    assert t_audible >= t_enqueue + 0.1 + 0.5 * player.output_latency
    # ...and at the moment the sound server actually rendered the first loud sample.
    t_heard = ear.loud_times()[0]
    assert abs(t_heard - t_audible) < 0.03
    (t_idle,) = events.times("idle")
    assert abs(ear.loud_times()[-1] - t_idle) < 0.03


async def test_a_player_with_nothing_to_play_stops_its_stream_and_wakes_for_the_next_answer(
    rig: Rig, ear: Ear
) -> None:
    player = Player(device=DEVICE, block_ms=BLOCK_MS, sleep_after_s=0.5)
    player.start()
    try:
        for _ in range(40):  # the watchdog looks every 0.5 s
            if player.asleep:
                break
            await asyncio.sleep(0.1)
        assert player.asleep, "the stream kept running with nothing to play"
        tap = player.render_tap()
        tap.clear()
        await asyncio.sleep(0.3)
        assert not tap, "a stopped stream still called back"
        # An answer queued while it sleeps starts it and is heard.
        events = Events(player)
        player.enqueue(tone(0.5), PIPER_RATE, PlaybackTag(3))
        assert not player.asleep
        await asyncio.wait_for(events.idle.wait(), timeout=5)
        await asyncio.sleep(0.2)
        assert ear.loud_times().size, "the answer that woke the stream was not heard"
        for _ in range(40):
            if player.asleep:
                break
            await asyncio.sleep(0.1)
        assert player.asleep, "it did not stop again after the answer"
        # The app wakes it when the user starts talking (a stream that starts with
        # the answer already queued may underflow into its first sound on a busy
        # machine, see Player.wake); the answer, made meanwhile, is then heard whole
        # and when the player said it would be.
        ear.clear()
        player.wake()
        assert not player.asleep
        await asyncio.sleep(0.3)
        events = Events(player)
        player.enqueue(tone(0.5), PIPER_RATE, PlaybackTag(4))
        await asyncio.wait_for(events.idle.wait(), timeout=5)
        await asyncio.sleep(0.2)
        loud = ear.loud_times()
        assert loud.size and loud[-1] - loud[0] == pytest.approx(0.5, abs=0.02), (
            f"not heard whole: {player.underflows} underflow(s) in the player, "
            f"{ear.mic.overflows} overflow(s) in the ear"
        )
        (t_audible,) = events.times("started")
        assert abs(loud[0] - t_audible) < 0.03
    finally:
        player.close()


async def test_stop_now_silences_the_answer_and_says_when(player: Player, ear: Ear) -> None:
    events = Events(player)
    player.enqueue(tone(3.0), PIPER_RATE, PlaybackTag(9, 0, "first"))
    player.enqueue(tone(3.0), PIPER_RATE, PlaybackTag(9, 1, "second"))
    await asyncio.wait_for(events.started.wait(), timeout=5)
    await asyncio.sleep(0.5)
    position = player.position()
    assert position is not None and position.tag.sentence_index == 0
    t_end = player.stop_now()
    await asyncio.wait_for(events.idle.wait(), timeout=2)
    await asyncio.sleep(0.6)
    assert not player.busy
    block = BLOCK_MS / 1000
    # How soon the sound ends is bench_round_trip's and bench_live's to say. Here: it
    # sounded until the time stop_now gave, and nothing of the answer (the rest of
    # the first chunk, all of the second) sounded after it.
    loud = ear.loud_times()
    assert loud.size and abs(loud[-1] - t_end) < block + 0.02
    ear.assert_heard_all(t_end, t_end + 0.5)
    assert events.times("idle")[0] == pytest.approx(t_end, abs=block + 0.001)
    assert "done" not in events.kinds()  # neither chunk finished
    assert player.position(at=t_end + 0.05) is None

    # The player keeps working after a stop: the next answer plays in full.
    events.idle.clear()
    player.enqueue(tone(0.2), PIPER_RATE, PlaybackTag(10))
    await asyncio.wait_for(events.idle.wait(), timeout=5)
    assert events.kinds()[-3:] == ["started", "done", "idle"]


async def test_a_missing_speaker_is_a_clear_error(rig: Rig) -> None:
    player = Player(device="no such speaker")
    with pytest.raises(AudioDeviceError, match="No output \\(speaker\\) device matches") as info:
        player.start()
    assert info.value.hint
    player.close()


def hold_the_interpreter() -> None:
    """Keep the GIL in one C call, as a long pure-C step of another stage would."""
    re.match(r"(a+)+$", "a" * 23 + "b")  # catastrophic backtracking: ~0.3 s here


async def test_a_starved_speaker_is_counted_and_the_user_is_told(player: Player) -> None:
    published: list[AudioGlitches] = []
    watch = GlitchWatch(player, object(), published.append)
    assert watch.check() is None, "the rig's speaker ran dry before the test starved it"
    player.enqueue(tone(5.0), PIPER_RATE, PlaybackTag(1))
    for _ in range(10):  # a ~0.3 s stall is far more than PortAudio's 20-40 ms buffer
        hold_the_interpreter()
        await asyncio.sleep(0.1)
        if player.underflows:
            break
    assert player.underflows > 0
    glitches = watch.check()
    assert glitches is not None and glitches.speaker_underflows == player.underflows
    out = io.StringIO()
    TurnPrinter(Timeline(), out).on_message(Message("agent", glitches))
    assert "the speaker ran dry" in out.getvalue()
