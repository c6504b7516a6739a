"""A real OpenAI-compatible server for tests and benchmarks: llama-cpp-python's own.

:class:`LocalChatServer` runs ``python -m llama_cpp.server`` on a GGUF (the embedded
SmolLM2 by default) on a free loopback port, waits until it lists its models, and
stops it (or kills it, to play a server that dies). Its output goes to a log file,
which shows when it noticed a client leave ("Disconnected from client").
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from voiceterm.modelstore import resolve_model

START_LIMIT_S = 60.0  # the model loads in ~2 s here; a loaded machine is slower


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalChatServer:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1, run as a child process.

    Args:
        log: Where the server's output goes.
        model: A GGUF file (default: the embedded chat model).
        port: The port (default: a free one).
        api_key: A key the server demands from every request (``None``: none).
        extra: More ``llama_cpp.server`` flags (``--chat_format``, ``--n_threads``...).
    """

    def __init__(
        self,
        log: Path,
        *,
        model: Path | None = None,
        port: int | None = None,
        api_key: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.log = log
        self.model = model or resolve_model("llm").path
        self.port = port or free_port()
        self.api_key = api_key
        self.extra = extra
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The API's base URL, as ``llm.url`` takes it."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        """The command line that starts the server (what the README tells users)."""
        command = [
            sys.executable,
            *("-m", "llama_cpp.server"),
            *("--model", str(self.model)),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--verbose", "False"),
            *self.extra,
        ]
        if self.api_key is not None:
            command += ["--api_key", self.api_key]
        return command

    def start(self) -> LocalChatServer:
        """Start it and wait until it lists its models."""
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + START_LIMIT_S
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start in time:\n{self.output()}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        request = urllib.request.Request(f"{self.url}/models")
        if self.api_key is not None:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=1.0):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """Kill it at once (SIGKILL): a server that dies mid-answer."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL if it does not go)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.contextmanager
def running_server(log: Path, **options: object) -> Iterator[LocalChatServer]:
    """A :class:`LocalChatServer`, started for the block and stopped after it."""
    server = LocalChatServer(log, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
