"""The real pipeline (``VoiceAgent``) on fast scripted engines and a simulated speaker.

For core tests of the whole chain: the bus, every node and route, the timeline
and the player are the real ones; only the models and the devices are stand-ins.
Each engine can be told to fail on given calls, the way a real one would raise
in its worker thread. ``say`` does what the listener does when a person speaks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any

import numpy as np
import numpy.typing as npt

from voiceterm.audio.frames import AudioFrame, PlaybackTag
from voiceterm.audio.playback import EngineSink, PlaybackEngine
from voiceterm.bus import Message
from voiceterm.config import Config
from voiceterm.engines.llm.protocol import ChatEngine
from voiceterm.engines.llm.stream import astream_chat
from voiceterm.errors import AudioDeviceError
from voiceterm.events import AgentInterrupted, UserStartedSpeaking, UserStoppedSpeaking
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.listen import Listener
from voiceterm.pipeline.loading import Engines
from voiceterm.tools.registry import default_registry

Int16Array = npt.NDArray[np.int16]

SPEAKER_RATE = 22050
LOUD = 3000


class EngineFailure(RuntimeError):
    """What a scripted engine raises when it is told to fail."""


class Failing:
    """Which calls (counted from 1) of an engine raise ``EngineFailure``."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_calls: set[int] = set()
        self.lock = threading.Lock()

    def fail_next(self, count: int = 1) -> None:
        """The next ``count`` calls raise."""
        with self.lock:
            self.fail_calls.update(range(self.calls + 1, self.calls + 1 + count))

    def count(self, what: str) -> None:
        with self.lock:
            self.calls += 1
            failing = self.calls in self.fail_calls
        if failing:
            raise EngineFailure(f"{what} crashed (call {self.calls})")


class ScriptedTranscriber(Failing):
    """Hears whatever ``text`` is at the time of the call."""

    def __init__(self, text: str = "Hello there.", delay_s: float = 0.002) -> None:
        super().__init__()
        self.text = text
        self.delay_s = delay_s

    def transcribe(self, audio: Any) -> str:
        self.count("the transcriber")
        time.sleep(self.delay_s)
        return self.text


class ScriptedChatModel(Failing):
    """Streams ``answer`` word by word from its worker thread; stops on ``cancel``.

    ``fail_after_words``: a failing call raises after that many words (mid-answer).
    """

    chat_template_source = ""
    n_ctx = 2048

    def __init__(
        self,
        answer: str = "The moon is far away. It is made of rock and dust. Ask me more.",
        delay_s: float = 0.002,
        fail_after_words: int = 3,
    ) -> None:
        super().__init__()
        self.answer = answer
        self.delay_s = delay_s
        self.fail_after_words = fail_after_words
        self.asked: list[list[dict[str, Any]]] = []

    def stream_chat(
        self, messages: Sequence[Mapping[str, Any]], **options: Any
    ) -> AsyncGenerator[str, None]:
        # Blocking, as the in-process model is: run in a worker thread, cancelled by a flag.
        return astream_chat(self, messages, **options)

    def generate(
        self, messages: Sequence[Mapping[str, Any]], cancel: threading.Event, **options: Any
    ) -> Generator[str, None, None]:
        self.asked.append([dict(m) for m in messages])
        try:
            self.count("the language model")
        except EngineFailure:
            failing = True
        else:
            failing = False
        for index, word in enumerate(self.answer.split(" ")):
            if cancel.is_set():
                return
            if failing and index == self.fail_after_words:
                raise EngineFailure(f"the language model crashed (call {self.calls})")
            time.sleep(self.delay_s)
            yield word if index == 0 else " " + word


