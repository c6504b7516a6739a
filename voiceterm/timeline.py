"""Per-turn timing of a conversation: what happened, in which stage, and when.

A :class:`Timeline` listens to every message on the bus (feed it with
``bridge.on("*").map(timeline.record)``) and groups them into :class:`Turn` s.
A turn starts when the user starts speaking (``UserStartedSpeaking``) or types a
message (a ``UserTranscriptionReceived`` with no speech before it) and collects:

* **marks**: named instants (``TurnMark``): ``speech_end``, ``vad_stop``,
  ``stt_done``, ``llm_first_token``, ``first_sentence``, ``tts_first_audio``,
  ``playback_start``, ``barge_in_onset``, ``playback_stopped`` ...
* **spans**: chunks of work per lane (``StageSpan``): ``vad``, ``stt``, ``llm``
  (one per token), ``sentence``, ``tts`` (one per synthesis), ``playback``;
* the user's words, the agent's answer, the part of it that was actually played,
  whether it was cut off, and its tool calls.

When the pipeline sends no explicit mark or span for something, the timeline
derives a rougher one from the ordinary events (the time of the first
``AgentResponse`` becomes ``llm_first_token``, each ``AgentResponse`` an ``llm``
span ...). Explicit data always wins: the first ``StageSpan`` of a lane replaces
that lane's derived spans, and a ``TurnMark`` overrides a derived mark.

Barge-in: while the user's new turn is still being heard and transcribed, the
agent's trailing events (``AgentInterrupted``, ``AgentStoppedSpeaking``,
``AgentSpeechSent``, the last playback spans) still belong to the turn that was
cut off. Agent-side events move to the new turn once its transcript arrives.

Memory stays bounded: the last ``max_turns`` turns, each with at most
``max_spans_per_turn`` spans. All times are ``time.monotonic()`` seconds.

Exports: :func:`to_chrome_trace` (Chrome trace-event JSON, opens in Perfetto),
:func:`to_markdown` (the conversation with its timings), and the file writers
:func:`export_timeline` and :func:`export_markdown`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from voiceterm.bus import Message
from voiceterm.errors import VoicetermError
from voiceterm.events import (
    AgentAudioChunk,
    AgentError,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentSentence,
    AgentSpeechSent,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    LogMetric,
    StageSpan,
    ToolCall,
    ToolResult,
    TurnMark,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
    WakeWordHeard,
)
from voiceterm.stats import percentile

LANES: tuple[str, ...] = ("vad", "stt", "llm", "sentence", "tts", "playback")
"""The stage lanes, in pipeline order (a ``StageSpan.stage`` outside these gets its own lane)."""

LANE_TITLES: dict[str, str] = {
    "vad": "speech/VAD",
    "stt": "STT",
    "llm": "LLM tokens",
    "sentence": "sentences",
    "tts": "TTS synth",
    "playback": "playback",
    "ahead": "LLM ahead",
    "turn": "end of turn",
    "speaker": "speaker waking",
    "wake": "wake word",
}

MARKS: tuple[str, ...] = (
    "speech_start",
    "speech_end",
    "vad_stop",
    "stt_done",
    "llm_first_token",
    "first_sentence",
    "tts_first_audio",
    "playback_start",
    "barge_in_onset",
    "playback_stopped",
    "playback_end",
)
"""Known mark names, in the order they usually happen."""

HEADLINES: tuple[tuple[str, str], ...] = (
    ("voice_to_voice", "voice→voice"),
    ("stt", "STT"),
    ("first_token", "first token"),
    ("first_audio", "first audio"),
    ("barge_in", "barge-in"),
)
"""Headline figures of a turn: (key of :meth:`Turn.headline`, label)."""

# Lanes and marks that belong to the user's side of a turn: they go to the turn
# being heard, not to the turn whose answer is still playing.
# "ahead": the LLM's work during the end-of-speech wait, before the transcript.
# "turn": the end-of-turn checks at the user's pauses.
# "wake": the wake phrase (the turn's audio starts after it), or a near miss.
_USER_LANES = frozenset({"vad", "turn", "stt", "ahead", "wake"})
_ERROR_LANES = {"stt": "stt", "llm": "llm", "tts": "tts", "speaker": "playback", "mic": "vad"}
"""The lane that shows a failure of each stage (``AgentError.source``, its node id)."""
_USER_MARKS = frozenset({"speech_start", "speech_end", "vad_stop", "stt_done", "wake_word"})
# A transcript this close to an stt_done mark is that utterance's (not a typed message).
_STT_WINDOW_S = 0.5


@dataclass(slots=True)
class Span:
    """One chunk of work of one stage (a token, a sentence, a synthesis, a played block)."""

    lane: str
    start: float
    end: float
    content: str = ""
    derived: bool = False
    """``True`` when inferred from ordinary events rather than sent as a ``StageSpan``."""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(slots=True)
class ToolUse:
    """A tool call of the agent and, once it came back, its result or error."""

    call_id: str
    name: str
    args: dict[str, Any]
    called_at: float
    result: Any = None
    error: str | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(slots=True)
class Turn:
    """One exchange: what the user said or typed, and how the agent answered."""

    number: int
    started_at: float
    source: str = "voice"
    """``"voice"``, ``"typed"``, or ``"agent"`` (the agent spoke first)."""
    user_partial: str = ""
    user_text: str = ""
    agent_text: str = ""
    spoken_text: str = ""
    """The part of ``agent_text`` that was actually played (from ``AgentSpeechSent``)."""
    interrupted: bool = False
    interrupt_reason: str = ""
    speaking: bool = False
    agent_started: bool = False
    generation_done: bool = False
    awaiting_transcript: bool = False
    """The user stopped speaking and the STT has not answered yet."""
    tools: list[ToolUse] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wake: str = ""
    """The wake word heard in this turn, or its near miss ("Hey Jarvis: 0.62 (did not
    wake ...)"). A turn with one is kept in the timeline even with no words."""
    metrics: dict[str, float] = field(default_factory=dict)
    dropped_spans: int = 0
    revision: int = 0
    """Grows on every change, so a view can tell cheaply whether to redraw."""
    _explicit_marks: set[str] = field(default_factory=set, repr=False)
    _explicit_lanes: set[str] = field(default_factory=set, repr=False)
    _last_derived_end: dict[str, float] = field(default_factory=dict, repr=False)
    _sentence_times: dict[int, float] = field(default_factory=dict, repr=False)

    # --- reading ---------------------------------------------------------------

    @property
    def anchor(self) -> float:
        """Time zero of the turn's axis: the end of the user's speech, else its start."""
        return self.marks.get("speech_end", self.started_at)

    @property
    def is_empty(self) -> bool:
        """Nothing worth keeping: no words from either side (a cough the STT dropped)."""
        return not (
            self.user_text
            or self.user_partial
            or self.agent_started
            or self.errors
            or self.awaiting_transcript
        )

    @property
    def agent_running(self) -> bool:
        """The agent is generating or speaking for this turn (an interrupt would cut it)."""
        if self.speaking:
            return True
        finished = "playback_end" in self.marks or "playback_stopped" in self.marks
        return self.agent_started and not finished and not self.interrupted

    def lanes(self) -> list[str]:
        """The lanes to draw: the standard ones, then any other lane that has spans."""
        present = {s.lane for s in self.spans}
        lanes = list(LANES)
        if "ahead" in present:  # drawn only in turns that had it, before the LLM lane
            lanes.insert(lanes.index("llm"), "ahead")
        if "turn" in present:  # drawn only with an end-of-turn model, after the VAD
            lanes.insert(lanes.index("vad") + 1, "turn")
        if "wake" in present:  # drawn only in wake_word mode, before the speech it starts
            lanes.insert(lanes.index("vad"), "wake")
        return [*lanes, *sorted(present - set(lanes))]

    def lane_spans(self, lane: str) -> list[Span]:
        """The spans of ``lane``, in start order."""
        return sorted((s for s in self.spans if s.lane == lane), key=lambda s: s.start)

    def between(self, start_mark: str, end_mark: str) -> float | None:
        """Seconds from one mark to another, or ``None`` if either is missing."""
        start, end = self.marks.get(start_mark), self.marks.get(end_mark)
        if start is None or end is None:
            return None
        return end - start

    def headline(self) -> dict[str, float | None]:
        """The turn's headline figures in seconds (``None`` where not measured).

        ``voice_to_voice``: speech_end -> playback_start; ``stt``: vad_stop ->
        stt_done; ``first_token``: stt_done (or the typed message) ->
        llm_first_token; ``first_audio``: first_sentence -> tts_first_audio;
        ``barge_in``: barge_in_onset -> playback_stopped.
        """
        first_token = self.between("stt_done", "llm_first_token")
        if first_token is None and self.source == "typed" and "llm_first_token" in self.marks:
            first_token = self.marks["llm_first_token"] - self.started_at
        return {
            "voice_to_voice": self.between("speech_end", "playback_start"),
            "stt": self.between("vad_stop", "stt_done"),
            "first_token": first_token,
            "first_audio": self.between("first_sentence", "tts_first_audio"),
            "barge_in": self.between("barge_in_onset", "playback_stopped"),
        }

    def tokens_per_second(self) -> float | None:
        """LLM output rate over the ``llm`` lane, or ``None`` with fewer than 2 tokens."""
        tokens = self.lane_spans("llm")
        if len(tokens) < 2:
            return None
        elapsed = max(s.end for s in tokens) - tokens[0].end
        return (len(tokens) - 1) / elapsed if elapsed > 0 else None

    def cut_off_text(self) -> tuple[str, str]:
        """The answer split into (what was played, what was cut off).

        Only an interrupted turn has a cut-off part. The split matches the played
        text against the answer ignoring whitespace, because the sentence buffer
        may trim or join pieces differently from the raw token stream.
        """
        if not self.interrupted:
            return self.agent_text, ""
        index = _prefix_end(self.agent_text, self.spoken_text)
        return self.agent_text[:index], self.agent_text[index:]

    # --- writing (used by Timeline) -------------------------------------------------

    def _set_mark(self, name: str, at: float, *, explicit: bool) -> bool:
        if explicit:
            self._explicit_marks.add(name)
        elif name in self.marks:
            return False
        self.marks[name] = at
        return True

    def _add_span(self, span: Span, limit: int) -> None:
        if not span.derived and span.lane not in self._explicit_lanes:
            self._explicit_lanes.add(span.lane)
            self.spans = [s for s in self.spans if not (s.derived and s.lane == span.lane)]
        elif span.derived and span.lane in self._explicit_lanes:
            return
        if len(self.spans) >= limit:
            self.dropped_spans += 1
            return
        self.spans.append(span)

    def _derive_span(self, lane: str, start: float, end: float, content: str, limit: int) -> None:
        if lane in self._explicit_lanes:
            return
        start = max(start, self._last_derived_end.get(lane, start))
        self._last_derived_end[lane] = end
        self._add_span(Span(lane, min(start, end), end, content, derived=True), limit)


