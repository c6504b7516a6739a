"""A scripted stand-in for the voice pipeline: the app runs without models or devices.

:class:`ScriptedAgent` satisfies :class:`~voiceterm.tui.protocol.AgentLike`. It
answers from a few canned replies and publishes the same events, marks and spans
the real pipeline does (speech, STT, LLM tokens, sentence pieces, TTS, playback),
with plausible timings on a virtual clock. Uses: the TUI's tests and snapshots,
the idle-CPU benchmark, screenshots, and a demo mode.

Timestamps come from ``clock`` plus scripted offsets, so with a fixed clock the
whole session is deterministic; ``pace`` says how fast the script plays in real
time (``0``: at once, ``1.0``: as it would really happen).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voiceterm.bridge import Bridge
from voiceterm.bus import Bus, Message
from voiceterm.events import (
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentSentence,
    AgentSpeechSent,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    AudioLevel,
    StageSpan,
    StageStatus,
    ToolCall,
    ToolResult,
    TurnMark,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
)
from voiceterm.timeline import Timeline

DESCRIPTIONS: dict[str, str] = {
    "vad": "webrtcvad",
    "stt": "Whisper tiny.en (demo)",
    "llm": "SmolLM2-135M (demo)",
    "tts": "Piper joe-medium (demo)",
    "mic": "demo microphone",
    "speaker": "demo speaker",
}
STAGES: tuple[str, ...] = ("mic", "vad", "stt", "llm", "tts", "speaker")

# Scripted speeds, roughly those of the embedded models on a small laptop.
_SPEECH_S_PER_CHAR = 0.06  # the user talking
_HANGOVER_S = 0.30  # VAD silence before it calls the end
_STT_S = 0.06
_PROMPT_S = 0.15  # LLM time to first token
_TOKEN_S = 0.035
_TTS_S_PER_CHAR = 0.003
_TTS_BASE_S = 0.03
_PLAY_S_PER_CHAR = 0.065  # the agent talking
_OUTPUT_LATENCY_S = 0.02
_STOP_LATENCY_S = 0.04  # barge-in: onset confirmed -> last sample played


@dataclass(slots=True)
class Reply:
    """What the scripted agent answers, and which tool it calls first."""

    text: str
    tool: str = ""
    tool_args: dict[str, Any] | None = None
    tool_result: str = ""


def canned_reply(text: str, now_wall: float) -> Reply:
    """A small offline 'brain': the clock tool for time questions, else an echo."""
    lowered = text.lower()
    if "time" in lowered:
        clock = datetime.fromtimestamp(now_wall).strftime("%H:%M")
        return Reply(f"It is {clock}. Anything else I can help with?", "clock", {}, clock)
    if "story" in lowered:
        return Reply(
            "Once upon a time, a small terminal learned to speak. "
            "It listened carefully, answered quickly, and stopped talking "
            "the moment anyone interrupted it. Everyone liked that very much."
        )
    return Reply(
        f"You said: {text.strip().rstrip('.?!')}. This is the demo voice, so I can only "
        "echo you, but the real one runs Whisper, SmolLM2 and Piper on this machine."
    )


def _tokens(text: str) -> list[str]:
    """Word-sized tokens with their leading space, like an LLM's stream."""
    return re.findall(r"\s*\S+", text)


def _pieces(tokens: list[str]) -> list[list[int]]:
    """Token indices grouped into sentence pieces (the first may end at a comma)."""
    pieces: list[list[int]] = [[]]
    for index, token in enumerate(tokens):
        pieces[-1].append(index)
        ends = token.rstrip()[-1:] in ".!?"
        first_clause = len(pieces) == 1 and token.endswith(",") and len(pieces[-1]) >= 3
        if ends or first_clause:
            pieces.append([])
    return [p for p in pieces if p]


