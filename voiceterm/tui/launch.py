"""Start the TUI on the live devices (what plain ``voiceterm`` does)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceterm.config import Config

if TYPE_CHECKING:
    from voiceterm.pipeline.agent import VoiceAgent


def run_app(config: Config) -> VoiceAgent:
    """Open the microphone and speaker, start the agent inside the app, run it.

    Returns the agent once the app has quit, for its timeline (``--trace``).
    """
    from voiceterm.pipeline.live_devices import live_agent
    from voiceterm.tui.app import VoicetermApp

    agent, _notice = live_agent(config)
    VoicetermApp(agent).run()
    return agent
