"""Turn-taking: cut-offs against end-of-turn latency, for several end-of-turn rules.

Two figures, always side by side (as LiveKit's eot-bench prints them):

* **cut-offs**: the share of turns with a pause in them that were ended (answered,
  or split into two turns) before their end;
* **end-of-turn latency**: from the last voiced sample of a complete turn to the
  decision that it is over.

Data: recordings of real people (Debian's pocketsphinx-testdata). Each one with at
least five words is cut at word boundaries inside the sentence (at least three
words before the cut, two after; Whisper's word timestamps, then the quietest
20 ms between the two words) and ``--pauses`` of room-level silence (noise at the
recording's own floor) are put there. The whole recordings, and the espeak-ng
questions (``--synthetic``), are the complete turns for latency; their own pauses
may cut them too ("whole cut").

How a rule is judged: every clip goes through the real VAD (webrtcvad, the app's
settings) frame by frame. At each pause the real Smart Turn model is asked, on the
turn's audio as it was at ``check`` ms of silence, and real Whisper transcribes the
words so far (for the transcript cue: a turn that ends on "and", a comma or no
punctuation is held ``vad.incomplete_wait_ms`` longer, as the STT node holds it).
The rules then replay those answers pause by pause, so all thresholds are judged
on the same model outputs:

* ``silence N``: N ms of silence ends the turn;
* ``today``: 300 ms of silence, plus 400 ms more when the transcript sounds
  unfinished (the rule before the model);
* ``smart_turn ask>check/threshold/unsure/cap``: after ``ask`` ms of silence the
  model is asked. Complete (probability >= threshold) with words that sound
  finished ends the turn once ``check`` ms of silence have passed and the model
  has answered; when the model and the words disagree, ``unsure`` ms of silence
  ends it; when the model says it goes on and the words stop mid-sentence
  (``sounds_cut_off``: "and", a comma; not a short command ending on "that"),
  ``cap`` ms (as the app decides; ``alone``: the model without the words,
  incomplete waits for the cap).

The model's own time is measured too (features and inference, one thread), idle
and while Whisper transcribes beside it, and added to its rows' latency.

Usage: ``.venv/bin/python scripts/bench_turns.py [--pauses 0.3 0.7 1.0 1.5] [--synthetic]``
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.speech import (  # noqa: E402
    Recording,
    real_recordings,
    real_speech_available,
    synthetic_recordings,
)
from voiceterm.config import Config  # noqa: E402
from voiceterm.engines.vad import VadSegmenter, VadSettings  # noqa: E402
from voiceterm.pipeline.turns import sounds_cut_off, sounds_finished  # noqa: E402

RATE = 16000
FRAME = 320  # 20 ms, the VAD's frame
START_MS = 60  # the VAD's start confirmation: speech that resumes is seen this late
TAIL_S = 2.0  # silence after every clip, longer than any cap


@dataclass(slots=True)
class Pause:
    """One silence inside a clip, with what the model and Whisper said at it."""

    length_ms: int  # to the next voiced frame (the clip's last pause: open-ended)
    final: bool  # the pause after the clip's last word
    probability: dict[int, float] = field(default_factory=dict)  # silence when asked (ms) -> p
    finished_text: bool = True
    words: str = ""  # Whisper's transcript of the turn up to this pause


@dataclass(slots=True)
class Clip:
    name: str
    kind: str  # "paused" (a pause put inside a sentence) or "whole"
    pauses: list[Pause]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def room_noise(audio: np.ndarray, seconds: float, seed: int) -> np.ndarray:
    """Noise at the level of the recording's quietest frames (its room)."""
    frames = audio[: len(audio) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    level = max(1.0, float(np.percentile(rms, 5)))
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, level, round(seconds * RATE)), -32768, 32767).astype(np.int16)


