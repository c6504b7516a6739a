"""Idle CPU of the whole app on the PulseAudio rig: TUI or headless, live microphone, AEC.

``scripts/bench_tui_idle.py`` measures the TUI alone with a scripted microphone;
this one runs the real ``voiceterm`` as a person would (the TUI in a
pseudo-terminal of 120 x 40, or ``--headless``) on the rig's devices, with the
default echo handling (AEC) and the rig's speaker looped back into the
microphone (``--echo-gain``), nobody talking. Once start-up has settled (the
process's CPU stays low for a few seconds, plus ``--settle``), the process's CPU
time (``/proc/<pid>/stat``: user + system, all threads) over ``--seconds`` of
wall time is its idle cost, as a percentage of one core. The threads that used
the most are listed by thread id (``py-spy dump --pid`` names the Python ones).

``--code DIR`` (repeatable) runs the app from another checkout
(``PYTHONPATH=DIR``), e.g. ``--code /work/main --code .`` for before and after
in one run; the variants take turns, ``--rounds`` times, each start a fresh app.

    .venv/bin/python scripts/bench_app_idle.py                       # ~2 minutes
    .venv/bin/python scripts/bench_app_idle.py --code ../main --code . --rounds 2
    .venv/bin/python scripts/bench_app_idle.py --with-record --rounds 3   # recording's cost
    .venv/bin/python scripts/bench_app_idle.py --listen-mode always wake_word  # the wake word's

Target (issue 17): the whole app idle under 5 % of one core.
Needs pulseaudio and pulseaudio-utils (scripts/setup.sh --dev).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.rig import RigControl, voiceterm_command

ROOT = Path(__file__).resolve().parents[1]

TARGET_PERCENT = 5.0
TICKS = os.sysconf("SC_CLK_TCK")
QUIET_PERCENT = 30.0  # start-up is over once a second costs less than this
QUIET_SECONDS = 3


def cpu_ticks(stat_path: Path) -> int:
    """User + system clock ticks from a ``/proc/.../stat`` file (0 once it is gone)."""
    try:
        text = stat_path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return 0
    fields = text.rsplit(")", 1)[-1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid: int) -> dict[int, int]:
    """CPU ticks of each thread of ``pid``."""
    tasks = Path(f"/proc/{pid}/task")
    with contextlib.suppress(OSError):
        return {int(task.name): cpu_ticks(task / "stat") for task in tasks.iterdir()}
    return {}


def thread_wakeups(pid: int) -> dict[int, int]:
    """Voluntary context switches of each thread of ``pid`` (each is a sleep, then a wake-up)."""
    counts: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                status = (task / "status").read_text()
                counts[int(task.name)] = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
    return counts


def thread_name(pid: int, tid: int) -> str:
    """The thread's name as the kernel knows it (``threaded-ml`` is libpulse's)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    return "?"


@dataclass
class Variant:
    label: str
    code: Path
    runs: list[float] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)
    record: bool = False
    """Run with ``--record`` (into a new folder each start)."""
    listen: str = "always"
    """``--listen-mode`` of the app."""


