"""Recorded sessions as regression tests, and recording with the real engines.

The sessions under tests/data/sessions were recorded on the PulseAudio rig
(scripts/record_sessions.py). Each replay must give the turns accepted for it:
the same utterances, transcripts, end-of-turn decisions, barge-ins and tools.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from benchmarks.conversation import FileConversation
from benchmarks.corpus import concat, espeak, silence, write_wav
from benchmarks.rig import utterance, voiceterm_command
from benchmarks.turn_clips import silences
from tests.conftest import DATA
from voiceterm.config import Config
from voiceterm.pipeline.loading import load_engines
from voiceterm.recording.cli import main as recording_main
from voiceterm.recording.reader import Recording
from voiceterm.recording.replay import replay
from voiceterm.recording.view import load_timeline

pytestmark = [pytest.mark.models, pytest.mark.slow]

SESSIONS = sorted((DATA / "sessions").iterdir())


@pytest.mark.parametrize("folder", SESSIONS, ids=[folder.name for folder in SESSIONS])
def test_a_recorded_session_replays_the_same(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = tmp_path / "answers.wav"
    code = recording_main(["replay", str(folder), "--expect-same", "--output", str(answers)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    summary = out.out.split("summary:")[-1]
    assert " same" in summary and "changed" not in summary
    with wave.open(str(answers)) as written:
        assert written.getnframes() > 0  # the answers were made, not played


def test_a_setting_that_changes_the_turns_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    folder = DATA / "sessions" / "thinking_pause"
    # Without the end-of-turn model a 300 ms silence ends the turn at the thinking pause:
    # a turn accepted whole is split there, and one the model let end after 800 ms of
    # silence (as Whisper's words at the pause sound finished on some CPUs) ends sooner.
    code = recording_main(
        ["replay", str(folder), "--expect-same", "--set", "turn.detector=silence"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "summary:" in out and "0 same" in out, out
    assert "split" in out or "decided  end of turn 'unsure: 800 ms of silence'" in out, out


def test_a_missing_model_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    folder = DATA / "sessions" / "tool_call"
    code = recording_main(["replay", str(folder), "--set", "stt.model=/nonexistent/whisper"])
    assert code == 2
    assert "/nonexistent/whisper" in capsys.readouterr().err


def test_recording_started_mid_frame_replays_the_turns_where_they_were(tmp_path: Path) -> None:
    # Ctrl+R in a running session lands anywhere in the voice detector's 20 ms
    # frame; the replay must frame the sound as the session did, or each turn's
    # speech (and so its words) moves by a block.
    config = Config()
    config.llm.max_tokens = 16
    engines = load_engines(config)
    folder = tmp_path / "recording"
    conversation = FileConversation(config, engines, None, realtime_speaker=False)
    question = utterance(espeak("What is seven times eight?"), "What is seven times eight?")

    async def record_mid_frame() -> int:
        listener = conversation.agent.nodes.listener
        assert listener is not None
        for _block in range(1000):
            if listener.frame_phase:
                break
            await asyncio.sleep(0.005)
        conversation.agent.recording.start(folder)  # on the loop already
        return listener.frame_phase

    with conversation:
        phase = conversation._run(record_mid_frame())  # noqa: SLF001 - on the agent's loop
        conversation.turn(question)
        conversation.turn(question)
    assert phase > 0
    recording = Recording.open(folder)
    result = asyncio.run(replay(recording, config, engines=engines))
    assert len(result.recorded) == len(result.replayed) == 2
    for recorded, replayed in zip(result.recorded, result.replayed, strict=True):
        assert replayed.speech_end == pytest.approx(recorded.speech_end, abs=0.001)
        assert replayed.words == recorded.words


def _voiced(audio: np.ndarray, threshold: int = 300) -> np.ndarray:
    """``audio`` without the near silence espeak-ng leaves before and after the words."""
    loud = np.nonzero(np.abs(audio.astype(np.int32)) > threshold)[0]
    return audio[loud[0] : loud[-1] + 1]


def _with_pause_between(
    first: np.ndarray, second: np.ndarray, low_s: float, high_s: float
) -> np.ndarray:
    """``first`` then ``second``, with the silence the VAD hears between them in range."""
    for gap_ms in range(0, 200, 10):
        audio = concat(first, silence(gap_ms / 1000), second)
        heard_s = max((n for _start, n in silences(audio)), default=0) / 16000
        if low_s <= heard_s <= high_s:
            return audio
    raise AssertionError(f"no gap makes a pause of {low_s:.2f}-{high_s:.2f} s")


def test_a_pause_shorter_than_the_checks_time_replays_as_it_went_live(tmp_path: Path) -> None:
    # "Thanks. That is all." with a pause a little longer than the end-of-turn check
    # waits: live, the verdict ("Thanks." sounds complete) comes after the user went
    # on, so the turn is whole. A replay that used the verdict at once (as a
    # machine with no compute time) splits it; replayed with the recorded latency of
    # each check it is the turn the user had.
    config = Config()
    config.llm.max_tokens = 16
    # The hand-set rule ends "Thanks." at its first check; the learned bars never so soon.
    config.turn.detector = "smart_turn"
    engines = load_engines(config)
    thanks, rest = _voiced(espeak("Thanks.")), _voiced(espeak("That is all."))
    check_s = config.turn.check_ms / 1000
    audio = _with_pause_between(thanks, rest, check_s + 0.02, check_s + 0.05)
    folder = tmp_path / "recording"
    conversation = FileConversation(config, engines, None, realtime_speaker=False)
    clip = utterance(audio, "Thanks. That is all.")
    with conversation:
        conversation.record(folder)
        conversation.turn(clip)
        conversation.turn(clip)
    recording = Recording.open(folder)
    as_live = asyncio.run(replay(recording, config, engines=engines))
    assert "turn check(s)" in as_live.latency
    # The same turns, where they were (their words are Whisper's reading, which on a
    # clip this unclear may take another word with another thread count).
    assert len(as_live.replayed) == len(as_live.recorded)
    for recorded, replayed in zip(as_live.recorded, as_live.replayed, strict=True):
        assert replayed.speech_end == pytest.approx(recorded.speech_end, abs=0.001)
    at_once = asyncio.run(replay(recording, config, engines=engines, check_latency_s=0.0))
    assert len(at_once.replayed) > len(at_once.recorded)  # "Thanks." | "That is all."


def test_a_killed_session_opens_and_replays_up_to_the_kill(tmp_path: Path) -> None:
    question = tmp_path / "question.wav"
    write_wav(question, concat(silence(0.5), espeak("What is seven times eight?"), silence(1.5)))
    folder = tmp_path / "recording"
    app = subprocess.Popen(
        [
            *voiceterm_command(),
            "--input",
            str(question),
            "--output",
            str(tmp_path / "a.wav"),
            "--record",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert app.stdout is not None
    for line in app.stdout:
        if line.startswith("agent:"):
            break
    time.sleep(0.5)
    app.send_signal(signal.SIGKILL)
    app.wait(10)
    app.stdout.close()
    recording = Recording.open(folder)
    assert not recording.complete
    timeline, _ = load_timeline(folder)
    assert [turn.user_text for turn in timeline.turns if turn.user_text] == ["What is 7 times 8?"]
    result = subprocess.run(
        [sys.executable, "-m", "voiceterm.cli", "replay", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "did not end normally" in result.stdout
    assert "1 same" in result.stdout


def test_session_record_makes_a_new_folder_under_the_state_directory(tmp_path: Path) -> None:
    question = tmp_path / "question.wav"
    write_wav(question, concat(silence(0.5), espeak("What time is it?"), silence(1.5)))
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    for _ in range(2):
        result = subprocess.run(
            [
                *voiceterm_command(),
                "--input",
                str(question),
                "--output",
                str(tmp_path / "a.wav"),
                "--fast",
                "--session-record",
                "true",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    folders = sorted((tmp_path / "state" / "voiceterm" / "sessions").iterdir())
    assert len(folders) == 2  # one per session
    for folder in folders:
        assert Recording.open(folder).complete
        assert "What time is it?" in (folder / "talk.md").read_text()
