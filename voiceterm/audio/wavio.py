"""WAV files: reading any common WAV, writing int16 WAVs, and WAV-backed audio devices.

- ``read_wav(path)`` -> ``(int16 mono samples, rate)`` for PCM 8/16/24/32-bit and
  float 32/64-bit WAVs, plain or WAVE_FORMAT_EXTENSIBLE, any channel count (mixed
  down to mono). Anything else raises ``AudioFileError`` with one clear sentence.
- ``write_wav(path, audio, rate)`` writes 16-bit mono.
- ``WavFileSource`` is an ``AudioSource`` (a microphone that plays a file).
- ``WavFileSink`` is an ``AudioSink`` (a speaker that records to a file), driven by
  the same ``PlaybackEngine`` as the real speaker (``voiceterm.audio.playback``), so
  the callbacks, tags and ``stop_now`` behave identically.

Clocks: in real-time mode both follow ``time.monotonic()`` like real devices. In fast
mode (``realtime=False``) nothing waits: each source frame is stamped as if it had
been captured the moment it is handed over (``t_start = now - duration``), and the
sink "plays" each chunk the moment it is queued. That virtual clock follows delivery,
so latencies measured from these stamps (speech end -> playback start) count the
pipeline's processing time only, never the file's own duration. ``AudioFrame.offset``
still gives each frame's true position in the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from voiceterm.audio.frames import CAPTURE_RATE, AudioFrame, PlaybackTag
from voiceterm.audio.playback import EngineSink, PlaybackEngine
from voiceterm.audio.resample import resample_int16
from voiceterm.errors import AudioFileError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Array = npt.NDArray[np.int16]

_PCM = 0x0001
_IEEE_FLOAT = 0x0003
_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {0x0002: "MS ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM"}
_CONVERT_HINT = "Convert it to 16-bit PCM, e.g. `sox in.wav -b 16 out.wav`."


def _damaged(path: Path, why: str) -> AudioFileError:
    return AudioFileError(
        f"{path} is not a readable WAV file ({why}).",
        hint="Check the file, or convert it with `sox in.any -b 16 out.wav`.",
    )


_WavFormat = tuple[int, int, int, int, int]  # format tag, channels, rate, block align, bits


def read_wav(path: str | Path) -> tuple[Int16Array, int]:
    """Read a WAV file as int16 mono.

    Args:
        path: the file.

    Returns:
        ``(samples, sample_rate)``; several channels are averaged into one, float and
        wider integer samples are scaled (and clipped) to 16 bits.

    Raises:
        AudioFileError: missing, unreadable, not a WAV, damaged, or an encoding other
            than PCM/float (ADPCM, mu-law, ...).
    """
    path = Path(path)
    data = _read_riff_wave(path)
    fmt, payload = _format_and_data(data, path)
    tag, channels, rate, _align, _bits = fmt
    width = _sample_width(fmt, path)
    frame_bytes = width * channels
    usable = len(payload) - len(payload) % frame_bytes
    return _decode_mono(payload[:usable], tag, width, channels), int(rate)


def _read_riff_wave(path: Path) -> bytes:
    """The file's bytes, once they are known to start like a little-endian WAV."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AudioFileError(
            f"The audio file {path} does not exist.", hint="Check the path."
        ) from None
    except IsADirectoryError:
        raise AudioFileError(
            f"{path} is a directory, not a WAV file.", hint="Check the path."
        ) from None
    except OSError as exc:
        raise AudioFileError(
            f"The audio file {path} cannot be read: {exc.strerror}.", hint="Check its permissions."
        ) from exc
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        raise AudioFileError(
            f"{path} is not a WAV file (no RIFF/WAVE header).",
            hint="Give a .wav file, or convert it with `sox in.any -b 16 out.wav`.",
        )
    if data[:4] == b"RIFX":
        raise AudioFileError(f"{path} is a big-endian (RIFX) WAV.", hint=_CONVERT_HINT)
    return data


def _format_and_data(data: bytes, path: Path) -> tuple[_WavFormat, bytes]:
    """Walk the RIFF chunks for the format and the audio data."""
    fmt: _WavFormat | None = None
    payload: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body_start = pos + 8
        if chunk_id == b"data":
            end = body_start + size
            # Recorders killed mid-write leave 0 or 0xFFFFFFFF here: take what exists.
            if size in (0, 0xFFFFFFFF) or end > len(data):
                end = len(data)
            payload = data[body_start:end]
            if fmt is not None:
                break
        elif chunk_id == b"fmt ":
            fmt = _format_chunk(data, body_start, size, path)
            if payload is not None:
                break
        pos = body_start + size + (size & 1)  # chunks are padded to even sizes
    if fmt is None:
        raise _damaged(path, "it has no format chunk")
    if payload is None:
        raise _damaged(path, "it has no audio data chunk")
    return fmt, payload


