"""A replay gives each pause check the latency it had live (see voiceterm.recording.latency)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA
from voiceterm.bus import Bus, Message
from voiceterm.events import PauseChecked, UserSpeechPaused
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.transcribe import SttNode
from voiceterm.recording.cli import main as recording_main
from voiceterm.recording.events_io import from_record, to_line
from voiceterm.recording.latency import RecordedLatency


class Hears:
    def __init__(self, text: str) -> None:
        self.text = text

    def transcribe(self, audio: object) -> str:
        return self.text


def _check(kind: str, speech_end: float, late: float) -> Message:
    return Message(
        "listener",
        PauseChecked(
            kind=kind,
            speech_end=speech_end,
            asked_at=speech_end + 0.2,
            answered_at=speech_end + 0.2 + late,
        ),
    )


def test_each_pause_gets_its_own_recorded_latency_and_others_the_median() -> None:
    latency = RecordedLatency.of(
        [_check("turn", 10.0, 0.08), _check("turn", 20.0, 0.30), _check("turn", 30.0, 0.10)]
        + [_check("words", 10.0, 0.35)]
    )
    assert latency.seconds("turn", 20.0) == pytest.approx(0.30)
    assert latency.seconds("turn", 20.003) == pytest.approx(0.30)  # the same pause
    assert latency.seconds("turn", 25.0) == pytest.approx(0.10)  # not checked live: median
    assert latency.seconds("words", 99.0) == pytest.approx(0.35)
    assert latency.seconds("wake", 10.0) == 0.0  # never recorded: at once
    assert latency.summary() == "3 turn check(s), median 100 ms; 1 words check(s), median 350 ms"


def test_a_check_reads_back_from_a_recording_line() -> None:
    message = _check("words", 12.5, 0.25)
    back = from_record(json.loads(to_line(message, 3)))
    assert back is not None and back.event == message.event


async def test_the_words_at_a_pause_are_told_with_when_they_were_asked_and_read() -> None:
    node = SttNode(Hears("Yes,"), Publisher(Bus(), "stt"))
    pause = UserSpeechPaused(audio=[0] * 1600, speech_start=1.0, speech_end=2.0)
    events = [event async for event in node.handle(Message("listener", pause))]
    checks = [e for e in events if isinstance(e, PauseChecked)]
    assert len(checks) == 1
    assert (checks[0].kind, checks[0].speech_end) == ("words", 2.0)
    assert checks[0].asked_at == pause.timestamp <= checks[0].answered_at
    assert node.words_at_pause(2.0) == "Yes,"


@pytest.mark.parametrize("value", ["soon", "-5", "1e9"])
def test_a_latency_that_is_neither_recorded_nor_milliseconds_is_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = DATA / "sessions" / "tool_call"
    assert recording_main(["replay", str(folder), "--latency", value]) == 2
    assert "neither 'recorded' nor milliseconds" in capsys.readouterr().err