class App:
    """``voiceterm`` on the rig, in a pseudo-terminal (TUI) or headless; output drained."""

    def __init__(self, code: Path, mode: str, env: dict[str, str], args: list[str]) -> None:
        env = {**env, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1", "TERM": "xterm-256color"}
        command = [*voiceterm_command(), *(["--headless"] if mode == "headless" else []), *args]
        self._master, slave = pty.openpty()
        if mode == "tui":
            import fcntl
            import struct
            import termios

            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(self._master, 65536):
                self.output += chunk

    @property
    def stat(self) -> Path:
        return Path(f"/proc/{self.process.pid}/stat")

    def wait_until_settled(self, timeout: float = 120.0) -> None:
        """Until the models are loaded and the devices open: a few quiet seconds in a row."""
        deadline = time.monotonic() + timeout
        quiet = 0
        before = cpu_ticks(self.stat)
        time.sleep(5.0)  # the first seconds import and load
        while quiet < QUIET_SECONDS:
            if self.process.poll() is not None:
                raise RuntimeError(f"voiceterm exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"voiceterm did not settle:\n{self.tail()}")
            before = cpu_ticks(self.stat)
            time.sleep(1.0)
            used = 100 * (cpu_ticks(self.stat) - before) / TICKS
            quiet = quiet + 1 if used < QUIET_PERCENT else 0

    def tail(self) -> str:
        return bytes(self.output[-3000:]).decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._master)


def measure(app: App, seconds: float) -> tuple[float, str]:
    """Percent of one core over ``seconds``, and the busiest threads."""
    pid = app.process.pid
    wakeups0 = thread_wakeups(pid)
    threads0, total0, wall0 = thread_ticks(pid), cpu_ticks(app.stat), time.monotonic()
    time.sleep(seconds)
    threads1, total1, wall = thread_ticks(pid), cpu_ticks(app.stat), time.monotonic() - wall0
    wakeups1 = thread_wakeups(pid)
    if app.process.poll() is not None:
        raise RuntimeError(f"voiceterm exited while measured:\n{app.tail()}")
    used = {tid: ticks - threads0.get(tid, 0) for tid, ticks in threads1.items()}
    busiest = sorted(used.items(), key=lambda item: -item[1])[:5]
    per_thread = ", ".join(
        f"{tid}{' (main)' if tid == pid else ' ' + thread_name(pid, tid)} "
        f"{100 * ticks / TICKS / wall:.1f}% "
        f"{(wakeups1.get(tid, 0) - wakeups0.get(tid, 0)) / wall:.0f}/s"
        for tid, ticks in busiest
        if ticks
    )
    return 100 * (total1 - total0) / TICKS / wall, per_thread


@contextlib.contextmanager
def rig(echo_gain: float | None) -> Iterator[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="vt-idle-rig-") as folder:
        control = RigControl(Path(folder))
        try:
            env = control.start()
            control.set_echo(echo_gain)
            yield {**os.environ, **env, "XDG_CONFIG_HOME": str(Path(folder) / "config")}
        finally:
            control.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="idle time measured")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after start-up")
    parser.add_argument("--mode", choices=["tui", "headless"], nargs="+", default=["tui"])
    parser.add_argument(
        "--code", type=Path, action="append", help="checkout to run (repeatable; default: this)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="fresh starts per variant")
    parser.add_argument(
        "--echo-gain", type=float, default=-6.0, help="speaker-to-microphone loopback, dB"
    )
    parser.add_argument("--no-echo", action="store_true", help="no loopback on the rig")
    parser.add_argument(
        "--app-flag", action="append", default=[], help="extra voiceterm flag (repeatable)"
    )
    parser.add_argument(
        "--listen-mode",
        choices=["always", "wake_word"],
        nargs="+",
        default=["always"],
        help="listen.mode of the app; several take turns side by side",
    )
    parser.add_argument("--keep", action="store_true", help="pause before closing (for py-spy)")
    parser.add_argument(
        "--with-record", action="store_true", help="each variant also with --record, side by side"
    )
    args = parser.parse_args()
    codes = args.code or [ROOT]
    variants = [
        Variant(
            f"{mode} {code.resolve().name}{' +record' if record else ''}"
            f"{' ' + listen if len(args.listen_mode) > 1 or listen != 'always' else ''}",
            code.resolve(),
            record=record,
            listen=listen,
        )
        for mode in args.mode
        for code in codes
        for listen in args.listen_mode
        for record in ([False, True] if args.with_record else [False])
    ]
    recordings = Path(tempfile.mkdtemp(prefix="vt-idle-recordings-"))
    load = [f"{os.getloadavg()[0]:.2f}"]
    with rig(None if args.no_echo else args.echo_gain) as env:
        for _ in range(args.rounds):
            for variant in variants:
                mode = variant.label.split()[0]
                flags = list(args.app_flag)
                if variant.listen != "always":
                    flags += ["--listen-mode", variant.listen]
                if variant.record:
                    flags += ["--record", str(recordings / f"session-{len(variant.runs)}")]
                app = App(variant.code, mode, env, flags)
                try:
                    app.wait_until_settled()
                    time.sleep(args.settle)
                    percent, threads = measure(app, args.seconds)
                    variant.runs.append(percent)
                    variant.threads.append(threads)
                    print(f"{variant.label}: {percent:.1f} % ({threads})", flush=True)
                    if args.keep:
                        input(f"pid {app.process.pid}; Enter closes it ")
                finally:
                    app.close()
    load.append(f"{os.getloadavg()[0]:.2f}")
    echo = "no loopback" if args.no_echo else f"loopback {args.echo_gain:g} dB"
    print()
    print(f"idle CPU, % of one core over {args.seconds:.0f} s ({echo}; load {' -> '.join(load)})")
    for variant in variants:
        runs = " ".join(f"{run:4.1f}" for run in variant.runs)
        mean = sum(variant.runs) / len(variant.runs)
        verdict = "OK" if mean < TARGET_PERCENT else "over"
        print(f"  {variant.label:<36} mean {mean:4.1f} %  runs {runs}  -> {verdict}")
    print(f"target < {TARGET_PERCENT:.0f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
