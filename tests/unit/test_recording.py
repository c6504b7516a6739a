"""Recordings as a user meets them: private files, crash-safe, clear errors, exit 2."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA
from voiceterm.bus import Message
from voiceterm.events import (
    AgentResponse,
    StageSpan,
    ToolCall,
    TurnMark,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionReceived,
)
from voiceterm.recording import format as fmt
from voiceterm.recording.cli import main as recording_main
from voiceterm.recording.events_io import from_record, to_line
from voiceterm.recording.reader import Recording
from voiceterm.recording.turns import SpokenTurn, match, spoken_turns
from voiceterm.recording.writer import SessionWriter
from voiceterm.timeline import Timeline
from voiceterm.timeline_export import from_chrome_trace, to_chrome_trace

SESSIONS = DATA / "sessions"


def _turn_messages(t0: float, words: str) -> list[Message]:
    return [
        Message("listener", UserStartedSpeaking(onset_time=t0)),
        Message(
            "listener",
            StageSpan(
                stage="turn", start=t0 + 1, end=t0 + 1, content="model: complete 0.91 at 200 ms"
            ),
        ),
        Message("listener", TurnMark(name="speech_end", at=t0 + 1.0)),
        Message("listener", UserStoppedSpeaking(speech_start=t0, speech_end=t0 + 1.0)),
        Message("stt", UserTranscriptionReceived(content=words)),
        Message("llm", ToolCall(tool_name="clock")),
        Message("llm", AgentResponse(content="It is noon.")),
        Message("player", TurnMark(name="playback_start", at=t0 + 1.7)),
    ]


def _write(folder: Path, seconds: float, messages: list[Message]) -> np.ndarray:
    writer = SessionWriter(folder, {"settings": {"vad": {"hangover_ms": 250}}})
    rng = np.random.default_rng(1)
    audio = rng.integers(-3000, 3000, size=(int(seconds * 16000), 2), dtype=np.int16)
    for index in range(0, len(audio), 160):
        block = audio[index : index + 160]
        writer.audio(block[:, 0], block[:, 1], 100.0 + index / 16000)
    for message in messages:
        writer.event(message, 1)
    writer.close("# talk\n")
    return audio


def test_a_recording_is_private_and_reads_back_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "session"
    audio = _write(folder, 61.0, _turn_messages(100.0, "What time is it?"))  # two segments
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert sorted(p.name for p in folder.glob("audio-*")) == ["audio-0000.flac", "audio-0001.flac"]
    recording = Recording.open(folder)
    assert recording.complete
    assert np.array_equal(recording.audio(), audio)
    assert recording.settings["vad"]["hangover_ms"] == 250
    times = recording.times(len(audio))
    assert times[16000] == pytest.approx(101.0)
    clip = recording.clip(101.0, 101.5, 1)
    assert np.array_equal(clip, audio[16000:24000, 1])
    [turn] = recording.timeline().turns
    assert turn.user_text == "What time is it?"
    assert turn.marks["playback_start"] == pytest.approx(101.7)


def test_a_killed_session_keeps_its_events_and_audio(tmp_path: Path) -> None:
    folder = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from voiceterm.bus import Message
        from voiceterm.events import UserTranscriptionReceived
        from voiceterm.recording.writer import SessionWriter
        from pathlib import Path
        writer = SessionWriter(Path({str(folder)!r}), {{}})
        block = np.full(160, 1000, dtype=np.int16)
        for index in range(300):  # 3 s
            writer.audio(block, block, 5.0 + index * 0.01)
        writer.event(Message("stt", UserTranscriptionReceived(content="still here")), 1)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL
    recording = Recording.open(folder)
    assert not recording.complete
    assert len(recording.audio()) >= 2.5 * 16000  # all but the last half second at most
    assert [m.event.content for m in recording.messages()] == ["still here"]


def test_events_round_trip_without_audio_payloads() -> None:
    stopped = UserStoppedSpeaking(audio=np.zeros(16000, np.int16), speech_start=1.0, speech_end=2.0)
    record = json.loads(to_line(Message("listener", stopped, id=7, timestamp=2.5), turn=3))
    assert "audio" not in record["e"] and record["turn"] == 3 and record["src"] == "listener"
    message = from_record(record)
    assert message is not None
    assert message.event == UserStoppedSpeaking(speech_start=1.0, speech_end=2.0)
    assert message.timestamp == 2.5


def test_turns_that_split_or_merge_are_named() -> None:
    def turn(start: float, end: float, words: str) -> SpokenTurn:
        return SpokenTurn(speech_start=start, speech_end=end, transcript=words)

    recorded = [turn(0, 2, "I would like to know what it is."), turn(5, 6, "Hi.")]
    replayed = [turn(0, 0.9, "I would like to know"), turn(1.5, 2, "what it is."), turn(5, 6, "hi")]
    kinds = [change.kind for change in match(recorded, replayed)]
    assert kinds == ["split", "same"]
    assert [c.kind for c in match(replayed, recorded)] == ["merged", "same"]


def test_a_turn_ended_by_another_rule_with_the_same_words_is_named_decided() -> None:
    def turn(words: str, decision: str) -> SpokenTurn:
        return SpokenTurn(speech_start=0, speech_end=2, transcript=words, decision=decision)

    live = [turn("What is it?", "model: complete 0.98 at 200 ms")]
    decided = match(live, [turn("What is it?", "unsure: 800 ms of silence (model: ...)")])
    assert [change.kind for change in decided] == ["decided"]
    assert decided[0].details() == [
        "end of turn 'model: complete at 200 ms' -> 'unsure: 800 ms of silence'"
    ]
    other_words = match(live, [turn("What is this?", "unsure: 800 ms of silence")])
    assert [change.kind for change in other_words] == ["changed"]
    assert [c.kind for c in match(live, [turn("what is it", "model: complete 0.7 at 200 ms")])] == [
        "same"
    ]


def test_spoken_turns_read_the_decision_tools_and_answer() -> None:
    [turn] = spoken_turns(_turn_messages(10.0, "What time is it?"))
    assert turn.transcript == "What time is it?"
    assert turn.tools == ["clock"]
    assert turn.answer == "It is noon."
    assert turn.voice_to_voice == pytest.approx(0.7)
    assert turn.decision.startswith("model: complete")


def test_a_trace_opens_as_the_timeline_it_came_from() -> None:
    timeline = Timeline(clock_offset=0.0)
    for message in _turn_messages(10.0, "What time is it?"):
        timeline.record(message)
    rebuilt = from_chrome_trace(to_chrome_trace(timeline.turns))
    [turn] = rebuilt.turns
    assert turn.user_text == "What time is it?"
    assert turn.marks["playback_start"] - turn.marks["speech_end"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda folder: folder.mkdir(), "is not a voiceterm recording"),
        (
            lambda folder: (
                folder.mkdir(),
                (folder / fmt.SESSION).write_text(
                    json.dumps({"format": fmt.FORMAT_NAME, "version": fmt.FORMAT_VERSION + 1})
                ),
            ),
            "format version",
        ),
    ],
    ids=["not-a-recording", "newer-format"],
)
def test_view_and_replay_refuse_what_they_cannot_read(
    tmp_path: Path, make: object, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder"
    make(folder)  # type: ignore[operator]
    for command in (["replay", str(folder)], ["view", str(folder)]):
        assert recording_main(command) == 2
        assert expected in capsys.readouterr().err


def test_truncated_audio_is_refused_before_the_models_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "session"
    _write(folder, 61.0, [])
    flac = folder / "audio-0000.flac"
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    assert recording_main(["replay", str(folder)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_an_unknown_set_key_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    folder = SESSIONS / "tool_call"
    assert recording_main(["replay", str(folder), "--set", "turn.no_such_key=1"]) == 2
    assert "unknown setting turn.no_such_key" in capsys.readouterr().err
    assert recording_main(["replay", str(folder), "--set", "turn.threshold"]) == 2
    assert "section.key=value" in capsys.readouterr().err


def test_record_into_a_folder_that_holds_something_else_fails_first(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "voiceterm.cli", "--headless", "--record", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_recorded_sessions_are_small_and_complete() -> None:
    for folder in sorted(SESSIONS.iterdir()):
        recording = Recording.open(folder)
        assert recording.complete, folder.name
        assert (folder / fmt.ACCEPTED).exists(), folder.name
        assert sum(p.stat().st_size for p in folder.iterdir()) < 500_000, folder.name
        assert os.path.getsize(folder / fmt.EVENTS) > 0


def test_the_talk_of_a_long_recorded_session_keeps_its_first_turn(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from voiceterm.config import Config
    from voiceterm.events import AgentStoppedSpeaking
    from voiceterm.recording.control import RecordingControl
    from voiceterm.timeline import Timeline

    app_timeline = Timeline()  # the app's: the newest 200 turns
    agent = SimpleNamespace(
        config=Config(),
        source=SimpleNamespace(frames=None),
        bus=SimpleNamespace(tap=lambda observer: None),
        timeline=app_timeline,
        wired=False,
        describe=lambda: {},
    )
    control = RecordingControl(agent)  # type: ignore[arg-type]
    folder = control.start(tmp_path / "session")
    for number in range(1, 251):
        for message in [
            *_turn_messages(10.0 * number, f"Question number {number}?"),
            Message("player", AgentStoppedSpeaking(last_sample_time=10.0 * number + 3)),
        ]:
            app_timeline.record(message)
            control._observe(message)  # noqa: SLF001 - what the bus tap hands it
    control.stop()
    talk = (folder / "talk.md").read_text()
    assert "Question number 1?" in talk and "Question number 250?" in talk
