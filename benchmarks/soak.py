"""Long sessions: a spoken conversation of hundreds of turns, from files, through the real engines.

One ``VoiceAgent`` on the embedded models (webrtcvad, Whisper, llama.cpp, Piper,
Smart Turn: the app's defaults) keeps its history for the whole run, as the live
app does (``benchmarks/conversation.py``: the conversation ``scripts/bench_live.py``
says from a file). Each question is said in real time once the agent has been
quiet for 1.5 s. The answer "plays" the moment it is synthesized, on a speaker that
keeps no recording (``--realtime-speaker``: at the pace of real sound, which makes
a turn about 16 s instead of 6 s with 48-token answers).
The questions alternate between the speech corpus (recordings of real people
first, then espeak-ng) and the live bench's answer prompts ("Tell me a short story
about a brave little fox."), so answers are long enough to fill the context
window many times over.

Reported for every turn: voice-to-voice (last voiced sample of the question ->
first audible sample of the answer), its stages (the timeline's marks), the
prompt the LLM read (tokens, how many were evaluated rather than reused from the
KV cache, turns dropped to fit the window), Python's garbage collector time, and
the process's RSS after the turn. At the end, the checks of issue 17:

* RSS grows at most 50 MB from turn 20 to the last turn;
* the p95 of the last 50 turns is within 20% of the p95 of the first 50.

With fewer turns (``--turns N``), the windows shrink to a quarter of the run and
RSS is compared from the end of the first tenth. ``--background-load N`` runs the
whole conversation beside N busy programs (``benchmarks/load.py``).

Runtime: about 6 s a turn on 2 cores (the question, the answer, 1.5 s of quiet):
200 turns take about 20 minutes.

Usage: ``.venv/bin/python scripts/bench_soak.py [--turns 200] [--max-tokens 48]
[--background-load N] [--realtime-speaker] [--slow-ms 1200] [--json out.json]
[--record DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks import voice
from benchmarks.conversation import FileConversation
from benchmarks.corpus import speech_corpus
from benchmarks.live.clips import answer_prompts
from benchmarks.load import background_load
from benchmarks.memory import malloc_in_use_mb, rss_mb
from benchmarks.rig import Utterance, utterance
from benchmarks.stats import percentile
from voiceterm.config import Config
from voiceterm.pipeline.loading import load_engines

RSS_LIMIT_MB = 50.0
P95_LIMIT = 0.20


class GcClock:
    """Time spent in Python's garbage collector, read and reset once per turn."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self.longest_s = 0.0
        self._started = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        self.total_s += spent
        self.longest_s = max(self.longest_s, spent)

    def take(self) -> tuple[float, float]:
        """(total, longest pause) in seconds since the last call."""
        taken = (self.total_s, self.longest_s)
        self.total_s = self.longest_s = 0.0
        return taken


@dataclass(slots=True)
class Turn:
    index: int
    question: str
    v2v: float | None
    stages: dict[str, float]
    rss_mb: float
    malloc_mb: float
    python_blocks: int
    prompt_tokens: int
    evaluated_tokens: int
    dropped_messages: int
    read_ahead_tokens: int
    gc_s: float
    gc_longest_s: float
    wall_s: float


@dataclass(slots=True)
class Soak:
    turns: list[Turn] = field(default_factory=list)
    busy: int = 0
    load_before: float = 0.0
    load_after: float = 0.0
    wall_s: float = 0.0


