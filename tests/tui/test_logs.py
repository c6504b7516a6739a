"""Log records never reach the terminal while the app runs; they go to a file."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from voiceterm.tui.logs import LogRedirect


@pytest.fixture
def terminal_handler() -> Iterator[logging.StreamHandler[TextIO]]:
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_terminal_handlers_are_moved_to_a_file_and_back(
    terminal_handler: logging.StreamHandler[TextIO], tmp_path: Path
) -> None:
    redirect = LogRedirect(tmp_path / "logs" / "voiceterm.log")
    redirect.install()
    try:
        assert terminal_handler not in logging.getLogger().handlers
        logging.getLogger("voiceterm.test").error("the LLM crashed")
    finally:
        redirect.uninstall()
    assert terminal_handler in logging.getLogger().handlers
    assert "the LLM crashed" in read(tmp_path / "logs" / "voiceterm.log")
