"""A scripted stand-in for the voice pipeline: the app runs without models or devices.

:class:`ScriptedAgent` satisfies :class:`~voiceterm.tui.protocol.AgentLike`. It
answers from a few canned replies and publishes the same events, marks and spans
the real pipeline does (speech, STT, LLM tokens, sentence pieces, TTS, playback),
with plausible timings on a virtual clock. Uses: the TUI's tests and snapshots,
the idle-CPU benchmark, screenshots, and a demo mode. The turns' events are
written in :mod:`voiceterm.tui.scripted_turns`.

Timestamps come from ``clock`` plus scripted offsets, so with a fixed clock the
whole session is deterministic; ``pace`` says how fast the script plays in real
time (``0``: at once, ``1.0``: as it would really happen).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import Any

from voiceterm.bridge import Bridge
from voiceterm.bus import Bus, Message
from voiceterm.events import (
    AgentInterrupted,
    AgentStoppedSpeaking,
    AudioLevel,
    StageStatus,
    UserTranscriptionReceived,
)
from voiceterm.timeline import Timeline
from voiceterm.tui import scripted_turns

DESCRIPTIONS: dict[str, str] = {
    "vad": "webrtcvad",
    "stt": "Whisper tiny.en (demo)",
    "llm": "SmolLM2-135M (demo)",
    "tts": "Piper joe-medium (demo)",
    "mic": "demo microphone",
    "speaker": "demo speaker",
}
STAGES: tuple[str, ...] = ("mic", "vad", "stt", "llm", "tts", "speaker")


@dataclass(kw_only=True, eq=False)
class ScriptedAgent:
    """An :class:`~voiceterm.tui.protocol.AgentLike` that plays scripted turns.

    Args:
        clock: where virtual time starts for each turn (default ``time.monotonic``).
        pace: real seconds per scripted second (``0`` plays a turn at once).
        level_hz: microphone levels per second while not muted (``0``: none).
        load_s: how long the scripted model loading takes.
        clock_offset: passed to the :class:`Timeline` (fixed in tests).
    """

    clock: Callable[[], float] = time.monotonic
    pace: float = 0.0
    level_hz: float = 0.0
    load_s: float = 0.0
    clock_offset: InitVar[float | None] = None
    bus: Bus = field(default_factory=Bus, init=False)
    timeline: Timeline = field(init=False)
    muted: bool = field(default=False, init=False)
    push_to_talk_enabled: bool = field(default=False, init=False)
    talk_pressed: bool = field(default=False, init=False)
    calls: list[str] = field(default_factory=list, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _answer: asyncio.Task[None] | None = field(default=None, init=False)
    _last_t: float = field(default=0.0, init=False)
    _typed: list[UserTranscriptionReceived] = field(default_factory=list, init=False)

    def __post_init__(self, clock_offset: float | None) -> None:
        self.timeline = Timeline(clock_offset=clock_offset)
        recorder = Bridge("timeline", queue_size=4096)
        recorder.on("*").map(self.timeline.record)
        self.bus.register_bridge(recorder)

    # --- AgentLike -------------------------------------------------------------------

    async def start(self) -> None:
        await self.bus.start()
        for stage in STAGES:
            await self.publish(
                StageStatus(stage=stage, state="loading", detail=DESCRIPTIONS[stage])
            )
        if self.load_s:
            await asyncio.sleep(self.load_s)
        for stage in STAGES:
            await self.publish(StageStatus(stage=stage, state="ready", detail=DESCRIPTIONS[stage]))
        if self.level_hz:
            self._spawn(self._levels(), "demo mic levels")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        await self.bus.stop()

    async def submit_text(self, text: str) -> None:
        self.calls.append(f"submit_text:{text}")
        await self._play(self.typed_turn(text))

    async def interrupt(self) -> None:
        self.calls.append("interrupt")
        answer = self._answer
        if answer is not None and not answer.done():
            answer.cancel()
            await asyncio.wait({answer})
            now = self.clock()
            await self.publish(AgentInterrupted(reason="key", timestamp=now))
            await self.publish(
                AgentStoppedSpeaking(interrupted=True, last_sample_time=now, timestamp=now)
            )

    def set_muted(self, muted: bool) -> None:
        self.calls.append(f"set_muted:{muted}")
        self.muted = muted

    def set_push_to_talk(self, enabled: bool) -> None:
        self.calls.append(f"set_push_to_talk:{enabled}")
        self.push_to_talk_enabled = enabled

    def set_listen_mode(self, mode: str) -> None:
        self.calls.append(f"set_listen_mode:{mode}")
        self.push_to_talk_enabled = mode == "push_to_talk"

    def push_to_talk(self, pressed: bool) -> None:
        self.calls.append(f"push_to_talk:{pressed}")
        self.talk_pressed = pressed

    def clear_conversation(self) -> None:
        self.calls.append("clear_conversation")

    def describe(self) -> dict[str, str]:
        return dict(DESCRIPTIONS)

    # --- scripting ---------------------------------------------------------------------

    async def publish(self, event: Any) -> None:
        """Broadcast one event from the scripted pipeline.

        A typed transcript comes from ``"keyboard"``, as in the real agent.
        """
        typed = any(event is t for t in self._typed)
        if typed:
            self._typed = [t for t in self._typed if t is not event]
        await self.bus.broadcast(Message("keyboard" if typed else "pipeline", event))

    async def say(self, text: str, *, cut_after_s: float | None = None) -> None:
        """Play a spoken turn: the user says ``text`` and the agent answers.

        With ``cut_after_s``, the user barges in that many seconds after the
        answer started playing (the rest of the answer is cut off).
        """
        await self._play(self.voice_turn(text, cut_after_s=cut_after_s))

    def typed_turn(self, text: str) -> list[Any]:
        """The events of a typed message and its answer."""
        t0 = self._start_time()
        typed = UserTranscriptionReceived(content=text, timestamp=t0)
        self._typed.append(typed)
        events: list[Any] = [typed]
        events += self.answer_events(t0, text)
        return events

    def voice_turn(self, text: str, *, cut_after_s: float | None = None) -> list[Any]:
        """The events of a spoken question (VAD, partials, STT) and its answer."""
        onset = self._start_time()
        events = self.speech_events(onset, text)
        stt_done = max(e.timestamp for e in events)
        events += self.answer_events(stt_done, text, cut_after_s=cut_after_s)
        return events

    def speech_events(self, onset: float, text: str) -> list[Any]:
        """The user saying ``text`` from ``onset``: VAD, partial transcripts, STT."""
        return scripted_turns.speech_events(onset, text)

    def answer_events(
        self, start: float, question: str, *, cut_after_s: float | None = None
    ) -> list[Any]:
        """The agent answering ``question`` from ``start``: tokens, pieces, TTS, playback."""
        reply = scripted_turns.canned_reply(question, self.timeline.to_wall(start))
        return scripted_turns.answer_events(reply, start, cut_after_s=cut_after_s)

    # --- internals -------------------------------------------------------------------

    def _start_time(self) -> float:
        # Turns never overlap on the virtual clock, even with a frozen clock.
        return max(self.clock(), self._last_t + 1.0)

    async def _play(self, events: list[Any]) -> None:
        events = sorted(events, key=lambda e: e.timestamp)
        self._last_t = max(self._last_t, events[-1].timestamp)
        if not self.pace:
            for event in events:
                await self.publish(event)
                # Let every route take it before the next one: bridges deliver control
                # events ahead of queued data, which would reorder a burst.
                await asyncio.sleep(0)
            return
        answer = self._spawn(self._paced(events), "demo answer")
        self._answer = answer

    async def _paced(self, events: list[Any]) -> None:
        # Real-time playback of virtual timestamps: wait out each gap, then publish.
        previous = events[0].timestamp
        for event in events:
            gap = (event.timestamp - previous) * self.pace
            if gap > 0:
                await asyncio.sleep(gap)
            previous = event.timestamp
            await self.publish(event)

    async def _levels(self) -> None:
        # A quiet room with a little noise: what an idle microphone reports.
        period = 1.0 / self.level_hz
        step = 0
        while True:
            await asyncio.sleep(period)
            if self.muted:
                continue
            step += 1
            level = -58.0 + 4.0 * math.sin(step / 7.0) + 2.0 * math.sin(step / 2.3)
            await self.publish(AudioLevel(level_db=level, voiced=False))

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