def _format_chunk(data: bytes, body_start: int, size: int, path: Path) -> _WavFormat:
    if size < 16 or body_start + 16 > len(data):
        raise _damaged(path, "its format chunk is cut short")
    tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", data, body_start)
    if tag == _EXTENSIBLE:
        if size < 40 or body_start + 26 > len(data):
            raise _damaged(path, "its extensible format chunk is cut short")
        (tag,) = struct.unpack_from("<H", data, body_start + 24)
    return (tag, channels, rate, align, bits)


def _sample_width(fmt: _WavFormat, path: Path) -> int:
    """Bytes per sample, once the format is one ``_decode_mono`` reads."""
    tag, channels, rate, align, bits = fmt
    if channels < 1 or rate < 1:
        raise _damaged(path, f"it claims {channels} channels at {rate} Hz")
    if tag not in (_PCM, _IEEE_FLOAT):
        name = _FORMAT_NAMES.get(tag, f"format code {tag:#06x}")
        raise AudioFileError(f"{path} uses the unsupported encoding {name}.", hint=_CONVERT_HINT)
    width = bits // 8 if bits % 8 == 0 else (bits + 7) // 8
    valid = (tag == _PCM and width in (1, 2, 3, 4)) or (tag == _IEEE_FLOAT and width in (4, 8))
    if not valid or (align and align != width * channels):
        kind = "float" if tag == _IEEE_FLOAT else "integer"
        raise AudioFileError(
            f"{path} uses {bits}-bit {kind} samples, which voiceterm cannot read.",
            hint=_CONVERT_HINT,
        )
    return width


def _decode_mono(raw: bytes, tag: int, width: int, channels: int) -> Int16Array:
    """Whole frames of PCM or float samples -> int16 mono (channels averaged)."""
    import numpy as np

    samples: npt.NDArray[np.float64] | npt.NDArray[np.int32]
    if tag == _IEEE_FLOAT:
        floats = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
        floats = np.nan_to_num(floats, nan=0.0, posinf=1.0, neginf=-1.0)
        samples = np.clip(np.round(floats * 32767.0), -32768, 32767)
    elif width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif width == 3:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        value = np.where(value & 0x800000, value - 0x1000000, value)
        samples = value >> 8
    else:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int32)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    mono: Int16Array = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    return mono


