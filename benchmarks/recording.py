"""An hour of recording: its size on disk, what writing it costs, and how fast view opens it.

    .venv/bin/python scripts/bench_recording.py [--minutes 60] [--noise-db -60] [--view-runs 5]

The hour is made of a real session recorded on the rig
(tests/data/sessions/barge_in_echo: questions, a long answer, its echo, a
barge-in) repeated end to end, events and all, with a microphone noise floor
added (``--noise-db``, dBFS; a quiet room through a laptop microphone is about
-60, the rig's null sink is digital silence, which FLAC shrinks to nothing).
Written block by block (10 ms) through the recorder, as the app does, so the
time it takes is the recorder's CPU for an hour of audio.

Then ``voiceterm view`` is timed as a person meets it: the real command in a
terminal (a pty), from its start to the moment a turn's details are on the
screen, and to the moment the newest turn is (every turn read: the events are
read while the screen is up); ``--view-runs`` times, the median. The in-process
parts follow: reading the events into the timeline, and the first draw
(headless Textual).

Targets (issue 24): an hour <= 120 MB; view opens it in <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pty
import re
import select
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SESSION = ROOT / "tests" / "data" / "sessions" / "barge_in_echo"


def build(folder: Path, minutes: float, noise_db: float) -> float:
    """Write the recording; returns the CPU seconds (all threads) the recorder's calls took."""
    from voiceterm.bus import Message
    from voiceterm.recording.events_io import from_record, read_records
    from voiceterm.recording.reader import Recording
    from voiceterm.recording.writer import SessionWriter

    source = Recording.open(SESSION)
    audio = source.audio()
    records = list(read_records((SESSION / "events.jsonl").read_text()))
    t_first = source.anchors[0].t
    length_s = len(audio) / 16000
    rng = np.random.default_rng(0)
    noise_level = 32768 * 10 ** (noise_db / 20)
    writer = SessionWriter(folder, json.loads((SESSION / "session.json").read_text()))
    spent = 0.0
    t = 1000.0
    total = int(minutes * 60 * 16000)
    written = 0
    while written < total:
        noise = rng.normal(0.0, noise_level, size=len(audio)).astype(np.int16)
        mic = np.clip(audio[:, 0].astype(np.int32) + noise, -32768, 32767).astype(np.int16)
        messages: list[Message] = []
        for record in records:
            message = from_record(record)
            if message is not None:
                message.timestamp = message.timestamp - t_first + t
                messages.append(message)
        events = iter(sorted(messages, key=lambda m: m.timestamp))
        next_event = next(events, None)
        for index in range(0, len(audio), 160):
            block_t = t + index / 16000
            started = time.process_time()
            writer.audio(mic[index : index + 160], audio[index : index + 160, 1], block_t)
            while next_event is not None and next_event.timestamp <= block_t:
                writer.event(next_event, 1)
                next_event = next(events, None)
            spent += time.process_time() - started
        written += len(audio)
        t += length_s
    started = time.process_time()
    writer.close()
    return spent + time.process_time() - started


async def first_draw(folder: Path) -> tuple[float, float, list[int]]:
    """Seconds to read the events into a timeline, seconds to the first screen; the turns."""
    from voiceterm.recording.view import load_timeline
    from voiceterm.tui.viewer import RecordingViewer

    started = time.perf_counter()
    timeline, recording = load_timeline(folder)
    loaded = time.perf_counter() - started
    app = RecordingViewer(timeline, recording, title=str(folder))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        shown = time.perf_counter() - started
    return loaded, shown, [turn.number for turn in timeline.turns if not turn.is_empty]


def open_in_terminal(
    folder: Path, first: str, whole: str, timeout_s: float = 30.0
) -> tuple[float, float]:
    """Seconds from starting ``voiceterm view folder`` in a pty until ``first`` is drawn,
    and until ``whole`` is."""
    command = [str(Path(sys.executable).with_name("voiceterm")), "view", str(folder)]
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the viewer, as a person starts it
        os.environ["TERM"] = "xterm-256color"
        os.execv(command[0], command)
    screen = b""
    seen: dict[str, float] = {}
    try:
        while time.perf_counter() - started < timeout_s:
            ready, _, _ = select.select([fd], [], [], 0.02)
            if not ready:
                continue
            try:
                screen += os.read(fd, 65536)
            except OSError:
                break
            text = re.sub(rb"\x1b\[[0-9;?$]*[a-zA-Z]", b"", screen).decode(errors="replace")
            for needle in (first, whole):
                if needle not in seen and needle in text:
                    seen[needle] = time.perf_counter() - started
            if whole in seen:
                return seen.get(first, seen[whole]), seen[whole]
        raise RuntimeError(f"voiceterm view did not show {whole!r} in {timeout_s:.0f} s")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--noise-db", type=float, default=-60.0)
    parser.add_argument("--view-runs", type=int, default=5)
    args = parser.parse_args()
    load = [f"{os.getloadavg()[0]:.2f}"]
    with tempfile.TemporaryDirectory(prefix="vt-hour-") as tmp:
        folder = Path(tmp) / "hour"
        spent = build(folder, args.minutes, args.noise_db)
        sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
        audio_mb = sum(v for k, v in sizes.items() if k.startswith("audio-")) / 1e6
        events_mb = sizes["events.jsonl"] / 1e6
        loaded, shown, turns = asyncio.run(first_draw(folder))
        # The newest turn is shown once every turn is read.
        opened = [
            open_in_terminal(folder, "voice→voice", f"Turn {turns[-1]} ·")
            for _ in range(args.view_runs)
        ]
        first_screen = [first for first, _whole in opened]
        every_turn = [whole for _first, whole in opened]
    load.append(f"{os.getloadavg()[0]:.2f}")
    total_mb = sum(sizes.values()) / 1e6
    seconds = args.minutes * 60
    print(
        f"{args.minutes:.0f} min recording, microphone noise floor {args.noise_db:g} dBFS "
        f"(load {' -> '.join(load)})"
    )
    print(
        f"  size     {total_mb:6.1f} MB (audio {audio_mb:.1f} MB FLAC, events {events_mb:.1f} MB)"
        f"  -> {total_mb * 60 / args.minutes:.0f} MB an hour  (target <= 120)"
    )
    print(
        f"  writing  {spent:6.1f} s of CPU for {seconds:.0f} s of audio "
        f"= {100 * spent / seconds:.2f} % of one core"
    )
    print(
        f"  view     opens in {statistics.median(first_screen):.2f} s "
        f"(min {min(first_screen):.2f}, max {max(first_screen):.2f}): the command in a "
        f"terminal until a turn's details show; target <= 2 s"
    )
    print(
        f"           every turn read in {statistics.median(every_turn):.2f} s "
        f"(min {min(every_turn):.2f}, max {max(every_turn):.2f}): until the newest of "
        f"{len(turns)} turns shows; medians of {len(opened)} runs"
    )
    print(
        f"           in-process, all at once: events -> timeline {loaded:.2f} s, "
        f"first draw {shown:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
