"""How the TUI hears the bus: one bridge, and Textual messages that never flood.

The bus runs on the same asyncio loop as Textual. A ``Bridge`` with
``when_full="drop_oldest"`` takes every message (so a slow UI can never hold up
the pipeline), and :class:`BusFeed` turns them into Textual messages posted to
the app, the only way bus data reaches widgets:

* ``AudioLevel`` (20-50 Hz) becomes :class:`MicLevel`, at most
  ``level_hz`` times a second; a newer one replaces one still queued.
* Tokens, spans, marks and the like only say "the timeline changed":
  :class:`TimelineChanged` is posted once and not again until the app has
  handled it (it reads the timeline, which holds the data), so a burst of 200
  tokens costs one redraw.
* The few events the UI reacts to one by one (speech started, an error, a stage
  status ...) arrive as :class:`BusEvent`.
"""

from __future__ import annotations

import time
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from voiceterm.bridge import Bridge
from voiceterm.bus import Bus
from voiceterm.bus import Message as BusMessage
from voiceterm.events import (
    AgentError,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    AudioGlitches,
    AudioLevel,
    BargeInDismissed,
    ListeningChanged,
    StageStatus,
    ToolCall,
    ToolResult,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionReceived,
    WakeWordHeard,
)

# Events the app handles one by one (they change state, not just text).
ONE_BY_ONE: tuple[type[Any], ...] = (
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionReceived,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    AgentInterrupted,
    AgentGenerationComplete,
    AgentError,
    AudioGlitches,
    BargeInDismissed,
    StageStatus,
    ToolCall,
    ToolResult,
    ListeningChanged,
    WakeWordHeard,
)


class MicLevel(Message):
    """The microphone's latest level (dBFS) and whether the VAD hears a voice."""

    def __init__(self, level_db: float, voiced: bool) -> None:
        super().__init__()
        self.level_db = level_db
        self.voiced = voiced

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MicLevel)


class TimelineChanged(Message):
    """Something was added to the timeline; read it to redraw."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TimelineChanged)


class BusEvent(Message):
    """A bus event the app reacts to individually (see ``ONE_BY_ONE``)."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class BusFeed:
    """Forwards bus messages to ``target`` as Textual messages, merged and throttled.

    Args:
        target: the message pump (the app) that receives the messages.
        level_hz: the most ``MicLevel`` messages per second.
        queue_size: the bridge's queue; when full, the oldest data is dropped.
    """

    def __init__(self, target: MessagePump, *, level_hz: float = 20.0, queue_size: int = 512):
        self._target = target
        self._level_interval = 1.0 / level_hz
        self._last_level = 0.0
        self._change_pending = False
        self.bridge = Bridge("tui", queue_size=queue_size, when_full="drop_oldest")
        self.bridge.on("*").map(self._forward).named("tui feed")

    def attach(self, bus: Bus) -> None:
        """Start hearing ``bus`` (now if it runs, else when it starts)."""
        bus.register_bridge(self.bridge)

    async def detach(self) -> None:
        """Stop the bridge's route."""
        await self.bridge.stop()

    def change_handled(self) -> None:
        """The app has read the timeline: the next change posts a new ``TimelineChanged``."""
        self._change_pending = False

    def _forward(self, message: BusMessage) -> None:
        event = message.event
        if type(event) is AudioLevel:
            now = time.monotonic()
            if now - self._last_level >= self._level_interval:
                self._last_level = now
                self._target.post_message(MicLevel(event.level_db, event.voiced))
            return
        if isinstance(event, ONE_BY_ONE):
            self._target.post_message(BusEvent(event))
        if not self._change_pending:
            self._change_pending = True
            self._target.post_message(TimelineChanged())
