"""The LLM engine on the real embedded model (SmolLM2-135M), and the async adapter.

Speed is not asserted here (scripts/bench_llm.py measures it); these tests check
what a user would notice: an answer streams in, stops when cut off, the next
answer is fine, long conversations keep working, broken model files give one
clear sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.cores import machine
from voiceterm.engines.cores import CoreShare
from voiceterm.engines.llm import (
    ChatEngine,
    ChatMessage,
    LlamaEngine,
    ReadsAhead,
    SamplingSettings,
    Speculates,
    astream_chat,
    json_schema_grammar,
)
from voiceterm.engines.llm.protocol import chat_template_source, reads_ahead, speculates
from voiceterm.errors import EngineError, ModelError
from voiceterm.modelstore import resolve_model

STREAM_DEADLINE_S = 60.0
"""Longest wait for a stream's first pieces: far past any healthy run on a busy machine."""

GREEDY = SamplingSettings(temperature=0.0)

SYSTEM = {"role": "system", "content": "You are a friendly voice assistant. Answer briefly."}
ENGLISH_WORDS = {"the", "a", "an", "is", "are", "and", "to", "of", "you", "i", "it", "they", "can"}


def looks_like_english(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    letters = sum(ch.isascii() and ch.isalpha() for ch in text)
    return (
        len(words) >= 3 and letters / max(len(text), 1) > 0.6 and bool(ENGLISH_WORDS & set(words))
    )


def ask(question: str) -> list[ChatMessage]:
    return [SYSTEM, {"role": "user", "content": question}]


@pytest.fixture(scope="module")
def model_path() -> Path:
    return resolve_model("llm").path


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Iterator[LlamaEngine]:
    with LlamaEngine(model_path, max_tokens=48) as loaded:
        yield loaded


# --- the real model ---------------------------------------------------------------


@pytest.mark.models
def test_streams_an_english_answer_in_pieces(engine: LlamaEngine) -> None:
    pieces = list(engine.generate(ask("Tell me a fun fact about cats."), threading.Event()))
    text = "".join(pieces)
    assert len(pieces) >= 5
    assert looks_like_english(text), text
    stats = engine.last_stats
    assert stats.tokens_generated >= len(pieces) - 1
    assert stats.time_to_first_token is not None and stats.time_to_first_token > 0
    assert stats.tokens_per_second is not None and stats.tokens_per_second > 0
    assert stats.stop_reason in ("stop", "length")
    assert "<|im_" not in text  # the template's control tokens never leak into speech


@pytest.mark.models
def test_has_every_capability_the_pipeline_uses(engine: LlamaEngine) -> None:
    assert isinstance(engine, ChatEngine)
    assert speculates(engine) and isinstance(engine, Speculates)
    assert reads_ahead(engine) and isinstance(engine, ReadsAhead)
    assert chat_template_source(engine) == "gguf"


@pytest.mark.models
def test_uses_the_models_own_chat_template(engine: LlamaEngine) -> None:
    assert engine.chat_template_source == "gguf"
    prompt = engine.render_prompt(ask("Hi"))
    assert prompt.startswith("<|im_start|>system\nYou are a friendly voice assistant.")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert engine.count_tokens("Hello there, how are you?") > 3


@pytest.mark.models
def test_cancel_stops_within_one_token_and_the_next_answer_is_clean(engine: LlamaEngine) -> None:
    cancel = threading.Event()
    seen_after_cancel = 0
    for index, _piece in enumerate(engine.generate(ask("Tell me about dogs."), cancel)):
        if cancel.is_set():
            seen_after_cancel += 1
        if index == 2:
            cancel.set()
    assert seen_after_cancel <= 1
    assert engine.last_stats.stop_reason == "cancelled"
    assert engine.last_stats.tokens_generated <= 4

    # A cancel from another thread, mid-token, also ends the stream promptly.
    cancel = threading.Event()
    pieces = engine.generate(ask("Tell me about horses."), cancel)
    next(pieces)
    threading.Timer(0.01, cancel.set).start()
    rest = list(pieces)
    assert len(rest) < 47
    assert engine.last_stats.stop_reason == "cancelled"

    text = "".join(engine.generate(ask("Tell me a fun fact about cats."), threading.Event()))
    assert looks_like_english(text), text
    assert engine.last_stats.stop_reason in ("stop", "length")


@pytest.mark.models
def test_an_abandoned_stream_leaves_the_model_usable(engine: LlamaEngine) -> None:
    stream = engine.generate(ask("Tell me about the sea."), threading.Event())
    next(stream)
    stream.close()  # what a cancelled consumer does
    text = "".join(engine.generate(ask("Tell me a fun fact about cats."), threading.Event()))
    assert looks_like_english(text), text


@pytest.mark.models
def test_second_turn_reuses_the_prompt_cache(engine: LlamaEngine) -> None:
    conversation = ask("Hello! What can you do?")
    first_reply = "".join(engine.generate(conversation, threading.Event()))
    first = engine.last_stats
    conversation += [
        {"role": "assistant", "content": first_reply},
        {"role": "user", "content": "Tell me more about that."},
    ]
    "".join(engine.generate(conversation, threading.Event()))
    second = engine.last_stats
    assert second.prompt_tokens > first.prompt_tokens
    # Only the new part is evaluated: the reply (re-tokenized) and the new question.
    assert second.prompt_tokens_evaluated < second.prompt_tokens
    assert second.prompt_tokens_cached >= first.prompt_tokens - 2
    new_tokens = second.prompt_tokens - first.prompt_tokens
    assert second.prompt_tokens_evaluated <= new_tokens + 2


@pytest.mark.models
def test_a_speculated_start_gives_the_same_reply_it_would_have_had(model_path: Path) -> None:
    # Greedy sampling, so the reply with and without speculation can be compared.
    with LlamaEngine(model_path, max_tokens=40, sampling=GREEDY) as greedy:
        question = ask("What is the tallest mountain in the world?")
        plain = "".join(greedy.generate(question, threading.Event()))
        greedy.reset()
        ahead = greedy.speculate(question, threading.Event(), tokens=10, max_tokens=40)
        assert len(ahead.pieces) >= 5 and plain.startswith("".join(ahead.pieces))
        assert not ahead.whole_reply
        replayed = "".join(greedy.generate(question, threading.Event()))
        stats = greedy.last_stats
        assert replayed == plain
        assert stats.speculated_tokens == 10
        assert stats.tokens_generated == len(greedy._llm.tokenize(plain.encode(), add_bos=False))


@contextlib.contextmanager
def greedy_on_two_cores(model_path: Path) -> Iterator[tuple[LlamaEngine, CoreShare]]:
    """A greedy engine that generates on one core and may read prompts on two."""
    cores = CoreShare(machine(2))  # nothing else runs on the machine
    with LlamaEngine(
        model_path, max_tokens=16, sampling=GREEDY, n_threads=1, n_threads_batch=2, cores=cores
    ) as greedy:
        yield greedy, cores


@pytest.mark.models
def test_prompts_are_read_on_every_core_only_while_the_other_engines_rest(
    model_path: Path,
) -> None:
    with greedy_on_two_cores(model_path) as (greedy, cores):
        question = ask("What is the capital of France?")
        alone = "".join(greedy.generate(question, threading.Event()))
        assert greedy.threads.last_prompt_threads == 2
        greedy.reset()
        with cores.computing("stt"):
            beside_whisper = "".join(greedy.generate(question, threading.Event()))
            assert greedy.threads.last_prompt_threads == 1
        assert beside_whisper == alone  # the same answer, whatever the threads
        history = [*question, {"role": "assistant", "content": alone}]
        greedy.read_ahead(history, max_tokens=16)
        assert greedy.threads.last_prompt_threads == 1  # seconds long: never on every core
        greedy.warm_up(history)
        assert greedy.threads.last_prompt_threads == 2


@pytest.mark.models
def test_a_speculation_samples_on_every_core_and_the_reply_goes_on_one(
    model_path: Path,
) -> None:
    # The speculation runs in the end-of-speech wait, when nothing else computes;
    # the reply's later tokens run beside Piper.
    with greedy_on_two_cores(model_path) as (greedy, cores):
        question = ask("What is the capital of France?")
        plain = "".join(greedy.generate(question, threading.Event()))
        assert greedy.threads.last_token_threads == 1
        greedy.reset()
        ahead = greedy.speculate(question, threading.Event(), tokens=4)
        assert greedy.threads.last_token_threads == 2
        replayed = "".join(greedy.generate(question, threading.Event()))
        assert greedy.threads.last_token_threads == 1
        assert plain.startswith("".join(ahead.pieces)) and replayed == plain
        greedy.reset()
        with cores.computing("tts"):  # not alone: no more than its share
            greedy.speculate(question, threading.Event(), tokens=4)
            assert greedy.threads.last_token_threads == 1


@pytest.mark.models
def test_with_one_core_taken_by_another_program_everything_runs_on_one_thread(
    model_path: Path,
) -> None:
    # Two threads would wait at every layer for the one that lost its core.
    with greedy_on_two_cores(model_path) as (greedy, _cores):
        question = ask("What is the capital of France?")
        alone = "".join(greedy.generate(question, threading.Event()))
        greedy.reset()
        greedy.threads.cores = CoreShare(machine(2, others=1.0))
        beside_a_program = "".join(greedy.generate(question, threading.Event()))
        assert (greedy.threads.last_prompt_threads, greedy.threads.last_token_threads) == (1, 1)
        assert beside_a_program == alone
        greedy.reset()
        greedy.speculate(question, threading.Event(), tokens=4)
        assert (greedy.threads.last_prompt_threads, greedy.threads.last_token_threads) == (1, 1)
        greedy.warm_up(question)
        assert greedy.threads.last_prompt_threads == 1
        greedy.threads.cores = CoreShare(machine(2))  # the program ended: both cores again
        greedy.warm_up(ask("What is the capital of Spain?"))
        assert greedy.threads.last_prompt_threads == 2


@pytest.mark.models
def test_with_one_core_left_the_answer_waits_for_pipers_steps(model_path: Path) -> None:
    # Piper makes what the user waits to hear; a token beside it on one core slows it.
    cores = CoreShare(machine(2, others=1.0))
    with LlamaEngine(model_path, max_tokens=16, sampling=GREEDY, cores=cores) as greedy:
        pieces: list[str] = []

        def answer() -> None:
            pieces.extend(greedy.generate(ask("Name a big city in Europe."), threading.Event()))

        worker = threading.Thread(target=answer)
        with cores.computing("tts"):
            worker.start()
            worker.join(1.0)
            assert worker.is_alive() and greedy.last_stats.tokens_generated <= 1
        worker.join(30)
        assert greedy.last_stats.tokens_generated > 1 and "".join(pieces).strip()


@pytest.mark.models
def test_a_speculation_waits_while_whisper_computes(model_path: Path) -> None:
    cores = CoreShare()
    with LlamaEngine(model_path, max_tokens=16, sampling=GREEDY, cores=cores) as greedy:
        question = ask("Name a big city in Europe.")
        texts: list[str] = []
        pieces: list[tuple[str, ...]] = []

        def never_enough(text: str) -> bool:  # records each token's text so far
            texts.append(text)
            return False

        def speculate() -> None:
            pieces.append(
                greedy.speculate(question, threading.Event(), tokens=6, enough=never_enough).pieces
            )

        worker = threading.Thread(target=speculate)
        with cores.computing("stt"):
            worker.start()
            worker.join(1.0)
            # Newer words are being transcribed: at most the first token meanwhile.
            assert len(texts) <= 1
        worker.join(30)
        # Then it went on to the end.
        assert len(texts) > 1 and "".join(pieces[0]).startswith(texts[-1])


@pytest.mark.models
def test_a_speculation_for_other_words_is_forgotten(model_path: Path) -> None:
    with LlamaEngine(model_path, max_tokens=24, sampling=GREEDY) as greedy:
        other = ask("Name a big city in Europe.")
        plain = "".join(greedy.generate(other, threading.Event()))
        greedy.speculate(ask("Name a big"), threading.Event(), tokens=8, max_tokens=24)
        after = "".join(greedy.generate(other, threading.Event()))
        assert greedy.last_stats.speculated_tokens == 0
        assert after == plain


@pytest.mark.models
def test_grammar_constrains_the_output(engine: LlamaEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"tool": {"enum": ["clock", "calculator", "none"]}},
        "required": ["tool"],
    }
    text = "".join(
        engine.generate(
            ask("Which tool answers: what time is it? Reply in JSON."),
            threading.Event(),
            grammar=json_schema_grammar(schema),
            max_tokens=20,
        )
    )
    assert json.loads(text)["tool"] in ("clock", "calculator", "none")


