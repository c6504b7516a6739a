"""What recording costs the idle app, counted inside it: the recorder's own CPU time.

``bench_app_idle.py --with-record`` compares the whole process with and without
``--record``; on a shared machine its runs spread by about a point, so it cannot
show a cost of a few tenths of a percent. This bench runs the headless app on the
rig with ``--record`` under cProfile (its main thread, where the recorder's taps
run) while nobody talks, and adds up the time spent in the recorder's work: each
microphone block recorded with its speaker reference (``_record_block``, the
speaker tap) and each bus event written (``_observe``), callees included, plus the
microphone tap's own time. The FLAC encoder's thread (a minute of audio at a
time) is costed by encoding the session's first segment again. cProfile slows
what it measures, so the figure is an upper bound.

    .venv/bin/python scripts/bench_recorder_idle.py [--seconds 60]

Target (issue 24): recording costs <= 0.5 % of one core at idle.
"""

from __future__ import annotations

import argparse
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import app_idle as bench_app_idle

ROOT = Path(__file__).resolve().parents[1]

TARGET_PERCENT = 0.5
_WITH_CALLEES = ("_record_block", "_observe", "_tap_reference")


def recorder_seconds(profile: Path) -> tuple[float, list[str]]:
    """CPU seconds of the recorder's work in a cProfile dump, and the lines that make it."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    total = 0.0
    lines = []
    for (filename, _line, name), (_cc, calls, own, cumulative, _callers) in stats.items():
        if not filename.endswith("voiceterm/recording/control.py"):
            continue
        if name in _WITH_CALLEES:
            total += cumulative
            lines.append(f"{name:<15} {1000 * cumulative:7.1f} ms  ({calls} calls, callees in)")
        elif name == "tapped":
            total += own
            lines.append(f"{name:<15} {1000 * own:7.1f} ms  ({calls} blocks, own time)")
    return total, lines


def flac_seconds_per_second(session: Path) -> float:
    """CPU seconds the encoder spends per second of recorded audio (re-encoding a segment)."""
    import soundfile

    from voiceterm.recording import format as fmt

    audio, rate = soundfile.read(session / fmt.segment_name(0, "flac"), dtype="int16")
    seconds_of_audio = len(audio) / int(rate)
    started = time.process_time()
    soundfile.write(session / "again.flac", audio, rate, format="FLAC", subtype="PCM_16")
    return (time.process_time() - started) / seconds_of_audio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle time after start-up")
    args = parser.parse_args()
    load = [f"{os.getloadavg()[0]:.2f}"]
    profiled = [sys.executable, "-m", "cProfile", "-o"]
    with bench_app_idle.rig(0.5) as env, tempfile.TemporaryDirectory(prefix="vt-rec-") as tmp:
        profile = Path(tmp) / "app.prof"
        # The app as bench_app_idle starts it, under cProfile.
        command = [*profiled, str(profile), "-m", "voiceterm.cli"]
        setattr(bench_app_idle, "voiceterm_command", lambda: command)  # noqa: B010
        started = time.monotonic()
        app = bench_app_idle.App(ROOT, "headless", env, ["--record", str(Path(tmp) / "session")])
        try:
            app.wait_until_settled()
            time.sleep(args.seconds)
        finally:
            app.close()
        run_s = time.monotonic() - started
        spent, lines = recorder_seconds(profile)
        flac_s = run_s * flac_seconds_per_second(Path(tmp) / "session")
    load.append(f"{os.getloadavg()[0]:.2f}")
    share = 100 * (spent + flac_s) / run_s
    print(
        f"recording in the idle headless app, {run_s:.0f} s from start to close "
        f"({args.seconds:.0f} s idle; load {' -> '.join(load)})"
    )
    for line in lines:
        print(f"  {line}")
    print(f"  FLAC encoding   {1000 * flac_s:7.1f} ms  (its thread, for {run_s:.0f} s of audio)")
    verdict = "OK" if share <= TARGET_PERCENT else "over"
    print(
        f"  recorder        {1000 * (spent + flac_s):7.1f} ms = {share:.3f} % of one core "
        f"(under cProfile: an upper bound)  -> {verdict} (target <= {TARGET_PERCENT} %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
