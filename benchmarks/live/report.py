"""The printed report of one run, and the headline figures of several side by side."""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.live.figures import Report, Series, ms
from benchmarks.stats import percentile


def print_report(report: Report, args: argparse.Namespace) -> None:
    print()
    print("=" * 78)
    print(
        "voiceterm live benchmark: real `voiceterm --headless` on the PulseAudio rig"
        + (f", beside {report.busy} busy programs" if report.busy else "")
    )
    print(
        "  (null sinks at 48 kHz, real PortAudio via ALSA's pulse plugin; "
        f"answers <= {args.max_tokens} tokens)"
    )
    print(f"  load average: {' -> '.join(report.load)}")
    if report.calibration_ms:
        cal = report.calibration_ms
        print(
            f"  time-stamp check: clicks into vt_mic found in vt_mic.monitor "
            f"{np.median(cal):+.1f} ms median, {np.max(np.abs(cal)):.1f} ms worst (n={len(cal)})"
        )
    if report.latencies:
        parts = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in report.latencies.items())
        print(f"  PortAudio on the rig: {parts}")
    print(
        f"  the app's speaker ran dry {report.speaker_underflows} times "
        f"over {report.apps} app runs (PortAudio underflows: clicks); it stopped playing "
        f"{report.speaker_stops} times, cutting {report.speaker_cut_answers} answers off "
        "(speaker_lost)"
    )
    print()
    print("voice-to-voice (ms)                              n    p50    p95")
    print(report.file_v2v.row("file-based, each clip a fresh conversation"))
    print(report.file_fresh_beside_v2v.row("  the same, said beside each live turn"))
    print(report.file_conversation_v2v.row("file-based, one conversation (as live)"))
    print(report.live_v2v.row("live, from the signals"))
    print(report.app_v2v.row("live, the app's own timeline"))
    live = report.live_v2v.values
    for label, series in (
        ("fresh", report.file_v2v),
        ("fresh, beside", report.file_fresh_beside_v2v),
        ("one conversation", report.file_conversation_v2v),
    ):
        if series.values and live:
            extra = percentile(live, 50) - percentile(series.values, 50)
            verdict = "ok" if extra <= 0.1 else "MISSED"
            print(
                f"  live - file-based ({label}) at p50: {1000 * extra:+.0f} ms"
                f" (target <= +100 ms: {verdict})"
            )
    paired = report.paired_differences.values
    if paired:
        print(
            f"  live - file-based (one conversation), clip by clip: median"
            f" {1000 * float(np.median(paired)):+.0f} ms over {len(paired)} clips"
        )
    if report.unanswered:
        print(f"  questions without an answer: {report.unanswered}")
    if report.first_turn is not None:
        print(
            f"  first turn after start (not in the figures above): {ms(report.first_turn)} ms;"
            f" app: {(report.first_turn_app or '').strip()}"
        )
    for barge in report.barge_ins:
        if not barge.trials and not barge.coughs:
            continue
        print()
        print(
            f"barge-in, echo {barge.echo}, barge_in.hold={barge.hold}, "
            f"min_speech_ms={barge.min_speech_ms} "
            "(onset in the mic signal -> last assistant sample)"
        )
        print("                                                   n    p50    p95")
        p50 = percentile(barge.continuous.values, 50)
        p95 = percentile(barge.continuous.values, 95)
        ok = "ok" if p50 <= 0.15 and p95 <= 0.25 else "MISSED"
        print(barge.signal.row("from the signals, every caught barge-in"))
        print(
            barge.continuous.row(
                "  only cuts of speech sounding at the onset", f"target p50<=150, p95<=250: {ok}"
            )
        )
        print(barge.app.row("the app's own timeline"))
        print(barge.cough_silences.row("answer silent around an 80 ms cough (longest)"))
        valid = barge.trials
        print(
            f"  caught {barge.caught}/{valid}"
            + (
                f" ({barge.not_talking} more not counted: the answer had stopped by itself)"
                if barge.not_talking
                else ""
            )
            + f"; 80 ms coughs that cut an answer off: {barge.cough_cuts}/{barge.coughs}"
            + (
                f"; {barge.unheard} trials not counted (the bench's recorder lost audio)"
                if barge.unheard
                else ""
            )
        )
    if report.echo:
        print()
        print(f"echo: loopback speaker -> microphone at {args.echo_gain:g} dB")
        print(
            "  mode          answers  self-interrupt.  phantom turns  runaways  v2v p50"
            "  barge-ins caught"
        )
        for echo in report.echo:
            caught = "not run"
            if echo.barge is not None:
                valid = echo.barge.trials
                caught = f"{echo.barge.caught}/{valid}"
                if valid:
                    caught += f" ({100 * echo.barge.caught / valid:.0f}%)"
            print(
                f"  {echo.mode:<13} {echo.answers:7d}  {echo.self_interruptions:15d}  "
                f"{echo.phantom_turns:13d}  {echo.runaways:8d}  "
                f"{ms(percentile(echo.v2v.values, 50))}   {caught}"
            )
        print("  targets: 0 self-interruptions in 50 answers; >= 95% of barge-ins caught over echo")
    for note in report.notes:
        print(f"  note: {note}")


def load_label(busy: int) -> str:
    return "idle" if busy == 0 else f"{busy} busy"


def print_side_by_side(reports: list[Report]) -> None:
    """The headline figures of each run in one table (p50 / p95 in ms)."""

    def both(series: Series) -> str:
        values = series.values
        return f"{ms(percentile(values, 50)).strip()} / {ms(percentile(values, 95)).strip()}"

    rows: list[tuple[str, list[str]]] = [
        ("voice-to-voice, live (signals)", [both(r.live_v2v) for r in reports]),
        ("voice-to-voice, live (app)", [both(r.app_v2v) for r in reports]),
        ("voice-to-voice, file, fresh clips", [both(r.file_v2v) for r in reports]),
        (
            "voice-to-voice, file, one conversation",
            [both(r.file_conversation_v2v) for r in reports],
        ),
        (
            "barge-in, echo off (continuous speech)",
            [both(r.barge_ins[0].continuous) if r.barge_ins else "n/a" for r in reports],
        ),
    ]
    for index, echo in enumerate(reports[0].echo):
        rows.append(
            (
                f"voice-to-voice, echo {echo.mode}",
                [both(r.echo[index].v2v) if index < len(r.echo) else "n/a" for r in reports],
            )
        )
    rows.append(
        (
            "speaker ran dry / app runs",
            [f"{r.speaker_underflows} / {r.apps}" for r in reports],
        )
    )
    rows.append(
        (
            "speaker stopped / answers cut",
            [f"{r.speaker_stops} / {r.speaker_cut_answers}" for r in reports],
        )
    )
    rows.append(("unanswered questions", [str(r.unanswered) for r in reports]))
    rows.append(("load average (1 min)", [" -> ".join(r.load) for r in reports]))
    print()
    print("=" * 78)
    print(
        "side by side (p50 / p95, ms)".ljust(42)
        + "".join(f"{load_label(r.busy):>18}" for r in reports)
    )
    for label, cells in rows:
        print(f"  {label:<40}" + "".join(f"{cell:>18}" for cell in cells))
    print(
        "  targets with one core busy: voice-to-voice p50 <= 800, p95 <= 1500; barge-in p95 <= 250"
    )
