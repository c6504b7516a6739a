"""The file-based figure beside the live one: benchmarks.voice's streaming turn, same clips."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from benchmarks import voice
from benchmarks.live.figures import Report
from benchmarks.rig import Utterance
from voiceterm.audio.wavio import write_wav
from voiceterm.config import Config
from voiceterm.pipeline.headless import format_turn_timings
from voiceterm.pipeline.loading import Engines


def file_config(max_tokens: int, temperature: float | None) -> Config:
    """The live app's defaults, with the bench's answer cap and temperature."""
    config = Config()
    config.llm.max_tokens = max_tokens
    if temperature is not None:
        config.llm.temperature = temperature
    return config


def file_based_v2v(
    config: Config, engines: Engines, clips: list[Utterance], report: Report
) -> None:
    """bench_voice.py's streaming turn on the same clips (WAV in, WAV out, real time).

    Each clip is a fresh conversation: the history is cleared after every turn.
    """
    for index, clip in enumerate(clips):
        report.file_v2v.add(file_figure("file", index, clip, fresh_turn(config, engines, clip)))


def fresh_turn(config: Config, engines: Engines, clip: Utterance) -> dict[str, float]:
    """bench_voice.py's streaming turn on one clip, a fresh conversation; its marks."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "question.wav"
        write_wav(wav, clip.audio, clip.rate)
        marks: dict[str, float] = asyncio.run(
            voice.streaming_turn(config, engines, wav, Path(tmp) / "answer.wav")
        )
    return marks


def file_figure(label: str, index: int, clip: Utterance, marks: dict[str, float]) -> float | None:
    """Voice-to-voice of a file-based turn from its marks (None: no answer), printed."""
    if "speech_end" not in marks or "playback_start" not in marks:
        print(f"  {label} {index:2d}    no answer  {clip.text[:50]!r}", flush=True)
        return None
    value = marks["playback_start"] - marks["speech_end"]
    print(f"  {label} {index:2d} {1000 * value:6.0f} ms  {clip.text[:50]!r}", flush=True)
    print(f"      | {format_turn_timings(marks)}", flush=True)
    return value
