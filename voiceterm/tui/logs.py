"""While the TUI owns the terminal, log records must not be printed on it.

The CLI logs to stderr (``logging.basicConfig``), which is the very terminal
Textual draws on: one warning with a traceback would be written over the screen.
:class:`LogRedirect` takes the handlers that write to the terminal off the root
logger for as long as the app runs, logs to a file instead, and puts them back.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def _writes_to_terminal(handler: logging.Handler) -> bool:
    if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
        return False
    stream = handler.stream
    return stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)


class LogRedirect:
    """Moves terminal log handlers of the root logger to a file, and back.

    Args:
        path: the log file; its folder is created. If it cannot be opened, records
            are dropped rather than printed over the screen.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._removed: list[logging.Handler] = []
        self._added: logging.Handler | None = None

    def install(self) -> None:
        root = logging.getLogger()
        self._removed = [h for h in root.handlers if _writes_to_terminal(h)]
        for terminal_handler in self._removed:
            root.removeHandler(terminal_handler)
        handler: logging.Handler
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.path, encoding="utf-8", delay=True)
        except OSError:
            handler = logging.NullHandler()
        if self._removed and self._removed[0].formatter is not None:
            handler.setFormatter(self._removed[0].formatter)
        else:
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
        # Always a handler: with none, logging's last resort prints to stderr.
        root.addHandler(handler)
        self._added = handler

    def uninstall(self) -> None:
        root = logging.getLogger()
        if self._added is not None:
            root.removeHandler(self._added)
            self._added.close()
            self._added = None
        for handler in self._removed:
            root.addHandler(handler)
        self._removed = []
