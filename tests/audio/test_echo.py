"""Echo handling: the assistant must not hear itself, and must still hear the user.

The first tests need no sound card (synthetic echo). The rig tests loop the speaker
sink into the microphone sink at -6 dB, play speech through ``Player`` and listen
through ``EchoCancelledSource`` with the player's render tap as the reference.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.audio.conftest import DEVICE, Rig, SpeechMaker
from voiceterm.audio.echo import (
    ECHO_DELAY_AIM_S,
    FRAME_SAMPLES,
    EchoCancelledSource,
    EchoCanceller,
    HalfDuplexGate,
    LiveKitEchoCanceller,
    NoEchoHandling,
    RenderReference,
    ResidualEchoGate,
    WebRtcEchoCanceller,
    make_echo_canceller,
)
from voiceterm.audio.echo_delay import EchoDelayEstimator
from voiceterm.audio.frames import AudioFrame, AudioSource, PlaybackTag
from voiceterm.audio.microphone import MicrophoneSource
from voiceterm.audio.resample import resample_int16
from voiceterm.audio.speaker import Player
from voiceterm.audio.wavio import read_wav
from voiceterm.engines.vad import SpeechEnded, SpeechStarted, VadSegmenter

pytestmark = pytest.mark.audio

Int16Array = npt.NDArray[np.int16]

# Both are installed (livekit with voiceterm, aec-audio-processing with the dev
# extra): a backend that is missing fails its tests rather than skipping them.
BACKENDS = [
    pytest.param(LiveKitEchoCanceller, id="livekit"),
    pytest.param(WebRtcEchoCanceller, id="aec_audio_processing"),
]


def level(audio: Int16Array) -> float:
    return float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-9))


def speechlike(seconds: float, seed: int) -> Int16Array:
    """Noise shaped by a syllable-rate envelope: broadband and speech-paced."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(n) / 16000) ** 2
    return (np.clip(rng.normal(0, 0.15, n) * envelope, -1, 1) * 32767).astype(np.int16)


# --- no sound card --------------------------------------------------------------------


