"""Benchmark Piper TTS and the sentence splitter; prints a report.

    .venv/bin/python scripts/bench_tts.py [--runs 3] [--token-ms 25] [--threads N]

1. Load and warm-up time of the voice.
2. Piper's own leading silence (what the synthesizer trims away).
3. For a short, a medium and a long sentence: time to first audio (call to
   first chunk), time to first audible sample, synthesis time, audio length and
   real-time factor (synthesis time / audio length), median of ``--runs``.
4. A streamed answer: tokens arrive every ``--token-ms`` ms; for each piece the
   splitter produces, when it is ready, when its audio is ready (one TTS worker,
   pieces in order) and when it would play, with any gap in playback. Once per
   first-piece setting, so the effect of the early first clause is visible.
5. An answer's first piece made ahead (in the end-of-speech wait), on the app's
   one-core voice and on every core (what it takes while nothing else computes).

Times are wall-clock on this machine (2 shared cores): run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks.stats import percentile
from voiceterm.engines.tts import PiperSynthesizer
from voiceterm.modelstore import resolve_model
from voiceterm.patterns.sentences import SentenceSplitter

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = {
    "short": "Hello there.",
    "medium": "The weather today is sunny with a light breeze from the west.",
    "long": (
        "If you leave home before eight in the morning, take the northern road past the "
        "old mill, and stop for coffee in the village square, you will still reach the "
        "coast well before lunch without ever feeling rushed."
    ),
}

ANSWER = (
    "Well, the short answer is yes, but there are a few things to know first. "
    "Dr. Smith's clinic opens at 9 a.m. on weekdays, e.g. Monday through Friday, and "
    "closes at 5.30 in the evening. If you need an appointment sooner, call the front "
    "desk... they are usually quick. Is there anything else you would like to know?"
)

AUDIBLE = int(0.005 * 32767)


def leading_silence_s(audio: npt.NDArray[np.int16], rate: int) -> float:
    audible = np.flatnonzero(np.abs(audio.astype(np.int32)) > AUDIBLE)
    return (int(audible[0]) if audible.size else len(audio)) / rate


def llm_tokens(text: str) -> list[str]:
    """Roughly how an LLM streams: words with their leading space, punctuation apart."""
    return re.findall(r"\s*\w+|\s*[^\w\s]|\s+", text)


@dataclass
class Timing:
    first_audio_s: float
    first_audible_s: float
    synth_s: float
    audio_s: float

    @property
    def rtf(self) -> float:
        return self.synth_s / self.audio_s if self.audio_s else float("nan")


def time_synthesis(tts: PiperSynthesizer, text: str) -> Timing:
    start = time.monotonic()
    first_audio = first_audible = 0.0
    total = 0
    for chunk in tts.synthesize(text):
        now = time.monotonic() - start
        if total == 0:
            first_audio = now
            first_audible = now + leading_silence_s(chunk, tts.sample_rate)
        total += len(chunk)
    return Timing(first_audio, first_audible, time.monotonic() - start, total / tts.sample_rate)


def median_timing(timings: list[Timing]) -> Timing:
    return Timing(
        statistics.median(t.first_audio_s for t in timings),
        statistics.median(t.first_audible_s for t in timings),
        statistics.median(t.synth_s for t in timings),
        statistics.median(t.audio_s for t in timings),
    )


def report_sentences(tts: PiperSynthesizer, runs: int) -> None:
    print(f"\n## Sentences (median of {runs} runs)")
    print(
        f"{'':8} {'words':>5} {'first audio':>12} {'first audible':>14} "
        f"{'synth':>8} {'audio':>8} {'RTF':>6}"
    )
    for name, text in SENTENCES.items():
        t = median_timing([time_synthesis(tts, text) for _ in range(runs)])
        print(
            f"{name:8} {len(text.split()):>5} {t.first_audio_s * 1000:>9.0f} ms "
            f"{t.first_audible_s * 1000:>11.0f} ms {t.synth_s * 1000:>5.0f} ms "
            f"{t.audio_s:>6.2f} s {t.rtf:>6.3f}"
        )


def report_leading_silence(model: PiperSynthesizer, untrimmed: PiperSynthesizer) -> None:
    texts = [*SENTENCES.values(), "Fine.", "So, what do you think?", "Yes.", "Okay then."]
    raw = [leading_silence_s(untrimmed.synthesize_all(t), untrimmed.sample_rate) for t in texts]
    trimmed = [leading_silence_s(model.synthesize_all(t), model.sample_rate) for t in texts]
    print("\n## Leading silence before the first audible sample (level > -46 dBFS)")
    print(
        f"piper raw: median {statistics.median(raw) * 1000:.0f} ms, "
        f"max {max(raw) * 1000:.0f} ms over {len(texts)} texts"
    )
    print(
        f"trimmed:   median {statistics.median(trimmed) * 1000:.0f} ms, "
        f"max {max(trimmed) * 1000:.0f} ms"
    )


def report_stream(
    tts: PiperSynthesizer, token_ms: float, first_piece_min_chars: int | None, runs: int
) -> None:
    """Simulated LLM stream, real splitter, real synthesis, one TTS worker."""
    splitter = SentenceSplitter(first_piece_min_chars=first_piece_min_chars)
    ready: list[tuple[float, str]] = []
    tokens = llm_tokens(ANSWER)
    for index, token in enumerate(tokens):
        arrival = index * token_ms / 1000
        ready.extend((arrival, piece) for piece in splitter.push(token))
    last = splitter.flush()
    if last is not None:
        ready.append(((len(tokens) - 1) * token_ms / 1000, last))

    print(f"\n### first_piece_min_chars={first_piece_min_chars}")
    print(f"{'ready':>7} {'audio':>7} {'plays':>7} {'gap':>6}  piece")
    tts_free = 0.0
    play_end = 0.0
    gaps = 0.0
    first_sound = None
    for piece_ready, piece in ready:
        timing = median_timing([time_synthesis(tts, piece) for _ in range(runs)])
        tts_start = max(piece_ready, tts_free)
        tts_free = tts_start + timing.synth_s
        audio_ready = tts_start + timing.first_audible_s
        play_start = max(audio_ready, play_end)
        gap = play_start - play_end if first_sound is not None else 0.0
        gaps += gap
        if first_sound is None:
            first_sound = play_start
        play_end = play_start + timing.audio_s
        print(
            f"{piece_ready * 1000:>5.0f}ms {audio_ready * 1000:>5.0f}ms "
            f"{play_start * 1000:>5.0f}ms {gap * 1000:>4.0f}ms  {piece!r}"
        )
    assert first_sound is not None
    print(
        f"first sound {first_sound * 1000:.0f} ms after the first token; "
        f"gaps in playback {gaps * 1000:.0f} ms in all; "
        f"answer fully generated at {(len(tokens) - 1) * token_ms:.0f} ms"
    )


FIRST_PIECES = (
    "That's a great",
    "The moon is about",
    "Go forward ten",
    "I'm ready to",
    "Eight of spades",
    "The story is about",
)


def report_first_piece_on_every_core(path: Path, runs: int) -> None:
    """An answer's first words made ahead: the app's one-core voice, alone on every core."""
    import threading

    tts = PiperSynthesizer(path, num_threads=1)
    print(f"\n## An answer's first piece made ahead, one core vs every core ({runs} runs)")
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for text in FIRST_PIECES:
            for every_core in (False, True):
                started = time.perf_counter()
                next(iter(tts.synthesize(text, threading.Event(), every_core=every_core)))
                times[every_core].append(time.perf_counter() - started)
    for every_core, values in times.items():
        label = "every core" if every_core else "one core  "
        print(
            f"{label}: first audio p50 {percentile(values, 50) * 1000:4.0f} ms, "
            f"max {max(values) * 1000:4.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--token-ms", type=float, default=25.0, help="LLM time per token")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    args = parser.parse_args()

    path = resolve_model("tts").path
    print("# Piper TTS benchmark")
    print(f"voice: {path.name} ({path.stat().st_size / 1e6:.0f} MB), cores: {os.cpu_count()}")
    tts = PiperSynthesizer(path, num_threads=args.threads)
    print(f"load {tts.load_seconds * 1000:.0f} ms, warm-up {tts.warm_up_seconds * 1000:.0f} ms")
    untrimmed = PiperSynthesizer(
        path, keep_leading_silence_s=60.0, num_threads=args.threads, warm_up=False
    )
    report_leading_silence(tts, untrimmed)
    report_sentences(tts, args.runs)
    print(f"\n## A streamed answer ({args.token_ms:.0f} ms per token, {len(ANSWER)} chars)")
    print("ready = piece complete in the splitter; audio = its first audible sample exists;")
    print("plays = it would start playing (after the previous piece); gap = silence before it")
    print(f"(synthesis times: median of {args.runs} runs per piece)")
    for first_piece_min_chars in (None, 20, 12):
        report_stream(tts, args.token_ms, first_piece_min_chars, args.runs)
    report_first_piece_on_every_core(path, max(3, args.runs))


if __name__ == "__main__":
    main()