class ScriptedVoice(Failing):
    """Each piece becomes ``chunks`` short loud chunks (``chunk_ms`` each)."""

    sample_rate = SPEAKER_RATE

    def __init__(self, chunks: int = 2, chunk_ms: int = 10, delay_s: float = 0.001) -> None:
        super().__init__()
        self.chunks = chunks
        self.chunk_ms = chunk_ms
        self.delay_s = delay_s
        self.level = LOUD
        """The value of every sample made from now on (a test tells answers apart by it)."""
        self.texts: list[str] = []

    def synthesize(
        self, text: str, cancel: threading.Event | None = None, *, every_core: bool = False
    ) -> Iterator[Int16Array]:
        self.texts.append(text)
        self.count("the voice")
        for _ in range(self.chunks):
            if cancel is not None and cancel.is_set():
                return
            time.sleep(self.delay_s)
            yield np.full(SPEAKER_RATE * self.chunk_ms // 1000, self.level, dtype=np.int16)


class QuietMic:
    """A microphone in a quiet room: no frames until it is closed (speech comes from ``say``)."""

    sample_rate = 16000

    def __init__(self) -> None:
        self.muted = False
        self._closed = asyncio.Event()

    def start(self) -> None:
        self._closed.clear()

    async def frames(self) -> AsyncIterator[AudioFrame]:
        await self._closed.wait()
        return
        yield  # an async generator that yields nothing

    def close(self) -> None:
        self._closed.set()


class SimulatedSpeaker(EngineSink):
    """An ``AudioSink`` on a simulated device clock that keeps every block it played.

    ``played`` holds (time the block is heard, its samples) for every block with
    sound in it, so a test can tell what was heard, and when.
    """

    def __init__(self, block_ms: int = 5) -> None:
        super().__init__()
        self.block_ms = block_ms
        self.on_error: Callable[[AudioDeviceError], None] | None = None
        self.on_restored: Callable[[], None] | None = None
        self.lost_at: float | None = None
        self.restored_at: float | None = None
        self._engine = PlaybackEngine(SPEAKER_RATE, self._callbacks.post_soon)
        self._clock: asyncio.Task[None] | None = None
        self.played: list[tuple[float, Int16Array]] = []
        self.voice: ScriptedVoice | None = None
        """A voice whose level changes at every stop (see ``stops``)."""
        self.stops: list[tuple[float, int]] = []
        """For every ``stop_now``: when the sound ended, and ``voice``'s level until then."""
        self.underflows = 0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        running = self._callbacks.bind_loop(loop)
        if self._clock is None:
            self._clock = running.create_task(self._run(), name="simulated speaker")

    async def _run(self) -> None:
        n = SPEAKER_RATE * self.block_ms // 1000
        block_s = n / SPEAKER_RATE
        t0 = time.monotonic()
        index = 0
        while True:
            t_block = t0 + index * block_s
            delay = t_block - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:  # fell behind (a busy machine): play on from now, as a device would
                t0, index, t_block = time.monotonic(), 0, time.monotonic()
            index += 1
            if self.lost_at is not None and self.restored_at is None:
                continue  # no device: nothing plays, nothing is taken from the queue
            out = np.zeros(n, dtype=np.int16)
            if self._require_engine().fill(out, t_block):
                self.played.append((t_block, out))

    def lose_device(self) -> None:
        """The device vanishes, and the sink reports it as ``Player`` does."""
        self.lost_at, self.restored_at = time.monotonic(), None
        self._require_engine().stop_now()
        self._callbacks.post_soon("idle", None, self.lost_at)
        if self.on_error is not None:
            self.on_error(AudioDeviceError("The output device 'simulated' stopped playing."))

    def restore_device(self) -> None:
        """The device is back (``Player`` reopened it)."""
        self.restored_at = time.monotonic()
        if self.on_restored is not None:
            self.on_restored()

    def heard_between(self, start: float | None, end: float | None) -> int:
        """How many blocks with sound were heard from ``start`` until ``end``."""
        assert start is not None and end is not None
        return sum(1 for t_block, _ in self.played if start <= t_block < end)

    def enqueue(self, audio: Int16Array, sample_rate: int, tag: PlaybackTag) -> None:
        assert sample_rate == SPEAKER_RATE
        self._require_engine().enqueue(audio, tag)

    def stop_now(self) -> float:
        t_end = super().stop_now()
        voice = self.voice
        self.stops.append((t_end, voice.level if voice is not None else LOUD))
        if voice is not None:  # sound made from now on is told apart by its level
            voice.level = LOUD + (voice.level - LOUD + 1) % 1000
        return t_end

    def heard_after(self, t: float) -> int:
        """How many blocks with sound were heard from monotonic time ``t`` on."""
        return sum(1 for t_block, _ in self.played if t_block >= t)

    def close(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
        self._require_engine().stop_now()


def scripted_engines(
    transcriber: ScriptedTranscriber | None = None,
    llm: ChatEngine | None = None,
    tts: ScriptedVoice | None = None,
) -> Engines:
    return Engines(
        transcriber=transcriber or ScriptedTranscriber(),
        llm=llm or ScriptedChatModel(),
        tts=tts or ScriptedVoice(),
        tools=default_registry(),
        descriptions={"stt": "scripted", "llm": "scripted", "tts": "scripted"},
    )


def scripted_agent(
    engines: Engines, config: Config | None = None, speaker: SimulatedSpeaker | None = None
) -> VoiceAgent:
    return VoiceAgent(
        config or Config(),
        source=QuietMic(),
        sink=speaker or SimulatedSpeaker(),
        engines=engines,
        source_name="quiet mic",
        sink_name="simulated speaker",
    )


async def say(agent: VoiceAgent, text: str, *, barge_in: bool = False) -> None:
    """What the listener publishes when a person says ``text`` (one utterance).

    ``barge_in``: the person talks over the agent, and the listener cuts it off.
    """
    engines = agent.engines
    assert engines is not None and isinstance(engines.transcriber, ScriptedTranscriber)
    engines.transcriber.text = text
    now = time.monotonic()
    await agent.bus.broadcast(Message(Listener.id, UserStartedSpeaking(onset_time=now - 0.5)))
    if barge_in:
        await agent.bus.broadcast(Message(Listener.id, AgentInterrupted(reason="user_speech")))
    audio = np.zeros(8000, dtype=np.int16)
    stopped = UserStoppedSpeaking(
        audio=audio, speech_start=now - 0.5, speech_end=now, barge_in=barge_in
    )
    await agent.bus.broadcast(Message(Listener.id, stopped))


async def until(condition: Callable[[], object], limit_s: float = 5.0, what: object = "") -> None:
    """Let the loop run until ``condition()`` holds (a guard against hangs, not a timer)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"the pipeline did not get there in time {what}".strip())
        await asyncio.sleep(0.002)
