"""One running app and the rig's mouth and ear, with the turn-taking helpers."""

from __future__ import annotations

import re
import time

from benchmarks.rig import LiveApp, RigIO, Utterance

INTERRUPTED = re.compile(r"\[interrupted: user_speech\]")


APP_V2V = re.compile(r"voice-to-voice (\d+) ms")


APP_BARGE = re.compile(r"barge-in (\d+) ms")


class Session:
    """One running app and the rig I/O, with the turn-taking helpers."""

    def __init__(self, app: LiveApp, io: RigIO, *, verbose: bool = False) -> None:
        self.app = app
        self.io = io
        self.verbose = verbose
        """Print the app's output for each v2v turn and each odd barge-in."""

    def settle(self, quiet_s: float = 1.5, timeout: float = 90.0) -> None:
        """Wait until the app printed nothing and played nothing for ``quiet_s``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            lines = self.app.lines()
            printed_quiet = not lines or now - lines[-1].t >= quiet_s
            if printed_quiet and self.io.recorded(now - quiet_s).last_loud() is None:
                self.io.forget_before(now - 30.0)
                return
            time.sleep(0.1)
        raise RuntimeError(f"the app never went quiet:\n{self.app.transcript()[-3000:]}")

    def say(self, clip: Utterance) -> tuple[int, float, float]:
        """Play ``clip`` to the end; returns (stdout mark, t of its onset, t of its speech end)."""
        mark = self.app.mark()
        _, t_start = self.io.play_and_wait(clip.audio, clip.rate)
        return mark, t_start + clip.onset, t_start + clip.speech_end

    def answer_v2v(self, mark: int, speech_end: float, timeout: float = 30.0) -> float | None:
        """Seconds from ``speech_end`` to the first audible answer sample (None: no answer)."""
        try:
            self.app.wait_for(r"^you:", since=mark, timeout=10)
        except TimeoutError:
            return None
        first = self.io.wait_for_sound(speech_end, timeout)
        return None if first is None else first - speech_end

    def wait_turn_end(self, mark: int, timeout: float = 90.0) -> str | None:
        """The timings line of the turn (printed when its playback stops), if any."""
        try:
            return self.app.wait_for(APP_V2V.pattern, since=mark, timeout=timeout).text
        except TimeoutError:
            return None


def app_figure(pattern: re.Pattern[str], text: str | None) -> float | None:
    match = pattern.search(text or "")
    return int(match.group(1)) / 1000 if match else None


def wait_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))
