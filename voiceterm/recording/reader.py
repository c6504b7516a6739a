"""Reading a recording: its settings, its events (as a timeline), its audio."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceterm.bus import Message
from voiceterm.recording import format as fmt
from voiceterm.recording.events_io import from_record, read_record_batches, read_records

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import numpy as np
    import numpy.typing as npt

    from voiceterm.timeline import Timeline

    Int16Array = npt.NDArray[np.int16]


TIMELINE_EVENTS = frozenset(
    {
        "UserStartedSpeaking",
        "UserStoppedSpeaking",
        "UserTranscriptionPartial",
        "UserTranscriptionReceived",
        "AgentResponse",
        "AgentGenerationComplete",
        "AgentSentence",
        "AgentAudioChunk",
        "AgentStartedSpeaking",
        "AgentStoppedSpeaking",
        "AgentSpeechSent",
        "AgentInterrupted",
        "AgentError",
        "ToolCall",
        "ToolResult",
        "LogMetric",
        "TurnMark",
        "StageSpan",
    }
)
"""The event types a timeline is built from (the others are not even parsed)."""


@dataclass(slots=True)
class Anchor:
    """Audio frame ``frame`` was captured at monotonic time ``t``."""

    frame: int
    t: float
    block: int = 0
    """Samples per block the microphone delivered from here (0: not recorded)."""


@dataclass(slots=True)
class Recording:
    """An opened recording folder (see :mod:`voiceterm.recording` for the layout)."""

    folder: Path
    meta: dict[str, Any]
    anchors: list[Anchor] = field(default_factory=list)

    @classmethod
    def open(cls, folder: Path) -> Recording:
        """Open ``folder``.

        Raises:
            RecordingError: not a recording, or a newer format version.
        """
        meta = fmt.read_session(folder)
        anchors = []
        for record in read_records(_read_text(folder / fmt.CLOCK)):
            if isinstance(record.get("frame"), int):
                block = record.get("block", 0)
                anchors.append(
                    Anchor(
                        record["frame"], float(record["t"]), block if isinstance(block, int) else 0
                    )
                )
        return cls(folder, meta, anchors)

    @property
    def settings(self) -> dict[str, Any]:
        settings = self.meta.get("settings", {})
        return settings if isinstance(settings, dict) else {}

    @property
    def clock_offset(self) -> float:
        return float(self.meta.get("clock_offset", 0.0))

    @property
    def block_ms(self) -> int | None:
        """The microphone's block when recorded, in ms (the VAD sees the same blocks)."""
        blocks = [a.block for a in self.anchors if a.block > 0]
        return 1000 * blocks[0] // fmt.SAMPLE_RATE if blocks else None

    @property
    def complete(self) -> bool:
        """Whether the session ended normally (not killed)."""
        return "ended_wall" in self.meta

    # --- events ---------------------------------------------------------------------------

    def messages(self, types: frozenset[str] | None = None) -> list[Message]:
        """Every recorded bus message (of ``types``: all), in the order it was broadcast."""
        return _messages(read_records(_read_text(self.folder / fmt.EVENTS), types))

    def message_batches(self, types: frozenset[str] | None = None) -> Iterator[list[Message]]:
        """``messages`` a few thousand at a time, each batch read only when asked for."""
        for records in read_record_batches(_read_text(self.folder / fmt.EVENTS), types):
            yield _messages(records)

    def empty_timeline(self, max_turns: int = 100_000) -> Timeline:
        """A timeline on the session's clock, with room for every turn, to read events into."""
        from voiceterm.timeline import Timeline

        return Timeline(max_turns, clock_offset=self.clock_offset)

    def timeline(self, max_turns: int = 100_000) -> Timeline:
        """The session's timeline, rebuilt from its events."""
        timeline = self.empty_timeline(max_turns)
        for message in self.messages(TIMELINE_EVENTS):
            timeline.record(message)
        return timeline

    # --- audio ------------------------------------------------------------------------------

    def _segments(self) -> list[tuple[Path, int | None]]:
        """Each segment's file and its expected length (None: unknown, a killed session's)."""
        expected: dict[int, int] = {}
        for record in read_records(_read_text(self.folder / fmt.AUDIO_INDEX)):
            expected[int(record["segment"])] = int(record["frames"])
        segments: list[tuple[Path, int | None]] = []
        index = 0
        while True:
            flac = self.folder / fmt.segment_name(index, "flac")
            pcm = self.folder / fmt.segment_name(index, "pcm")
            if pcm.exists():  # encoding never finished: the raw segment is the true one
                segments.append((pcm, None))
            elif flac.exists():
                segments.append((flac, expected.get(index)))
            else:
                break
            index += 1
        return segments

    def audio(self) -> Int16Array:
        """All audio as ``(frames, 2)`` int16: microphone, speaker.

        Raises:
            RecordingError: a segment is cut short or damaged.
        """
        import numpy as np

        parts = [self._read_segment(path, frames) for path, frames in self._segments()]
        if not parts:
            return np.zeros((0, 2), dtype=np.int16)
        return np.concatenate(parts)

    def _read_segment(self, path: Path, frames: int | None) -> Int16Array:
        import numpy as np
        import soundfile

        if path.suffix == ".pcm":
            raw = path.read_bytes()
            return np.frombuffer(raw[: len(raw) - len(raw) % 4], dtype="<i2").reshape(-1, 2)
        try:
            audio, rate = soundfile.read(path, dtype="int16", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
            raise _truncated(path, str(exc)) from exc
        if frames is not None and len(audio) != frames:
            raise _truncated(path, f"{len(audio)} of its {frames} frames are there")
        if rate != fmt.SAMPLE_RATE or audio.shape[1] != 2:
            raise _truncated(path, f"{audio.shape[1]} channels at {rate} Hz")
        return np.asarray(audio, dtype=np.int16)

    def frame_at(self, t: float) -> int:
        """The audio frame captured at monotonic time ``t`` (by the nearest anchor before)."""
        anchor = Anchor(0, self.anchors[0].t) if self.anchors else Anchor(0, 0.0)
        for candidate in self.anchors:
            if candidate.t > t:
                break
            anchor = candidate
        return max(0, anchor.frame + round((t - anchor.t) * fmt.SAMPLE_RATE))

    def times(self, frames: int) -> Any:
        """The monotonic capture time of each of the first ``frames`` frames."""
        import numpy as np

        index = np.arange(frames, dtype=np.float64)
        anchors = self.anchors or [Anchor(0, 0.0)]
        out = anchors[0].t + (index - anchors[0].frame) / fmt.SAMPLE_RATE
        for anchor in anchors[1:]:
            out[anchor.frame :] = (
                anchor.t + (index[anchor.frame :] - anchor.frame) / fmt.SAMPLE_RATE
            )
        return out

    def clip(self, start_t: float, end_t: float, channel: int) -> Int16Array:
        """One channel's audio between two monotonic times (segments read as needed)."""
        import numpy as np
        import soundfile

        start, end = self.frame_at(start_t), self.frame_at(end_t)
        pieces = []
        offset = 0
        for path, _frames in self._segments():
            if path.suffix == ".pcm":
                length = path.stat().st_size // 4
            else:
                length = soundfile.info(str(path)).frames
            lo, hi = max(start, offset), min(end, offset + length)
            if lo < hi:
                if path.suffix == ".pcm":
                    part = self._read_segment(path, None)[lo - offset : hi - offset]
                else:
                    part, _rate = soundfile.read(
                        path, start=lo - offset, stop=hi - offset, dtype="int16", always_2d=True
                    )
                pieces.append(np.asarray(part[:, channel], dtype=np.int16))
            offset += length
            if offset >= end:
                break
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)


def _truncated(path: Path, why: str) -> Exception:
    return fmt.RecordingError(
        f"The recording's audio {path} is truncated or damaged ({why}).",
        hint="A recording whose audio was cut cannot be replayed; `voiceterm view` still "
        "shows its events.",
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise fmt.RecordingError(f"{path} cannot be read: {exc.strerror}.") from exc


def load_json(path: Path) -> Any:
    return json.loads(_read_text(path))


def _messages(records: Iterable[dict[str, Any]]) -> list[Message]:
    """The bus messages the records stood for (those of types this voiceterm knows)."""
    messages = (from_record(record) for record in records)
    return [message for message in messages if message is not None]
