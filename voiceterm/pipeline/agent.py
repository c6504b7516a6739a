"""The voice agent: the whole assistant on one bus, behind one facade.

Everything a person or a UI does goes through :class:`VoiceAgent`. It is made on
engines already loaded (:mod:`~voiceterm.pipeline.loading`; a UI that shows itself
while they load holds a :class:`~voiceterm.pipeline.starting.StartingAgent`).
``start`` opens the devices and wires the nodes (:mod:`~voiceterm.pipeline.wiring`);
``submit_text`` answers a typed message, ``interrupt`` cuts the agent off, and the
``timeline`` records every chunk of every turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

from voiceterm.audio.frames import AudioSink, AudioSource, WakingSink
from voiceterm.bus import Bus, Message
from voiceterm.config import Config, check_config
from voiceterm.events import AgentInterrupted, UserTranscriptionReceived
from voiceterm.pipeline.device_watch import DeviceWatch
from voiceterm.pipeline.end_of_turn.policy import CheckLatency
from voiceterm.pipeline.freed_memory import FreedMemory
from voiceterm.pipeline.glitches import GlitchWatch
from voiceterm.pipeline.listen_modes import ListenModes
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.loading import Engines
from voiceterm.pipeline.observe import Observer
from voiceterm.pipeline.own_voice import OwnVoice
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.quiet import Quiet
from voiceterm.pipeline.reactions import AgentReactions
from voiceterm.pipeline.release import release
from voiceterm.pipeline.server_watch import ServerWatch
from voiceterm.pipeline.wiring import Nodes, Shared, build_nodes
from voiceterm.recording.control import RecordingControl
from voiceterm.timeline import Timeline


class VoiceAgent:
    """The whole assistant on one bus.

    Args:
        config: settings (checked here: a bad value raises before anything opens).
        source: where the user's audio comes from (microphone or WAV file).
        sink: where the answer is played (speaker or WAV file).
        engines: the loaded engines (see :mod:`~voiceterm.pipeline.starting` to load them).
        check_latency: when the answers of pause checks may be used (a replay's:
            as late as they came live); ``None``: as they come. ``clock``: the listener's.
        bus, timeline, recording: made before the agent when something listens
            while the engines load (``None``: the agent makes its own).

    Raises:
        ConfigError: a setting that cannot work.
    """

    def __init__(
        self,
        config: Config,
        *,
        source: AudioSource,
        sink: AudioSink,
        engines: Engines,
        source_name: str = "",
        sink_name: str = "",
        check_latency: CheckLatency | None = None,
        bus: Bus | None = None,
        timeline: Timeline | None = None,
        recording: RecordingControl | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = check_config(config)
        self.bus = bus if bus is not None else Bus()
        self.timeline = timeline if timeline is not None else Timeline()
        self.engines = engines
        self.source = source
        self.sink = sink
        self.activity = AgentActivity()
        self.own_voice = OwnVoice()
        self._nodes: Nodes | None = None
        self.glitches: GlitchWatch | None = None
        self.freed_memory = FreedMemory()
        # Off until asked for; made beside the bus when given (see pipeline/starting.py).
        self.recording = recording if recording is not None else RecordingControl(self)
        self._publish = Publisher(self.bus, "agent")
        self._devices = DeviceWatch(
            self._publish, self.activity, {"mic": source_name, "speaker": sink_name}
        )
        self._server = ServerWatch(self._publish)
        self._modes = ListenModes(config)
        self._check_latency, self._clock = check_latency, clock
        self._observer = Observer(self.timeline, self.activity, self.own_voice)
        self.bus.tap(self._observer)  # a tap, not a route: it sees broadcast order
        self.quiet = Quiet(self.bus, self._observer, self.activity, self._held)
        """How long the agent has rested, and whether a turn is in flight."""
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the devices, wire the nodes, start listening.

        A device that cannot be opened is reported and the rest keeps working (see
        :mod:`voiceterm.pipeline.device_watch`). The first such error is raised at the
        end, after everything else is running, so a caller can show it.

        Raises:
            AudioDeviceError: the microphone or the speaker could not be opened.
        """
        await self.bus.start()
        self.sink, speaker_error = self._devices.open_speaker(self.sink)
        shared = Shared(
            self.bus,
            self._publish,
            self.activity,
            self.own_voice,
            before_turn=self._end_answer,
            check_latency=self._check_latency,
            clock=self._clock,
        )
        nodes = self._nodes = build_nodes(self.config, self.engines, self.source, self.sink, shared)
        self._modes.attach(self.engines, nodes.listener, nodes.gate)
        self._observer.reactions = AgentReactions(
            nodes, self.engines, self._server, self.quiet, self.freed_memory, self._run
        )
        self._server.watch(self.engines.llm, check_first=False)
        mic_error = self._devices.open_microphone(self.source)
        if mic_error is None:
            self._run("listener", nodes.listener.run)
        self.glitches = GlitchWatch(self.sink, self.source, self._publish)
        self._run("audio-glitches", self.glitches.run)
        session = self.config.session
        if session.record and not self.recording.active:
            self.recording.start(Path(session.record_dir) if session.record_dir else None)
        if error := speaker_error or mic_error:
            raise error

    def _run(
        self, name: str, work: Callable[[], Coroutine[object, object, None]]
    ) -> asyncio.Task[None] | None:
        """Run ``work()`` as the agent's task ``name``, unless that one still runs."""
        running = self._tasks.get(name)
        if running is not None and not running.done():
            return None
        task = self._tasks[name] = asyncio.get_running_loop().create_task(work(), name=name)
        return task

    async def _end_answer(self) -> None:
        """A transcript is about to start a new turn: an answer still in flight ends here.

        The model drops it for the new one anyway; without the interrupt the sentence
        and speech stages would go on with it, and its unfinished words would begin
        the next answer. (A barge-in has cut it off already: then nothing is busy.)
        """
        if self.activity.busy:
            await self.interrupt("new_turn")

    async def stop(self) -> None:
        """Stop listening and playing, cancel every route, release the devices."""
        if self._nodes is not None:
            self._nodes.stt.close()
        tasks = {*self._tasks.values(), *filter(None, [self._server.task])}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        try:
            await release(self.recording, self.source, self.sink, self.bus)
        finally:
            await self._publish.close()

    # --- the nodes ---------------------------------------------------------------------

    @property
    def wired(self) -> bool:
        """Whether ``start()`` has made the nodes (they exist from then on)."""
        return self._nodes is not None

    @property
    def nodes(self) -> Nodes:
        """The pipeline's nodes (a ``RuntimeError`` before ``start()`` has made them)."""
        if self._nodes is None:
            raise RuntimeError("the agent's nodes are made by start()")
        return self._nodes

    # --- what a person can do ---------------------------------------------------------

    async def submit_text(self, text: str) -> None:
        """Answer a typed message with voice, as if it had been spoken."""
        text = text.strip()
        if not text:
            return
        if isinstance(self.sink, WakingSink):
            self.sink.wake()  # a sleeping stream starts while the answer is made
        if self.activity.busy:
            await self.interrupt("typed_message")
        await self.bus.broadcast(Message("keyboard", UserTranscriptionReceived(content=text)))

    async def interrupt(self, reason: str = "key") -> None:
        """Cut the agent off: stop generating, synthesizing and playing.

        Returns once the nodes have acted on it: the player has stopped and said what
        was heard, so that a message sent next (a typed one) comes after that in the
        timeline and in the conversation, not before it.
        """
        await self.bus.broadcast(Message("agent", AgentInterrupted(reason=reason)))
        await self.quiet.until_handled(AgentInterrupted)

    def set_muted(self, muted: bool) -> None:
        self.source.muted = muted

    def set_listen_mode(self, mode: str) -> None:
        """Switch ``listen.mode`` while running (see :class:`ListenModes`)."""
        self._modes.set_mode(mode)

    def set_push_to_talk(self, enabled: bool) -> None:
        self._modes.set_push_to_talk(enabled)

    def push_to_talk(self, pressed: bool) -> None:
        self._modes.press(pressed)

    def clear_conversation(self) -> None:
        if self._nodes is not None:
            self._nodes.chat.clear_context()

    def describe(self) -> dict[str, str]:
        devices = {name: device for name, device in self._devices.names.items() if device}
        return self.engines.descriptions | devices

    def _held(self) -> bool:
        held = self._nodes is not None and self._nodes.stt.holding
        return held or self.sink.position() is not None

    async def wait_until_quiet(self, limit_s: float = 120.0) -> None:
        """Wait until the input ended (however long) and every turn has been answered
        and played (for at most ``limit_s`` after the input)."""
        if self._nodes is not None:
            await self._nodes.listener.finished.wait()
        await self.quiet.wait(limit_s)
