"""WAV reading/writing and the WAV-backed source and sink (no sound card needed)."""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from voiceterm.audio.frames import AudioSink, AudioSource, PlaybackTag
from voiceterm.audio.wavio import WavFileSink, WavFileSource, read_wav, write_wav
from voiceterm.errors import AudioFileError, VoicetermError

RATE = 16000


def tone(
    seconds: float, rate: int = RATE, freq: float = 440.0, amp: float = 0.5
) -> npt.NDArray[np.float64]:
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def riff(
    fmt_tag: int, channels: int, rate: int, bits: int, payload: bytes, extensible: bool = False
) -> bytes:
    """A WAV file built by hand, so every layout is exactly what the test says."""
    width = bits // 8
    align = width * channels
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = (
            struct.pack(
                "<HHIIHHHHIH",
                0xFFFE,
                channels,
                rate,
                rate * align,
                align,
                bits,
                22,
                bits,
                0,
                fmt_tag,
            )
            + guid_tail
        )
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * align, align, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd-sized chunk, padded
    chunks += b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def encode(signal: npt.NDArray[np.float64], bits: int, is_float: bool) -> bytes:
    if is_float:
        return signal.astype("<f4" if bits == 32 else "<f8").tobytes()
    if bits == 8:
        return (np.round(signal * 127) + 128).astype(np.uint8).tobytes()
    if bits == 16:
        return np.round(signal * 32767).astype("<i2").tobytes()
    if bits == 24:
        ints = np.round(signal * 8388607).astype("<i4")
        return b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    return np.round(signal * 2147483647).astype("<i4").tobytes()


@pytest.mark.parametrize(
    ("bits", "is_float", "extensible"),
    [
        (8, False, False),
        (16, False, False),
        (24, False, False),
        (32, False, False),
        (32, True, False),
        (64, True, False),
        (24, False, True),
        (32, True, True),
    ],
)
def test_reads_every_common_sample_format_as_int16(
    tmp_path: Path, bits: int, is_float: bool, extensible: bool
) -> None:
    signal = tone(0.1)
    path = tmp_path / "x.wav"
    path.write_bytes(
        riff(3 if is_float else 1, 1, RATE, bits, encode(signal, bits, is_float), extensible)
    )
    audio, rate = read_wav(path)
    assert rate == RATE
    assert audio.dtype == np.int16
    assert len(audio) == len(signal)
    tolerance = 300 if bits == 8 else 2
    assert np.max(np.abs(audio.astype(np.int32) - np.round(signal * 32767))) <= tolerance


def test_stereo_is_mixed_down_to_mono(tmp_path: Path) -> None:
    left = tone(0.05, amp=0.4)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).reshape(-1)
    path = tmp_path / "stereo.wav"
    path.write_bytes(riff(1, 2, 44100, 16, encode(stereo, 16, False)))
    audio, rate = read_wav(path)
    assert rate == 44100
    assert len(audio) == len(left)
    assert np.max(np.abs(audio - np.round(left * 32767) / 2)) <= 1


def test_float_samples_beyond_full_scale_are_clipped(tmp_path: Path) -> None:
    path = tmp_path / "hot.wav"
    path.write_bytes(riff(3, 1, RATE, 32, np.array([2.0, -3.0, 0.5], dtype="<f4").tobytes()))
    audio, _ = read_wav(path)
    assert audio.tolist() == [32767, -32768, 16384]


def test_write_then_read_gives_the_same_samples(tmp_path: Path) -> None:
    samples = np.round(tone(0.2) * 32767).astype(np.int16)
    write_wav(tmp_path / "a.wav", samples, 22050)
    audio, rate = read_wav(tmp_path / "a.wav")
    assert rate == 22050
    assert np.array_equal(audio, samples)
    write_wav(tmp_path / "f.wav", np.array([0.5, -1.5]), RATE)  # floats are scaled and clipped
    assert read_wav(tmp_path / "f.wav")[0].tolist() == [16384, -32768]


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
@pytest.mark.parametrize(
    "args", [["-b", "24"], ["-e", "floating-point", "-b", "32"], ["-c", "2"], ["-b", "8"]]
)
def test_reads_what_sox_writes(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "sox.wav"
    subprocess.run(
        ["sox", "-n", "-r", "22050", *args, str(path), "synth", "0.3", "sine", "440", "vol", "0.5"],
        check=True,
    )
    audio, rate = read_wav(path)
    assert rate == 22050
    assert abs(len(audio) - int(0.3 * 22050)) <= 1
    peak = int(np.max(np.abs(audio.astype(np.int32))))
    assert 15000 < peak < 17500


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="does not exist"):
        read_wav(tmp_path / "nope.wav")


