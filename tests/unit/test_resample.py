"""Resampling (soxr) and sample-format conversion."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voiceterm.audio.resample import (
    StreamResampler,
    float32_to_int16,
    int16_to_float32,
    resample,
)


def tone(
    freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5
) -> npt.NDArray[np.int16]:
    t = np.arange(round(rate * seconds)) / rate
    return float32_to_int16((amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32))


def dominant_frequency(audio: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    return float(np.argmax(spectrum)) * rate / len(audio)


@pytest.mark.parametrize(("from_rate", "to_rate"), [(48000, 16000), (44100, 16000), (22050, 48000)])
def test_resample_keeps_pitch_length_and_dtype(from_rate: int, to_rate: int) -> None:
    audio = tone(440.0, from_rate)
    out = resample(audio, from_rate, to_rate)
    assert out.dtype == np.int16
    assert len(out) == to_rate  # one second stays one second
    assert dominant_frequency(np.asarray(out, dtype=np.int16), to_rate) == pytest.approx(440, abs=2)


def test_resample_removes_what_the_new_rate_cannot_hold() -> None:
    # A 12 kHz tone cannot exist at 16 kHz; a real resampler filters it out
    # instead of folding it down to 4 kHz.
    out = np.asarray(resample(tone(12000.0, 48000), 48000, 16000), dtype=np.int16)
    assert np.sqrt(np.mean(out.astype(np.float64) ** 2)) < 100


def test_resample_float32_and_same_rate() -> None:
    audio = int16_to_float32(tone(300.0, 16000))
    assert resample(audio, 16000, 8000).dtype == np.float32
    assert resample(audio, 16000, 16000) is audio


def test_resample_rejects_stereo() -> None:
    with pytest.raises(ValueError, match="mono"):
        resample(np.zeros((100, 2), dtype=np.int16), 48000, 16000)


def test_int16_float32_round_trip() -> None:
    audio = np.array([-32768, -1000, 0, 1000, 32767], dtype=np.int16)
    as_float = int16_to_float32(audio)
    assert as_float.dtype == np.float32
    assert as_float.min() >= -1.0 and as_float.max() < 1.0
    assert np.array_equal(float32_to_int16(as_float), audio)


def test_float32_to_int16_clips_instead_of_wrapping() -> None:
    loud = np.array([1.5, -1.5, 1.0, -1.0, 0.5], dtype=np.float32)
    assert float32_to_int16(loud).tolist() == [32767, -32768, 32767, -32768, 16384]


@pytest.mark.parametrize("chunk", [1, 160, 441, 4800])
def test_stream_resampler_matches_one_shot(chunk: int) -> None:
    audio = tone(440.0, 48000, seconds=0.5)
    stream = StreamResampler(48000, 16000)
    pieces = [stream.process(audio[i : i + chunk]) for i in range(0, len(audio), chunk)]
    out = np.concatenate([*pieces, stream.flush()]).astype(np.int16)
    assert abs(len(out) - 8000) <= 1
    assert dominant_frequency(out, 16000) == pytest.approx(440, abs=3)


def test_stream_resampler_adds_little_delay() -> None:
    # The filter delay adds straight to barge-in latency: the live default keeps it small.
    stream = StreamResampler(48000, 16000)
    stream.process(tone(440.0, 48000, seconds=0.1))
    assert 0 < stream.delay_s < 0.010


def test_stream_resampler_is_reusable_after_flush_and_passthrough() -> None:
    stream = StreamResampler(48000, 16000)
    first = np.concatenate([stream.process(tone(440.0, 48000)), stream.flush()])
    second = np.concatenate([stream.process(tone(440.0, 48000)), stream.flush()])
    assert len(first) == len(second) == 16000
    same = StreamResampler(16000, 16000)
    audio = tone(440.0, 16000)
    assert np.array_equal(same.process(audio), audio)
    assert same.delay_s == 0.0 and same.flush().size == 0