@pytest.mark.models
def test_fit_messages_keeps_the_system_prompt_and_drops_the_oldest(engine: LlamaEngine) -> None:
    conversation: list[ChatMessage] = [SYSTEM]
    for turn in range(12):
        conversation += [
            {"role": "user", "content": f"Question {turn}: tell me something about number {turn}."},
            {"role": "assistant", "content": f"Answer {turn}: " + "a fairly long answer " * 6},
        ]
    conversation.append({"role": "user", "content": "And finally, what about you?"})
    fitted = engine.fit_messages(conversation, 200)
    assert fitted[0] == SYSTEM
    assert fitted[-1] == conversation[-1]
    assert len(fitted) < len(conversation)
    assert fitted[1:] == conversation[len(conversation) - len(fitted) + 1 :]  # newest, whole
    assert fitted[1]["role"] == "user"  # turns are dropped whole
    assert len(engine.prompt_tokens(fitted)) <= 200
    assert engine.fit_messages(conversation[:3], 200) == conversation[:3]  # fits: unchanged


@pytest.mark.models
def test_fit_messages_shortens_a_single_overlong_question(engine: LlamaEngine) -> None:
    question = "Please listen. " * 200 + "What is the weather like on Mars?"
    fitted = engine.fit_messages(ask(question), 120)
    assert fitted[0] == SYSTEM
    assert fitted[1]["content"].endswith("What is the weather like on Mars?")
    assert len(engine.prompt_tokens(fitted)) <= 120
    with pytest.raises(EngineError, match="system prompt"):
        engine.fit_messages([{"role": "system", "content": "word " * 300}], 50)


