"""Nothing leaves the machine: ``voiceterm --input q.wav --output a.wav`` under strace.

With ``llm.backend = openai`` the one place it may connect to is the server in
``llm.url`` (here llama-cpp-python's, on loopback).

onnxruntime's telemetry looks its server up about 9 s after it is imported, so the
question is long enough to keep the app running past that (short runs stayed quiet
before the fix, too). The app gets an environment without the opt-outs, so it has
to turn them on itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.corpus import RATE, long_speech, write_wav
from benchmarks.llm_server import running_server
from benchmarks.rig import voiceterm_command
from tests.network import app_environment, socket_calls, strace_command

pytestmark = [pytest.mark.models, pytest.mark.slow]

QUESTION_SECONDS = 10.0


def _answer_a_recording_under_strace(
    tmp_path: Path, *flags: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """``voiceterm --input q.wav --output a.wav`` under strace: the run, the answer, the log."""
    question = write_wav(tmp_path / "question.wav", long_speech(QUESTION_SECONDS), RATE)
    answer = tmp_path / "answer.wav"
    log = tmp_path / "strace.log"
    result = subprocess.run(
        [
            *strace_command(log),
            *voiceterm_command(),
            *("--input", str(question), "--output", str(answer)),
            *("--llm-max-tokens", "24", *flags),
        ],
        env=app_environment(os.environ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, answer, log


def test_answering_a_recording_opens_no_socket_off_the_machine(tmp_path: Path) -> None:
    result, answer, log = _answer_a_recording_under_strace(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "agent:" in result.stdout, result.stdout  # it did the whole job: heard and answered
    assert answer.stat().st_size > 0
    calls = socket_calls(log)
    assert calls.local, "strace saw no socket at all (not even asyncio's): was it tracing?"
    assert not calls.leaving, f"sockets that could leave the machine:\n{calls.report()}"


def test_with_an_llm_server_configured_only_that_server_is_reached(tmp_path: Path) -> None:
    # The one socket voiceterm may open: to the server the user named in llm.url.
    with running_server(tmp_path / "server.log") as server:
        result, _answer, log = _answer_a_recording_under_strace(
            tmp_path, "--llm-backend", "openai", "--llm-url", server.url
        )
    assert result.returncode == 0, result.stderr
    assert "agent:" in result.stdout, result.stdout + result.stderr
    calls = socket_calls(log)
    to_server = f'sin_port=htons({server.port}), sin_addr=inet_addr("127.0.0.1")'
    assert any(to_server in line for line in calls.leaving), "it never reached the server"
    elsewhere = calls.besides("127.0.0.1", server.port)
    assert not elsewhere, "sockets that could leave the machine:\n" + "\n".join(elsewhere[:20])


def test_onnxruntime_from_onnxruntime_offline_keeps_no_telemetry_on_disk(tmp_path: Path) -> None:
    # onnxruntime's telemetry writes a device id and an event cache at import, before
    # it sends them: a fresh process (nothing imported yet) shows whether it started.
    program = (
        "from voiceterm.engines.offline import onnxruntime_offline\n"
        "onnxruntime_offline().SessionOptions()\n"
    )
    subprocess.run(
        [sys.executable, "-c", program],
        env=app_environment(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path)),
        check=True,
        timeout=60,
    )
    assert not any(tmp_path.rglob("*")), sorted(map(str, tmp_path.rglob("*")))
