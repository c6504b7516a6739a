"""Start the TUI on the live devices (what plain ``voiceterm`` does)."""

from __future__ import annotations

from voiceterm.config import Config


def run_app(config: Config) -> int:
    """Open the microphone and speaker, start the agent inside the app, run it."""
    from voiceterm.audio.devices import MicrophoneSource
    from voiceterm.audio.player import Player
    from voiceterm.pipeline.agent import VoiceAgent
    from voiceterm.tui.app import VoicetermApp

    source = MicrophoneSource(device=config.audio.input_device, block_ms=config.audio.block_ms)
    sink = Player(device=config.audio.output_device, block_ms=config.audio.block_ms)
    agent = VoiceAgent(
        config,
        source=source,
        sink=sink,
        source_name=config.audio.input_device or "default microphone",
        sink_name=config.audio.output_device or "default speaker",
    )
    VoicetermApp(agent).run()
    return 0
