"""Start the TUI on the live devices (what plain ``voiceterm`` does)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceterm.config import Config

if TYPE_CHECKING:
    from voiceterm.timeline import Timeline


def run_app(config: Config) -> Timeline:
    """Open the microphone and speaker, run the app, and load and start the agent in it.

    The app shows itself at once: the models load inside it (their status lines in
    view, a typed message answered once they are in).

    Returns the session's timeline once the app has quit (``--trace``).
    """
    from voiceterm.pipeline.live_devices import live_agent
    from voiceterm.tui.app import VoicetermApp

    agent, _notice = live_agent(config)
    VoicetermApp(agent).run()
    return agent.timeline
