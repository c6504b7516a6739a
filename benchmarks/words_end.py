"""What reading P(end of the user's message) costs, three ways, against a plain read.

At a pause the app reads the user's words into the KV cache (the system prompt is
there already). The end-of-message token's probability after the words needs the
logits of the position of the last word, which is not the prompt's last position
(the template's tail follows: ``<|im_end|>\\n<|im_start|>assistant\\n``). Ways:

* ``plain``: one read of the prompt, no probability (what the app did before);
* ``split``: read up to the words' end, take the logits, read the tail (voiceterm);
* ``one-token``: read the prompt, then drop the tail and the last word from the
  cache and read them again (a one-token eval for the logits, then the tail);
* ``logits_all``: llama-cpp-python's ``logits_all=True`` (every position's logits
  kept; a second model instance, as the flag is fixed at load).

``--few-shot CACHE`` instead asks whether a few-shot prompt separates better
than the plain P(<|im_end|>): on every pause of ``scripts/bench_turns.py --cache
CACHE`` it reads "Said: <words> ->" after eight examples marked finished or
unfinished, takes P(" finished") against P(" unfinished"), and prints both
signals' ROC AUC on the tuning and the held-back part.

``--chat-shots CACHE`` asks the same of the issue's other remedy: example
exchanges of short finished messages ("yes please", "forty two", written here,
none from the recordings) put in the chat template before the user's words, and
the plain P(<|im_end|>) read after them; prints both AUCs and the ms of a read
after the constant prefix (in the KV cache).

Usage: ``.venv/bin/python scripts/bench_words_end.py [--runs 5] [--few-shot CACHE]
[--chat-shots CACHE]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.stats import percentile

SENTENCES = (
    "What is the capital of France?",
    "I'd like to book a table for two at seven tonight.",
    "Can you tell me what the weather is going to be like tomorrow in Paris?",
    "Cancel that.",
    "Remind me to call my mother when I get home from work this evening.",
    "What do you know about the dolphin?",
    "Play something relaxing, maybe some jazz or classical music.",
    "How long does it take to boil an egg?",
)


FEW_SHOT = (
    "Each line is something a person said to a voice assistant, and whether they had "
    "finished speaking or stopped in the middle.\n"
    "Said: what is the capital of France? -> finished\n"
    "Said: can you tell me about the -> unfinished\n"
    "Said: turn off the lights -> finished\n"
    "Said: I was thinking that maybe we could -> unfinished\n"
    "Said: seven of hearts -> finished\n"
    "Said: and then he said. -> unfinished\n"
    "Said: play some music please -> finished\n"
    "Said: the reason I ask is -> unfinished\n"
)


# Short messages that end without a full stop, each with a short answer. Generic,
# written for this; none is (or is close to) a text of the recordings.
CHAT_SHOTS = (
    ("Turn off the kitchen light", "Done, the kitchen light is off."),
    ("yes please", "All right."),
    ("forty two", "Forty-two it is."),
    ("what time is it", "It's ten past three."),
    ("the blue one", "The blue one, then."),
    ("next song", "Skipping to the next song."),
    ("stop", "Stopped."),
    ("Tuesday at noon", "Tuesday at noon works."),
)


def chat_shots(cache: Path) -> int:
    """ROC AUC of P(<|im_end|>) after example exchanges against the plain one."""
    import llama_cpp
    import numpy as np

    from benchmarks.turn_clips import pause_points, read_clips, roc_auc
    from voiceterm.config import Config
    from voiceterm.engines.llm import LlamaEngine
    from voiceterm.engines.llm.messages import ChatMessage
    from voiceterm.engines.llm.words_end import end_probability, user_words_end
    from voiceterm.modelstore import resolve_model

    clips = read_clips(cache)
    engine = LlamaEngine(resolve_model("llm").path)
    llm = engine._llm
    prefix: list[ChatMessage] = [{"role": "system", "content": Config().llm.system_prompt}]
    for said, answer in CHAT_SHOTS:
        prefix += [{"role": "user", "content": said}, {"role": "assistant", "content": answer}]
    read: dict[str, float] = {}
    spent: list[float] = []

    def reading(words: str) -> float:
        if words not in read:
            messages = [*prefix, {"role": "user", "content": words}]
            prompt = engine.prompt_tokens(messages)
            count = user_words_end(messages, prompt, engine.render_prompt, engine.special_tokens)
            if count is None:  # as the app: no reading
                read[words] = 0.0
                return 0.0
            cached = llm.input_ids[: llm.n_tokens].tolist()
            same = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(cached, prompt[: count - 1], strict=False))
                    if a != b
                ),
                min(len(cached), count - 1),
            )
            started = time.process_time()
            llm.n_tokens = same
            llm.eval(prompt[same:count])
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits(llm.ctx), shape=(llm.n_vocab(),)
            )
            read[words] = end_probability(logits, prompt[count])
            spent.append(1000 * (time.process_time() - started))
        return read[words]

    print("ROC AUC at the pause points, true end vs goes on (the held-back part: printed only)")
    for part in ("tuning", "held-back"):
        pauses = pause_points(clips, part)
        labels = [p.final for p in pauses]
        shots = [reading(p.words) if p.words.strip() else 0.5 for p in pauses]
        plain = [p.words_end for p in pauses]
        print(
            f"  {part:<10} with the example exchanges {roc_auc(shots, labels):.2f}   "
            f"plain P(<|im_end|>) {roc_auc(plain, labels):.2f}   ({len(pauses)} pauses)"
        )
    print(
        f"a read after the cached prefix: {percentile(spent, 50):.0f} ms CPU p50 "
        f"({len(spent)} reads, load {os.getloadavg()[0]:.1f})"
    )
    for words in ("yes please", "Cancel that.", "What is the capital of"):
        print(f"  {words!r}: {reading(words):.3f}")
    engine.close()
    return 0


def few_shot(cache: Path) -> int:
    """ROC AUC of a few-shot "finished?" reading against the plain P(<|im_end|>)."""
    import math

    import llama_cpp
    import numpy as np

    from benchmarks.turn_clips import read_clips, roc_auc
    from voiceterm.engines.llm import LlamaEngine
    from voiceterm.modelstore import resolve_model

    clips = read_clips(cache)
    engine = LlamaEngine(resolve_model("llm").path)
    weights = engine.weights_path
    engine.close()
    llm = llama_cpp.Llama(str(weights), n_ctx=1024, n_threads=1, verbose=False)
    llm.eval(llm.tokenize(FEW_SHOT.encode(), add_bos=True))
    prefix = llm.n_tokens
    finished = llm.tokenize(b" finished", add_bos=False)[0]
    unfinished = llm.tokenize(b" unfinished", add_bos=False)[0]
    read: dict[str, float] = {}

    def reading(words: str) -> float:
        if words not in read:
            llm.n_tokens = prefix
            llm.eval(llm.tokenize(f"Said: {words.strip()} ->".encode(), add_bos=False))
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits(llm.ctx), shape=(llm.n_vocab(),)
            )
            read[words] = 1 / (1 + math.exp(float(logits[unfinished] - logits[finished])))
        return read[words]

    print(
        "ROC AUC at the pause points (the whole turns and the 700 ms copies), true end vs goes on"
    )
    for part in ("tuning", "held-back"):
        pauses = [
            p
            for c in clips
            if c.part == part and (c.kind == "whole" or c.name.endswith("+700ms"))
            for p in c.pauses
            if 200 in p.probability
        ]
        labels = [p.final for p in pauses]
        shots = [reading(p.words) if p.words else 0.5 for p in pauses]
        plain = [p.words_end for p in pauses]
        print(
            f"  {part:<10} few-shot {roc_auc(shots, labels):.2f}   "
            f"plain P(<|im_end|>) {roc_auc(plain, labels):.2f}   ({len(pauses)} pauses)"
        )
    llm.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--few-shot", type=Path, metavar="CACHE", help="bench_turns.py's cache")
    parser.add_argument("--chat-shots", type=Path, metavar="CACHE", help="bench_turns.py's cache")
    args = parser.parse_args()
    if args.chat_shots is not None:
        return chat_shots(args.chat_shots)
    if args.few_shot is not None:
        return few_shot(args.few_shot)
    import llama_cpp

    from voiceterm.config import Config
    from voiceterm.engines.llm import LlamaEngine
    from voiceterm.engines.llm.words_end import user_words_end
    from voiceterm.modelstore import resolve_model

    path = resolve_model("llm").path
    engine = LlamaEngine(path)  # for the template and the 8-bit copy it runs from
    system = {"role": "system", "content": Config().llm.system_prompt}
    prompts = []
    for words in SENTENCES:
        messages = [system, {"role": "user", "content": words}]
        prompt = engine.prompt_tokens(messages)
        count = user_words_end(messages, prompt, engine.render_prompt, engine.special_tokens)
        assert count is not None
        prompts.append((prompt, count))
    # The system prompt's tokens, shared by every prompt: in the cache already.
    first, second = prompts[0][0], prompts[1][0]
    head = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    weights = engine.weights_path
    engine.close()
    threads = 1  # a busy machine: more threads only wait for each other
    plain_llm = llama_cpp.Llama(
        str(weights), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    all_llm = llama_cpp.Llama(
        str(weights),
        n_ctx=2048,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
        logits_all=True,
    )

    def from_system(llm: Any, prompt: list[int]) -> None:
        if llm.n_tokens < head or list(llm.input_ids[:head]) != prompt[:head]:
            llm.reset()
            llm.eval(prompt[:head])
        llm.n_tokens = head

    def plain(prompt: list[int], count: int) -> None:
        from_system(plain_llm, prompt)
        plain_llm.eval(prompt[head:])

    def split(prompt: list[int], count: int) -> None:
        from_system(plain_llm, prompt)
        plain_llm.eval(prompt[head:count])
        llama_cpp.llama_get_logits(plain_llm.ctx)
        plain_llm.eval(prompt[count:])

    def one_token(prompt: list[int], count: int) -> None:
        from_system(plain_llm, prompt)
        plain_llm.eval(prompt[head:])
        plain_llm.n_tokens = count - 1
        plain_llm.eval(prompt[count - 1 : count])
        llama_cpp.llama_get_logits(plain_llm.ctx)
        plain_llm.eval(prompt[count:])

    def logits_all(prompt: list[int], count: int) -> None:
        from_system(all_llm, prompt)
        all_llm.eval(prompt[head:])
        all_llm.scores[count - 1]

    ways = {"plain": plain, "split": split, "one-token": one_token, "logits_all": logits_all}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.runs):
        for name, way in ways.items():
            for prompt, count in prompts:
                started = time.process_time()
                way(prompt, count)
                times[name].append(1000 * (time.process_time() - started))
    new_tokens = statistics.mean(len(p) - head for p, _ in prompts)
    print("CPU time of the process (one thread), not wall time: the machine is shared")
    print(
        f"{len(prompts)} user turns (~{new_tokens:.0f} new tokens each), {args.runs} runs, "
        f"{threads} threads, load {os.getloadavg()[0]:.1f}"
    )
    base = percentile(times["plain"], 50)
    for name, spent in times.items():
        median = percentile(spent, 50)
        print(
            f"  {name:<11} {median:6.1f} ms p50  (+{median - base:5.1f} ms, "
            f"x{median / base:.2f} of a plain read)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
