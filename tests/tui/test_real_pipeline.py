"""The app on the real pipeline: WAV file in, WAV file out, the embedded models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.corpus import concat, espeak, espeak_available, silence, write_wav
from tests.tui.conftest import SIZE, screen_text, wait_for
from voiceterm.config import Config
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.loading import Engines, load_engines
from voiceterm.timeline import Turn
from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.screens.timeline_screen import TimelineScreen

pytestmark = [pytest.mark.tui, pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    yield load_engines(Config())


def answered(turn: Turn) -> bool:
    return bool(turn.user_text and turn.agent_text.strip()) and (
        "playback_end" in turn.marks or "playback_stopped" in turn.marks
    )


@pytest.mark.skipif(not espeak_available(), reason="needs espeak-ng")
async def test_a_spoken_and_a_typed_question_are_answered_and_timed(
    engines: Engines, tmp_path: Path
) -> None:
    from voiceterm.audio.wavio import WavFileSink, WavFileSource

    question = write_wav(
        tmp_path / "question.wav",
        concat(silence(0.5), espeak("What is two plus two?"), silence(1.5)),
    )
    agent = VoiceAgent(
        Config(),
        source=WavFileSource(question, realtime=True),
        sink=WavFileSink(tmp_path / "answer.wav", realtime=True),
        engines=engines,
        source_name="question.wav",
        sink_name="answer.wav",
    )
    app = VoicetermApp(agent, export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        timeline = agent.timeline
        await wait_for(pilot, lambda: timeline.turns and answered(timeline.turns[0]), 90)
        spoken = timeline.turns[0]
        assert spoken.source == "voice" and "plus" in spoken.user_text.lower()
        await wait_for(pilot, lambda: spoken.user_text in screen_text(app))

        await pilot.press(*"say hello", "enter")
        await wait_for(pilot, lambda: len(timeline.turns) == 2 and answered(timeline.turns[1]), 90)
        typed = timeline.turns[1]
        assert typed.source == "typed" and typed.user_text == "say hello"

        await pilot.press("ctrl+t")
        assert isinstance(app.screen, TimelineScreen)
        await pilot.press("shift+tab", "up")
        await wait_for(pilot, lambda: "Turn 1 · voice" in screen_text(app))
        headline = spoken.headline()
        assert headline["voice_to_voice"] is not None and headline["voice_to_voice"] > 0
        assert headline["stt"] is not None and headline["first_audio"] is not None
        for lane in ("vad", "stt", "llm", "sentence", "tts", "playback"):
            assert spoken.lane_spans(lane), lane
            assert not any(span.derived for span in spoken.lane_spans(lane)), lane
