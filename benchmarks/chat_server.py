"""What an OpenAI-compatible server adds to the LLM stage, beside the in-process engine.

The same weights answer the same questions twice, turn about: in this process
(``LlamaEngine``, as the app loads it: the 8-bit copy) and from llama-cpp-python's
own server on 127.0.0.1 (``tests/chat_server.py``) run on that very file with the
engine's thread counts, through ``ChatServerEngine`` (the openai SDK, streaming).
The difference in time to first piece is what HTTP and the server add.

The server's answers stream on one event loop of this script, as on the app's bus loop;
the in-process engine's blocking ``generate`` is timed as it runs in its worker.

Then the barge-in: a long answer from the server is cancelled after a few pieces;
"interrupt -> stream closed" is how long closing the connection took
(``ChatServerEngine.last_close_seconds``), and "interrupt -> generator done" from
the task's cancel to the task done (what the reasoning node waits for).

Usage: ``.venv/bin/python scripts/bench_chat_server.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.llm_server import LocalChatServer
from benchmarks.stats import percentile
from voiceterm import paths
from voiceterm.config import Config
from voiceterm.engines.llm import ChatMessage, LlamaEngine, SamplingSettings
from voiceterm.engines.llm.server import ChatServerEngine
from voiceterm.modelstore import resolve_model

QUESTIONS = (
    "What is the capital of France?",
    "Tell me about the moon.",
    "How do I boil an egg?",
    "Why is the sky blue?",
    "What should I cook tonight?",
    "Can you recommend a good book?",
)


def first_piece_seconds(engine: LlamaEngine, messages: list[ChatMessage]) -> float:
    cancel = threading.Event()
    started = time.monotonic()
    pieces = engine.generate(messages, cancel, max_tokens=24)
    try:
        next(pieces)
        return time.monotonic() - started
    finally:
        cancel.set()
        pieces.close()


def served_first_piece_seconds(
    loop: asyncio.AbstractEventLoop, engine: ChatServerEngine, messages: list[ChatMessage]
) -> float:
    async def first() -> float:
        started = time.monotonic()
        async with contextlib.aclosing(engine.stream_chat(messages, max_tokens=24)) as pieces:
            await anext(pieces)
            return time.monotonic() - started

    return loop.run_until_complete(first())


def interrupt_seconds(
    loop: asyncio.AbstractEventLoop, engine: ChatServerEngine, messages: list[ChatMessage]
) -> tuple[float, float]:
    async def interrupt() -> float:
        heard = asyncio.Event()

        async def listen() -> None:
            count = 0
            async for _piece in engine.stream_chat(messages, max_tokens=200):
                count += 1
                if count == 5:
                    heard.set()

        task = asyncio.create_task(listen())
        await heard.wait()
        interrupted = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return time.monotonic() - interrupted

    done = loop.run_until_complete(interrupt())
    closed = engine.last_close_seconds
    return (float("nan") if closed is None else closed), done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the questions")
    args = parser.parse_args()
    load_before = os.getloadavg()
    config = Config()
    local = LlamaEngine(
        resolve_model("llm").path,
        n_ctx=config.llm.context_tokens,
        sampling=SamplingSettings(temperature=config.llm.temperature),
        eight_bit_copy_dir=paths.cache_dir() / "llm",
    )
    threads = (
        "--n_threads",
        str(local.threads.n_threads),
        "--n_threads_batch",
        str(local.threads.n_threads_batch),
    )
    log = Path(tempfile.gettempdir()) / "bench_chat_server.log"
    server = LocalChatServer(log, model=local.weights_path, extra=threads).start()
    loop = asyncio.new_event_loop()  # one for all the answers, as the app's bus loop
    try:
        remote = ChatServerEngine(server.url, temperature=config.llm.temperature)
        remote.check()
        system: ChatMessage = {"role": "system", "content": config.llm.system_prompt}
        # Both read the system prompt once before timing (the app warms up the same way).
        first_piece_seconds(local, [system, {"role": "user", "content": "Hello."}])
        served_first_piece_seconds(loop, remote, [system, {"role": "user", "content": "Hello."}])
        in_process: list[float] = []
        served: list[float] = []
        for _round in range(args.rounds):
            for question in QUESTIONS:
                messages: list[ChatMessage] = [system, {"role": "user", "content": question}]
                in_process.append(first_piece_seconds(local, messages))
                served.append(served_first_piece_seconds(loop, remote, messages))
        closed: list[float] = []
        done: list[float] = []
        time.sleep(0.5)  # the server's last "disconnected" line, from the timing above
        disconnects = server.output().count("Disconnected from client")
        for question in QUESTIONS:
            messages = [system, {"role": "user", "content": f"{question} Answer at length."}]
            close_s, done_s = interrupt_seconds(loop, remote, messages)
            closed.append(close_s)
            done.append(done_s)
        time.sleep(0.5)
        noticed = server.output().count("Disconnected from client") - disconnects
        loop.run_until_complete(remote.aclose())
    finally:
        loop.close()
        server.stop()
        local.close()
    load_after = os.getloadavg()
    print(f"weights {local.weights_path.name}, threads {' '.join(threads)}")
    print(
        f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f};"
        f" {os.cpu_count()} cores"
    )
    print(f"time to first piece over {len(in_process)} questions (ms)      p50     p95")
    for label, values in (("in process (LlamaEngine)", in_process), ("server (HTTP)", served)):
        p50, p95 = percentile(values, 50), percentile(values, 95)
        print(f"  {label:<44}{p50 * 1000:7.1f} {p95 * 1000:7.1f}")
    added = [s - i for s, i in zip(served, in_process, strict=True)]
    print(
        f"  {'added by HTTP + server (paired)':<44}"
        f"{percentile(added, 50) * 1000:7.1f} {percentile(added, 95) * 1000:7.1f}"
    )
    print(f"barge-in over {len(closed)} answers (ms)                        p50     p95")
    print(
        f"  {'interrupt -> stream closed':<44}"
        f"{percentile(closed, 50) * 1000:7.1f} {percentile(closed, 95) * 1000:7.1f}"
    )
    print(
        f"  {'interrupt -> generator done':<44}"
        f"{percentile(done, 50) * 1000:7.1f} {percentile(done, 95) * 1000:7.1f}"
    )
    print(f"  the server logged {noticed} of {len(closed)} disconnects (it stopped generating)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
