"""The command line as a user meets it: clear messages and exit codes, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA


def voiceterm(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voiceterm.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=None if env is None else {**os.environ, **env},
    )


def test_help_documents_every_setting_and_the_config_path() -> None:
    result = voiceterm("--help")
    assert result.returncode == 0
    for flag in ("--vad-hangover-ms", "--llm-model", "--barge-in-min-speech-ms", "--config"):
        assert flag in result.stdout
    assert "config.toml" in result.stdout


def test_missing_input_file_is_one_clear_sentence(tmp_path: Path) -> None:
    result = voiceterm("--input", str(tmp_path / "none.wav"), "--output", str(tmp_path / "a.wav"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_input_without_output_says_they_go_together(tmp_path: Path) -> None:
    result = voiceterm("--input", str(tmp_path / "q.wav"))
    assert result.returncode == 2
    assert "--input and --output go together" in result.stderr


def test_bad_config_file_exits_with_a_hint() -> None:
    result = voiceterm("--config", str(DATA / "config" / "not_toml.toml"), "devices")
    assert result.returncode == 2
    assert "not valid TOML" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.models
def test_models_report_names_sources_and_a_corrupt_model(tmp_path: Path) -> None:
    good = voiceterm("models")
    assert good.returncode == 0, good.stderr
    assert good.stdout.count("from package") == 4  # STT, LLM, TTS and the end-of-turn model
    assert good.stdout.count("loads in") == 4
    assert "TURN Smart Turn v3.2" in good.stdout
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(64))
    bad = voiceterm("models", "--llm-model", str(corrupt))
    assert bad.returncode == 2
    assert "does NOT load" in bad.stdout
    assert "from explicit" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
    broken_turn = tmp_path / "broken.onnx"
    broken_turn.write_bytes(b"not onnx")
    bad_turn = voiceterm("models", "--turn-model", str(broken_turn))
    assert bad_turn.returncode == 2
    assert "TURN" in bad_turn.stdout and "does NOT load" in bad_turn.stdout
    assert "Traceback" not in bad_turn.stdout + bad_turn.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--turn-detector", "magic"), "turn.detector must be learned, smart_turn or silence"),
        (("--turn-check-ms", "2000"), "must grow in that order"),
        (("--llm-backend", "ollama"), "llm.backend must be llama_cpp or openai"),
    ],
)
def test_a_setting_that_cannot_work_exits_2_before_the_app_opens(
    args: tuple[str, ...], said: str, tmp_path: Path
) -> None:
    # A file run would load models and open files: the setting is refused before either.
    question, answer = tmp_path / "question.wav", tmp_path / "answer.wav"
    result = voiceterm(*args, "--input", str(question), "--output", str(answer), timeout=30)
    assert result.returncode == 2
    assert said in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "does not exist" not in result.stderr  # the input file was never looked at
    assert not answer.exists()


@pytest.mark.parametrize(
    ("args", "config_file", "said"),
    [
        (("--turn-detector", "magic"), "", "turn.detector must be learned, smart_turn or silence"),
        ((), '[llm]\nbackend = "ollama"\n', "llm.backend must be llama_cpp or openai"),
    ],
)
def test_a_setting_that_cannot_work_exits_2_before_the_tui_opens(
    args: tuple[str, ...], config_file: str, said: str, tmp_path: Path
) -> None:
    # Plain ``voiceterm`` opens the app and loads the models inside it, where a bad
    # setting would be a notice in an app that runs on; it is refused before.
    if config_file:
        (tmp_path / "config.toml").write_text(config_file)
        args = (*args, "--config", str(tmp_path / "config.toml"))
    state = tmp_path / "state"
    result = voiceterm(*args, timeout=30, env={"XDG_STATE_HOME": str(state)})
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "\x1b[" not in result.stdout + result.stderr  # the app never drew
    assert not list(state.rglob("voiceterm.log"))  # the app never took the log over