def _prefix_end(text: str, prefix: str) -> int:
    """Index in ``text`` just after ``prefix`` matched ignoring whitespace.

    Stops at the first character that does not match; trailing whitespace after
    the match stays with the played part.
    """
    wanted = [c for c in prefix if not c.isspace()]
    if not wanted:
        return 0
    matched = 0
    end = 0
    for index, char in enumerate(text):
        if char.isspace():
            continue
        if char != wanted[matched]:
            break
        matched += 1
        end = index + 1
        if matched == len(wanted):
            break
    while end < len(text) and text[end].isspace():
        end += 1
    return end


class Timeline:
    """Records bus messages into turns, keeping the last ``max_turns``.

    Args:
        max_turns: how many turns are kept (older ones are forgotten).
        max_spans_per_turn: a cap on spans per turn (beyond it they are counted
            in ``Turn.dropped_spans`` and not kept).
        clock_offset: seconds to add to a monotonic time to get a Unix time; by
            default measured now. Tests pass a fixed value for stable output.
        typed_sources: node ids whose ``UserTranscriptionReceived`` is always a typed
            message (voiceterm's agent sends typed text as ``"keyboard"``).

    ``record`` runs on the event loop (it is a route step): it does no I/O and
    takes microseconds.
    """

    def __init__(
        self,
        max_turns: int = 200,
        *,
        max_spans_per_turn: int = 4000,
        clock_offset: float | None = None,
        typed_sources: Collection[str] = ("keyboard",),
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.max_turns = max_turns
        self.max_spans_per_turn = max_spans_per_turn
        self.clock_offset = time.time() - time.monotonic() if clock_offset is None else clock_offset
        self.version = 0
        """Grows on every change to any turn."""
        self._turns: deque[Turn] = deque(maxlen=max_turns)
        self._next_number = 1
        self.typed_sources = frozenset(typed_sources)
        self._agent_turn: Turn | None = None
        self._stt_turn: Turn | None = None
        self._handlers: dict[type[Any], Callable[[Any], bool] | None] = {
            UserStartedSpeaking: self._user_started,
            UserStoppedSpeaking: self._user_stopped,
            UserTranscriptionPartial: self._partial,
            AgentResponse: self._response,
            AgentGenerationComplete: self._generation_complete,
            AgentSentence: self._sentence,
            AgentAudioChunk: self._audio_chunk,
            AgentStartedSpeaking: self._started_speaking,
            AgentStoppedSpeaking: self._stopped_speaking,
            AgentSpeechSent: self._speech_sent,
            AgentInterrupted: self._interrupted,
            AgentError: self._error,
            ToolCall: self._tool_call,
            ToolResult: self._tool_result,
            LogMetric: self._metric,
            TurnMark: self._mark,
            StageSpan: self._span,
            WakeWordHeard: self._wake,
        }

    # --- reading ---------------------------------------------------------------

    @property
    def turns(self) -> list[Turn]:
        """The kept turns, oldest first."""
        return list(self._turns)

    @property
    def current(self) -> Turn | None:
        """The newest turn, or ``None``."""
        return self._turns[-1] if self._turns else None

    def turn(self, number: int) -> Turn | None:
        """The kept turn with this number, or ``None``."""
        for turn in reversed(self._turns):
            if turn.number == number:
                return turn
        return None

    def to_wall(self, monotonic_time: float) -> float:
        """A monotonic time as a Unix time (for absolute timestamps)."""
        return monotonic_time + self.clock_offset

    # --- writing ---------------------------------------------------------------

    def record(self, message: Message | Any) -> None:
        """Add one bus message (or a bare event) to the timeline.

        Returns ``None`` so that a route ``.map(timeline.record)`` ends there.
        """
        if isinstance(message, Message):
            event, source = message.event, message.source
        else:
            event, source = message, ""
        if isinstance(event, UserTranscriptionReceived):
            changed = self._transcript(event, source)
        else:
            event_type = type(event)
            try:
                handler = self._handlers[event_type]
            except KeyError:
                handler = self._handlers[event_type] = self._handler_for_subclass(event_type)
            changed = handler is not None and handler(event)
        if changed:
            self.version += 1

    def clear(self) -> None:
        """Forget every turn (numbering goes on)."""
        self._turns.clear()
        self._agent_turn = None
        self._stt_turn = None
        self.version += 1

    def _handler_for_subclass(self, event_type: type[Any]) -> Callable[[Any], bool] | None:
        for base in event_type.__mro__[1:]:
            handler = self._handlers.get(base)
            if handler is not None:
                return handler
        return None

    # --- which turn gets an event --------------------------------------------------

    def _new_turn(self, started_at: float, source: str) -> Turn:
        current = self.current
        if (
            current is not None
            and current.is_empty
            and not current.wake
            and current is not self._agent_turn
        ):
            # A false start (a cough the STT dropped): reuse its number, forget it.
            self._turns.pop()
            number = current.number
        else:
            number = self._next_number
            self._next_number += 1
        turn = Turn(number=number, started_at=started_at, source=source)
        self._turns.append(turn)
        return turn

    def _user_turn(self, at: float) -> Turn:
        """The turn being spoken now (the VAD's events)."""
        current = self.current
        if current is None or current.source != "voice" or current.user_text:
            current = self._new_turn(at, "voice")
        return current

    def _awaiting(self) -> Turn | None:
        """The oldest utterance still waiting for its transcript."""
        return next((turn for turn in self._turns if turn.awaiting_transcript), None)

    def _stt_target(self, at: float) -> Turn:
        """The turn an STT result belongs to.

        The user may start the next utterance before the STT has finished the last
        one, so STT results go to the oldest utterance waiting for one, not simply
        to the newest turn.
        """
        return self._stt_turn or self._awaiting() or self._user_turn(at)

    def _agent_target(self, at: float) -> Turn:
        turn = self._agent_turn
        if turn is None:
            turn = self.current
            if turn is None:
                turn = self._new_turn(at, "agent")
            self._agent_turn = turn
        return turn

    @staticmethod
    def _touch(turn: Turn) -> bool:
        turn.revision += 1
        return True

    # --- handlers (each returns whether something changed) ---------------------------

    def _user_started(self, event: UserStartedSpeaking) -> bool:
        onset = event.onset_time if event.onset_time is not None else event.timestamp
        turn = self._new_turn(onset, "voice")
        turn._set_mark("speech_start", onset, explicit=False)
        return self._touch(turn)

    def _user_stopped(self, event: UserStoppedSpeaking) -> bool:
        current = self.current
        if (
            event.discarded
            and current is not None
            and current.is_empty
            and not current.wake
            and current is not self._agent_turn
        ):
            # Not a turn (a cough, a click, the agent's echo) and nothing else in it:
            # not kept, so it is neither drawn nor exported.
            self._turns.pop()
            if current.number == self._next_number - 1:
                self._next_number -= 1
            return True
        turn = self._user_turn(event.speech_start or event.timestamp)
        start = event.speech_start or turn.marks.get("speech_start", turn.started_at)
        end = event.speech_end if event.speech_end is not None else event.timestamp
        turn._set_mark("speech_start", start, explicit=False)
        turn._set_mark("speech_end", end, explicit=False)
        turn._set_mark("vad_stop", event.timestamp, explicit=False)
        turn._derive_span("vad", start, end, "speech", self.max_spans_per_turn)
        turn.awaiting_transcript = True
        return self._touch(turn)

    def _partial(self, event: UserTranscriptionPartial) -> bool:
        turn = self._user_turn(event.timestamp)
        turn.user_partial = event.content
        return self._touch(turn)

    def _transcript(self, event: UserTranscriptionReceived, source: str) -> bool:
        turn = None if source in self.typed_sources else self._spoken_turn_for(event.timestamp)
        self._stt_turn = None
        if turn is not None:
            turn.awaiting_transcript = False
            turn.user_text = f"{turn.user_text} {event.content}".strip()
            turn._set_mark("stt_done", event.timestamp, explicit=False)
            start = turn.marks.get("vad_stop", turn.marks.get("speech_end", event.timestamp))
            turn._derive_span("stt", start, event.timestamp, event.content, self.max_spans_per_turn)
        else:
            turn = self._new_turn(event.timestamp, "typed")
            turn.user_text = event.content
        turn.user_partial = ""
        # From now on the agent's output answers this turn.
        self._agent_turn = turn
        return self._touch(turn)

    def _spoken_turn_for(self, at: float) -> Turn | None:
        """The voice turn a transcript made at ``at`` belongs to, or ``None`` (typed)."""
        stt_turn = self._stt_turn
        if stt_turn is not None and abs(at - stt_turn.marks.get("stt_done", at)) <= _STT_WINDOW_S:
            return stt_turn
        awaiting = self._awaiting()
        if awaiting is not None:
            return awaiting
        current = self.current
        if current is not None and current.source == "voice" and not current.agent_started:
            return current  # a pipeline that sends no UserStoppedSpeaking
        return None

    def _response(self, event: AgentResponse) -> bool:
        turn = self._agent_target(event.timestamp)
        turn.agent_started = True
        if event.chunk_type == "text":
            turn.agent_text += event.content
        turn._set_mark("llm_first_token", event.timestamp, explicit=False)
        start = turn.marks.get("stt_done", turn.started_at)
        turn._derive_span("llm", start, event.timestamp, event.content, self.max_spans_per_turn)
        return self._touch(turn)

    def _generation_complete(self, event: AgentGenerationComplete) -> bool:
        turn = self._agent_target(event.timestamp)
        turn.generation_done = True
        return self._touch(turn)

    def _sentence(self, event: AgentSentence) -> bool:
        turn = self._agent_target(event.timestamp)
        turn.agent_started = True
        turn._set_mark("first_sentence", event.timestamp, explicit=False)
        turn._sentence_times[event.index] = event.timestamp
        start = turn.marks.get("llm_first_token", event.timestamp)
        turn._derive_span(
            "sentence", start, event.timestamp, event.content, self.max_spans_per_turn
        )
        return self._touch(turn)

    def _audio_chunk(self, event: AgentAudioChunk) -> bool:
        turn = self._agent_target(event.timestamp)
        turn.agent_started = True
        turn._set_mark("tts_first_audio", event.timestamp, explicit=False)
        start = turn._sentence_times.get(event.sentence_index, event.timestamp)
        turn._derive_span("tts", start, event.timestamp, event.text, self.max_spans_per_turn)
        return self._touch(turn)

    def _started_speaking(self, event: AgentStartedSpeaking) -> bool:
        turn = self._agent_target(event.timestamp)
        turn.agent_started = True
        turn.speaking = True
        at = event.playback_start if event.playback_start is not None else event.timestamp
        turn._set_mark("playback_start", at, explicit=False)
        return self._touch(turn)

    def _stopped_speaking(self, event: AgentStoppedSpeaking) -> bool:
        turn = self._agent_target(event.timestamp)
        turn.speaking = False
        last = event.last_sample_time if event.last_sample_time is not None else event.timestamp
        if event.interrupted:
            turn.interrupted = True
            turn._set_mark("playback_stopped", last, explicit=False)
        else:
            turn._set_mark("playback_end", last, explicit=False)
        start = turn.marks.get("playback_start")
        if start is not None:
            turn._derive_span("playback", start, last, turn.spoken_text, self.max_spans_per_turn)
        return self._touch(turn)

    def _speech_sent(self, event: AgentSpeechSent) -> bool:
        # Pieces are incremental and joined as they are, like nodes.committed_events.
        turn = self._agent_target(event.timestamp)
        turn.spoken_text += event.content
        return self._touch(turn)

    def _interrupted(self, event: AgentInterrupted) -> bool:
        turn = self._agent_turn
        if turn is None or not turn.agent_running:
            return False  # nothing of the agent's was running: no effect
        turn.interrupted = True
        turn.interrupt_reason = event.reason
        current = self.current
        if (
            event.reason == "user_speech"
            and current is not None
            and current is not turn
            and "speech_start" in current.marks
            and "playback_start" in turn.marks
        ):
            # The barge-in's onset is the start of the interrupting speech.
            turn._set_mark("barge_in_onset", current.marks["speech_start"], explicit=False)
        return self._touch(turn)

    def _error(self, event: AgentError) -> bool:
        lane = _ERROR_LANES.get(event.source.split(":", 1)[0])
        if lane == "stt":
            # The utterance being transcribed failed: it will get no transcript, and
            # the next one's must not land in it.
            turn = self._awaiting() or self.current
            if turn is not None:
                turn.awaiting_transcript = False
        elif lane in _USER_LANES:
            turn = self.current
        else:
            turn = self._agent_turn or self.current
        if turn is None:
            return False
        turn.errors.append(f"{event.source}: {event.error}" if event.source else event.error)
        if lane is not None:
            # Shown where it happened: a mark, and an instant in the stage's lane.
            turn._set_mark(f"{lane}_failed", event.timestamp, explicit=True)
            failed = Span(lane, event.timestamp, event.timestamp, f"failed: {event.error}")
            turn.spans.append(failed)  # never replaced by the lane's own spans
        return self._touch(turn)

    def _tool_call(self, event: ToolCall) -> bool:
        turn = self._agent_target(event.timestamp)
        turn.agent_started = True
        turn.tools.append(
            ToolUse(event.tool_call_id, event.tool_name, dict(event.tool_args), event.timestamp)
        )
        return self._touch(turn)

    def _tool_result(self, event: ToolResult) -> bool:
        turn = self._agent_target(event.timestamp)
        for tool in reversed(turn.tools):
            if tool.call_id == event.tool_call_id or (
                not event.tool_call_id and tool.name == event.tool_name and not tool.finished
            ):
                break
        else:
            tool = ToolUse(
                event.tool_call_id, event.tool_name, dict(event.tool_args), event.timestamp
            )
            turn.tools.append(tool)
        tool.result, tool.error, tool.finished_at = event.result, event.error, event.timestamp
        return self._touch(turn)

    def _metric(self, event: LogMetric) -> bool:
        turn = self._agent_turn or self.current
        if (
            turn is None
            or isinstance(event.value, bool)
            or not isinstance(event.value, int | float)
        ):
            return False
        turn.metrics[event.name] = float(event.value)
        return self._touch(turn)

    def _mark(self, event: TurnMark) -> bool:
        if event.name == "stt_done":
            turn = self._awaiting() or self._user_turn(event.at)
            turn.awaiting_transcript = False
            # The transcript that follows (if the STT heard words) is this turn's.
            self._stt_turn = turn
        elif event.name in _USER_MARKS:
            turn = self._user_turn(event.at)
        else:
            turn = self._agent_target(event.at)
        turn._set_mark(event.name, event.at, explicit=True)
        return self._touch(turn)

    def _wake(self, event: WakeWordHeard) -> bool:
        turn = self._user_turn(event.at)
        turn.wake = event.describe()
        return self._touch(turn)

    def _span(self, event: StageSpan) -> bool:
        if event.stage == "stt":
            turn = self._stt_target(event.start)
        elif event.stage in _USER_LANES:
            current = self.current
            if (
                current is not None
                and current.user_text
                and event.start <= current.marks.get("stt_done", float("-inf"))
            ):
                # Work begun while that turn was heard (the LLM ahead) that ended after
                # its transcript: that turn's, not an empty new one.
                turn = current
            else:
                turn = self._user_turn(event.start)
        else:
            turn = self._agent_target(event.start)
        turn._add_span(
            Span(event.stage, event.start, max(event.start, event.end), event.content),
            self.max_spans_per_turn,
        )
        return self._touch(turn)


# --- summaries -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Stats:
    """Percentiles of one headline figure over several turns (seconds)."""

    count: int
    p50: float | None
    p95: float | None


def summarize(turns: Iterable[Turn]) -> dict[str, Stats]:
    """p50/p95 of every headline figure (see :data:`HEADLINES`) over ``turns``."""
    samples: dict[str, list[float]] = {key: [] for key, _ in HEADLINES}
    for turn in turns:
        for key, value in turn.headline().items():
            if value is not None:
                samples[key].append(value)
    return {key: _stats(values) for key, values in samples.items()}


def _stats(values: Sequence[float]) -> Stats:
    if not values:
        return Stats(0, None, None)
    return Stats(len(values), percentile(values, 50), percentile(values, 95))


def format_seconds(seconds: float | None) -> str:
    """``0.6404`` -> ``"640 ms"``, ``12.3`` -> ``"12.3 s"``, ``None`` -> ``"—"``."""
    if seconds is None:
        return "—"
    if abs(seconds) >= 10:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms"


def format_wall(unix_time: float) -> str:
    """A Unix time as local ``HH:MM:SS.mmm``."""
    # Round to the millisecond first: 1.33 is 1.3299999... and must not show as .329.
    return datetime.fromtimestamp(round(unix_time, 3)).strftime("%H:%M:%S.%f")[:-3]


# --- exports --------------------------------------------------------------------------

_TURN_TID = 1
_MARKS_TID = 2
_FIRST_LANE_TID = 10


def to_chrome_trace(turns: Sequence[Turn], *, clock_offset: float = 0.0) -> dict[str, Any]:
    """The turns as a Chrome trace-event document (open it in https://ui.perfetto.dev).

    One thread per lane (plus one for whole turns and one for marks); every span
    is a complete (``"X"``) event with ``ts``/``dur`` in microseconds from the
    first turn's start, its content in ``args``; marks are instant events.

    Args:
        turns: the turns to export.
        clock_offset: added to monotonic times for the absolute ``wall_time`` args.
    """
    t0 = min((t.started_at for t in turns), default=0.0)
    lanes: list[str] = list(LANES)
    for turn in turns:
        lanes.extend(lane for lane in turn.lanes() if lane not in lanes)
    tids = {lane: _FIRST_LANE_TID + index for index, lane in enumerate(lanes)}

    def micros(t: float) -> float:
        return round((t - t0) * 1e6, 1)

    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "voiceterm"}},
        _thread_name(_TURN_TID, "turns"),
        _thread_name(_MARKS_TID, "marks"),
    ]
    events.extend(_thread_name(tid, LANE_TITLES.get(lane, lane)) for lane, tid in tids.items())
    for turn in turns:
        end = max(
            [turn.started_at, *turn.marks.values(), *(s.end for s in turn.spans)], default=0.0
        )
        played, cut = turn.cut_off_text()
        events.append(
            {
                "ph": "X",
                "name": f"turn {turn.number}",
                "cat": "turn",
                "pid": 1,
                "tid": _TURN_TID,
                "ts": micros(turn.started_at),
                "dur": round((end - turn.started_at) * 1e6, 1),
                "args": {
                    "source": turn.source,
                    "user": turn.user_text,
                    "agent": turn.agent_text,
                    "spoken": played,
                    "cut_off": cut,
                    "interrupted": turn.interrupted,
                    "tools": [_tool_dict(tool) for tool in turn.tools],
                    "headline_ms": {
                        key: None if value is None else round(value * 1000, 1)
                        for key, value in turn.headline().items()
                    },
                },
            }
        )
        for name, at in sorted(turn.marks.items(), key=lambda item: item[1]):
            events.append(
                {
                    "ph": "i",
                    "s": "t",
                    "name": name,
                    "cat": "mark",
                    "pid": 1,
                    "tid": _MARKS_TID,
                    "ts": micros(at),
                    "args": {
                        "turn": turn.number,
                        "relative_ms": round((at - turn.anchor) * 1000, 1),
                    },
                }
            )
        for span in sorted(turn.spans, key=lambda s: s.start):
            events.append(
                {
                    "ph": "X",
                    "name": _span_name(span),
                    "cat": span.lane,
                    "pid": 1,
                    "tid": tids[span.lane],
                    "ts": micros(span.start),
                    "dur": round(span.duration * 1e6, 1),
                    "args": {
                        "turn": turn.number,
                        "content": span.content,
                        "derived": span.derived,
                        "relative_ms": round((span.start - turn.anchor) * 1000, 1),
                        "wall_time": format_wall(span.start + clock_offset),
                    },
                }
            )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"clock": "monotonic", "t0": t0, "t0_unix": t0 + clock_offset},
    }