def write_wav(path: str | Path, audio: npt.ArrayLike, sample_rate: int) -> None:
    """Write mono audio as a 16-bit PCM WAV.

    Args:
        path: destination (its folder must exist).
        audio: int16 samples, or floats in [-1, 1] (scaled and clipped).
        sample_rate: samples per second.

    Raises:
        AudioFileError: the file cannot be written.
    """
    import numpy as np

    array = np.asarray(audio)
    if array.ndim != 1:
        array = array.reshape(-1)
    if array.dtype.kind == "f":
        array = np.clip(np.round(array * 32767.0), -32768, 32767)
    pcm = np.asarray(array, dtype="<i2")
    path = Path(path)
    try:
        # Open the file ourselves: wave.open(path) leaves a half-built writer behind
        # (and a warning from its __del__) when the path cannot be opened.
        with open(path, "wb") as handle, wave.open(handle, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(int(sample_rate))
            out.writeframes(pcm.tobytes())
    except OSError as exc:
        raise AudioFileError(
            f"Cannot write the audio file {path}: {exc.strerror or exc}.",
            hint="Check that its folder exists and is writable.",
        ) from exc


class WavFileSource:
    """An ``AudioSource`` that plays a WAV file as if it were a microphone.

    Args:
        path: any WAV ``read_wav`` accepts; resampled to 16 kHz mono.
        realtime: pace frames like a live microphone (default), or hand them over as
            fast as the consumer takes them (see the module docstring for the clock).
        block_ms: frame length (10, 20 or 30 ms suit webrtcvad).
        trailing_silence_s: silence appended after the file, as a microphone would
            keep hearing a quiet room, so a VAD can close the last utterance.

    Raises:
        AudioFileError: from ``start()``, when the file cannot be read.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = True,
        block_ms: int = 20,
        trailing_silence_s: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.block_ms = block_ms
        self.trailing_silence_s = trailing_silence_s
        self.muted = False
        self._audio: Int16Array | None = None
        self._closed = False

    @property
    def duration(self) -> float:
        """Seconds of audio this source yields (file plus trailing silence)."""
        return 0.0 if self._audio is None else len(self._audio) / CAPTURE_RATE

    def start(self) -> None:
        """Read and resample the file (raises ``AudioFileError`` if it is bad)."""
        import numpy as np

        audio, rate = read_wav(self.path)
        audio = resample_int16(audio, rate, CAPTURE_RATE)
        silence = np.zeros(int(self.trailing_silence_s * CAPTURE_RATE), dtype=np.int16)
        self._audio = np.concatenate((audio, silence))
        self._closed = False

    async def frames(self) -> AsyncIterator[AudioFrame]:
        """Yield the file in ``block_ms`` frames (the last one zero-padded)."""
        import numpy as np

        if self._audio is None:
            self.start()
        audio = self._audio
        assert audio is not None
        n = CAPTURE_RATE * self.block_ms // 1000
        frame_s = n / CAPTURE_RATE
        t0 = time.monotonic()
        for index, offset in enumerate(range(0, len(audio), n)):
            if self._closed:
                return
            samples = audio[offset : offset + n]
            if len(samples) < n:
                samples = np.concatenate((samples, np.zeros(n - len(samples), np.int16)))
            if self.muted:
                samples = np.zeros(n, dtype=np.int16)
            if self.realtime:
                # A microphone delivers a frame once its last sample has been captured.
                t_start = t0 + index * frame_s
                delay = t_start + frame_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # let the consumers run between frames
                t_start = time.monotonic() - frame_s
            yield AudioFrame(samples=np.ascontiguousarray(samples), t_start=t_start, offset=offset)

    def close(self) -> None:
        """Stop yielding frames."""
        self._closed = True


class WavFileSink(EngineSink):
    """An ``AudioSink`` that records what is "played" into a WAV file.

    Args:
        path: the WAV written by ``close()`` (16-bit mono at ``sample_rate``); ``None``
            keeps nothing, a speaker that only keeps time (for runs of hours, whose
            recording would grow by 44 kB a second).
        realtime: play on a simulated device clock (chunks take their real duration,
            silence is recorded wherever nothing played, ``stop_now`` cuts mid-chunk),
            or play every chunk the moment it is queued (fast mode: the file is the
            queued chunks back to back).
        sample_rate: the file's rate; chunks at other rates are resampled.
        block_ms: the simulated device's block (real-time mode).

    Attributes:
        on_started, on_tag_done, on_idle: as for ``Player``, called on the loop.
        underflows: always 0 (there is no device to starve); kept for the interface.
    """

    def __init__(
        self,
        path: str | Path | None,
        *,
        realtime: bool = True,
        sample_rate: int = 22050,
        block_ms: int = 10,
    ) -> None:
        super().__init__()
        self.path = None if path is None else Path(path)
        self.realtime = realtime
        self.block_ms = block_ms
        self.underflows = 0
        self._engine = PlaybackEngine(sample_rate, self._callbacks.post_soon)
        self._blocks: list[Int16Array] = []
        self._driver: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Begin recording; callbacks go to ``loop`` (default: the running loop)."""
        running = self._callbacks.bind_loop(loop)
        self._started = True
        if self.realtime and self._driver is None:
            self._driver = running.create_task(self._run_clock(), name="wav-sink-clock")

    async def _run_clock(self) -> None:
        """The simulated device: one block per ``block_ms``, just in time."""
        import numpy as np

        engine = self._require_engine()
        n = engine.sample_rate * self.block_ms // 1000
        block_s = n / engine.sample_rate
        t0 = time.monotonic()
        index = 0
        while not self._closed:
            t_block = t0 + index * block_s
            delay = t_block - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            out = np.zeros(n, dtype=np.int16)
            engine.fill(out, t_block)
            if self.path is not None:
                self._blocks.append(out)
            index += 1

    def enqueue(self, audio: Int16Array, sample_rate: int, tag: PlaybackTag) -> None:
        """Queue int16 mono audio; in fast mode it is "played" (recorded) at once."""
        import numpy as np

        if not self._started:
            raise RuntimeError("WavFileSink.start() must be called first")
        engine = self._require_engine()
        engine.enqueue(resample_int16(audio, sample_rate, self.sample_rate), tag)
        if self.realtime:
            return
        n = engine.sample_rate * self.block_ms // 1000
        while True:
            out = np.zeros(n, dtype=np.int16)
            written = engine.fill(out, time.monotonic())
            if written and self.path is not None:
                # The engine pads a short last block with zeros; fast mode keeps sound only.
                self._blocks.append(out[:written])
            if written < n:  # the queue ran dry: the engine has posted on_idle
                break

    def stop_now(self) -> float:
        """Drop what is queued; return the monotonic time at which sound ends."""
        if not self.realtime:
            return time.monotonic()
        return super().stop_now()

    def pause(self) -> float:
        """Hold playback (real-time mode; fast mode has already written everything)."""
        if not self.realtime:
            return time.monotonic()
        return super().pause()

    def recording(self) -> Int16Array:
        """Everything recorded so far, at ``sample_rate``."""
        import numpy as np

        if not self._blocks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._blocks)

    def close(self) -> None:
        """Stop the clock and write the WAV file (raises ``AudioFileError`` on failure)."""
        if self._closed:
            return
        self._closed = True
        if self._driver is not None:
            self._driver.cancel()
            self._driver = None
        with contextlib.suppress(Exception):
            super().stop_now()
        if self.path is not None:
            write_wav(self.path, self.recording(), self.sample_rate)
