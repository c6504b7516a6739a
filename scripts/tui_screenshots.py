"""Make the README's screenshots of the TUI (SVG from Textual, PNG via rsvg-convert).

Uses the scripted demo agent on a frozen clock, so the pictures are the same on
every run. Writes ``docs/screenshot-main.{svg,png}`` and
``docs/screenshot-timeline.{svg,png}``; the PNGs need ``rsvg-convert`` (Debian
package ``librsvg2-bin``) and are skipped without it.

    .venv/bin/python scripts/tui_screenshots.py
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.demo import ScriptedAgent
from voiceterm.tui.feed import MicLevel

DOCS = Path(__file__).resolve().parent.parent / "docs"
SIZE = (110, 32)
START = 1000.0
WALL_START = 1_767_260_460.0  # 2026-01-01 09:41:00 UTC


async def take() -> dict[str, str]:
    agent = ScriptedAgent(clock=lambda: START, clock_offset=WALL_START - START)
    app = VoicetermApp(agent)
    shots: dict[str, str] = {}
    async with app.run_test(size=SIZE) as pilot:
        while app.activity != "listening":
            await pilot.pause(0.02)
        await agent.say("What time is it?")
        await agent.say("Tell me a story", cut_after_s=2.0)
        await agent.submit_text("Thanks, that will do")
        app.post_message(MicLevel(-40.0, False))
        while app.agent.timeline.version != app._shown_version:
            await pilot.pause(0.02)
        await pilot.pause(0.1)
        shots["main"] = app.export_screenshot(title="voiceterm")
        await pilot.press("ctrl+t")
        await pilot.press("shift+tab", "up", "enter")  # the story that was cut off
        await pilot.press("down", "down", "right", "right", "right")
        await pilot.pause(0.1)
        shots["timeline"] = app.export_screenshot(title="voiceterm — timeline")
    return shots


_LEADING_SPACES = re.compile(
    r'(<text [^>]*?x=")([\d.]+)("[^>]*?textLength=")([\d.]+)("[^>]*>)((?:&#160;)+)([^<]+)(</text>)'
)


def for_rsvg(svg: str) -> str:
    """rsvg drops leading no-break spaces in a stretched <text>: move x past them instead."""

    def shift(match: re.Match[str]) -> str:
        x, length = float(match.group(2)), float(match.group(4))
        lead = match.group(6).count("&#160;")
        width = length / (lead + len(html.unescape(match.group(7))))
        return (
            f"{match.group(1)}{x + lead * width:.1f}{match.group(3)}"
            f"{length - lead * width:.1f}{match.group(5)}{match.group(7)}{match.group(8)}"
        )

    return _LEADING_SPACES.sub(shift, svg)


def main() -> None:
    os.environ["TZ"] = "UTC"
    time.tzset()
    DOCS.mkdir(exist_ok=True)
    rsvg = shutil.which("rsvg-convert")
    for name, svg in asyncio.run(take()).items():
        svg_path = DOCS / f"screenshot-{name}.svg"
        svg_path.write_text(svg, encoding="utf-8")
        print(svg_path)
        if rsvg is None:
            print("  rsvg-convert not found (apt-get install librsvg2-bin): no PNG")
            continue
        png_path = svg_path.with_suffix(".png")
        subprocess.run([rsvg, "-o", str(png_path)], input=for_rsvg(svg).encode(), check=True)
        print(png_path)


if __name__ == "__main__":
    main()