def moon_history() -> list[ChatMessage]:
    """Eight turns about the moon: too long for a 384-token window."""
    history: list[ChatMessage] = [SYSTEM]
    for turn in range(8):
        history += [
            {"role": "user", "content": f"Tell me fact number {turn} about the moon."},
            {"role": "assistant", "content": "The moon is far away. " * 5},
        ]
    return history


@pytest.mark.models
def test_a_long_conversation_stays_in_the_window_and_keeps_its_cache(model_path: Path) -> None:
    with LlamaEngine(model_path, n_ctx=384, max_tokens=24) as small:
        conversation = moon_history()
        conversation.append({"role": "user", "content": "Thanks! One more about the sun?"})
        text = "".join(small.generate(conversation, threading.Event()))
        trimmed = small.last_stats
        assert text.strip()
        assert trimmed.messages_dropped > 0
        assert trimmed.prompt_tokens <= 384 - 24

        # The next turn keeps the same start, so the cache still serves it.
        conversation += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": "And about the stars?"},
        ]
        "".join(small.generate(conversation, threading.Event()))
        after = small.last_stats
        assert after.messages_dropped == trimmed.messages_dropped
        assert after.prompt_tokens_evaluated < after.prompt_tokens // 2


@pytest.mark.models
def test_reading_ahead_after_an_answer_takes_the_trim_off_the_next_turn(model_path: Path) -> None:
    # Once the history outgrows the window, dropping old turns changes the prompt's
    # start and all of it is evaluated again; read ahead, the next turn finds it cached.
    with LlamaEngine(model_path, n_ctx=384, max_tokens=24) as small:
        history = moon_history()
        small.read_ahead(history, max_tokens=24)
        "".join(small.generate([*history, ask("And the sun?")[1]], threading.Event()))
        stats = small.last_stats
        assert stats.messages_dropped > 0, "the test needs a history that must be trimmed"
        assert stats.prompt_tokens_evaluated < 40, stats