def test_a_directory_is_not_a_wav(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="is a directory"):
        read_wav(tmp_path)


def test_other_files_are_not_wavs(tmp_path: Path) -> None:
    path = tmp_path / "song.wav"
    path.write_bytes(b"ID3\x03\x00" + bytes(200))  # an MP3 renamed .wav
    with pytest.raises(AudioFileError, match="not a WAV file") as info:
        read_wav(path)
    assert info.value.hint  # every error says what to do


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"RIFF\x04\x00\x00\x00WAVE", "no format chunk"),
        (riff(1, 1, RATE, 16, b"\x00\x00")[: 12 + 8 + 10], "cut short"),
        (riff(1, 1, RATE, 16, b"").replace(b"data", b"junk"), "no audio data"),
        (riff(1, 0, RATE, 16, b"\x00\x00"), "0 channels"),
    ],
)
def test_damaged_wavs_give_one_clear_sentence(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=message):
        read_wav(path)


def test_unsupported_encodings_are_named(tmp_path: Path) -> None:
    path = tmp_path / "adpcm.wav"
    path.write_bytes(riff(0x0002, 1, 8000, 4 * 2, b"\x00" * 64))
    with pytest.raises(AudioFileError, match="MS ADPCM"):
        read_wav(path)
    path.write_bytes(riff(1, 1, 8000, 12, b"\x00" * 64))
    with pytest.raises(AudioFileError, match="12-bit"):
        read_wav(path)


def test_a_recording_cut_off_mid_write_still_reads(tmp_path: Path) -> None:
    data = riff(1, 1, RATE, 16, encode(tone(0.1), 16, False))
    path = tmp_path / "cut.wav"
    path.write_bytes(data[:-101])  # the header promises more than there is (and an odd byte)
    audio, _ = read_wav(path)
    assert len(audio) == (len(data) - 101 - 56) // 2


def test_unwritable_destination_is_an_audio_file_error(tmp_path: Path) -> None:
    with pytest.raises(VoicetermError, match="Cannot write"):
        write_wav(tmp_path / "no" / "such" / "dir.wav", np.zeros(10, np.int16), RATE)


# --- WavFileSource ------------------------------------------------------------------


async def collect_frames(source: WavFileSource) -> list[npt.NDArray[np.int16]]:
    source.start()
    return [frame.samples async for frame in source.frames()]


async def test_file_source_yields_16k_frames_of_the_whole_file(tmp_path: Path) -> None:
    signal = np.round(tone(1.0, rate=48000) * 32767).astype(np.int16)
    write_wav(tmp_path / "in.wav", signal, 48000)
    source = WavFileSource(tmp_path / "in.wav", realtime=False, block_ms=20, trailing_silence_s=0.5)
    assert isinstance(source, AudioSource)
    source.start()
    frames = [frame async for frame in source.frames()]
    assert all(len(f.samples) == 320 and f.samples.dtype == np.int16 for f in frames)
    assert len(frames) == 75  # 1.0 s of file + 0.5 s of silence, in 20 ms frames
    assert [f.offset for f in frames[:3]] == [0, 320, 640]
    audio = np.concatenate([f.samples for f in frames])
    assert np.sqrt(np.mean(audio[:16000].astype(float) ** 2)) > 11000  # the 0.5 FS tone, resampled
    assert not audio[16100:].any()  # then the silence
    times = [f.t_start for f in frames]
    assert times == sorted(times)


