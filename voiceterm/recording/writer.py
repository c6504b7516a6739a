"""Writing one recording: audio segments, events, clock anchors, settings, the talk.

Everything runs on the event loop except FLAC encoding, which a single worker
thread does once a segment is full (a minute of audio encodes in ~20 ms). The
loop's part per 10 ms block is an append to a buffered file; it is flushed twice
a second, events as they come.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceterm.bus import Message
from voiceterm.recording import format as fmt
from voiceterm.recording.events_io import to_line

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Array = npt.NDArray[np.int16]

logger = logging.getLogger(__name__)

_FLUSH_FRAMES = fmt.SAMPLE_RATE // 2  # audio reaches the disk every half second
_ANCHOR_SLIP_S = 0.02  # a block this far from where the last one ended is a new anchor


def encode_segment(folder: Path, index: int) -> int:
    """Turn a full ``.pcm`` segment into FLAC; return its length in frames."""
    import numpy as np
    import soundfile

    pcm = folder / fmt.segment_name(index, "pcm")
    flac = folder / fmt.segment_name(index, "flac")
    tmp = folder / (flac.name + ".tmp")
    raw = pcm.read_bytes()
    audio = np.frombuffer(raw[: len(raw) - len(raw) % 4], dtype="<i2").reshape(-1, 2)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    soundfile.write(tmp, audio, fmt.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(tmp, flac)
    with fmt.open_private(folder / fmt.AUDIO_INDEX) as index_file:
        index_file.write(json.dumps({"segment": index, "frames": len(audio)}) + "\n")
    pcm.unlink()
    return len(audio)


class SessionWriter:
    """One recording folder being written.

    Args:
        folder: a new (or empty) folder; created ``0700``.
        meta: what ``session.json`` says besides the format (settings, models ...).
    """

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        fmt.make_private_dir(folder)
        self.folder = folder
        self._meta = {
            "format": fmt.FORMAT_NAME,
            "version": fmt.FORMAT_VERSION,
            "sample_rate": fmt.SAMPLE_RATE,
            "channels": list(fmt.CHANNELS),
            "segment_s": fmt.SEGMENT_S,
            "started_wall": time.time(),
            "clock_offset": time.time() - time.monotonic(),
            **meta,
        }
        fmt.write_private(folder / fmt.SESSION, json.dumps(self._meta, indent=1, default=str))
        self._events = fmt.open_private(folder / fmt.EVENTS)
        self._clock = fmt.open_private(folder / fmt.CLOCK)
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flac")
        self._encoding: list[Future[int]] = []
        self._segment = 0
        self._segment_frames = 0
        self._unflushed = 0
        self._pending: list[tuple[Int16Array, Int16Array]] = []
        self._pcm: Any = None
        self.frames = 0
        """Audio frames (sample pairs) written so far."""
        self._next_t: float | None = None
        self.closed = False

    # --- audio --------------------------------------------------------------------------

    def audio(self, mic: Int16Array, speaker: Int16Array, t_start: float) -> None:
        """One block: the microphone's samples and the speaker's, of the same length.

        Blocks are kept in memory and written together every half second: per block
        this is a list append, which keeps recording's idle cost low.
        """
        if self.closed:
            return
        n = len(mic)
        if self._next_t is None or abs(t_start - self._next_t) > _ANCHOR_SLIP_S:
            anchor = {"frame": self.frames, "t": t_start, "block": n}
            self._clock.write(json.dumps(anchor) + "\n")
            self._clock.flush()
        self._next_t = t_start + n / fmt.SAMPLE_RATE
        self._pending.append((mic, speaker))
        self._unflushed += n
        self.frames += n
        if self._unflushed >= _FLUSH_FRAMES:
            self.flush()

    def flush(self) -> None:
        """Write the blocks kept so far to the current segment (and start the next one)."""
        import numpy as np

        if not self._pending:
            return
        pairs = np.empty((self._unflushed, 2), dtype="<i2")
        pairs[:, 0] = np.concatenate([mic for mic, _ in self._pending])
        pairs[:, 1] = np.concatenate([speaker for _, speaker in self._pending])
        self._pending.clear()
        self._unflushed = 0
        while len(pairs):
            if self._pcm is None:
                name = fmt.segment_name(self._segment, "pcm")
                self._pcm = fmt.open_private(self.folder / name, "ab")
            take = min(len(pairs), fmt.SEGMENT_FRAMES - self._segment_frames)
            self._pcm.write(pairs[:take].tobytes())
            self._segment_frames += take
            pairs = pairs[take:]
            if self._segment_frames >= fmt.SEGMENT_FRAMES:
                self._finish_segment()
        if self._pcm is not None:
            self._pcm.flush()

    def _finish_segment(self) -> None:
        self._pcm.close()
        self._pcm = None
        self._encoding = [f for f in self._encoding if not f.done()]
        self._encoding.append(self._encoder.submit(encode_segment, self.folder, self._segment))
        self._segment += 1
        self._segment_frames = 0

    # --- events and the talk ---------------------------------------------------------------

    def event(self, message: Message, turn: int) -> None:
        """Append one bus message, flushed at once (a kill keeps it)."""
        if self.closed:
            return
        self._events.write(to_line(message, turn))
        self._events.flush()

    def talk(self, markdown: str) -> None:
        if not self.closed:
            fmt.write_private(self.folder / fmt.TALK, markdown)

    def close(self, markdown: str | None = None) -> None:
        """Finish the last segment and write the end into ``session.json``."""
        if self.closed:
            return
        if markdown is not None:
            self.talk(markdown)
        self.flush()
        self.closed = True
        if self._pcm is not None:
            self._finish_segment()
        self._encoder.shutdown(wait=True)
        for future in self._encoding:
            error = future.exception()
            if error is not None:
                logger.error("recording: a segment was not encoded (%s); its .pcm is kept", error)
        self._events.close()
        self._clock.close()
        self._meta["ended_wall"] = time.time()
        self._meta["frames"] = self.frames
        fmt.write_private(self.folder / fmt.SESSION, json.dumps(self._meta, indent=1, default=str))
