"""Nothing leaves the machine, live: ``voiceterm --headless`` on the rig under strace.

The live app adds what file mode does not run: PortAudio and PulseAudio (over
the rig's Unix socket) and livekit's echo canceller (the default ``aec``). It hears
a question long enough to keep it running past the moment onnxruntime's telemetry
would call home (about 9 s after its import), answers, and is stopped with
SIGTERM, so its way out is traced too. It gets an environment without the opt-outs,
so it has to turn them on itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from benchmarks.corpus import RATE, long_speech
from benchmarks.rig import LiveApp, RigIO
from tests.audio.conftest import Rig
from tests.network import app_environment, socket_calls, strace_command

pytestmark = [pytest.mark.audio, pytest.mark.models, pytest.mark.slow]

QUESTION_SECONDS = 10.0


class TracedApp(LiveApp):
    """``voiceterm --headless`` under strace, which logs its socket calls to ``log``."""

    def __init__(
        self, env: Mapping[str, str], args: Sequence[str], *, config_home: Path, log: Path
    ) -> None:
        super().__init__(env, args, config_home=config_home)
        self.env = app_environment(self.env)
        self.log = log

    @property
    def command(self) -> list[str]:
        return [*strace_command(self.log), *super().command]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the app itself, and wait for strace to see it exit.

        strace, signalled, would pass the signal on and stop tracing: the app's way
        out would go unseen.
        """
        if self.running:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
            with contextlib.suppress(OSError):  # strace or the app has just exited
                for child in children.read_text().split():
                    os.kill(int(child), sig)
            deadline = time.monotonic() + timeout
            while self.running and time.monotonic() < deadline:
                time.sleep(0.1)
        return super().stop(sig, timeout)


def test_the_live_app_opens_no_socket_off_the_machine(rig: Rig, tmp_path: Path) -> None:
    log = tmp_path / "strace.log"
    app = TracedApp(rig.env, ("--llm-max-tokens", "24"), config_home=tmp_path, log=log)
    app.start()
    try:
        with RigIO(rig.env) as io:
            since = app.mark()
            io.play_and_wait(long_speech(QUESTION_SECONDS), RATE)
            app.wait_for(r"^agent:", since=since, timeout=60)
            app.wait_for(r"voice-to-voice \d+ ms", since=since, timeout=60)
    finally:
        code = app.stop()
    assert code == 0, app.transcript()
    calls = socket_calls(log)
    assert calls.local, "strace saw no socket at all (not even PulseAudio's): was it tracing?"
    assert not calls.leaving, f"sockets that could leave the machine:\n{calls.report()}"