async def test_realtime_file_source_is_paced_like_a_microphone(tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", np.zeros(1600, np.int16), RATE)  # 0.1 s
    source = WavFileSource(tmp_path / "in.wav", realtime=True, trailing_silence_s=0.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    frames = await collect_frames(source)
    assert len(frames) == 5
    assert loop.time() - t0 >= 0.099  # it took as long as the audio lasts


async def test_muted_file_source_gives_silence(tmp_path: Path) -> None:
    write_wav(tmp_path / "in.wav", np.full(3200, 1000, np.int16), RATE)
    source = WavFileSource(tmp_path / "in.wav", realtime=False, trailing_silence_s=0.0)
    source.muted = True
    frames = await collect_frames(source)
    assert len(frames) == 10 and not np.concatenate(frames).any()


async def test_file_source_reports_a_bad_file_on_start(tmp_path: Path) -> None:
    source = WavFileSource(tmp_path / "missing.wav")
    with pytest.raises(AudioFileError):
        source.start()


# --- WavFileSink ---------------------------------------------------------------------


class Recorder:
    """Collects the sink's callbacks in order."""

    def __init__(self, sink: WavFileSink) -> None:
        self.events: list[tuple[str, object, float]] = []
        sink.on_started = lambda tag, t: self.events.append(("started", tag, t))
        sink.on_tag_done = lambda tag, t: self.events.append(("done", tag, t))
        sink.on_idle = lambda t: self.events.append(("idle", None, t))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]


def speech_like(
    seconds: float, rate: int = 22050, lead_silence: float = 0.0
) -> npt.NDArray[np.int16]:
    body = np.round(tone(seconds, rate=rate, freq=300) * 20000).astype(np.int16)
    return np.concatenate((np.zeros(int(lead_silence * rate), np.int16), body))


async def test_fast_sink_writes_chunks_back_to_back_and_reports_them(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "out.wav", realtime=False)
    assert isinstance(sink, AudioSink)
    rec = Recorder(sink)
    sink.start()
    a, b = PlaybackTag(1, 0, "Hello."), PlaybackTag(1, 1, "World.")
    sink.enqueue(speech_like(0.2, lead_silence=0.05), 22050, a)
    sink.enqueue(speech_like(0.1, rate=16000), 16000, b)  # resampled to the sink's rate
    await asyncio.sleep(0)
    sink.close()
    audio, rate = read_wav(tmp_path / "out.wav")
    assert rate == 22050
    assert abs(len(audio) - int(0.35 * 22050)) <= 2
    assert rec.kinds() == ["started", "done", "idle", "done", "idle"]  # started once per turn
    assert rec.events[0][1] == a and rec.events[3][1] == b


async def test_realtime_sink_plays_in_real_time_and_stop_now_cuts(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "out.wav", realtime=True, block_ms=10)
    rec = Recorder(sink)
    sink.start()
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    t_enqueue = loop.time()
    tag = PlaybackTag(7, 0, "A long sentence that gets cut off.")
    sink.enqueue(speech_like(2.0, lead_silence=0.1), 22050, tag)
    await asyncio.sleep(0.4)
    position = sink.position()
    assert position is not None and position.tag == tag
    assert 0.2 < position.seconds < 0.6
    t_end = sink.stop_now()
    await asyncio.sleep(0.1)
    assert not sink.busy
    sink.close()
    started = [t for kind, _, t in rec.events if kind == "started"]
    assert len(started) == 1
    assert started[0] >= t_enqueue + 0.1  # after the chunk's leading silence
    assert rec.kinds()[-1] == "idle" and "done" not in rec.kinds()
    assert rec.events[-1][2] == pytest.approx(t_end, abs=0.011)
    audio, _ = read_wav(tmp_path / "out.wav")
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 1000)
    heard = (loud[-1] - loud[0]) / 22050
    assert 0.2 < heard < 0.6  # cut about where stop_now was called, not 2 s later
    assert len(audio) / 22050 > 0.5  # silence was recorded around it


async def test_sink_needs_start_first(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "out.wav")
    with pytest.raises(RuntimeError):
        sink.enqueue(np.zeros(10, np.int16), 22050, PlaybackTag(1))