@pytest.mark.parametrize("make", BACKENDS)
def test_webrtc_aec_removes_a_synthetic_echo(make: Callable[[], EchoCanceller]) -> None:
    far = speechlike(6.0, seed=1)
    delay = int(0.04 * 16000)
    echo = np.convolve(np.concatenate((np.zeros(delay), far[:-delay] * 0.5)), [0.6, 0.3, 0.1])
    mic = np.round(echo[: len(far)]).astype(np.int16)
    canceller = make()
    out = []
    for i in range(0, len(far), 320):
        canceller.process_render(far[i : i + 320])
        out.append(canceller.process_capture(mic[i : i + 320]))
    cleaned = np.concatenate(out)
    second_half = slice(len(far) // 2, None)
    assert level(mic[second_half]) - level(cleaned[second_half]) > 20  # ERLE in dB


@pytest.mark.parametrize("make", BACKENDS)
def test_capture_must_come_in_whole_10ms_frames(make: Callable[[], EchoCanceller]) -> None:
    canceller = make()
    canceller.process_render(np.zeros(123, np.int16))  # render may be any length
    assert (
        len(canceller.process_capture(np.zeros(2 * FRAME_SAMPLES, np.int16))) == 2 * FRAME_SAMPLES
    )
    with pytest.raises(ValueError, match="multiple of 160"):
        canceller.process_capture(np.zeros(100, np.int16))


def test_half_duplex_gate_closes_while_sound_plays_and_for_its_tail() -> None:
    gate = HalfDuplexGate(tail_ms=100)
    voice = np.full(320, 5000, np.int16)
    assert gate.process_capture(voice).any()  # nothing played: open
    gate.process_render(np.full(160, 3000, np.int16))
    assert not gate.process_capture(voice).any()
    gate.process_render(np.zeros(1280, np.int16))  # 80 ms of silence: still in the tail
    assert not gate.process_capture(voice).any()
    gate.process_render(np.zeros(480, np.int16))  # 110 ms: open again
    assert gate.process_capture(voice).any()


def test_residual_gate_zeroes_mostly_removed_frames_and_keeps_talk_over() -> None:
    class Halver:
        name = "fake"

        def __init__(self, factor: float) -> None:
            self.factor = factor

        def process_render(self, played: Int16Array) -> None:
            return None

        def process_capture(self, captured: Int16Array) -> Int16Array:
            return (captured * self.factor).astype(np.int16)

    loud = np.full(320, 10000, np.int16)
    assert not ResidualEchoGate(Halver(0.01)).process_capture(loud).any()  # -40 dB: echo
    assert ResidualEchoGate(Halver(0.5)).process_capture(loud).any()  # -6 dB: a voice


def test_echo_modes_by_name() -> None:
    assert isinstance(make_echo_canceller("off"), NoEchoHandling)
    assert isinstance(make_echo_canceller("half_duplex", tail_ms=200), HalfDuplexGate)
    assert make_echo_canceller("livekit").name == "livekit+gate"
    assert make_echo_canceller("webrtc").name == "webrtc+gate"
    assert make_echo_canceller("aec").name == "livekit+gate"  # the default backend
    with pytest.raises(ValueError, match="unknown echo mode"):
        make_echo_canceller("loud")


def test_render_reference_hands_out_blocks_heard_by_a_time() -> None:
    from collections import deque

    tap: deque[tuple[float, Int16Array]] = deque()
    for i in range(10):
        tap.append((100.0 + i * 0.01, np.full(480, i, np.int16)))
    reference = RenderReference(tap, 48000)
    first = reference.until(100.045)  # blocks starting at .00 .01 .02 .03 .04
    assert len(tap) == 5
    assert sum(len(b) for b in first) <= 5 * 160
    rest = reference.until(200.0)
    assert not tap
    assert abs(sum(len(b) for b in first + rest) - 10 * 160) <= 160  # minus the filter delay


def test_render_reference_fills_a_lasting_hole_and_ignores_a_one_block_glitch() -> None:
    from collections import deque

    block = np.ones(160, np.int16)  # 10 ms at 16 kHz: no resampling in the way
    times = [100.00, 100.01, 100.05, 100.06, 100.07, 100.105, 100.09]
    tap: deque[tuple[float, Int16Array]] = deque((t, block) for t in times)
    reference = RenderReference(tap, 16000)
    stream = np.concatenate(reference.until(200.0))
    # An underflow left a 30 ms hole (every later block is 30 ms late): it becomes
    # silence once a second block confirms it. The block stamped 100.105 between
    # 100.07 and 100.09 is a timestamp glitch and changes nothing.
    assert reference.holes == 1
    assert len(stream) == 7 * 160 + 480
    assert not stream[480:960].any()
    assert stream[:480].all() and stream[960:].all()


async def test_a_speaker_that_never_started_leaves_the_microphone_working(tmp_path: Path) -> None:
    from voiceterm.audio.wavio import WavFileSource, write_wav

    write_wav(tmp_path / "in.wav", np.full(1600, 1000, np.int16), 16000)
    mic = WavFileSource(tmp_path / "in.wav", realtime=False, trailing_silence_s=0.0)
    source = EchoCancelledSource(mic, HalfDuplexGate(), player=Player(device="no such speaker"))
    source.start()  # no reference to take: the player failed before it could play
    frames = [frame async for frame in source.frames()]
    assert len(frames) == 5 and all(frame.samples.any() for frame in frames)


def test_the_echo_delay_is_found_before_and_after_the_speakers_time_stamps() -> None:
    far = speechlike(4.0, seed=3)
    for lag_s in (-0.35, 0.1):
        shift = int(lag_s * 16000)
        # The microphone at time t hears what is stamped t - lag.
        mic = (np.roll(far, shift) * 0.5).astype(np.int16)
        estimator = EchoDelayEstimator(16000)
        found = [
            lag
            for i in range(16000, len(far), 160)  # from 1 s in: np.roll wraps the start
            if (lag := estimator.push(mic[i : i + 160], far[i : i + 160])) is not None
        ]
        assert found, f"no lag found for {lag_s}"
        assert abs(found[-1] - lag_s) < 0.002
    silent = EchoDelayEstimator(16000)
    assert all(
        silent.push(far[i : i + 160], np.zeros(160, np.int16)) is None
        for i in range(0, len(far), 160)
    )


class ArraySource:
    """Microphone frames from an array, stamped from ``t0``."""

    def __init__(self, samples: Int16Array, t0: float) -> None:
        self.samples = samples
        self.t0 = t0
        self.muted = False

    def start(self) -> None:
        pass

    async def frames(self) -> AsyncIterator[AudioFrame]:
        for i in range(0, len(self.samples) - 159, 160):
            yield AudioFrame(self.samples[i : i + 160], self.t0 + i / 16000, i)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("follow_echo", [True, False], ids=["followed", "stamps-as-true"])
async def test_aec_cancels_an_echo_that_comes_before_the_speakers_time_stamps(
    follow_echo: bool,
) -> None:
    """A sound server that says the sound plays 350 ms later than it does (measured
    on PulseAudio and PipeWire desktops): the echo is found and cancelled."""
    from collections import deque

    far = speechlike(8.0, seed=4)
    early = int(0.35 * 16000)
    echo = np.convolve(far[early:] * 0.5, [0.6, 0.3, 0.1])[: len(far) - early]
    mic = np.zeros(len(far), np.int16)
    mic[: len(echo)] = np.round(echo).astype(np.int16)
    t0 = 1000.0
    tap: deque[tuple[float, Int16Array]] = deque(
        (t0 + i / 16000, far[i : i + 160]) for i in range(0, len(far), 160)
    )
    source = EchoCancelledSource(
        ArraySource(mic, t0),
        make_echo_canceller("aec"),
        RenderReference(tap, 16000),
        follow_echo=follow_echo,
    )
    cleaned = np.concatenate([frame.samples async for frame in source.frames()])
    last = slice(len(cleaned) - 3 * 16000, len(cleaned) - early)
    removed = level(mic[last]) - level(cleaned[last])
    if follow_echo:
        assert source.lead_s == pytest.approx(0.35 + ECHO_DELAY_AIM_S, abs=0.003)
        assert removed > 20, f"only {removed:.1f} dB of echo removed"
    else:
        assert removed < 10, f"{removed:.1f} dB removed without following the echo"


# --- through the rig -------------------------------------------------------------------


class Tee:
    """An AudioSource that records the frames it passes on (the raw microphone)."""

    def __init__(self, source: AudioSource) -> None:
        self.source = source
        self.raw: list[AudioFrame] = []
        self.muted = False

    def start(self) -> None:
        self.source.start()

    async def frames(self) -> AsyncIterator[AudioFrame]:
        async for frame in self.source.frames():
            self.raw.append(frame)
            yield frame

    def close(self) -> None:
        self.source.close()


@pytest.fixture
def echo_rig(rig: Rig) -> Iterator[Rig]:
    rig.set_echo(-6)
    try:
        yield rig
    finally:
        rig.set_echo(None)


async def listen_while_speaking(
    canceller: EchoCanceller, speech: Path, rig: Rig, barge_in: Path | None = None
) -> tuple[list[AudioFrame], list[AudioFrame], dict[str, float], float]:
    """Play ``speech`` with echo on.

    Returns raw and cleaned frames; ``start``/``end`` of the answer's sound and the
    player's underflows while it played (``dropouts``); when the user barged in.
    """
    audio, rate = read_wav(speech)
    player = Player(device=DEVICE, block_ms=10)
    player.start()
    tee = Tee(MicrophoneSource(device=DEVICE, block_ms=20))
    source = EchoCancelledSource(tee, canceller, player=player)
    source.start()
    cleaned: list[AudioFrame] = []

    async def collect() -> None:
        async for frame in source.frames():
            cleaned.append(frame)

    task = asyncio.create_task(collect())
    started = asyncio.Event()
    idle = asyncio.Event()
    times: dict[str, float] = {}

    def on_started(tag: PlaybackTag, t: float) -> None:
        times.setdefault("start", t)
        started.set()

    def on_idle(t: float) -> None:
        times.setdefault("end", t)
        idle.set()

    player.on_started = on_started
    player.on_idle = on_idle
    await asyncio.sleep(2.0)  # as in the app, the devices run before the first answer
    underflows_before = player.underflows
    player.enqueue(audio, rate, PlaybackTag(1))
    await asyncio.wait_for(started.wait(), timeout=5)
    t_user = 0.0
    if barge_in is not None:
        await asyncio.sleep(1.5)
        t_user = time.monotonic()
        await asyncio.to_thread(rig.play_into_mic(barge_in).wait, 10)
    await asyncio.wait_for(idle.wait(), timeout=20)
    await asyncio.sleep(0.8)  # the echo's tail
    source.close()
    await asyncio.wait_for(task, timeout=5)
    player.close()
    times["dropouts"] = player.underflows - underflows_before
    return tee.raw, cleaned, times, t_user


def speech_onsets(frames: list[AudioFrame], min_speech_s: float = 0.15) -> list[float]:
    """Where the app's VAD would see >= 150 ms of speech (the barge-in rule)."""
    vad = VadSegmenter()
    onset: float | None = None
    found: list[float] = []
    for frame in frames:
        for event in vad.feed(frame.samples, frame.t_start):
            if isinstance(event, SpeechStarted):
                onset = event.onset_time
            elif isinstance(event, SpeechEnded):
                onset = None
        if onset is not None and frame.t_end - onset >= min_speech_s:
            found.append(onset)
            onset = None
    return found


def frame_levels(frames: list[AudioFrame], t0: float, t1: float) -> npt.NDArray[np.float64]:
    """Level (dBFS) of each 20 ms frame starting in [t0, t1)."""
    return np.array(
        [level(f.samples) - 20 * np.log10(32768.0) for f in frames if t0 <= f.t_start < t1]
    )


def joined(frames: list[AudioFrame], t0: float, t1: float) -> Int16Array:
    return np.concatenate([f.samples for f in frames if t0 <= f.t_start < t1])


FAR = "Sure. The weather today is mild, with a light breeze from the west, and some sun later on."
NEAR = "Stop, wait a moment please."


@pytest.mark.parametrize("mode", ["aec", "webrtc"])  # livekit's AEC3 (the default), and the other
async def test_aec_removes_the_assistants_voice_from_the_microphone(
    echo_rig: Rig, make_speech: SpeechMaker, mode: str
) -> None:
    raw, cleaned, times, _ = await listen_while_speaking(
        make_echo_canceller(mode), make_speech(FAR), echo_rig
    )
    t_start, t_end = times["start"], times["end"]
    # The echo was speech-loud; most cleaned frames are near-silent. Bursts of
    # residual echo remain now and then; how often they become self-interruptions
    # is counted over many answers by scripts/bench_echo.py.
    assert np.percentile(frame_levels(raw, t_start, t_end), 75) > -35
    assert np.percentile(frame_levels(cleaned, t_start, t_end), 50) < -60
    steady = (t_start + 1.5, t_end)
    erle = level(joined(raw, *steady)) - level(joined(cleaned, *steady))
    # Over the whole answer ERLE is 50-77 dB in most runs, but 9-18 dB in about one
    # run in four or five (residual bursts: 9.1 and 9.8 dB seen with no dropout; a
    # playback dropout, which shifts the echo against the reference, makes it worse:
    # 6 dB). Open question, see the report of scripts/bench_echo.py; the median
    # check above holds in every run. No cancellation at all is 0-3 dB.
    assert erle > (6 if times["dropouts"] == 0 else 3)


async def test_aec_keeps_the_user_talking_over_the_assistant(
    echo_rig: Rig, make_speech: SpeechMaker
) -> None:
    raw, cleaned, _, t_user = await listen_while_speaking(
        make_echo_canceller("aec"), make_speech(FAR), echo_rig, barge_in=make_speech(NEAR)
    )
    onsets = speech_onsets(cleaned)
    assert any(t_user - 0.1 <= t <= t_user + 1.5 for t in onsets), "the barge-in was lost"
    near, rate = read_wav(make_speech(NEAR))
    user_alone = level(resample_int16(near, rate, 16000))
    kept = level(joined(cleaned, t_user + 0.2, t_user + 1.2)) - user_alone
    assert kept > -10  # the user's voice is not suppressed along with the echo


async def test_half_duplex_gate_mutes_the_microphone_while_speaking(
    echo_rig: Rig, make_speech: SpeechMaker
) -> None:
    raw, cleaned, times, _ = await listen_while_speaking(
        HalfDuplexGate(tail_ms=300), make_speech(FAR), echo_rig
    )
    t_start, t_end = times["start"], times["end"]
    assert speech_onsets(raw)
    # Closed while sound plays; it may reopen in a pause longer than its tail, when
    # the room (here: the loopback) is quiet again.
    assert np.abs(joined(cleaned, t_start, t_end).astype(np.int32)).max() < 200
    assert speech_onsets(cleaned) == []
