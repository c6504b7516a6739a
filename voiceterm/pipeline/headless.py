"""Running the agent without the TUI: on a WAV file, or live on sound devices.

File mode reads the question from a WAV (paced in real time by default, so the
latency figures mean what they would with a microphone), writes the spoken
answer to a WAV and prints each turn's transcript and timings. Live mode does the
same on the microphone and speaker until Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TextIO

from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.config import Config
from voiceterm.events import (
    AgentError,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentStoppedSpeaking,
    AudioGlitches,
    ListeningChanged,
    StageStatus,
    ToolCall,
    ToolResult,
    UserTranscriptionReceived,
    WakeWordHeard,
)
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.glitches import SpeakerLosses
from voiceterm.pipeline.loading import Engines
from voiceterm.pipeline.starting import Devices, StartingAgent
from voiceterm.timeline import HEADLINES, Timeline, Turn, format_seconds, summarize

_MARKS = (
    ("voice-to-voice", "speech_end", "playback_start"),
    ("end-of-speech wait", "speech_end", "vad_stop"),
    ("stt", "vad_stop", "stt_done"),
    ("llm first token", "stt_done", "llm_first_token"),
    ("first sentence", "llm_first_token", "first_sentence"),
    ("tts first audio", "first_sentence", "tts_first_audio"),
    ("to playback", "tts_first_audio", "playback_start"),
    ("barge-in", "barge_in_onset", "playback_stopped"),
)


def format_turn_timings(marks: dict[str, float]) -> str:
    """One line of per-turn timings in milliseconds, for the marks that exist."""
    parts = []
    for label, start, end in _MARKS:
        if start in marks and end in marks:
            parts.append(f"{label} {1000 * (marks[end] - marks[start]):.0f} ms")
    return ", ".join(parts) if parts else "no timings"


class TurnPrinter:
    """Prints each turn as it happens: what the user said, the answer, its timings."""

    id = "printer"

    def __init__(self, timeline: Timeline, out: TextIO) -> None:
        self._timeline = timeline
        self._out = out
        self._answer: list[str] = []
        self._printed_turns: set[int] = set()
        self._llm_failed = False
        self.speaker_reports = 0
        """The speaker's errors so far (it stopped playing), for the summary at exit."""

    def attach(self, bridge: Bridge) -> None:
        bridge.on("*").map(self.on_message)

    def _print(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def on_message(self, message: Message) -> None:
        event = message.event
        if isinstance(event, UserTranscriptionReceived):
            self._answer = []  # a new turn replaces an answer still being written
            self._print(f"you:   {event.content}")
        elif isinstance(event, ToolCall):
            self._print(f"tool:  {event.tool_name}({event.tool_args})")
        elif isinstance(event, ToolResult):
            self._print(f"tool:  -> {event.error or event.result}")
        elif isinstance(event, AgentResponse):
            self._answer.append(event.content)
        elif isinstance(event, AgentGenerationComplete):
            answer, self._answer = "".join(self._answer).strip(), []
            if answer:
                self._print(f"agent: {answer}")
        elif isinstance(event, AgentInterrupted):
            self._answer = []
            self._print(f"       [interrupted: {event.reason}]")
        elif isinstance(event, AgentStoppedSpeaking):
            self._print_timings()
        elif isinstance(event, AgentError):
            if event.source == "speaker":
                self.speaker_reports += 1
            print(f"error: {event.describe()}", file=sys.stderr, flush=True)
        elif isinstance(event, StageStatus) and event.stage == "llm":
            # An LLM server that is down is retried: say so, and say when it is back.
            if event.state == "failed":
                self._llm_failed = True
                print(f"llm: {event.detail}", file=sys.stderr, flush=True)
            elif event.state == "ready" and self._llm_failed:
                self._llm_failed = False
                print(f"llm: ready ({event.detail})", file=sys.stderr, flush=True)
        elif isinstance(event, StageStatus) and event.stage == "turn" and event.state == "failed":
            print(f"end of turn: {event.detail}", file=sys.stderr, flush=True)
        elif isinstance(event, AudioGlitches):
            self._print(f"audio: {event.describe()} {event.HINT}")
        elif isinstance(event, WakeWordHeard):
            self._print(f"wake:  {event.describe()}")
        elif isinstance(event, ListeningChanged) and event.mode == "wake_word":
            self._print(f"listen: {describe_listening(event)}")

    def _print_timings(self) -> None:
        # The turn that just finished playing: the newest one that started playback.
        for turn in reversed(self._timeline.turns):
            if "playback_start" in turn.marks:
                if turn.number not in self._printed_turns:
                    self._printed_turns.add(turn.number)
                    self._print(f"       {format_turn_timings(turn.marks)}")
                return


def describe_listening(event: ListeningChanged) -> str:
    """The listening state in words: "asleep: say Hey Jarvis", "open for 8 s" ..."""
    if event.state == "asleep":
        return f"asleep: say {event.phrase or 'the wake word'}"
    if event.state == "open" and event.until is not None:
        return f"open for {max(0.0, event.until - event.timestamp):.0f} s without the wake word"
    if event.state == "answering":
        return "answering: you may interrupt"
    return event.mode


async def run_file(
    config: Config,
    input_path: Path,
    output_path: Path,
    *,
    realtime: bool = True,
    engines: Engines | None = None,
    out: TextIO = sys.stdout,
) -> VoiceAgent:
    """Answer the speech in ``input_path``; write the spoken answers to ``output_path``."""
    from voiceterm.audio.wavio import WavFileSink, WavFileSource

    source = WavFileSource(input_path, realtime=realtime)
    sink = WavFileSink(output_path, realtime=realtime)
    devices = Devices(source, sink, source_name=str(input_path), sink_name=str(output_path))
    starting = StartingAgent(config, devices, engines=engines)
    _print_turns(starting, out)
    try:
        agent = await starting.make_agent()
        await agent.start()
        await agent.wait_until_quiet()
    finally:
        await starting.stop()
    print(format_summary(agent.timeline.turns), file=out, flush=True)
    return agent


def _print_turns(starting: StartingAgent, out: TextIO) -> TurnPrinter:
    """Print the turns (and the stages' troubles, from the loading on) as they happen."""
    printer = TurnPrinter(starting.timeline, out)
    bridge = Bridge(printer, queue_size=4096)
    printer.attach(bridge)
    starting.bus.register_bridge(bridge)
    return printer


def format_summary(turns: list[Turn]) -> str:
    """p50/p95 of each headline figure over the turns that measured it."""
    answered = [t for t in turns if not t.is_empty]
    lines = [f"{len(answered)} turn(s)"]
    for key, label in HEADLINES:
        stats = summarize(answered)[key]
        if stats.count:
            lines.append(
                f"  {label:<12} p50 {format_seconds(stats.p50):>8}  "
                f"p95 {format_seconds(stats.p95):>8}  (n={stats.count})"
            )
    return "\n".join(lines)


async def run_live(config: Config, *, out: TextIO = sys.stdout) -> VoiceAgent:
    """Talk through the sound devices until Ctrl+C or SIGTERM; returns the stopped agent."""
    from voiceterm.pipeline.live_devices import live_agent

    starting, notice = live_agent(config)
    if notice:
        print(f"note: {notice}", file=sys.stderr, flush=True)
    printer = _print_turns(starting, out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        agent = await starting.make_agent()
        await agent.start()
        print("listening — speak, or press Ctrl+C to quit", file=out, flush=True)
        await stop.wait()
    finally:
        await starting.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
    # On the way out, the session in figures; the dropout count is read once more,
    # since the watch only looks every few seconds. Next to it, the speaker's losses.
    print(format_summary(agent.timeline.turns), file=out, flush=True)
    if agent.glitches is not None:
        print(f"audio: {agent.glitches.read().describe()}", file=out, flush=True)
    losses = SpeakerLosses.of(printer.speaker_reports, agent.timeline.turns)
    print(f"audio: {losses.describe()}", file=out, flush=True)
    return agent