def talk_until_trimmed(engine: LlamaEngine, *, read_ahead: bool) -> list[ChatMessage]:
    """Ask about the sea turn by turn until a reply's conversation had to be trimmed.

    Returns the conversation, ending with that reply. With ``read_ahead``, the
    history is read ahead after every reply, as the app does.
    """
    history: list[ChatMessage] = [SYSTEM]
    for turn in range(40):
        history.append({"role": "user", "content": f"Tell me fact number {turn} about the sea."})
        answer = "".join(engine.generate(history, threading.Event()))
        history.append({"role": "assistant", "content": answer})
        if read_ahead:
            engine.read_ahead(history)
        if engine.last_stats.messages_dropped:
            break
    return history


@pytest.mark.models
def test_a_trim_in_a_running_conversation_does_not_read_the_kept_turns_again(
    model_path: Path,
) -> None:
    # Reading the kept turns again took 12 s on one core in a 2048-token window;
    # sliding their cache cells down over the dropped turns spares all of it.
    with LlamaEngine(model_path, n_ctx=512, max_tokens=24, sampling=GREEDY) as small:
        answer = talk_until_trimmed(small, read_ahead=False)[-1]["content"]
        stats = small.last_stats
        assert stats.messages_dropped > 0, "the test needs a conversation that outgrows the window"
        assert stats.prompt_tokens > 200
        assert stats.prompt_tokens_evaluated < 40, stats  # the new question only
        assert looks_like_english(answer), answer


