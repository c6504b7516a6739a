"""Voice-to-voice latency: the streaming pipeline against a naive sequential one.

For each test utterance, in one run on the same loaded engines:

* streaming: the real pipeline in real-time file mode (``VoiceAgent`` on a
  ``WavFileSource``/``WavFileSink`` pair). Voice-to-voice is ``playback_start -
  speech_end``: from the last voiced input sample to the first audible output
  sample, so it includes the VAD's end-of-speech wait.
* baseline: the same end-of-speech wait, then the whole utterance transcribed
  with stock faster-whisper (padded to 30 s), the whole reply generated (no prompt
  cache), the whole reply synthesized, and only then the first audible sample.

Usage: ``.venv/bin/python scripts/bench_voice.py [--utterances N]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.speech import speech_corpus  # noqa: E402
from voiceterm.audio.wavio import WavFileSink, WavFileSource, write_wav  # noqa: E402
from voiceterm.bridge import Bridge  # noqa: E402
from voiceterm.bus import Message  # noqa: E402
from voiceterm.config import Config  # noqa: E402
from voiceterm.events import TurnMark  # noqa: E402
from voiceterm.pipeline.agent import Engines, VoiceAgent, load_engines  # noqa: E402

RATE = 16000
AUDIBLE = 328


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def streaming_turn(
    config: Config, engines: Engines, wav: Path, out: Path
) -> dict[str, float]:
    marks: dict[str, float] = {}

    def collect(message: Message) -> None:
        event = message.event
        if isinstance(event, TurnMark) and event.name not in marks:
            marks[event.name] = event.at

    agent = VoiceAgent(
        config,
        source=WavFileSource(wav, realtime=True),
        sink=WavFileSink(out, realtime=True),
        engines=engines,
    )
    collector = Bridge("bench", queue_size=4096)
    collector.on(TurnMark).map(collect)
    agent.bus.register_bridge(collector)
    try:
        await agent.start()
        await agent.wait_until_quiet()
    finally:
        await agent.stop()
    if engines.llm is not None and agent.llm_node is not None:
        agent.llm_node.clear_context()
    return marks


def baseline_turn(
    config: Config, engines: Engines, padded: Any, text_in: np.ndarray
) -> dict[str, float]:
    from voiceterm.nodes import ReasoningNode

    wait = config.vad.hangover_ms / 1000
    # A naive pipeline keeps no prompt cache: drop the KV state the streaming run left.
    engines.llm.reset()
    t0 = time.monotonic()
    transcript = padded.transcribe(text_in).text
    t_stt = time.monotonic()
    node = ReasoningNode(system_prompt=config.llm.system_prompt)
    from voiceterm.events import UserTranscriptionReceived

    node.add_event(UserTranscriptionReceived(content=transcript or "Hello."))
    messages = node.format_for_llm(node.conversation_events)
    reply = "".join(
        engines.llm.stream_chat(messages, threading.Event(), max_tokens=config.llm.max_tokens)
    )
    t_llm = time.monotonic()
    audio = engines.tts.synthesize_all(reply or "Okay.")
    t_tts = time.monotonic()
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > AUDIBLE)
    lead = (loud[0] / engines.tts.sample_rate) if len(loud) else 0.0
    return {
        "v2v": wait + (t_tts - t0) + lead,
        "stt": t_stt - t0,
        "llm": t_llm - t_stt,
        "tts": t_tts - t_llm,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=12)
    args = parser.parse_args()
    config = Config()
    print("loading models ...", flush=True)
    engines = load_engines(config)
    from voiceterm.engines.stt import WhisperTranscriber
    from voiceterm.modelstore import resolve_model

    padded = WhisperTranscriber(resolve_model("stt").path, pad_to_30s=True)
    corpus = speech_corpus()[: args.utterances]
    streaming: list[float] = []
    baseline: list[float] = []
    stages: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, item in enumerate(corpus):
            audio = np.concatenate(
                [np.zeros(RATE // 4, np.int16), item.audio, np.zeros(RATE // 2, np.int16)]
            )
            wav = Path(tmp) / f"q{index}.wav"
            write_wav(wav, audio, RATE)
            marks = asyncio.run(streaming_turn(config, engines, wav, Path(tmp) / f"a{index}.wav"))
            if "speech_end" in marks and "playback_start" in marks:
                v2v = marks["playback_start"] - marks["speech_end"]
                streaming.append(v2v)
                for label, start, end in (
                    ("end-of-speech wait", "speech_end", "vad_stop"),
                    ("stt", "vad_stop", "stt_done"),
                    ("llm first token", "stt_done", "llm_first_token"),
                    ("first sentence", "llm_first_token", "first_sentence"),
                    ("tts first audio", "first_sentence", "tts_first_audio"),
                    ("audio to speaker", "tts_first_audio", "playback_start"),
                ):
                    if start in marks and end in marks:
                        stages.setdefault(label, []).append(marks[end] - marks[start])
            else:
                print(f"  utterance {index}: no answer was played ({sorted(marks)})")
            base = baseline_turn(config, engines, padded, item.audio)
            baseline.append(base["v2v"])
            shown = f"{streaming[-1] * 1000:6.0f}" if streaming else "   n/a"
            print(
                f"  {index:2d} streaming {shown} ms   baseline {base['v2v'] * 1000:6.0f} ms"
                f"   {item.text[:50]!r}",
                flush=True,
            )
    print()
    print(f"voice-to-voice over {len(corpus)} utterances (ms)      p50      p95")
    print(
        f"  streaming pipeline                      {percentile(streaming, 50) * 1000:6.0f}"
        f"   {percentile(streaming, 95) * 1000:6.0f}"
    )
    print(
        f"  sequential baseline                     {percentile(baseline, 50) * 1000:6.0f}"
        f"   {percentile(baseline, 95) * 1000:6.0f}"
    )
    if streaming and baseline:
        ratio = statistics.median(baseline) / statistics.median(streaming)
        print(f"  streaming is {ratio:.1f}x faster at p50")
    print("\nstreaming, per stage (ms)                 p50      p95")
    for label, values in stages.items():
        p50, p95 = percentile(values, 50) * 1000, percentile(values, 95) * 1000
        print(f"  {label:<38}{p50:6.0f}   {p95:6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
