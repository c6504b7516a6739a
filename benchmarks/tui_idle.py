"""How much CPU the TUI costs while nobody talks: the mic meter fed at 50 Hz.

Runs the real app headless (Textual still lays out, renders and composes every
frame; only the terminal writes are dropped) with the scripted agent publishing
``AudioLevel`` at ``--level-hz`` on the real bus, for ``--seconds``, and reports
the process's CPU time over wall time, as a percentage of one core. A baseline
run without the app measures what the scripted microphone itself costs.

    .venv/bin/python scripts/bench_tui_idle.py            # ~20 s
    .venv/bin/python scripts/bench_tui_idle.py --talk     # also while answering

Target (issue 5): idle under 5 % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.demo import ScriptedAgent
from voiceterm.tui.widgets.status import MicMeter

TARGET_PERCENT = 5.0


@dataclass(slots=True)
class Measure:
    label: str
    seconds: float
    cpu_percent: float
    note: str = ""


async def measure_baseline(level_hz: float, seconds: float) -> Measure:
    """The scripted microphone and the bus alone, no UI."""
    agent = ScriptedAgent(level_hz=level_hz)
    await agent.start()
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    await agent.stop()
    return Measure("bus + scripted mic, no UI", wall, 100 * cpu / wall)


async def measure_app(level_hz: float, seconds: float, *, talk: bool) -> Measure:
    """The app on screen (headless) with the microphone meter fed at ``level_hz``."""
    agent = ScriptedAgent(level_hz=level_hz, pace=1.0)
    app = VoicetermApp(agent)
    redraws = 0
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(0.5)  # start-up is not idle
        meter = app.query_one(MicMeter)
        original = meter.refresh

        def counting_refresh(*args: object, **kwargs: object) -> MicMeter:
            nonlocal redraws
            redraws += 1
            return original(*args, **kwargs)  # type: ignore[arg-type]

        meter.refresh = counting_refresh  # type: ignore[method-assign]
        cpu0, wall0 = time.process_time(), time.monotonic()
        deadline = wall0 + seconds
        while time.monotonic() < deadline:
            if talk:
                await agent.submit_text("Tell me a story")
                await asyncio.sleep(min(12.0, deadline - time.monotonic()))
            else:
                await asyncio.sleep(deadline - time.monotonic())
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    label = "app answering (tokens, 20 Hz redraws)" if talk else "app idle, mic meter live"
    note = f"{redraws / wall:.1f} meter redraws/s"
    return Measure(label, wall, 100 * cpu / wall, note)


async def run(level_hz: float, seconds: float, talk: bool) -> list[Measure]:
    results = [await measure_baseline(level_hz, seconds / 2)]
    results.append(await measure_app(level_hz, seconds, talk=False))
    if talk:
        results.append(await measure_app(level_hz, seconds, talk=True))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each app run")
    parser.add_argument("--level-hz", type=float, default=50.0, help="AudioLevel events a second")
    parser.add_argument("--talk", action="store_true", help="also measure while answering")
    args = parser.parse_args()
    results = asyncio.run(run(args.level_hz, args.seconds, args.talk))
    print(f"TUI CPU, AudioLevel at {args.level_hz:.0f} Hz (% of one core, process_time/wall)")
    for result in results:
        extra = f"  ({result.note})" if result.note else ""
        print(
            f"  {result.label:<40} {result.cpu_percent:5.1f} %  over {result.seconds:.1f} s{extra}"
        )
    idle = results[1].cpu_percent
    verdict = "OK" if idle < TARGET_PERCENT else "OVER TARGET"
    print(f"idle target < {TARGET_PERCENT:.0f} %: {idle:.1f} % -> {verdict}")


if __name__ == "__main__":
    main()