def soak_questions(count: int) -> list[Utterance]:
    """The corpus (real people first) and the live bench's answer prompts, alternated."""
    corpus = [utterance(item.audio, item.text) for item in speech_corpus()]
    prompts = answer_prompts((count + 1) // 2)
    return [corpus[i // 2 % len(corpus)] if i % 2 == 0 else prompts[i // 2] for i in range(count)]


def stage_times(marks: dict[str, float]) -> dict[str, float]:
    stages = voice.STAGES
    return {
        label: marks[end] - marks[start]
        for label, start, end in stages
        if start in marks and end in marks
    }


def run_soak(args: argparse.Namespace) -> Soak:
    config = Config()
    config.llm.max_tokens = args.max_tokens
    print("loading models ...", flush=True)
    engines = load_engines(config)
    clips = soak_questions(args.turns)
    soak = Soak(busy=args.background_load, load_before=os.getloadavg()[0])
    started = time.monotonic()
    load = background_load(args.background_load) if args.background_load else None
    with load or contextlib.nullcontext(), GcClock() as gc_clock:
        conversation = FileConversation(
            config, engines, recording=None, realtime_speaker=args.realtime_speaker
        )
        with conversation:
            if args.record is not None:
                conversation.record(args.record)
            for index, clip in enumerate(clips, start=1):
                gc_clock.take()
                turn_started = time.monotonic()
                marks = conversation.turn(clip)
                stats = getattr(engines.llm, "last_stats", None)  # the server backend keeps none
                gc_s, gc_longest_s = gc_clock.take()
                v2v = None
                if "speech_end" in marks and "playback_start" in marks:
                    v2v = marks["playback_start"] - marks["speech_end"]
                turn = Turn(
                    index=index,
                    question=clip.text,
                    v2v=v2v,
                    stages=stage_times(marks),
                    rss_mb=rss_mb(),
                    malloc_mb=malloc_in_use_mb(),
                    python_blocks=sys.getallocatedblocks(),
                    prompt_tokens=stats.prompt_tokens if stats else 0,
                    evaluated_tokens=stats.prompt_tokens_evaluated if stats else 0,
                    dropped_messages=stats.messages_dropped if stats else 0,
                    read_ahead_tokens=getattr(engines.llm, "last_read_ahead_tokens", 0),
                    gc_s=gc_s,
                    gc_longest_s=gc_longest_s,
                    wall_s=time.monotonic() - turn_started,
                )
                soak.turns.append(turn)
                print_turn(turn, args.slow_ms / 1000)
    soak.wall_s = time.monotonic() - started
    soak.load_after = os.getloadavg()[0]
    return soak


def ms(value: float | None) -> str:
    return "   n/a" if value is None else f"{1000 * value:6.0f}"


SHORT = {
    "end-of-speech wait": "eos",
    "stt": "stt",
    "llm first token": "llm",
    "first sentence": "sent",
    "tts first audio": "tts",
    "audio to speaker": "spk",
}


def print_turn(turn: Turn, slow_s: float) -> None:
    stages = " ".join(f"{SHORT[k]} {1000 * v:.0f}" for k, v in turn.stages.items())
    slow = "  SLOW" if turn.v2v is None or turn.v2v > slow_s else ""
    print(
        f"  {turn.index:3d} v2v {ms(turn.v2v)} ms | {stages} | prompt {turn.prompt_tokens}"
        f" read {turn.evaluated_tokens} dropped {turn.dropped_messages}"
        f" ahead {turn.read_ahead_tokens} | gc {1000 * turn.gc_s:.0f}"
        f" (max {1000 * turn.gc_longest_s:.0f}) ms | rss {turn.rss_mb:.0f} MB"
        f" malloc {turn.malloc_mb:.0f} MB py {turn.python_blocks / 1000:.0f}k"
        f" | {turn.wall_s:.1f} s{slow}",
        flush=True,
    )
    if slow:
        print(f"      | {turn.question[:70]!r}", flush=True)


def print_report(soak: Soak, slow_s: float) -> bool:
    turns = soak.turns
    count = len(turns)
    window = min(50, max(1, count // 4))
    base = 20 if count >= 40 else max(1, count // 10)
    first = [t.v2v for t in turns[:window] if t.v2v is not None]
    last = [t.v2v for t in turns[-window:] if t.v2v is not None]
    answered = [t.v2v for t in turns if t.v2v is not None]
    print()
    print(
        f"{count} turns in {soak.wall_s / 60:.1f} min; load average (1 min) before"
        f" {soak.load_before:.2f}, after {soak.load_after:.2f}; {os.cpu_count()} cores;"
        f" {soak.busy} busy programs beside it"
    )
    print(
        f"voice-to-voice (ms): p50 {ms(percentile(answered, 50))}"
        f"  p95 {ms(percentile(answered, 95))}  max {ms(max(answered, default=None))};"
        f" {count - len(answered)} unanswered;"
        f" {sum(v > slow_s for v in answered)} over {1000 * slow_s:.0f} ms"
    )
    print(
        f"  first {window} turns: p50 {ms(percentile(first, 50))}  p95 {ms(percentile(first, 95))}"
    )
    print(f"  last {window} turns:  p50 {ms(percentile(last, 50))}  p95 {ms(percentile(last, 95))}")
    print("per stage, first / last turns (ms)        p50 first  p95 first   p50 last   p95 last")
    for label in SHORT:
        early = [t.stages[label] for t in turns[:window] if label in t.stages]
        late = [t.stages[label] for t in turns[-window:] if label in t.stages]
        print(
            f"  {label:<36}"
            + "".join(
                f"   {ms(percentile(values, q))}  " for values in (early, late) for q in (50, 95)
            )
        )
    gc_longest = max((t.gc_longest_s for t in turns), default=0.0)
    print(f"longest garbage collection: {1000 * gc_longest:.0f} ms")
    rss_base = turns[base - 1].rss_mb
    rss_end = turns[-1].rss_mb
    growth = rss_end - rss_base
    print(
        f"  meanwhile malloc in use {turns[-1].malloc_mb - turns[base - 1].malloc_mb:+.1f} MB,"
        f" Python's allocated blocks {turns[-1].python_blocks - turns[base - 1].python_blocks:+d}"
    )
    ratio = percentile(last, 95) / percentile(first, 95) - 1
    rss_ok = growth <= RSS_LIMIT_MB
    p95_ok = abs(ratio) <= P95_LIMIT
    print(
        f"RSS turn {base} {rss_base:.0f} MB -> turn {count} {rss_end:.0f} MB:"
        f" {growth:+.1f} MB (limit {RSS_LIMIT_MB:.0f}): {'ok' if rss_ok else 'FAILED'}"
    )
    print(
        f"p95 last {window} / first {window}: {ratio:+.0%} (limit +-{P95_LIMIT:.0%}):"
        f" {'ok' if p95_ok else 'FAILED'}"
    )
    return rss_ok and p95_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument(
        "--max-tokens", type=int, default=48, help="answer cap, as scripts/bench_live.py"
    )
    parser.add_argument("--background-load", type=int, default=0, metavar="N")
    parser.add_argument(
        "--realtime-speaker", action="store_true", help="play answers at the pace of sound"
    )
    parser.add_argument("--slow-ms", type=float, default=1200, help="flag answers this late")
    parser.add_argument("--json", type=Path, help="write every turn's figures here")
    parser.add_argument(
        "--record", type=Path, metavar="DIR", help="record the session (then: voiceterm replay DIR)"
    )
    args = parser.parse_args()
    soak = run_soak(args)
    passed = print_report(soak, args.slow_ms / 1000)
    if args.json:
        args.json.write_text(json.dumps(asdict(soak), indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