def _thread_name(tid: int, name: str) -> dict[str, Any]:
    return {"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}}


def _span_name(span: Span) -> str:
    text = " ".join(span.content.split())
    if not text:
        return span.lane
    return text if len(text) <= 40 else text[:39] + "…"


def _tool_dict(tool: ToolUse) -> dict[str, Any]:
    return {
        "name": tool.name,
        "args": tool.args,
        "result": None if tool.result is None else str(tool.result),
        "error": tool.error,
    }


def format_tool_call(tool: ToolUse) -> str:
    """``calculator(expression='2+2')``."""
    args = ", ".join(f"{key}={value!r}" for key, value in tool.args.items())
    return f"{tool.name}({args})"


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_~|<>[]#"})


def _md(text: str) -> str:
    return " ".join(text.split()).translate(_MD_SPECIAL)


def to_markdown(turns: Sequence[Turn], *, clock_offset: float = 0.0) -> str:
    """The conversation as Markdown: each turn's words, tools and timings, then p50/p95.

    The part of an answer that was cut off by a barge-in is struck through.
    """
    turns = [turn for turn in turns if not turn.is_empty]
    lines = ["# voiceterm conversation", ""]
    for turn in turns:
        when = format_wall(turn.started_at + clock_offset)
        lines += [f"## Turn {turn.number} · {when} · {turn.source}", ""]
        if turn.user_text:
            lines += [f"**You:** {_md(turn.user_text)}", ""]
        played, cut = turn.cut_off_text()
        if turn.agent_text:
            answer = _md(played)
            if cut.strip():
                answer = f"{answer} ~~{_md(cut)}~~ *(cut off)*".strip()
            lines += [f"**voiceterm:** {answer}", ""]
        for tool in turn.tools:
            outcome = f"error: {tool.error}" if tool.error else str(tool.result)
            lines.append(f"- tool `{format_tool_call(tool)}` → `{outcome}`")
        for error in turn.errors:
            lines.append(f"- error: {_md(error)}")
        if turn.tools or turn.errors:
            lines.append("")
        headline = turn.headline()
        lines += [
            "| " + " | ".join(label for _, label in HEADLINES) + " |",
            "|" + "---|" * len(HEADLINES),
            "| " + " | ".join(format_seconds(headline[key]) for key, _ in HEADLINES) + " |",
            "",
        ]
    stats = summarize(turns)
    lines += [
        "## Summary",
        "",
        f"{len(turns)} turns.",
        "",
        "| figure | turns | p50 | p95 |",
        "|---|---|---|---|",
    ]
    for key, label in HEADLINES:
        s = stats[key]
        lines.append(f"| {label} | {s.count} | {format_seconds(s.p50)} | {format_seconds(s.p95)} |")
    return "\n".join(lines) + "\n"


def _write(path: str | Path, text: str, suffix: str) -> Path:
    target = Path(path).expanduser()
    if target.is_dir():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = target / f"voiceterm-{stamp}{suffix}"
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise VoicetermError(
            f"Could not write {target}: {exc.strerror or exc}.",
            hint="Choose a folder you can write to.",
            title="Export failed",
        ) from exc
    return target


def export_timeline(timeline: Timeline, path: str | Path) -> Path:
    """Write the timeline as Chrome trace-event JSON; return the file written.

    ``path`` may be a folder: a file named ``voiceterm-<date>-<time>.trace.json``
    is made in it. Raises ``VoicetermError`` (with a hint) if it cannot be written.
    """
    trace = to_chrome_trace(timeline.turns, clock_offset=timeline.clock_offset)
    return _write(path, json.dumps(trace, ensure_ascii=False), ".trace.json")


def export_markdown(timeline: Timeline, path: str | Path) -> Path:
    """Write the conversation as Markdown with timings; return the file written.

    ``path`` may be a folder (see :func:`export_timeline`).
    """
    return _write(path, to_markdown(timeline.turns, clock_offset=timeline.clock_offset), ".md")


def from_chrome_trace(document: dict[str, Any]) -> Timeline:
    """A timeline rebuilt from :func:`to_chrome_trace`'s document (for ``voiceterm view``).

    Turns keep their words, marks and spans; what the trace does not hold (partial
    transcripts, metrics, errors) is left empty.

    Raises:
        ValueError: the document is not a voiceterm Chrome trace.
    """
    events = document.get("traceEvents")
    other = document.get("otherData", {})
    if not isinstance(events, list) or not isinstance(other, dict) or "t0" not in other:
        raise ValueError("not a voiceterm Chrome trace")
    t0 = float(other["t0"])
    offset = float(other.get("t0_unix", t0)) - t0
    timeline = Timeline(max_turns=100_000, clock_offset=offset)
    turns: dict[int, Turn] = {}

    def at(event: dict[str, Any]) -> float:
        return t0 + float(event.get("ts", 0.0)) / 1e6

    for event in events:
        if event.get("tid") != _TURN_TID or event.get("ph") != "X":
            continue
        args = event.get("args", {})
        number = int(str(event.get("name", "turn 0")).rsplit(" ", 1)[-1])
        turn = Turn(number=number, started_at=at(event), source=str(args.get("source", "voice")))
        turn.user_text = str(args.get("user", ""))
        turn.agent_text = str(args.get("agent", ""))
        turn.spoken_text = str(args.get("spoken", ""))
        turn.interrupted = bool(args.get("interrupted", False))
        for tool in args.get("tools", []):
            turn.tools.append(
                ToolUse(
                    call_id="",
                    name=str(tool.get("name", "")),
                    args=tool.get("args", {}),
                    called_at=turn.started_at,
                    result=tool.get("result"),
                    error=tool.get("error"),
                    finished_at=turn.started_at,
                )
            )
        turns[number] = turn
    for event in events:
        args = event.get("args", {})
        owner = turns.get(args.get("turn", -1)) if isinstance(args, dict) else None
        if owner is None:
            continue
        if event.get("cat") == "mark":
            owner._set_mark(str(event.get("name", "")), at(event), explicit=True)
        elif event.get("ph") == "X" and event.get("tid") != _TURN_TID:
            start = at(event)
            span = Span(
                lane=str(event.get("cat", "")),
                start=start,
                end=start + float(event.get("dur", 0.0)) / 1e6,
                content=str(args.get("content", "")),
                derived=bool(args.get("derived", False)),
            )
            owner.spans.append(span)
    for number in sorted(turns):
        timeline._turns.append(turns[number])
        timeline._next_number = number + 1
    timeline.version += 1
    return timeline
