"""Starting an agent: the engines load first, then the agent is made on them.

Loading takes from seconds to minutes, and a UI shows itself meanwhile. What it
holds then is a :class:`StartingAgent`: the bus and the timeline exist from the
first moment (the loaders' ``StageStatus`` lines go on that bus), a message typed
while loading is answered once the agent runs, and a load that fails fails it too.
Once the engines are in, the :class:`~voiceterm.pipeline.agent.VoiceAgent` is made
on that same bus, timeline and recording, and every call goes to it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from voiceterm.audio.frames import AudioSink, AudioSource
from voiceterm.bus import Bus
from voiceterm.config import Config, check_config
from voiceterm.errors import VoicetermError
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.listen_modes import ListenModes
from voiceterm.pipeline.loading import Engines, engines_for
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.release import release
from voiceterm.pipeline.wiring import Nodes
from voiceterm.recording.control import RecordingControl
from voiceterm.timeline import Timeline


@dataclass(slots=True)
class Devices:
    """What the agent listens to and plays on, with names for the status line."""

    source: AudioSource
    sink: AudioSink
    source_name: str
    sink_name: str


class StartingAgent:
    """A voice agent whose engines are still loading, then the agent itself.

    Args:
        config: settings, checked here: a bad value raises ``ConfigError`` before
            anything loads.
        devices: the microphone and speaker (or files) the agent will use.
        engines: already loaded engines (said ready); ``None``: loaded by ``start``.
    """

    def __init__(self, config: Config, devices: Devices, *, engines: Engines | None = None) -> None:
        self.config = check_config(config)
        self.bus = Bus()
        self.timeline = Timeline()
        self.source = devices.source
        self._sink = devices.sink
        self._names = {"mic": devices.source_name, "speaker": devices.sink_name}
        self._engines = engines
        self.agent: VoiceAgent | None = None
        """The agent, once the engines are in."""
        self._running = asyncio.Event()
        self._load_error: VoicetermError | None = None
        self._publish = Publisher(self.bus, "agent")
        self._modes = ListenModes(self.config)  # a mode chosen while loading is wired
        self.recording = RecordingControl(self)  # off until asked for

    @property
    def sink(self) -> AudioSink:
        """Where answers play (the agent's: a speaker that failed is replaced)."""
        return self.agent.sink if self.agent is not None else self._sink

    @property
    def wired(self) -> bool:
        return self.agent is not None and self.agent.wired

    @property
    def nodes(self) -> Nodes:
        """The agent's nodes (a ``RuntimeError`` before they are made)."""
        if self.agent is None:
            raise RuntimeError("the agent's nodes are made once the engines are loaded")
        return self.agent.nodes

    async def make_agent(self) -> VoiceAgent:
        """Load the engines, saying how each stage goes on the bus, and make the agent.

        Raises:
            ModelError: a model is missing or does not load (a message typed
                meanwhile fails with it).
        """
        await self.bus.start()
        try:
            engines = await engines_for(self.config, self._engines, self._publish)
        except VoicetermError as error:
            self._load_error = error
            self._running.set()  # no agent will come: let waiting messages fail
            raise
        self.agent = VoiceAgent(
            self.config,
            source=self.source,
            sink=self._sink,
            engines=engines,
            source_name=self._names["mic"],
            sink_name=self._names["speaker"],
            bus=self.bus,
            timeline=self.timeline,
            recording=self.recording,
        )
        return self.agent

    async def start(self) -> None:
        """Load the engines, make the agent and start it (see :meth:`VoiceAgent.start`)."""
        agent = await self.make_agent()
        try:
            await agent.start()
        finally:
            self._running.set()

    async def stop(self) -> None:
        """Stop the agent, or (still loading) close the devices and the bus."""
        try:
            if self.agent is not None:
                await self.agent.stop()
            else:
                await release(self.recording, self.source, self._sink, self.bus)
        finally:
            await self._publish.close()

    # --- what the agent does, or what there is to do while loading ----------------------

    async def submit_text(self, text: str) -> None:
        """Answer a typed message; typed while loading, once the agent runs."""
        if not text.strip():
            return
        await self._running.wait()
        if self.agent is None:
            assert self._load_error is not None
            raise self._load_error
        await self.agent.submit_text(text)

    async def interrupt(self) -> None:
        if self.agent is not None:
            await self.agent.interrupt()

    def set_muted(self, muted: bool) -> None:
        self.source.muted = muted

    def set_listen_mode(self, mode: str) -> None:
        if self.agent is not None:
            self.agent.set_listen_mode(mode)
        else:
            self._modes.set_mode(mode)

    def set_push_to_talk(self, enabled: bool) -> None:
        if self.agent is not None:
            self.agent.set_push_to_talk(enabled)

    def push_to_talk(self, pressed: bool) -> None:
        if self.agent is not None:
            self.agent.push_to_talk(pressed)

    def clear_conversation(self) -> None:
        if self.agent is not None:
            self.agent.clear_conversation()

    def describe(self) -> dict[str, str]:
        if self.agent is not None:
            return self.agent.describe()
        return {name: device for name, device in self._names.items() if device}
