"""The real TUI on the rig: plain ``voiceterm`` in a terminal, spoken to, quit with Ctrl+Q.

``voiceterm`` runs in a pseudo-terminal (as a person's terminal would be), on the
PulseAudio rig's devices (``benchmarks/rig.py``). The test speaks a question into
the microphone, waits for the spoken answer on the speaker, quits with Ctrl+Q and
reads what ``--trace`` and ``--markdown`` wrote on the way out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.corpus import espeak, normalize_words
from benchmarks.rig import RigIO, utterance, voiceterm_command
from tests.audio.conftest import Rig

pytestmark = pytest.mark.audio

CTRL_Q = b"\x11"


class TerminalApp:
    """``voiceterm`` (the TUI) in a pseudo-terminal of 120 x 40, its screen output drained."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            [*voiceterm_command(), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(slave)
        self.screen = bytearray()
        # Textual blocks once the terminal's buffer is full: keep reading it.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self._master, 65536):
                self.screen += chunk

    def press(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._master)


@pytest.fixture
def terminal_app(rig: Rig, tmp_path: Path) -> Iterator[tuple[TerminalApp, Path]]:
    rig.set_echo(None)
    env = {
        **os.environ,
        **rig.env,
        "HF_HUB_OFFLINE": "1",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    args = ["--audio-echo", "off", "--llm-max-tokens", "32"]
    args += ["--trace", str(tmp_path / "session.trace.json")]
    args += ["--markdown", str(tmp_path / "session.md")]
    app = TerminalApp(args, env)
    try:
        yield app, tmp_path
    finally:
        app.close()


@pytest.mark.models
def test_the_tui_answers_aloud_and_writes_trace_and_markdown_on_quit(
    terminal_app: tuple[TerminalApp, Path], rig: Rig
) -> None:
    app, folder = terminal_app
    question = utterance(espeak("What is the capital of France?"), "capital of France")
    with RigIO(rig.env) as io:
        # Loading the models takes 5-10 s, with no line to wait for on a TUI's
        # screen: ask again until an answer sounds.
        answer_at = None
        deadline = time.monotonic() + 90
        while answer_at is None and time.monotonic() < deadline:
            assert app.process.poll() is None, bytes(app.screen[-2000:]).decode(errors="replace")
            _, t_start = io.play_and_wait(question.audio, question.rate)
            answer_at = io.wait_for_sound(t_start + question.speech_end, timeout=10)
        assert answer_at is not None, "the TUI never answered aloud"
        io.wait_for_silence(answer_at, quiet_s=1.5, timeout=60)
        # The app may have started listening halfway through that question (it
        # answered "friends" once): now that it listens, ask it whole.
        _, t_start = io.play_and_wait(question.audio, question.rate)
        answer_at = io.wait_for_sound(t_start + question.speech_end, timeout=10)
        assert answer_at is not None, "the TUI did not answer the second question aloud"
        # Let the answer play out, then quit the way a person does.
        io.wait_for_silence(answer_at, quiet_s=1.5, timeout=60)
    app.press(CTRL_Q)
    assert app.process.wait(timeout=30) == 0

    conversation = (folder / "session.md").read_text()
    assert "capital" in normalize_words(conversation)
    trace = json.loads((folder / "session.trace.json").read_text())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    assert any(event.get("ph") == "X" for event in events), "the trace has no timed spans"
