"""A stage that fails, on the real engines: ``voiceterm --input`` (headless) says which
stage failed, and the next question is still answered, out loud.

Each real engine is wrapped so that one of its calls raises, as a crash in its
worker thread would; everything else is the engine itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.corpus import concat, espeak, espeak_available, silence, write_wav
from voiceterm.audio.wavio import read_wav
from voiceterm.config import Config
from voiceterm.events import UserTranscriptionReceived
from voiceterm.pipeline.headless import run_file
from voiceterm.pipeline.loading import Engines, load_engines

pytestmark = [
    pytest.mark.models,
    pytest.mark.slow,
    pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng"),
]


class Crash(RuntimeError):
    pass


class FailsOnce:
    """The real engine, except that call number ``on_call`` of ``method`` raises."""

    def __init__(self, engine: Any, method: str, on_call: int) -> None:
        self._engine = engine
        self._method = method
        self._on_call = on_call
        self._calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._engine, name)
        if name != self._method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._calls += 1
                failing = self._calls == self._on_call
            if failing:
                raise Crash(f"{self._method} crashed on call {self._on_call}")
            return attribute(*args, **kwargs)

        return call


class FailsMidStream(FailsOnce):
    """Call ``on_call`` of an async streaming ``method`` gives ``after`` pieces, then raises."""

    def __init__(self, engine: Any, method: str, on_call: int, after: int) -> None:
        super().__init__(engine, method, on_call)
        self._after = after

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._engine, name)
        if name != self._method:
            return attribute

        async def call(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
            with self._lock:
                self._calls += 1
                failing = self._calls == self._on_call
            async with contextlib.aclosing(attribute(*args, **kwargs)) as pieces:
                index = 0
                async for piece in pieces:
                    if failing and index == self._after:
                        raise Crash(f"{self._method} crashed after {index} pieces")
                    yield piece
                    index += 1

        return call


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    yield load_engines(Config())


def two_questions(tmp_path: Path) -> Path:
    return write_wav(
        tmp_path / "questions.wav",
        concat(
            silence(0.5),
            espeak("Tell me something about the moon."),
            silence(4.0),
            espeak("What is two plus three?"),
            silence(0.5),
        ),
    )


def answer_both(
    engines: Engines, tmp_path: Path, config: Config | None = None
) -> tuple[str, Any, np.ndarray]:
    out = io.StringIO()
    answer = tmp_path / "answer.wav"
    questions = two_questions(tmp_path)
    # In real time: as fast as it can, the file would bring the second question
    # before the model had said a word of the first answer.
    agent = asyncio.run(
        run_file(config or Config(), questions, answer, realtime=True, engines=engines, out=out)
    )
    spoken, _rate = read_wav(answer)
    return out.getvalue(), agent, spoken


def with_engine(engines: Engines, **changes: Any) -> Engines:
    return Engines(
        transcriber=changes.get("transcriber", engines.transcriber),
        llm=changes.get("llm", engines.llm),
        tts=changes.get("tts", engines.tts),
        tools=engines.tools,
        descriptions=engines.descriptions,
    )


def questions_answered(agent: Any) -> list[str]:
    return [
        event.content
        for event in agent.nodes.chat.conversation_events
        if isinstance(event, UserTranscriptionReceived)
    ]


def test_whisper_failing_once_is_reported_and_the_next_question_answered(
    engines: Engines, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Call 1 is the first question's transcript at its pause (or its end): it fails.
    whisper = FailsOnce(engines.transcriber, "transcribe", on_call=1)
    printed, agent, spoken = answer_both(with_engine(engines, transcriber=whisper), tmp_path)
    assert "speech recognition (stt) failed" in capsys.readouterr().err
    assert any("plus" in q.lower() or "+" in q for q in questions_answered(agent)), printed
    assert "5" in printed or "five" in printed.lower(), printed
    assert np.abs(spoken.astype(np.int32)).max() > 1000, "nothing was spoken"
    assert any("stt_failed" in turn.marks for turn in agent.timeline.turns)


def test_llama_failing_mid_answer_is_reported_and_the_next_question_answered(
    engines: Engines, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    llama = FailsMidStream(engines.llm, "stream_chat", on_call=1, after=2)
    printed, agent, spoken = answer_both(with_engine(engines, llm=llama), tmp_path)
    assert "language model (llm) failed" in capsys.readouterr().err
    assert len(questions_answered(agent)) == 2, printed
    assert "5" in printed or "five" in printed.lower(), printed
    assert np.abs(spoken.astype(np.int32)).max() > 1000, "nothing was spoken"
    failed = next(turn for turn in agent.timeline.turns if "llm_failed" in turn.marks)
    assert "moon" in failed.user_text.lower()


def test_piper_failing_once_is_reported_and_the_rest_is_spoken(
    engines: Engines, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without speculation the first call is the first answer's first piece (not a
    # piece made ahead, during the wait, that the answer may not use).
    config = Config()
    config.llm.speculate_tokens = 0
    piper = FailsOnce(engines.tts, "synthesize", on_call=1)
    printed, agent, spoken = answer_both(with_engine(engines, tts=piper), tmp_path, config)
    assert "speech synthesis (tts) failed" in capsys.readouterr().err
    assert len(questions_answered(agent)) == 2, printed
    assert np.abs(spoken.astype(np.int32)).max() > 1000, "nothing was spoken"
    failed = next(turn for turn in agent.timeline.turns if "tts_failed" in turn.marks)
    assert failed.spoken_text.strip() != failed.agent_text.strip(), "the lost piece was not heard"