def word_cuts(whisper: Any, audio: np.ndarray) -> list[int]:
    """Sample positions between words where a pause may go (>= 3 words before, >= 2 after)."""
    segments, _ = whisper.transcribe(
        audio.astype(np.float32) / 32768, language="en", word_timestamps=True, beam_size=1
    )
    words = [w for s in segments for w in (s.words or [])]
    cuts = []
    for index in range(3, len(words) - 1):
        start, end = round(words[index - 1].end * RATE), round(words[index].start * RATE)
        end = max(end, start + FRAME)
        gap = audio[start:end].astype(np.float64)
        if len(gap) < FRAME:
            cuts.append(start)
            continue
        energy = [np.mean(gap[i : i + FRAME] ** 2) for i in range(0, len(gap) - FRAME + 1, 80)]
        cuts.append(start + 80 * int(np.argmin(energy)) + FRAME // 2)
    return cuts


def paused_copies(
    recordings: list[Recording], whisper: Any, pauses_s: list[float], per_recording: int
) -> list[tuple[str, np.ndarray]]:
    clips = []
    for recording in recordings:
        cuts = word_cuts(whisper, recording.audio)
        if not cuts:
            continue
        chosen = [
            cuts[round(i * (len(cuts) - 1) / max(1, per_recording - 1))]
            for i in range(min(per_recording, len(cuts)))
        ]
        for cut in sorted(set(chosen)):
            for pause in pauses_s:
                audio = np.concatenate(
                    [
                        recording.audio[:cut],
                        room_noise(recording.audio, pause, seed=cut),
                        recording.audio[cut:],
                    ]
                )
                clips.append((f"{recording.name}@{cut / RATE:.2f}s+{pause * 1000:.0f}ms", audio))
    return clips


def analyse(
    name: str,
    kind: str,
    audio: np.ndarray,
    turn: Any,
    stt: Any,
    checks: list[int],
    config: Config,
) -> Clip:
    """Feed the clip to the VAD; at each pause ask the model (at every check) and Whisper."""
    settings = VadSettings(
        aggressiveness=config.vad.aggressiveness,
        start_voiced_ms=config.vad.start_ms,
        hangover_ms=int(TAIL_S * 1000) - 100,  # keep the turn open through every pause
        preroll_ms=config.vad.preroll_ms,
        max_utterance_s=60.0,
    )
    vad = VadSegmenter(settings)
    audio = np.concatenate([room_noise(audio, 0.3, 1), audio, room_noise(audio, TAIL_S, 2)])
    pauses: list[Pause] = []
    current: Pause | None = None
    for offset in range(0, len(audio) - FRAME + 1, FRAME):
        vad.feed(audio[offset : offset + FRAME], offset / RATE)
        silence = vad.trailing_silence_ms
        if not vad.in_speech:
            continue
        if silence == 0:
            if current is not None:
                pauses.append(current)
                current = None
            continue
        if current is None:
            current = Pause(length_ms=0, final=False)
            utterance = vad.current_utterance()
            assert utterance is not None
            text = str(stt.transcribe(utterance.audio).text).strip()
            current.finished_text = sounds_finished(text)
            current.words = text
        current.length_ms = silence
        for check in checks:
            if silence >= check and check not in current.probability:
                utterance = vad.current_utterance(pad_tail=False)
                assert utterance is not None
                current.probability[check] = turn.probability(utterance.audio)
    if current is not None:
        current.final = True
        current.length_ms = 10**9
        pauses.append(current)
    return Clip(name, kind, pauses)


@dataclass(frozen=True, slots=True)
class Rule:
    label: str
    kind: str  # silence | today | smart_turn
    silence_ms: int = 300
    ask_ms: int = 160  # silence when the model is asked
    check_ms: int = 160  # silence before its "complete" may end the turn
    threshold: float = 0.5
    unsure_ms: int = 1000  # the silence that ends a turn when the model and the words disagree
    cap_ms: int = 1500
    words: bool = True  # read the words too (the transcript cue); False: the model alone


def decide(rule: Rule, pause: Pause, hold_ms: int, model_ms: float) -> float | None:
    """When (ms after the pause began) ``rule`` ends the turn at this pause, or ``None``."""

    def held(ends_at: float) -> float | None:
        # The transcript cue: words that sound unfinished wait for more speech, and
        # speech that resumes in that wait joins the turn.
        if pause.finished_text:
            return ends_at
        return ends_at + hold_ms if pause.length_ms + START_MS >= ends_at + hold_ms else None

    if rule.kind == "silence":
        return rule.silence_ms if pause.length_ms >= rule.silence_ms else None
    if rule.kind == "today":
        return held(rule.silence_ms) if pause.length_ms >= rule.silence_ms else None
    probability = pause.probability.get(rule.ask_ms)
    if probability is None:
        return None  # shorter than the silence before the model is asked
    complete = probability >= rule.threshold
    if complete and (pause.finished_text or not rule.words):
        # The model answers while the silence goes on; speech that resumed first wins.
        decided = max(rule.check_ms, rule.ask_ms + model_ms)
        if pause.length_ms >= decided:
            return decided
    sure_it_goes_on = not complete and (not rule.words or sounds_cut_off(pause.words))
    wait = rule.cap_ms if sure_it_goes_on else rule.unsure_ms
    return wait if pause.length_ms >= wait else None


def judge(rule: Rule, clip: Clip, hold_ms: int, model_ms: float) -> tuple[bool, float | None]:
    """(cut off before the end, end-of-turn latency in ms if it ended at the end)."""
    for pause in clip.pauses:
        ends = decide(rule, pause, hold_ms, model_ms)
        if ends is not None:
            return (not pause.final, ends if pause.final else None)
    return False, None


def model_timing(turn: Any, stt: Any, audio: np.ndarray, runs: int) -> tuple[float, float]:
    """Median ms of one check alone, and while Whisper transcribes on another thread."""
    alone = []
    for _ in range(runs):
        turn.probability(audio)
        alone.append(turn.last_compute_s * 1000)
    busy = []
    stop = threading.Event()

    def transcribe() -> None:
        while not stop.is_set():
            stt.transcribe(audio)

    worker = threading.Thread(target=transcribe, daemon=True)
    worker.start()
    try:
        time.sleep(0.2)
        for _ in range(runs):
            turn.probability(audio)
            busy.append(turn.last_compute_s * 1000)
    finally:
        stop.set()
        worker.join()
    return statistics.median(alone), statistics.median(busy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pauses", type=float, nargs="+", default=[0.3, 0.7, 1.0, 1.5])
    parser.add_argument("--cuts", type=int, default=3, help="pause places per recording")
    parser.add_argument("--asks", type=int, nargs="+", default=[40, 100, 160, 200, 300])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    parser.add_argument("--unsure", type=int, nargs="+", default=[800, 1000])
    parser.add_argument("--caps", type=int, nargs="+", default=[1500, 2000])
    parser.add_argument("--cache", type=Path, help="keep the model's answers here (re-runs)")
    parser.add_argument("--synthetic", action="store_true", help="espeak-ng questions too")
    args = parser.parse_args()
    if not real_speech_available():
        print("recordings of real people missing: apt-get install pocketsphinx-testdata")
        return 2

    from faster_whisper import WhisperModel

    from voiceterm.engines.cores import CoreShare
    from voiceterm.engines.stt import WhisperTranscriber
    from voiceterm.engines.turn import SmartTurn
    from voiceterm.modelstore import resolve_model

    config = Config()
    cores = CoreShare()
    print("loading models ...", flush=True)
    stt_path = resolve_model("stt").path
    stt = WhisperTranscriber(stt_path, cores=cores)
    whisper = WhisperModel(str(stt_path), device="cpu", compute_type="int8", local_files_only=True)
    turn = SmartTurn(resolve_model("turn").path, cores=cores)

    real = real_recordings()
    clips_in = paused_copies(
        [r for r in real if len(r.transcript.split()) >= 5], whisper, args.pauses, args.cuts
    )
    whole = [(r.name, r.audio) for r in real]
    if args.synthetic:
        whole += [(r.name, r.audio) for r in synthetic_recordings()]
    checks = sorted(set(args.asks))
    started = time.monotonic()
    clips = pickle.loads(args.cache.read_bytes()) if args.cache and args.cache.exists() else []
    if clips and not all(hasattr(p, "words") for c in clips for p in c.pauses):
        print(f"{args.cache} holds no words at the pauses (an older bench): analysing afresh")
        clips = []
    if not clips:
        clips = [analyse(n, "paused", a, turn, stt, checks, config) for n, a in clips_in]
        clips += [analyse(n, "whole", a, turn, stt, checks, config) for n, a in whole]
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps(clips))
    print(
        f"{len(clips_in)} paused copies of {len({n.split('@')[0] for n, _ in clips_in})} "
        f"recordings, {len(whole)} whole turns; analysed in {time.monotonic() - started:.0f} s"
    )
    model_ms, model_busy_ms = model_timing(turn, stt, real[0].audio, runs=20)
    print(
        f"Smart Turn check (features + model, 1 thread): {model_ms:.0f} ms p50 idle, "
        f"{model_busy_ms:.0f} ms while Whisper transcribes beside it"
    )

    hold_ms = config.vad.incomplete_wait_ms
    rules = [Rule(f"silence {ms} ms", "silence", silence_ms=ms) for ms in (300, 600, 1000, 1500)]
    rules.append(Rule("today: 300 ms + unfinished words 400", "today"))
    # Asked at the check itself, or early (its answer waits for the check's silence).
    timings = [(c, c) for c in checks if c >= 160]
    variants = [(u, cap, True) for cap in args.caps for u in (*args.unsure, cap) if u <= cap]
    variants += [(cap, cap, False) for cap in args.caps[:1]]
    rules += [
        Rule(
            f"smart_turn {a}>{c}/{t:.1f}/{unsure}/{cap}{'' if words else ' alone'}",
            "smart_turn",
            ask_ms=a,
            check_ms=c,
            threshold=t,
            unsure_ms=unsure,
            cap_ms=cap,
            words=words,
        )
        for a, c in timings
        for t in args.thresholds
        for unsure, cap, words in variants
    ]
    paused = [c for c in clips if c.kind == "paused"]
    whole_clips = [c for c in clips if c.kind == "whole"]
    print()
    header = f"{'rule (ask>check/threshold/unsure/cap)':<38}"
    for pause in args.pauses:
        header += f"cut@{pause * 1000:4.0f} "
    header += "  cut all  whole cut   eot p50   eot p95"
    print(header)
    for rule in rules:
        row = f"{rule.label:<38}"
        for pause in args.pauses:
            tag = f"+{pause * 1000:.0f}ms"
            group = [c for c in paused if c.name.endswith(tag)]
            cut = sum(judge(rule, c, hold_ms, model_ms)[0] for c in group)
            row += f"{100 * cut / max(1, len(group)):7.0f}% "
        cut_all = sum(judge(rule, c, hold_ms, model_ms)[0] for c in paused)
        results = [judge(rule, c, hold_ms, model_ms) for c in whole_clips]
        whole_cut = sum(r[0] for r in results)
        latency = [r[1] for r in results if r[1] is not None]
        row += (
            f"{100 * cut_all / max(1, len(paused)):7.0f}%  "
            f"{100 * whole_cut / max(1, len(whole_clips)):7.0f}%  "
            f"{percentile(latency, 50):8.0f}  {percentile(latency, 95):8.0f}"
        )
        print(row)
    print()
    print(
        "each pause's silence (ms) and probability asked at 160 ms; "
        "~: words sound unfinished, ~!: cut off"
    )
    for clip in clips:
        values = [
            f"{'end' if p.final else str(p.length_ms) + 'ms'}:"
            f"{p.probability.get(160, p.probability.get(checks[0], float('nan'))):.2f}"
            f"{'' if p.finished_text else '~'}{'!' if sounds_cut_off(p.words) else ''}"
            for p in clip.pauses
            if p.probability
        ]
        print(f"  {clip.name:<36} {' '.join(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
