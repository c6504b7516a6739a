"""Benchmark the LLM stage on the embedded model (or any GGUF) and print a report.

Measures, on this machine:
- load time; time to first token and tokens/s per thread setting, on an idle
  machine and with one core kept busy (as when TTS runs beside the LLM);
- the model as shipped against its 8-bit copy (``llm.eight_bit_copy``): reading
  a turn, the speculation, a token, and how likely each finds a test text;
- the speculation of an answer's first words in the end-of-speech wait, over a
  growing conversation, with the prompt read on one core and on all of them;
- prompt evaluation of a multi-turn conversation with the KV cache reused
  (only the new turn is evaluated) and without (the whole prompt);
- the first turn with and without ``warm_up`` of the system prompt;
- a long conversation as the app holds it (2048-token window, read ahead after
  every answer): what the turn that outgrows the window costs, with the kept
  turns' cache slid down over the dropped ones and with them read again;
- cancel latency: flag set from another thread -> generator finished, p50/p99,
  and through ``astream_chat``: ``task.cancel()`` -> task done;
- for the tools design: whether the tiny model can route requests to tools
  when a grammar forces it to answer ``{"tool": ...}``, against the rule-based
  intent step on the same requests.

Run: ``.venv/bin/python scripts/bench_llm.py [--model PATH] [--runs N]``.
Keep runs small on a shared 2-core machine; figures vary with other load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.stats import percentile
from voiceterm.engines.llm import (
    ChatMessage,
    LlamaEngine,
    SamplingSettings,
    astream_chat,
    json_schema_grammar,
)
from voiceterm.modelstore import resolve_model
from voiceterm.tools.intent import detect_intent

GREEDY = SamplingSettings(temperature=0.0)

SYSTEM: ChatMessage = {
    "role": "system",
    "content": "You are a friendly voice assistant. Answer in one or two short sentences.",
}
QUESTIONS = (
    "Tell me a fun fact about cats.",
    "What should I cook for dinner tonight?",
    "How do airplanes stay in the air?",
    "Give me a tip for sleeping better.",
    "Why is the sky blue?",
    "What is a good name for a dog?",
)
ROUTING_CASES = (
    ("what time is it", "clock"),
    ("what's the date today", "clock"),
    ("what day is it", "clock"),
    ("tell me the time please", "clock"),
    ("what is twelve times seven", "calculator"),
    ("what's 15 percent of 80", "calculator"),
    ("square root of 144", "calculator"),
    ("what is 3 plus 4", "calculator"),
    ("tell me a joke", "none"),
    ("what is the capital of France", "none"),
    ("how are you", "none"),
    ("who wrote hamlet", "none"),
)


def ms(seconds: float | None) -> str:
    return "   n/a" if seconds is None else f"{seconds * 1000:7.1f} ms"


def run(engine: LlamaEngine, messages: list[ChatMessage], max_tokens: int | None = None) -> str:
    return "".join(engine.generate(messages, threading.Event(), max_tokens=max_tokens))


def speed_by_threads(
    model: Path, configs: Sequence[tuple[int, int]], runs: int, busy: bool
) -> None:
    load_note = "one core kept busy by another process (as TTS would)" if busy else "no extra load"
    print(f"\n## First token and generation speed, cold prompt, 48 tokens, {load_note}")
    print("threads (gen/batch) | first token p50 (max) | prompt tokens | tokens/s p50 (min)")
    hog = (
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    )  # a stand-in for a concurrent stage on one core
    try:
        for threads, batch_threads in configs:
            with LlamaEngine(
                model, n_threads=threads, n_threads_batch=batch_threads, sampling=GREEDY
            ) as engine:
                firsts: list[float] = []
                speeds: list[float] = []
                prompt_tokens = 0
                for index in range(runs):
                    engine.reset()
                    run(engine, [SYSTEM, {"role": "user", "content": QUESTIONS[index % 6]}], 48)
                    stats = engine.last_stats
                    prompt_tokens = stats.prompt_tokens
                    if stats.time_to_first_token is not None:
                        firsts.append(stats.time_to_first_token)
                    if stats.tokens_per_second is not None:
                        speeds.append(stats.tokens_per_second)
                print(
                    f"{threads:>11d}/{batch_threads:<7d} | {ms(percentile(firsts, 50))} "
                    f"({ms(max(firsts)).strip()}) | {prompt_tokens:13d} | "
                    f"{percentile(speeds, 50):6.1f} ({min(speeds):.1f})"
                )
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def speculation_by_prompt_threads(model: Path, turns: int) -> None:
    """The answer's first words during the end-of-speech wait, as the app samples them.

    A conversation of ``turns`` turns grows the history; each turn speculates the
    reply's first words (prompt read, then up to 12 tokens, stopping after 4 words)
    with the prompt read on one core and on all of them: what ``CoreShare`` picks
    while Whisper and Piper rest.
    """
    cores = os.cpu_count() or 1
    print(f"\n## Speculation in the end-of-speech wait, {turns} turns, prompt read on 1 vs {cores}")
    print("prompt threads | speculation p50 (max) | history at the end")
    for batch_threads in sorted({1, cores}):
        with LlamaEngine(
            model, n_threads=1, n_threads_batch=batch_threads, max_tokens=48, seed=1
        ) as engine:
            engine.warm_up([SYSTEM])
            history: list[ChatMessage] = [SYSTEM]
            times: list[float] = []
            for turn in range(turns):
                messages = [*history, {"role": "user", "content": QUESTIONS[turn % 6]}]
                started = time.monotonic()
                engine.speculate(
                    messages, threading.Event(), tokens=12, enough=lambda t: len(t.split()) > 3
                )
                times.append(time.monotonic() - started)
                history = [*messages, {"role": "assistant", "content": run(engine, messages, 48)}]
                engine.read_ahead(history, max_tokens=48)
            print(
                f"{batch_threads:14d} | {ms(percentile(times, 50))} ({ms(max(times)).strip()}) "
                f"| {len(engine.prompt_tokens(history))} tokens"
            )


def weights_side_by_side(model: Path, runs: int) -> None:
    """The model as shipped against its 8-bit copy (``llm.eight_bit_copy``), interleaved.

    Per run and engine, in a 10-turn conversation as the app holds it: reading a
    new turn's words (every core), the speculation of the answer's first 4 words
    (the read, then tokens on every core), tokens of the answer after that (one
    core, as beside TTS), and how likely each finds a fixed text (the copy must
    know as much as the original).
    """
    import tempfile

    print(f"\n## Weights: {model.name} as shipped against its 8-bit copy, {runs} runs")
    history: list[ChatMessage] = [SYSTEM]
    for turn in range(10):
        history += [
            {"role": "user", "content": QUESTIONS[turn % 6]},
            {"role": "assistant", "content": "That is a good question, and the answer is yes."},
        ]
    messages = [*history, {"role": "user", "content": "He might even have been made amiable."}]
    with tempfile.TemporaryDirectory() as cache, contextlib.ExitStack() as stack:
        engines = {
            "as shipped": stack.enter_context(LlamaEngine(model, max_tokens=48, seed=1)),
            "8-bit copy": stack.enter_context(
                LlamaEngine(model, max_tokens=48, seed=1, eight_bit_copy_dir=Path(cache))
            ),
        }
        if engines["8-bit copy"].weights_path == model:
            print("(no copy: the model is not a small model in a 4-bit block format)")
            return
        figures: dict[str, dict[str, list[float]]] = {
            name: {"read": [], "speculation": [], "token": []} for name in engines
        }
        for _ in range(runs):
            for name, engine in engines.items():
                engine.read_ahead(history, max_tokens=48)
                figures[name]["read"].append(engine.warm_up(messages, max_tokens=48))
                engine.read_ahead(history, max_tokens=48)
                started = time.monotonic()
                engine.speculate(
                    messages, threading.Event(), enough=lambda text: len(text.split()) > 3
                )
                figures[name]["speculation"].append(time.monotonic() - started)
                arrivals = [
                    time.monotonic()
                    for _piece in engine.generate(messages, threading.Event(), max_tokens=16)
                ]
                gaps = [b - a for a, b in zip(arrivals[5:], arrivals[6:], strict=False)]
                figures[name]["token"].extend(gaps)
        print("weights    | read the turn | speculation | a token, 1 core | text log-prob")
        for name, engine in engines.items():
            row = {key: statistics.median(values) for key, values in figures[name].items()}
            print(
                f"{name:10s} | {ms(row['read'])}     | {ms(row['speculation'])}   "
                f"| {ms(row['token'])}       | {engine.mean_log_probability(LOGPROB_TEXT):.3f}"
            )


LOGPROB_TEXT = (
    "The quick brown fox jumps over the lazy dog. Paris is the capital of France, "
    "and the moon is about three hundred and eighty thousand kilometres away."
)


def cache_reuse(engine: LlamaEngine) -> None:
    print("\n## Prompt evaluation of turn N, with and without KV-cache reuse")
    conversation: list[ChatMessage] = [SYSTEM]
    rows = []
    for turn, question in enumerate(QUESTIONS):
        conversation.append({"role": "user", "content": question})
        reply = run(engine, conversation, 40)
        cached = engine.last_stats
        conversation.append({"role": "assistant", "content": reply})
        if turn in (0, 2, 5):
            engine.reset()
            run(engine, conversation[:-1], 40)  # the same prompt, cache emptied first
            cold = engine.last_stats
            rows.append((turn + 1, cached, cold))
            # Put the cache back as the conversation left it.
            engine.reset()
            run(engine, conversation[:-1], 1)
    print(
        "turn | prompt tokens | with cache: evaluated, eval time, first token "
        "| without cache: evaluated, eval time, first token"
    )
    for turn, cached, cold in rows:
        print(
            f"{turn:4d} | {cached.prompt_tokens:13d} | {cached.prompt_tokens_evaluated:9d}, "
            f"{ms(cached.prompt_eval_seconds)}, {ms(cached.time_to_first_token)} "
            f"| {cold.prompt_tokens_evaluated:9d}, {ms(cold.prompt_eval_seconds)}, "
            f"{ms(cold.time_to_first_token)}"
        )


def history_trim(model: Path, turns: int) -> None:
    """A conversation that outgrows the window, as the app runs it, slide on and off.

    After every answer the app reads the history ahead on one core (the next turn
    then finds it cached). When the history no longer fits, old turns are dropped
    and the kept ones either slide down in the KV cache or are read again.
    """
    print(f"\n## A {turns}-turn conversation outgrowing the 2048-token window (read ahead, 1 core)")
    print("kept turns | trims | read-ahead at a trim (max) | other read-aheads p50 | 1st token max")
    animals = "cat dog horse cow pig goat duck bird fish frog bear lion tiger wolf fox owl bee ant"
    for slide in (True, False):
        with LlamaEngine(
            model, n_threads=1, max_tokens=48, sampling=GREEDY, slide_cache=slide
        ) as engine:
            history: list[ChatMessage] = [SYSTEM]
            read_aheads: list[float] = []
            dropped: list[int] = []
            first_tokens: list[float] = []
            for turn in range(turns):
                animal = animals.split()[turn % 18]
                history.append({"role": "user", "content": f"Tell me a story about a {animal}."})
                reply = run(engine, history, 48)
                first_tokens.append(engine.last_stats.time_to_first_token or 0.0)
                dropped.append(engine.last_stats.messages_dropped)
                history.append({"role": "assistant", "content": reply})
                read_aheads.append(engine.read_ahead(history, max_tokens=48))
            # A read-ahead trimmed when the turn after it dropped more than the one before.
            trimmed = {turn - 1 for turn in range(1, turns) if dropped[turn] > dropped[turn - 1]}
            at_trims = [read_aheads[turn] for turn in sorted(trimmed)]
            others = [seconds for turn, seconds in enumerate(read_aheads) if turn not in trimmed]
            print(
                f"{'slid down' if slide else 'read again':10s} | {len(at_trims):5d} | "
                f"{ms(max(at_trims, default=0.0))} | {ms(percentile(others, 50))} "
                f"| {ms(max(first_tokens))}"
            )


def warm_up_effect(engine: LlamaEngine, runs: int) -> None:
    print("\n## First turn: system prompt warmed up beforehand or not")
    cold: list[float] = []
    warm: list[float] = []
    for index in range(runs):
        question = [SYSTEM, {"role": "user", "content": QUESTIONS[index % 6]}]
        engine.reset()
        run(engine, question, 8)
        cold.append(engine.last_stats.time_to_first_token or 0.0)
        engine.reset()
        engine.warm_up([SYSTEM])
        run(engine, question, 8)
        warm.append(engine.last_stats.time_to_first_token or 0.0)
    print(f"first token p50: cold {ms(percentile(cold, 50))}, warm {ms(percentile(warm, 50))}")


def cancel_latency(engine: LlamaEngine, runs: int) -> None:
    print("\n## Cancel latency (flag set -> generator finished)")
    rng = random.Random(0)
    latencies: list[float] = []
    for index in range(runs):
        cancel = threading.Event()
        set_at: list[float] = []
        stream = engine.generate(
            [SYSTEM, {"role": "user", "content": QUESTIONS[index % 6]}], cancel, max_tokens=200
        )
        next(stream)

        def trip(flag: threading.Event = cancel, stamp: list[float] = set_at) -> None:
            stamp.append(time.monotonic())
            flag.set()

        timer = threading.Timer(rng.uniform(0.02, 0.2), trip)
        timer.start()
        for _piece in stream:
            pass
        ended = time.monotonic()
        timer.join()
        if engine.last_stats.stop_reason == "cancelled" and set_at:
            latencies.append(ended - set_at[0])
    print(
        f"thread flag, {len(latencies)} runs: p50 {ms(percentile(latencies, 50))}, "
        f"p99 {ms(percentile(latencies, 99))}, max {ms(max(latencies))}"
    )

    async def via_asyncio() -> list[float]:
        results: list[float] = []
        for index in range(runs):
            first = asyncio.Event()

            async def consume(question: str, ready: asyncio.Event = first) -> None:
                messages = [SYSTEM, {"role": "user", "content": question}]
                async for _piece in astream_chat(engine, messages, max_tokens=200):
                    ready.set()

            task = asyncio.create_task(consume(QUESTIONS[index % 6]))
            await first.wait()
            await asyncio.sleep(rng.uniform(0.02, 0.2))
            started = time.monotonic()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            results.append(time.monotonic() - started)
        return results

    latencies = asyncio.run(via_asyncio())
    print(
        f"astream_chat task.cancel() -> worker done, {len(latencies)} runs: "
        f"p50 {ms(percentile(latencies, 50))}, p99 {ms(percentile(latencies, 99))}"
    )


def tool_routing(engine: LlamaEngine) -> None:
    print("\n## Tool routing: tiny model under a grammar vs the rule-based intent step")
    schema = {
        "type": "object",
        "properties": {"tool": {"enum": ["clock", "calculator", "none"]}},
        "required": ["tool"],
    }
    grammar = json_schema_grammar(schema)
    router = (
        'You route requests to tools. Reply with JSON. Use "clock" for questions about the '
        'time, date or day, "calculator" for arithmetic, and "none" for anything else.'
    )
    model_right = rules_right = 0
    for said, wanted in ROUTING_CASES:
        messages: list[ChatMessage] = [
            {"role": "system", "content": router},
            {"role": "user", "content": said},
        ]
        text = "".join(engine.generate(messages, threading.Event(), grammar=grammar, max_tokens=20))
        try:
            chosen = json.loads(text)["tool"]
        except (json.JSONDecodeError, KeyError, TypeError):
            chosen = "?"
        intent = detect_intent(said)
        by_rules = intent.name if intent is not None else "none"
        model_right += chosen == wanted
        rules_right += by_rules == wanted
    total = len(ROUTING_CASES)
    print(f"model + grammar: {model_right}/{total} right; rules: {rules_right}/{total} right")


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the LLM stage.")
    parser.add_argument("--model", help="a GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--runs", type=int, default=10, help="runs per latency figure")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = resolve_model("llm", args.model).path
    print(f"# LLM benchmark: {model.name}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    started = time.monotonic()
    with LlamaEngine(model) as engine:
        print(f"load {ms(time.monotonic() - started)}")
    cores = os.cpu_count() or 1
    configs = sorted({(1, 1), (1, cores), (cores, cores)})
    for busy in (False, True):
        speed_by_threads(model, configs, max(3, args.runs // 2), busy)
    weights_side_by_side(model, args.runs)
    speculation_by_prompt_threads(model, 2 * args.runs)
    history_trim(model, 4 * args.runs)
    with LlamaEngine(model) as engine:
        print(f"\nengine defaults: n_threads={engine.threads.n_threads}, n_ctx={engine.n_ctx}")
        cache_reuse(engine)
        warm_up_effect(engine, max(3, args.runs // 2))
        cancel_latency(engine, args.runs)
        tool_routing(engine)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
