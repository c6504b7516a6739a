"""Device listing and the microphone, through real PortAudio and the PulseAudio rig."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tests.audio.conftest import DEVICE, Rig, SpeechMaker, best_correlation
from voiceterm.audio.frames import AudioFrame, AudioSource
from voiceterm.audio.microphone import MicrophoneSource
from voiceterm.audio.portaudio import find_device, list_devices
from voiceterm.audio.resample import resample_int16
from voiceterm.audio.wavio import read_wav
from voiceterm.errors import AudioDeviceError

pytestmark = pytest.mark.audio

FRAME = 320  # 20 ms at 16 kHz


def test_lists_the_rig_devices_for_voiceterm_devices(rig: Rig) -> None:
    devices = list_devices()
    assert DEVICE in [d.name for d in devices.inputs]
    assert DEVICE in [d.name for d in devices.outputs]
    text = devices.format()
    assert "Inputs (microphones):" in text and "Outputs (speakers):" in text
    assert DEVICE in text


def test_devices_are_found_by_name_or_index_and_bad_choices_explain_themselves(rig: Rig) -> None:
    by_name = find_device("PULSE", "input")
    assert by_name.name == DEVICE
    assert find_device(by_name.index, "input") == by_name
    assert find_device(str(by_name.index), "output").name == DEVICE
    assert find_device(None, "output").max_output_channels > 0

    with pytest.raises(AudioDeviceError, match="No input \\(microphone\\) device matches") as info:
        find_device("no such microphone", "input")
    assert DEVICE in str(info.value)  # it names the choices
    assert "voiceterm devices" in info.value.hint
    with pytest.raises(AudioDeviceError, match="matches several"):
        find_device("l", "input")  # in both "pulse" and "default"
    with pytest.raises(AudioDeviceError, match="no output \\(speaker\\) device with index 999"):
        find_device(999, "output")


async def test_opening_a_missing_microphone_fails_at_once_with_a_hint(rig: Rig) -> None:
    mic = MicrophoneSource(device="no such microphone")
    with pytest.raises(AudioDeviceError) as info:
        mic.start()
    assert info.value.hint


async def capture_while(mic: MicrophoneSource, seconds: float) -> list[AudioFrame]:
    frames: list[AudioFrame] = []

    async def collect() -> None:
        async for frame in mic.frames():
            frames.append(frame)

    task = asyncio.create_task(collect())
    await asyncio.sleep(seconds)
    mic.close()
    await asyncio.wait_for(task, timeout=5)
    return frames


def loud_frames(frames: list[AudioFrame], threshold: float = 500.0) -> list[AudioFrame]:
    return [f for f in frames if np.sqrt(np.mean(f.samples.astype(np.float64) ** 2)) > threshold]


@pytest.mark.parametrize("device_rate", [None, 48000], ids=["16k", "48k-resampled"])
async def test_microphone_hears_speech_played_into_the_mic_sink(
    rig: Rig, speech_wav: Path, device_rate: int | None
) -> None:
    speech, rate = read_wav(speech_wav)
    reference = resample_int16(speech, rate, 16000)
    mic = MicrophoneSource(device=DEVICE, sample_rate=device_rate, block_ms=20)
    assert isinstance(mic, AudioSource)
    mic.start()
    assert mic.device_rate == (device_rate or 16000)
    await asyncio.sleep(0.5)  # the first stream of a process can take a moment to flow
    t_play = time.monotonic()
    player = rig.play_into_mic(speech_wav)
    frames = await capture_while(mic, len(speech) / rate + 1.5)
    player.wait(timeout=5)

    assert frames, "the microphone delivered nothing"
    assert all(len(f.samples) == FRAME and f.samples.dtype == np.int16 for f in frames)
    assert [f.offset for f in frames] == [i * FRAME for i in range(len(frames))]
    starts = np.array([f.t_start for f in frames])
    assert np.all(np.diff(starts) > 0.015) and np.all(np.diff(starts) < 0.025)  # a steady clock

    loud = loud_frames(frames)
    speech_loud = np.flatnonzero(np.abs(reference.astype(np.int32)) > 1000)
    speech_span = (speech_loud[-1] - speech_loud[0]) / 16000
    heard_span = loud[-1].t_end - loud[0].t_start
    assert abs(heard_span - speech_span) < 0.2  # energy exactly where the speech is
    onset = loud[0].t_start - (t_play + speech_loud[0] / 16000)
    assert -0.05 < onset < 0.5  # stamped in monotonic time, just after paplay began

    captured = np.concatenate([f.samples for f in frames])
    assert best_correlation(captured, reference) > 0.8  # the same waveform, not just noise
    assert mic.overflows == 0 and mic.dropped == 0


async def test_a_relaxed_microphone_still_delivers_every_block_on_time(
    rig: Rig, speech_wav: Path
) -> None:
    # Relaxed, it wakes the loop once per three 10 ms blocks: fewer wake-ups, same audio.
    speech, rate = read_wav(speech_wav)
    mic = MicrophoneSource(device=DEVICE, block_ms=10)
    mic.start()
    mic.relaxed = True
    await asyncio.sleep(0.5)
    t_play = time.monotonic()
    player = rig.play_into_mic(speech_wav)
    frames = await capture_while(mic, len(speech) / rate + 1.0)
    player.wait(timeout=5)
    assert [f.offset for f in frames] == [i * 160 for i in range(len(frames))]
    starts = np.array([f.t_start for f in frames])
    assert np.all(np.diff(starts) > 0.007) and np.all(np.diff(starts) < 0.013)
    loud = loud_frames(frames)
    assert loud, "the speech was not heard"
    assert -0.05 < loud[0].t_start - t_play < 0.5
    assert mic.overflows == 0 and mic.dropped == 0


async def test_muted_microphone_keeps_the_clock_but_sends_silence(
    rig: Rig, speech_wav: Path
) -> None:
    mic = MicrophoneSource(device=DEVICE)
    mic.start()
    mic.muted = True
    player = rig.play_into_mic(speech_wav)
    frames = await capture_while(mic, 1.5)
    player.wait(timeout=5)
    assert len(frames) > 25
    assert not np.concatenate([f.samples for f in frames]).any()


@pytest.mark.models
async def test_speech_captured_by_the_microphone_transcribes_right(
    rig: Rig, make_speech: SpeechMaker
) -> None:
    from faster_whisper import WhisperModel

    from voiceterm.modelstore import resolve_model

    # A sentence tiny.en transcribes exactly from espeak's own file, so a mistake
    # here would come from the capture path (its "quick brown fox" is not reliable).
    text = "Please open the window and turn on the light."
    wav = make_speech(text)
    mic = MicrophoneSource(device=DEVICE, sample_rate=44100)  # a rate that needs resampling
    mic.start()
    await asyncio.sleep(0.3)
    player = rig.play_into_mic(wav)
    frames = await capture_while(mic, 3.5)
    player.wait(timeout=5)
    audio = np.concatenate([f.samples for f in frames]).astype(np.float32) / 32768.0

    model = WhisperModel(str(resolve_model("stt").path), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(audio, language="en", beam_size=5)
    heard = " ".join(s.text for s in segments).strip()
    assert heard == text


async def test_microphone_reports_a_vanished_device_and_reopens_it_when_it_returns(
    rig: Rig,
) -> None:
    """A second sound server goes away mid-capture, then comes back."""
    other = Rig(Path(tempfile.mkdtemp(prefix="vt-rig-lost-")))
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in other.run("start").splitlines()
    )
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # PortAudio's pulse plugin reads these at each open
    errors: list[AudioDeviceError] = []
    restored = asyncio.Event()
    mic = MicrophoneSource(device=DEVICE, on_error=errors.append, on_restored=restored.set)
    frames: list[AudioFrame] = []

    async def collect() -> None:
        async for frame in mic.frames():
            frames.append(frame)

    try:
        mic.start()
        task = asyncio.create_task(collect())
        for _ in range(100):  # wait for audio to flow (the first stream can be slow)
            if frames:
                break
            await asyncio.sleep(0.05)
        assert frames
        await asyncio.to_thread(other.run, "stop")
        for _ in range(100):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert errors and "stopped delivering audio" in errors[0].message
        assert "reopen" in errors[0].hint
        await asyncio.to_thread(other.run, "start")
        await asyncio.wait_for(restored.wait(), timeout=15)
        count = len(frames)
        for _ in range(100):
            if len(frames) > count + 5:
                break
            await asyncio.sleep(0.05)
        assert len(frames) > count + 5, "capture did not resume after the device came back"
        mic.close()
        await asyncio.wait_for(task, timeout=5)
    finally:
        mic.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        other.run("stop")
        shutil.rmtree(other.rig_dir, ignore_errors=True)
