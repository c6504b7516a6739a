"""The real ``voiceterm`` in a real terminal (tmux): start, type, timeline, export, quit.

Runs the installed command on the default devices with the embedded models. On a
machine without sound devices the app says so in notifications and typing still
works, which is what this test relies on; with devices it simply listens too.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from voiceterm.tui.widgets.conversation import _CURSOR as CURSOR
from voiceterm.tui.widgets.conversation import AGENT_LABEL, USER_LABEL

pytestmark = [pytest.mark.tui, pytest.mark.models, pytest.mark.slow]

VOICETERM = Path(sys.executable).with_name("voiceterm")
QUESTION = "what is two plus two"


class Terminal:
    """A detached tmux session running one command, 110x32."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.name = f"voiceterm-test-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        script = f"cd {shlex.quote(str(cwd))} && env {exports} {command}"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "110", "-y", "32", script],
            check=True,
        )

    def screen(self) -> str:
        result = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def alive(self) -> bool:
        return (
            subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode
            == 0
        )

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)

    def wait(self, condition: Callable[[str], bool], what: str, limit_s: float = 60) -> str:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            screen = self.screen()
            assert "Traceback" not in screen, screen
            if condition(screen):
                return screen
            time.sleep(0.25)
        raise AssertionError(f"never saw {what}; the screen was:\n{self.screen()}")


def agent_answer(screen: str, question: str) -> str | None:
    """The agent's answer to ``question`` as the conversation shows it, wrapped lines joined.

    The conversation is a grid: the speaker's label, then what was said, wrapped
    under itself (``voiceterm/tui/widgets/conversation.py``).
    """
    lines = screen.splitlines()
    asked = next((i for i, line in enumerate(lines) if question in line), None)
    if asked is None or USER_LABEL not in lines[asked]:
        return None
    label = lines[asked].index(USER_LABEL)
    column = label + len(AGENT_LABEL) + 1
    for index in range(asked + 1, len(lines)):
        if lines[index][label:column] != f"{AGENT_LABEL} ":
            continue
        words = [lines[index][column:]]
        for more in lines[index + 1 :]:
            if more[:column].strip(" │┃") or not more[column:].strip(" │┃"):
                break  # another row of the grid, or the end of the conversation
            words.append(more[column:])
        return " ".join(" ".join(word.strip(" │┃") for word in words).split())
    return None


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    if shutil.which("tmux") is None or not VOICETERM.exists():
        pytest.skip("needs tmux and the installed voiceterm command")
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HF_HUB_OFFLINE": "1",
        "TERM": "xterm-256color",
        "PATH": os.environ.get("PATH", ""),
    }
    term = Terminal(shlex.quote(str(VOICETERM)), tmp_path, env)
    try:
        yield term
    finally:
        term.kill()


def test_type_a_question_see_the_answer_open_the_timeline_export_and_quit(
    terminal: Terminal, tmp_path: Path
) -> None:
    terminal.wait(lambda s: "Type a message" in s, "the prompt", 30)
    terminal.wait(lambda s: "SmolLM2" in s and "loading" not in s, "the models loaded", 90)

    terminal.keys(QUESTION, "Enter")
    screen = terminal.wait(
        lambda s: (answer := agent_answer(s, QUESTION)) is not None and CURSOR not in answer,
        "the whole answer",
        60,
    )
    # The answer itself says four: not any "4" on the screen (the model's name has one).
    answer = agent_answer(screen, QUESTION)
    assert answer is not None and re.search(r"\b(4|four)\b", answer, re.IGNORECASE), screen

    terminal.keys("C-t")
    terminal.wait(lambda s: "Turns" in s and "#1" in s and "Chunks" in s, "the timeline")
    terminal.keys("e")
    terminal.wait(lambda s: "Chrome trace written" in s, "the export notification")
    assert list(tmp_path.glob("*.trace.json"))

    terminal.keys("Escape")
    terminal.keys("C-q")
    deadline = time.monotonic() + 15
    while terminal.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not terminal.alive(), terminal.screen()