class ScriptedAgent:
    """An :class:`~voiceterm.tui.protocol.AgentLike` that plays scripted turns.

    Args:
        clock: where virtual time starts for each turn (default ``time.monotonic``).
        pace: real seconds per scripted second (``0`` plays a turn at once).
        level_hz: microphone levels per second while not muted (``0``: none).
        load_s: how long the scripted model loading takes.
        clock_offset: passed to the :class:`Timeline` (fixed in tests).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        pace: float = 0.0,
        level_hz: float = 0.0,
        load_s: float = 0.0,
        clock_offset: float | None = None,
    ) -> None:
        self.bus = Bus()
        self.timeline = Timeline(clock_offset=clock_offset)
        recorder = Bridge("timeline", queue_size=4096)
        recorder.on("*").map(self.timeline.record)
        self.bus.register_bridge(recorder)
        self.clock = clock
        self.pace = pace
        self.level_hz = level_hz
        self.load_s = load_s
        self.muted = False
        self.push_to_talk_enabled = False
        self.talk_pressed = False
        self.calls: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._answer: asyncio.Task[None] | None = None
        self._last_t = 0.0
        self._typed: list[UserTranscriptionReceived] = []

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
        speech_end = onset + max(0.8, len(text) * _SPEECH_S_PER_CHAR)
        vad_stop = speech_end + _HANGOVER_S
        stt_done = vad_stop + _STT_S
        events: list[Any] = [UserStartedSpeaking(onset_time=onset, timestamp=onset + 0.12)]
        words = text.split()
        for count in range(1, len(words)):
            at = onset + (speech_end - onset) * count / len(words)
            partial = " ".join(words[:count])
            events.append(UserTranscriptionPartial(content=partial, timestamp=at))
        events += [
            TurnMark(name="speech_end", at=speech_end, timestamp=vad_stop),
            TurnMark(name="vad_stop", at=vad_stop, timestamp=vad_stop),
            StageSpan(stage="vad", start=onset, end=speech_end, content="", timestamp=vad_stop),
            UserStoppedSpeaking(speech_start=onset, speech_end=speech_end, timestamp=vad_stop),
            StageSpan(stage="stt", start=vad_stop, end=stt_done, content=text, timestamp=stt_done),
            TurnMark(name="stt_done", at=stt_done, detail=text, timestamp=stt_done),
            UserTranscriptionReceived(content=text, timestamp=stt_done),
        ]
        return events

    def answer_events(
        self, start: float, question: str, *, cut_after_s: float | None = None
    ) -> list[Any]:
        """The agent answering ``question`` from ``start``: tokens, pieces, TTS, playback."""
        reply = canned_reply(question, self.timeline.to_wall(start))
        events: list[Any] = []
        t = start
        if reply.tool:
            call = ToolCall(tool_name=reply.tool, tool_args=reply.tool_args or {}, timestamp=t)
            t += 0.01
            events += [
                call,
                ToolResult(
                    tool_name=reply.tool,
                    tool_args=call.tool_args,
                    result=reply.tool_result,
                    tool_call_id=call.tool_call_id,
                    timestamp=t,
                ),
                StageSpan(
                    stage="llm", start=start, end=t, content=f"tool {reply.tool}", timestamp=t
                ),
            ]
        tokens = _tokens(reply.text)
        token_end = [t + _PROMPT_S + i * _TOKEN_S for i in range(len(tokens))]
        events.append(TurnMark(name="llm_first_token", at=token_end[0], timestamp=token_end[0]))
        previous = t
        for token, end in zip(tokens, token_end, strict=True):
            events += [
                AgentResponse(content=token, timestamp=end),
                StageSpan(stage="llm", start=previous, end=end, content=token, timestamp=end),
            ]
            previous = end
        events.append(
            AgentGenerationComplete(
                total_length=len(reply.text), chunk_count=len(tokens), timestamp=token_end[-1]
            )
        )
        tts_free = play_free = 0.0
        play_ends: list[tuple[float, float, str]] = []
        for index, piece in enumerate(_pieces(tokens)):
            content = "".join(tokens[i] for i in piece).strip()
            cut = token_end[piece[-1]]
            first = token_end[piece[0]] - _TOKEN_S
            synth_start = max(cut, tts_free)
            tts_free = synth_start + _TTS_BASE_S + _TTS_S_PER_CHAR * len(content)
            play_start = max(tts_free + _OUTPUT_LATENCY_S, play_free)
            play_free = play_start + _PLAY_S_PER_CHAR * len(content)
            play_ends.append((play_start, play_free, content))
            events += [
                AgentSentence(content=content, index=index, timestamp=cut),
                StageSpan(stage="sentence", start=first, end=cut, content=content, timestamp=cut),
                StageSpan(
                    stage="tts",
                    start=synth_start,
                    end=tts_free,
                    content=content,
                    timestamp=tts_free,
                ),
            ]
            if index == 0:
                events += [
                    TurnMark(name="first_sentence", at=cut, timestamp=cut),
                    TurnMark(name="tts_first_audio", at=tts_free, timestamp=tts_free),
                    TurnMark(name="playback_start", at=play_start, timestamp=play_start),
                    AgentStartedSpeaking(playback_start=play_start, timestamp=play_start),
                ]
            events += [
                StageSpan(
                    stage="playback",
                    start=play_start,
                    end=play_free,
                    content=content,
                    timestamp=play_free,
                ),
                AgentSpeechSent(content=content + " ", timestamp=play_free),
            ]
        if cut_after_s is None:
            events.append(
                AgentStoppedSpeaking(last_sample_time=play_free, timestamp=play_free + 0.001)
            )
            return events
        return self._barge_in(events, play_ends, play_ends[0][0] + cut_after_s)

    def _barge_in(
        self, events: list[Any], play_ends: list[tuple[float, float, str]], onset: float
    ) -> list[Any]:
        """Cut an answer: the user starts talking at ``onset``."""
        confirmed = onset + 0.15
        stopped = confirmed + _STOP_LATENCY_S
        kept = [e for e in events if e.timestamp <= confirmed]
        kept += [
            UserStartedSpeaking(onset_time=onset, timestamp=onset + 0.12),
            TurnMark(name="barge_in_onset", at=onset, timestamp=confirmed),
            AgentInterrupted(reason="user_speech", timestamp=confirmed),
        ]
        for start, end, content in play_ends:
            if start < stopped < end:
                words = content.split()
                heard = " ".join(words[: int(len(words) * (stopped - start) / (end - start))])
                kept += [
                    StageSpan(
                        stage="playback", start=start, end=stopped, content=heard, timestamp=stopped
                    ),
                    AgentSpeechSent(content=heard + " " if heard else "", timestamp=stopped),
                ]
        kept += [
            TurnMark(name="playback_stopped", at=stopped, timestamp=stopped),
            AgentStoppedSpeaking(interrupted=True, last_sample_time=stopped, timestamp=stopped),
        ]
        return kept

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
