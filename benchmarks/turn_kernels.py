"""Smart Turn on this CPU: exact int8 kernels against ONNX Runtime's default ones.

The end-of-turn model is int8. On x86 CPUs without VNNI (AVX2 only) ONNX Runtime's
default int8 kernels saturate, and the model's scores move by up to tenths: a
finished-sounding pause that scores 0.67 on a VNNI CPU scores 0.89 there, over the
0.7 bar. voiceterm asks for the exact kernels (``session.x64quantprecision``); this
prints what that changes on this machine, side by side in one run: the scores of
every recording's growing prefix (a check at each second, as at a pause), how many
verdicts cross the bar, and the compute time of one check, the two sessions
alternated. On a CPU with VNNI both give the same scores.

Usage: ``.venv/bin/python -m benchmarks.turn_kernels [--runs 20]``
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.corpus import RATE, more_recordings, real_recordings
from voiceterm.engines.smart_turn import (
    WINDOW_SAMPLES,
    SmartTurn,
    last_window,
    load_session,
    log_mel,
)
from voiceterm.modelstore import resolve_model
from voiceterm.stats import percentile

BAR = 0.7
"""The smart_turn rule's threshold (``turn.threshold``)."""


def score(session: object, features: np.ndarray) -> float:
    outputs = session.run(None, {"input_features": features})  # type: ignore[attr-defined]
    return float(outputs[0].reshape(-1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed checks of each session")
    args = parser.parse_args()
    path = str(resolve_model("turn", None).path)
    exact = SmartTurn(path, threads=1)
    default = load_session(Path(path), 1, exact_int8=False)
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    vnni = sorted(f for f in flags if "vnni" in f) or ["no VNNI"]
    print(f"CPU: {os.cpu_count()} cores, {', '.join(vnni)}; load {os.getloadavg()[0]:.1f}")
    deltas, crossed, checks = [], 0, 0
    for recording in [*real_recordings(), *more_recordings()]:
        audio = recording.audio
        for end in range(RATE, len(audio) + 1, RATE):
            features = log_mel(last_window(audio[:end]))[None, :, :]
            a, b = exact.probability(audio[:end]), score(default, features)
            deltas.append(abs(a - b))
            crossed += (a >= BAR) != (b >= BAR)
            checks += 1
    print(f"checks: {checks} (each recording's prefix at every second)")
    print(
        f"|score difference|: p50 {percentile(deltas, 50):.3f}, p95 {percentile(deltas, 95):.3f}, "
        f"max {max(deltas):.3f}; verdicts on the other side of {BAR}: {crossed} "
        f"({100 * crossed / max(1, checks):.1f}%)"
    )
    quiet = np.zeros(WINDOW_SAMPLES, dtype=np.int16)
    timed: dict[str, list[float]] = {"exact": [], "default": []}
    for _ in range(args.runs):
        for name in timed:
            start = time.perf_counter()
            if name == "exact":
                exact.probability(quiet)
            else:
                score(default, log_mel(last_window(quiet))[None, :, :])
            timed[name].append(1000 * (time.perf_counter() - start))
    for name, ms in timed.items():
        print(
            f"one check ({name} kernels, 1 thread, features included): "
            f"p50 {percentile(ms, 50):.1f} ms, p95 {percentile(ms, 95):.1f} ms"
        )
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
