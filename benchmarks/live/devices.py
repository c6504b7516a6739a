"""PortAudio's own latencies for the app's speaker and microphone on the rig."""

from __future__ import annotations

import asyncio

from benchmarks.live.figures import Report
from benchmarks.rig import environment
from voiceterm.config import Config


def device_latencies(env: dict[str, str], report: Report) -> None:
    """PortAudio's latencies for the app's Player and MicrophoneSource on the rig."""
    from voiceterm.audio.microphone import MicrophoneSource
    from voiceterm.audio.speaker import Player
    from voiceterm.pipeline.live_devices import speaker_latency

    with environment(env):
        audio = Config().audio
        block_ms = audio.block_ms
        output_block_ms = int(getattr(audio, "output_block_ms", block_ms))

        async def measure() -> None:
            player = Player(block_ms=output_block_ms, latency=speaker_latency(audio))
            player.start(asyncio.get_running_loop())
            report.latencies["player output latency"] = player.output_latency
            player.close()
            mic = MicrophoneSource(block_ms=block_ms)
            mic.start()
            await asyncio.sleep(0.2)
            stream = getattr(mic, "_stream", None)
            if stream is not None:
                report.latencies["microphone input latency"] = float(stream.latency)
            mic.close()

        asyncio.run(measure())
        report.latencies["capture block"] = block_ms / 1000
        report.latencies["playback block"] = output_block_ms / 1000