@pytest.mark.models
def test_warming_up_unfinished_words_after_a_trim_reads_only_those_words(
    model_path: Path,
) -> None:
    # Unfitted, the warm-up brought the dropped turns back and read the whole
    # conversation again: 8 s in a 2048-token window, holding up the next answer.
    with LlamaEngine(model_path, n_ctx=512, max_tokens=24, sampling=GREEDY) as small:
        history = talk_until_trimmed(small, read_ahead=True)
        assert small.last_stats.messages_dropped > 0, "the test needs a trimmed conversation"
        small.warm_up([*history, {"role": "user", "content": "And tell me about the"}])
        assert 0 < small.last_read_ahead_tokens < 40, small.last_read_ahead_tokens


@pytest.mark.models
async def test_stream_chat_streams_and_cancels_on_the_loop(engine: LlamaEngine) -> None:
    pieces = [piece async for piece in engine.stream_chat(ask("Tell me about cats."))]
    assert looks_like_english("".join(pieces))

    received: list[str] = []
    started = asyncio.Event()

    async def consume() -> None:
        async for piece in engine.stream_chat(ask("Tell me about the ocean.")):
            received.append(piece)
            if len(received) == 2:
                started.set()

    task = asyncio.create_task(consume())
    # A model that never streams fails here instead of hanging the run.
    await asyncio.wait_for(started.wait(), timeout=STREAM_DEADLINE_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.last_stats.stop_reason == "cancelled"
    assert not engine._lock.locked()  # the worker finished before the cancel completed
    again = [piece async for piece in engine.stream_chat(ask("Tell me a fun fact about cats."))]
    assert looks_like_english("".join(again))


# --- broken model files --------------------------------------------------------------


@pytest.mark.models
def test_missing_or_corrupt_models_give_one_clear_sentence(
    tmp_path: Path, model_path: Path
) -> None:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("this is not a model")
    truncated = tmp_path / "truncated.gguf"
    with model_path.open("rb") as source:
        truncated.write_bytes(source.read(2_000_000))
    cases = {
        tmp_path / "missing.gguf": "does not exist",
        tmp_path: "is not a file",
        not_gguf: "not a GGUF model file",
        truncated: "truncated or corrupt",
    }
    for path, says in cases.items():
        with pytest.raises(ModelError) as caught:
            LlamaEngine(path)
        message = caught.value.message
        assert says in message
        assert message.count(". ") == 0 and "\n" not in message  # one sentence
        assert caught.value.hint
    with pytest.raises(ModelError) as caught:
        LlamaEngine(truncated)
    assert "not within the file bounds" in caught.value.hint  # llama.cpp's reason, kept


# --- the async adapter with a fake engine (no model needed) ---------------------------


class FakeEngine:
    """Yields numbered pieces slowly; records how many generations run at once."""

    def __init__(self, pieces: int = 50, delay: float = 0.002, fail_at: int | None = None) -> None:
        self.pieces = pieces
        self.delay = delay
        self.fail_at = fail_at
        self.running = 0
        self.most_at_once = 0
        self.last_cancel: threading.Event | None = None
        self.received: list[list[dict[str, Any]]] = []
        self._lock = threading.Lock()

    def generate(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> Generator[str, None, None]:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.last_cancel = cancel
        self.received.append([dict(m) for m in messages])
        try:
            for index in range(self.pieces):
                if cancel.is_set():
                    return
                time.sleep(self.delay)
                if index == self.fail_at:
                    raise EngineError("llama.cpp failed while generating.")
                yield f"w{index} "
        finally:
            time.sleep(0.02)  # slow clean-up: the adapter must still wait for it
            with self._lock:
                self.running -= 1


async def test_astream_chat_yields_everything_in_order() -> None:
    fake = FakeEngine(pieces=20)
    pieces = [piece async for piece in astream_chat(fake, ask("hi"))]
    assert pieces == [f"w{i} " for i in range(20)]
    assert fake.running == 0


async def test_cancelling_the_task_stops_and_waits_for_the_worker() -> None:
    fake = FakeEngine(pieces=1000)
    received: list[str] = []
    started = asyncio.Event()

    async def consume() -> None:
        async for piece in astream_chat(fake, ask("hi")):
            received.append(piece)
            if len(received) == 3:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=STREAM_DEADLINE_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.last_cancel is not None and fake.last_cancel.is_set()
    assert fake.running == 0  # the worker was done before the cancel returned
    assert len(received) < 1000


async def test_closing_early_stops_the_worker_and_never_overlaps() -> None:
    fake = FakeEngine(pieces=1000)
    for _ in range(3):  # a new turn replaces the old one, three times over
        stream = astream_chat(fake, ask("hi"))
        async for _piece in stream:
            break
        await stream.aclose()
        assert fake.running == 0
    assert fake.most_at_once == 1


async def test_engine_errors_reach_the_loop() -> None:
    fake = FakeEngine(pieces=10, fail_at=3)
    received: list[str] = []
    with pytest.raises(EngineError, match="failed while generating"):
        async for piece in astream_chat(fake, ask("hi")):
            received.append(piece)
    assert received == ["w0 ", "w1 ", "w2 "]


async def test_the_conversation_is_copied_before_the_worker_reads_it() -> None:
    fake = FakeEngine(pieces=3)
    conversation = ask("hi")
    stream = astream_chat(fake, conversation)
    first = await anext(stream)
    conversation.append({"role": "user", "content": "changed meanwhile"})
    rest = [piece async for piece in stream]
    assert [first, *rest] == ["w0 ", "w1 ", "w2 "]
    assert fake.received == [[dict(SYSTEM), {"role": "user", "content": "hi"}]]
