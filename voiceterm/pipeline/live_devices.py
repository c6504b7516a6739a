"""The live sound devices for a config: microphone (echo-cancelled) and speaker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voiceterm.audio.frames import AudioSource
from voiceterm.config import AudioSettings, Config
from voiceterm.errors import EngineError

if TYPE_CHECKING:
    from voiceterm.pipeline.starting import Devices, StartingAgent

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LiveDevices:
    """The microphone and speaker, and how the echo is handled between them."""

    devices: Devices
    echo: str
    """The echo handling in use (``aec`` may fall back to ``half_duplex``)."""
    notice: str = ""
    """Why the echo handling differs from the config, if it does."""


def live_agent(config: Config) -> tuple[StartingAgent, str]:
    """An agent on the live devices, its engines still to load (``start`` loads them),
    and a notice about the devices (``""``: none)."""
    from voiceterm.pipeline.starting import StartingAgent

    live = open_live_devices(config)
    return StartingAgent(config, live.devices), live.notice


def speaker_latency(audio: AudioSettings) -> float | str:
    """PortAudio's output latency for ``audio.output_buffer_ms`` (0: its "high" default)."""
    return audio.output_buffer_ms / 1000 if audio.output_buffer_ms > 0 else "high"


def open_live_devices(config: Config) -> LiveDevices:
    """Microphone and speaker; the microphone cleaned of the speaker's sound.

    ``audio.echo = "aec"`` without a WebRTC audio-processing package installed
    falls back to half-duplex (the microphone is ignored while the agent speaks),
    with a notice, rather than leaving the agent to interrupt itself.
    """
    from voiceterm.audio.echo import EchoCancelledSource, make_echo_canceller
    from voiceterm.audio.microphone import MicrophoneSource
    from voiceterm.audio.speaker import Player
    from voiceterm.pipeline.starting import Devices

    mic = MicrophoneSource(device=config.audio.input_device, block_ms=config.audio.block_ms)
    player = Player(
        device=config.audio.output_device,
        block_ms=config.audio.output_block_ms,
        latency=speaker_latency(config.audio),
    )
    echo = config.audio.echo
    notice = ""
    try:
        canceller = make_echo_canceller(echo)
    except EngineError as error:
        notice = f"{error.message} Using half-duplex instead. ({error.hint})"
        logger.warning("%s", notice)
        echo = "half_duplex"
        canceller = make_echo_canceller(echo)
    source: AudioSource = mic
    if echo != "off":
        source = EchoCancelledSource(mic, canceller, player=player)
    devices = Devices(
        source=source,
        sink=player,
        source_name=config.audio.input_device or "default microphone",
        sink_name=config.audio.output_device or "default speaker",
    )
    return LiveDevices(devices, echo=echo, notice=notice)
