"""STT and VAD benchmark: Whisper padded to 30 s vs the unpadded fast path; VAD cost.

    .venv/bin/python scripts/bench_stt.py [--repeats 2] [--tune-vad]

Over the test utterances (recordings of real people from Debian's
``pocketsphinx-testdata`` plus espeak-ng voices, see ``benchmarks/corpus.py``):

1. STT time of the reference path (faster-whisper, features padded to 30 s) and
   of the fast path (features of the utterance plus 1 s), mean and p50, and the
   speed ratio; each utterance runs ``--repeats`` times per path, alternating
   paths, and the fastest run counts (the machine is shared).
2. Word error rate of both paths (word-level edit distance after normalisation:
   lower case, no punctuation, numbers spelled out), for real and synthetic speech.
3. What both paths return on silence and noise (should be "").
4. VAD cost per frame for 10/20/30 ms frames.

``--tune-vad`` adds the sweeps that chose the VAD defaults (false starts on
noise, missed utterances, pauses inside utterances, onset lead, pre-roll and tail
against transcripts).

Targets (issue 3): fast path >= 5x faster than padded, WER no more than 1 point worse.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.corpus import (
    REAL_SPEECH_INSTALL,
    Recording,
    concat,
    espeak,
    real_recordings,
    real_speech_available,
    silence,
    synthetic_recordings,
    white_noise,
    with_pauses,
    word_error_rate,
)
from benchmarks.stats import percentile
from voiceterm.engines.stt import Transcript, WhisperTranscriber
from voiceterm.engines.vad import (
    SpeechStarted,
    VadSegmenter,
    VadSettings,
    segment_file,
)
from voiceterm.modelstore import resolve_model

RATE = 16000
Audio = npt.NDArray[np.int16]


@dataclass
class Run:
    recording: Recording
    fast: Transcript
    padded: Transcript
    fast_s: float
    padded_s: float


def timed(transcriber: WhisperTranscriber, audio: Audio, repeats: int) -> tuple[Transcript, float]:
    best = float("inf")
    result: Transcript | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = transcriber.transcribe(audio)
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return result, best


def noise_set() -> dict[str, Audio]:
    rng = np.random.default_rng(7)

    def pink(seconds: float, dbfs: float) -> Audio:
        spectrum = np.fft.rfft(rng.normal(size=round(seconds * RATE)))
        spectrum /= np.sqrt(np.arange(1, spectrum.size + 1))
        wave = np.fft.irfft(spectrum)
        wave *= 32768 * 10 ** (dbfs / 20) / np.sqrt(np.mean(wave**2))
        return np.clip(wave, -32768, 32767).astype(np.int16)

    t = np.arange(10 * RATE) / RATE
    clicks = np.zeros(10 * RATE, dtype=np.int16)
    for start in range(0, clicks.size - 80, RATE // 3):  # a key press every 1/3 s
        clicks[start : start + 80] = (rng.normal(0, 8000, 80)).astype(np.int16)
    return {
        "silence": silence(10),
        "white -50 dBFS": white_noise(10, -50),
        "white -40 dBFS": white_noise(10, -40, seed=1),
        "white -30 dBFS": white_noise(10, -30, seed=2),
        "white -20 dBFS": white_noise(10, -20, seed=3),
        "white -10 dBFS": white_noise(10, -10, seed=4),
        "pink -40 dBFS": pink(10, -40),
        "pink -25 dBFS": pink(10, -25),
        "hum 50 Hz": (np.sin(2 * np.pi * 50 * t) * 3000).astype(np.int16),
        "key clicks": clicks,
    }


# --- STT ---------------------------------------------------------------------------------


def bench_stt(recordings: list[Recording], repeats: int) -> None:
    model = resolve_model("stt")
    print(f"model: {model.description} at {model.path}")
    fast = WhisperTranscriber(model.path)
    padded = WhisperTranscriber(model.path, pad_to_30s=True)
    warm = recordings[0].audio
    fast.transcribe(warm)
    padded.transcribe(warm)
    print(f"cpu threads: {fast.cpu_threads}; repeats per utterance and path: {repeats}\n")

    runs: list[Run] = []
    header = f"{'utterance':22s} {'dur s':>5s} {'pad ms':>7s} {'fast ms':>7s} {'x':>5s} try"
    print(header)
    for index, recording in enumerate(recordings):
        # Alternate which path runs first so neither always gets a warm cache.
        if index % 2:
            f, f_s = timed(fast, recording.audio, repeats)
            p, p_s = timed(padded, recording.audio, repeats)
        else:
            p, p_s = timed(padded, recording.audio, repeats)
            f, f_s = timed(fast, recording.audio, repeats)
        runs.append(Run(recording, f, p, f_s, p_s))
        print(
            f"{recording.name:22s} {recording.duration_s:5.2f} {p_s * 1000:7.0f} "
            f"{f_s * 1000:7.0f} {p_s / f_s:5.1f} {f.attempts:3d}"
        )
        if f.text != p.text:
            print(f"{'':6s}padded: {p.text!r}\n{'':6s}fast:   {f.text!r}")
        print(f"{'':6s}ref:    {recording.transcript!r}")

    print("\nSTT time per utterance (ms)         mean      p50")
    pad_times = [r.padded_s * 1000 for r in runs]
    fast_times = [r.fast_s * 1000 for r in runs]
    for label, times in (
        ("padded to 30 s (reference)", pad_times),
        ("unpadded fast path", fast_times),
    ):
        print(f"  {label:28s} {statistics.mean(times):8.0f} {percentile(times, 50):8.0f}")
    mean_ratio = statistics.mean(pad_times) / statistics.mean(fast_times)
    p50_ratio = percentile(pad_times, 50) / percentile(fast_times, 50)
    print(f"  speed ratio padded/fast      {mean_ratio:8.1f} {p50_ratio:8.1f}   (target >= 5x)")
    retried = sum(1 for r in runs if r.fast.attempts > 1)
    print(f"  fast path retried on a longer window: {retried} of {len(runs)} utterances")

    print("\nword error rate (%)                 padded     fast   fast-padded")
    for label, subset in (
        ("real people", [r for r in runs if r.recording.real]),
        ("espeak-ng", [r for r in runs if not r.recording.real]),
        ("all", runs),
    ):
        if not subset:
            continue
        wer_pad = word_error_rate([(r.recording.transcript, r.padded.text) for r in subset])
        wer_fast = word_error_rate([(r.recording.transcript, r.fast.text) for r in subset])
        print(
            f"  {label:12s} ({len(subset):2d} utterances) {wer_pad:8.1f} {wer_fast:8.1f} "
            f"{wer_fast - wer_pad:+8.1f}   (target <= +1.0)"
        )

    ns_fast = max(r.fast.no_speech_prob for r in runs)
    ns_pad = max(r.padded.no_speech_prob for r in runs)
    print(f"  highest no-speech probability on speech: padded {ns_pad:.2f}, fast {ns_fast:.2f}")

    print("\nsilence and noise (both paths should return '')")
    for name, audio in noise_set().items():
        clip = audio[: 3 * RATE]
        f = fast.transcribe(clip)
        p = padded.transcribe(clip)
        print(
            f"  {name:16s} padded {p.text!r:8s} (raw {p.raw_text[:28]!r:30s})"
            f" fast {f.text!r:8s} (raw {f.raw_text[:28]!r})"
        )


# --- VAD -----------------------------------------------------------------------------------


def vad_cost(recordings: list[Recording]) -> None:
    audio = concat(*(concat(r.audio, silence(0.8)) for r in recordings), white_noise(10, -40))
    print(
        f"\nVAD cost ({len(audio) / RATE:.0f} s of speech, pauses and noise, fed in 20 ms chunks)"
    )
    for frame_ms in (10, 20, 30):
        segmenter = VadSegmenter(VadSettings(frame_ms=frame_ms))
        chunk = RATE // 50
        start = time.perf_counter()
        for offset in range(0, len(audio), chunk):
            segmenter.feed(audio[offset : offset + chunk], offset / RATE)
        segmenter.flush()
        elapsed = time.perf_counter() - start
        frames = len(audio) // (RATE * frame_ms // 1000)
        print(
            f"  {frame_ms} ms frames: {elapsed / frames * 1e6:6.1f} µs per frame, "
            f"{elapsed / (len(audio) / RATE) * 1e3:5.2f} ms per second of audio"
        )


def count_starts(audio: Audio, settings: VadSettings) -> int:
    segmenter = VadSegmenter(settings)
    events = segmenter.feed(audio, 0.0) + segmenter.flush()
    return sum(isinstance(e, SpeechStarted) for e in events)


def tune_vad(recordings: list[Recording]) -> None:
    base = VadSettings()
    noises = noise_set()
    speech = {r.name: concat(silence(0.5), r.audio, silence(1.0)) for r in recordings}

    noisy = {
        name: (audio.astype(np.int32) + white_noise(len(audio) / RATE, -35, seed=9))
        .clip(-32768, 32767)
        .astype(np.int16)
        for name, audio in speech.items()
    }
    print("\n--tune-vad: false starts on 100 s of silence and noise / utterances missed")
    print("  utterances missed: in silence, and over white noise at -35 dBFS")
    print("  mode start ms margin dB false starts  missed in noise")
    for mode in range(4):
        for start_ms in (20, 60, 100):
            for margin in (0.0, 6.0, 10.0, 15.0):
                settings = replace(
                    base, aggressiveness=mode, start_voiced_ms=start_ms, energy_margin_db=margin
                )
                false_starts = sum(count_starts(a, settings) for a in noises.values())
                missed = sum(count_starts(a, settings) == 0 for a in speech.values())
                missed_noisy = sum(count_starts(a, settings) == 0 for a in noisy.values())
                print(
                    f"  {mode:4d} {start_ms:8d} {margin:9.0f} {false_starts:12d} {missed:7d} "
                    f"{missed_noisy:8d}"
                )
    print("  false starts by noise at the default mode and start:")
    for name, audio in noises.items():
        print(f"    {name:16s} {count_starts(audio, base)}")

    print(
        "\n  longest pause between speech runs inside one utterance (the hangover must exceed it)"
    )
    paused = [
        (
            "espeak pauses 1",
            espeak("Well, let me think. I would like, if possible, a cup of tea.", "en-us", 130),
        ),
        (
            "espeak pauses 2",
            espeak("First, open the door. Then, wait a moment, and come in.", "en-gb", 140),
        ),
        (
            "espeak pauses 3",
            espeak("Hmm, okay. So, what about tomorrow, around noon?", "en-us+f3", 150),
        ),
    ]
    items = [(r.name, r.audio) for r in recordings] + paused
    gaps: list[tuple[str, float]] = []
    frame = RATE * base.frame_ms // 1000
    for name, audio in items:
        segmenter = VadSegmenter(base)
        flags = []
        for i in range(0, len(audio) - frame + 1, frame):
            segmenter.feed(audio[i : i + frame], i / RATE)
            flags.append(segmenter.voiced)
        # Speech runs are what could start an utterance (start_voiced_ms of voiced
        # frames); lone voiced frames (a click, a breath) are not speech.
        text = "".join("#" if f else "." for f in flags)
        need = max(1, base.start_voiced_ms // base.frame_ms)
        runs = [(m.start(), m.end()) for m in re.finditer(f"#{{{need},}}", text)]
        longest = max((b[0] - a[1] for a, b in zip(runs, runs[1:], strict=False)), default=0)
        gaps.append((name, longest * base.frame_ms))
    for name, gap in sorted(gaps, key=lambda g: -g[1])[:8]:
        print(f"    {name:22s} {gap:5.0f} ms")

    print("\n  hangover sweep: utterances split by an inner pause / pairs merged across a pause")
    pairs = [
        with_pauses([recordings[i].audio, recordings[i + 1].audio], pause_s)
        for i in range(0, len(recordings) - 1, 2)
        for pause_s in (0.8, 1.0)
    ]
    for hangover in (200, 300, 400, 500, 600, 700, 800, 1000):
        settings = replace(base, hangover_ms=hangover)
        split = sum(len(segment_file(a, RATE, settings)) > 1 for _n, a in items)
        merged = sum(len(segment_file(a, RATE, settings)) < 2 for a in pairs)
        print(
            f"    hangover {hangover:4d} ms: split {split:2d} of {len(items)}, "
            f"merged {merged:2d} of {len(pairs)} pairs (0.8-1.0 s apart)"
        )

    print("\n  onset lead: how long before the VAD onset the sound starts (energy > -45 dBFS)")
    leads = []
    for name, audio in speech.items():
        segments = segment_file(audio, RATE, keep_too_short=True)
        if not segments:
            continue
        energy_db = [
            10 * np.log10(np.mean(audio[i : i + 160].astype(np.float64) ** 2) / 32768**2 + 1e-12)
            for i in range(0, len(audio) - 160, 160)
        ]
        first_sound = next(i for i, db in enumerate(energy_db) if db > -45) * 0.01
        leads.append((name, (segments[0].speech_start - first_sound) * 1000))
    values = [lead for _n, lead in leads]
    print(
        f"    max {max(values):.0f} ms, p50 {percentile(values, 50):.0f} ms "
        f"over {len(values)} utterances"
    )
    for name, lead in sorted(leads, key=lambda item: -item[1])[:4]:
        print(f"    {name:22s} {lead:5.0f} ms")

    print("\n  pre-roll and tail against transcripts (fast path WER over the test set)")
    stt = WhisperTranscriber(resolve_model("stt").path)
    # heard: how much of the tail is the sound heard, the rest digital silence (the
    # app hears 40 ms, its pause, so that a transcript at the pause is the turn's).
    sweep = ((0, 100, 100), (100, 100, 100), (300, 100, 100), (300, 0, 0), (300, 300, 300))
    for preroll, tail, heard in (*sweep, (300, 300, 40), (300, 600, 600)):
        settings = replace(base, preroll_ms=preroll, tail_ms=tail, heard_tail_ms=heard)
        pairs_text = []
        for recording in recordings:
            audio = concat(silence(0.5), recording.audio, silence(1.0))
            segments = segment_file(audio, RATE, settings)
            text = " ".join(stt.transcribe(s.audio).text for s in segments)
            pairs_text.append((recording.transcript, text))
        wer = word_error_rate(pairs_text)
        print(f"    preroll {preroll:3d} ms, tail {tail:3d} ms ({heard:3d} heard): WER {wer:5.1f}%")


def tune_stt(recordings: list[Recording]) -> None:
    """First-attempt loops, WER and time of the fast path for several paddings."""
    path = resolve_model("stt").path
    print("\n--tune-stt: fast-path padding (value in normalised log-mel units, length)")
    print("  value pad s loops WER real WER all mean ms")
    for pad_value in (0.0, 0.3, 0.7, 1.0):
        for pad_s in (1.0, 3.0, 5.0):
            stt = WhisperTranscriber(path, pad_s=pad_s, pad_value=pad_value)
            results = []
            for recording in recordings:
                start = time.perf_counter()
                results.append(
                    (recording, stt.transcribe(recording.audio), time.perf_counter() - start)
                )
            loops = sum(t.attempts > 1 for _r, t, _s in results)
            real = word_error_rate([(r.transcript, t.text) for r, t, _s in results if r.real])
            every = word_error_rate([(r.transcript, t.text) for r, t, _s in results])
            mean_ms = statistics.mean(s for _r, _t, s in results) * 1000
            print(
                f"  {pad_value:5.1f} {pad_s:5.1f} {loops:5d} {real:8.1f} {every:7.1f}"
                f" {mean_ms:7.0f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--repeats", type=int, default=2, help="runs per utterance and path")
    parser.add_argument("--tune-vad", action="store_true", help="also print the VAD sweeps")
    parser.add_argument("--tune-stt", action="store_true", help="also sweep the fast-path padding")
    args = parser.parse_args()
    if not real_speech_available():
        print(f"recordings of real people are missing: {REAL_SPEECH_INSTALL}", file=sys.stderr)
        return 2
    recordings = real_recordings() + synthetic_recordings()
    print(
        f"{len(recordings)} utterances: {sum(r.real for r in recordings)} recordings of real "
        f"people, {sum(not r.real for r in recordings)} espeak-ng voices\n"
    )
    bench_stt(recordings, args.repeats)
    vad_cost(recordings)
    if args.tune_stt:
        tune_stt(recordings)
    if args.tune_vad:
        tune_vad(recordings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
