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

Exports (Chrome trace-event JSON and back, Markdown, the file writers) are in
:mod:`voiceterm.timeline_export`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from voiceterm.bus import Message
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


class _TurnBook:
    """The kept turns, their numbering, and which turn an event belongs to."""

    def __init__(self, max_turns: int) -> None:
        self.kept: deque[Turn] = deque(maxlen=max_turns)
        self.next_number = 1
        self.agent_turn: Turn | None = None
        """The turn the agent's output answers."""
        self.stt_turn: Turn | None = None
        """The turn whose transcript is expected next (set by an ``stt_done`` mark)."""

    @property
    def current(self) -> Turn | None:
        return self.kept[-1] if self.kept else None

    def clear(self) -> None:
        self.kept.clear()
        self.agent_turn = None
        self.stt_turn = None

    def new(self, started_at: float, source: str) -> Turn:
        current = self.current
        if (
            current is not None
            and current.is_empty
            and not current.wake
            and current is not self.agent_turn
        ):
            # A false start (a cough the STT dropped): reuse its number, forget it.
            self.kept.pop()
            number = current.number
        else:
            number = self.next_number
            self.next_number += 1
        turn = Turn(number=number, started_at=started_at, source=source)
        self.kept.append(turn)
        return turn

    def drop_if_nothing(self) -> bool:
        """Forget the newest turn if nothing is in it (a discarded utterance)."""
        current = self.current
        if current is None or not current.is_empty or current.wake or current is self.agent_turn:
            return False
        self.kept.pop()
        if current.number == self.next_number - 1:
            self.next_number -= 1
        return True

    def user(self, at: float) -> Turn:
        """The turn being spoken now (the VAD's events)."""
        current = self.current
        if current is None or current.source != "voice" or current.user_text:
            current = self.new(at, "voice")
        return current

    def awaiting(self) -> Turn | None:
        """The oldest utterance still waiting for its transcript."""
        return next((turn for turn in self.kept if turn.awaiting_transcript), None)

    def stt_target(self, at: float) -> Turn:
        """The turn an STT result belongs to.

        The user may start the next utterance before the STT has finished the last
        one, so STT results go to the oldest utterance waiting for one, not simply
        to the newest turn.
        """
        return self.stt_turn or self.awaiting() or self.user(at)

    def agent_target(self, at: float) -> Turn:
        turn = self.agent_turn
        if turn is None:
            turn = self.current
            if turn is None:
                turn = self.new(at, "agent")
            self.agent_turn = turn
        return turn

    def spoken_turn_for(self, at: float) -> Turn | None:
        """The voice turn a transcript made at ``at`` belongs to, or ``None`` (typed)."""
        stt_turn = self.stt_turn
        if stt_turn is not None and abs(at - stt_turn.marks.get("stt_done", at)) <= _STT_WINDOW_S:
            return stt_turn
        awaiting = self.awaiting()
        if awaiting is not None:
            return awaiting
        current = self.current
        if current is not None and current.source == "voice" and not current.agent_started:
            return current  # a pipeline that sends no UserStoppedSpeaking
        return None


def _touch(turn: Turn) -> bool:
    turn.revision += 1
    return True


_FIRST_PIECE_MARKS = {
    "llm": "llm_first_token",
    "sentence": "first_sentence",
    "tts": "tts_first_audio",
}
"""The mark each stage's first piece of an answer sets."""


class _AgentOutput:
    """What the agent's output events (words, speech, tools) do to their turn.

    Each handler returns whether something changed.
    """

    def __init__(self, book: _TurnBook, max_spans_per_turn: int) -> None:
        self._book = book
        self._max_spans = max_spans_per_turn

    def response(self, event: AgentResponse) -> bool:
        turn = self._book.agent_target(event.timestamp)
        if event.chunk_type == "text":
            turn.agent_text += event.content
        start = turn.marks.get("stt_done", turn.started_at)
        return self._piece(turn, "llm", start, event.timestamp, event.content)

    def generation_complete(self, event: AgentGenerationComplete) -> bool:
        turn = self._book.agent_target(event.timestamp)
        turn.generation_done = True
        return _touch(turn)

    def sentence(self, event: AgentSentence) -> bool:
        turn = self._book.agent_target(event.timestamp)
        turn._sentence_times[event.index] = event.timestamp
        start = turn.marks.get("llm_first_token", event.timestamp)
        return self._piece(turn, "sentence", start, event.timestamp, event.content)

    def audio_chunk(self, event: AgentAudioChunk) -> bool:
        turn = self._book.agent_target(event.timestamp)
        start = turn._sentence_times.get(event.sentence_index, event.timestamp)
        return self._piece(turn, "tts", start, event.timestamp, event.text)

    def _piece(self, turn: Turn, stage: str, start: float, at: float, content: str) -> bool:
        """A piece of the answer out of ``stage`` at ``at``: its span, and the first one's mark."""
        turn.agent_started = True
        turn._set_mark(_FIRST_PIECE_MARKS[stage], at, explicit=False)
        turn._derive_span(stage, start, at, content, self._max_spans)
        return _touch(turn)

    def started_speaking(self, event: AgentStartedSpeaking) -> bool:
        turn = self._book.agent_target(event.timestamp)
        turn.agent_started = True
        turn.speaking = True
        at = event.playback_start if event.playback_start is not None else event.timestamp
        turn._set_mark("playback_start", at, explicit=False)
        return _touch(turn)

    def stopped_speaking(self, event: AgentStoppedSpeaking) -> bool:
        turn = self._book.agent_target(event.timestamp)
        turn.speaking = False
        last = event.last_sample_time if event.last_sample_time is not None else event.timestamp
        if event.interrupted:
            turn.interrupted = True
            turn._set_mark("playback_stopped", last, explicit=False)
        else:
            turn._set_mark("playback_end", last, explicit=False)
        start = turn.marks.get("playback_start")
        if start is not None:
            turn._derive_span("playback", start, last, turn.spoken_text, self._max_spans)
        return _touch(turn)

    def speech_sent(self, event: AgentSpeechSent) -> bool:
        # Pieces are incremental and joined as they are, like nodes.committed_events.
        turn = self._book.agent_target(event.timestamp)
        turn.spoken_text += event.content
        return _touch(turn)

    def interrupted(self, event: AgentInterrupted) -> bool:
        turn = self._book.agent_turn
        if turn is None or not turn.agent_running:
            return False  # nothing of the agent's was running: no effect
        turn.interrupted = True
        turn.interrupt_reason = event.reason
        current = self._book.current
        if (
            event.reason == "user_speech"
            and current is not None
            and current is not turn
            and "speech_start" in current.marks
            and "playback_start" in turn.marks
        ):
            # The barge-in's onset is the start of the interrupting speech.
            turn._set_mark("barge_in_onset", current.marks["speech_start"], explicit=False)
        return _touch(turn)

    def tool_call(self, event: ToolCall) -> bool:
        turn = self._book.agent_target(event.timestamp)
        turn.agent_started = True
        turn.tools.append(
            ToolUse(event.tool_call_id, event.tool_name, dict(event.tool_args), event.timestamp)
        )
        return _touch(turn)

    def tool_result(self, event: ToolResult) -> bool:
        turn = self._book.agent_target(event.timestamp)
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
        return _touch(turn)


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
        self._book = _TurnBook(max_turns)
        self.typed_sources = frozenset(typed_sources)
        agent = _AgentOutput(self._book, max_spans_per_turn)
        self._handlers: dict[type[Any], Callable[[Any], bool] | None] = {
            UserStartedSpeaking: self._user_started,
            UserStoppedSpeaking: self._user_stopped,
            UserTranscriptionPartial: self._partial,
            AgentResponse: agent.response,
            AgentGenerationComplete: agent.generation_complete,
            AgentSentence: agent.sentence,
            AgentAudioChunk: agent.audio_chunk,
            AgentStartedSpeaking: agent.started_speaking,
            AgentStoppedSpeaking: agent.stopped_speaking,
            AgentSpeechSent: agent.speech_sent,
            AgentInterrupted: agent.interrupted,
            AgentError: self._error,
            ToolCall: agent.tool_call,
            ToolResult: agent.tool_result,
            LogMetric: self._metric,
            TurnMark: self._mark,
            StageSpan: self._span,
            WakeWordHeard: self._wake,
        }

    # --- reading ---------------------------------------------------------------

    @property
    def turns(self) -> list[Turn]:
        """The kept turns, oldest first."""
        return list(self._book.kept)

    @property
    def current(self) -> Turn | None:
        """The newest turn, or ``None``."""
        return self._book.current

    def turn(self, number: int) -> Turn | None:
        """The kept turn with this number, or ``None``."""
        for turn in reversed(self._book.kept):
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
        self._book.clear()
        self.version += 1

    def restore(self, turns: Iterable[Turn]) -> None:
        """Keep ``turns`` (read back from an export), in number order; numbering
        goes on after the last."""
        book = self._book
        for turn in sorted(turns, key=lambda turn: turn.number):
            book.kept.append(turn)
            book.next_number = turn.number + 1
        self.version += 1

    def _handler_for_subclass(self, event_type: type[Any]) -> Callable[[Any], bool] | None:
        for base in event_type.__mro__[1:]:
            handler = self._handlers.get(base)
            if handler is not None:
                return handler
        return None

    # --- the user's side and the events of any lane (each returns whether something changed)

    def _user_started(self, event: UserStartedSpeaking) -> bool:
        onset = event.onset_time if event.onset_time is not None else event.timestamp
        turn = self._book.new(onset, "voice")
        turn._set_mark("speech_start", onset, explicit=False)
        return _touch(turn)

    def _user_stopped(self, event: UserStoppedSpeaking) -> bool:
        # Not a turn (a cough, a click, the agent's echo) and nothing else in it:
        # not kept, so it is neither drawn nor exported.
        if event.discarded and self._book.drop_if_nothing():
            return True
        turn = self._book.user(event.speech_start or event.timestamp)
        start = event.speech_start or turn.marks.get("speech_start", turn.started_at)
        end = event.speech_end if event.speech_end is not None else event.timestamp
        turn._set_mark("speech_start", start, explicit=False)
        turn._set_mark("speech_end", end, explicit=False)
        turn._set_mark("vad_stop", event.timestamp, explicit=False)
        turn._derive_span("vad", start, end, "speech", self.max_spans_per_turn)
        turn.awaiting_transcript = True
        return _touch(turn)

    def _partial(self, event: UserTranscriptionPartial) -> bool:
        turn = self._book.user(event.timestamp)
        turn.user_partial = event.content
        return _touch(turn)

    def _transcript(self, event: UserTranscriptionReceived, source: str) -> bool:
        book = self._book
        turn = None if source in self.typed_sources else book.spoken_turn_for(event.timestamp)
        book.stt_turn = None
        if turn is not None:
            turn.awaiting_transcript = False
            turn.user_text = f"{turn.user_text} {event.content}".strip()
            turn._set_mark("stt_done", event.timestamp, explicit=False)
            start = turn.marks.get("vad_stop", turn.marks.get("speech_end", event.timestamp))
            turn._derive_span("stt", start, event.timestamp, event.content, self.max_spans_per_turn)
        else:
            turn = book.new(event.timestamp, "typed")
            turn.user_text = event.content
        turn.user_partial = ""
        # From now on the agent's output answers this turn.
        book.agent_turn = turn
        return _touch(turn)

    def _error(self, event: AgentError) -> bool:
        book = self._book
        lane = _ERROR_LANES.get(event.source.split(":", 1)[0])
        if lane == "stt":
            # The utterance being transcribed failed: it will get no transcript, and
            # the next one's must not land in it.
            turn = book.awaiting() or book.current
            if turn is not None:
                turn.awaiting_transcript = False
        elif lane in _USER_LANES:
            turn = book.current
        else:
            turn = book.agent_turn or book.current
        if turn is None:
            return False
        turn.errors.append(f"{event.source}: {event.error}" if event.source else event.error)
        if lane is not None:
            # Shown where it happened: a mark, and an instant in the stage's lane.
            turn._set_mark(f"{lane}_failed", event.timestamp, explicit=True)
            failed = Span(lane, event.timestamp, event.timestamp, f"failed: {event.error}")
            turn.spans.append(failed)  # never replaced by the lane's own spans
        return _touch(turn)

    def _metric(self, event: LogMetric) -> bool:
        turn = self._book.agent_turn or self._book.current
        if (
            turn is None
            or isinstance(event.value, bool)
            or not isinstance(event.value, int | float)
        ):
            return False
        turn.metrics[event.name] = float(event.value)
        return _touch(turn)

    def _mark(self, event: TurnMark) -> bool:
        book = self._book
        if event.name == "stt_done":
            turn = book.awaiting() or book.user(event.at)
            turn.awaiting_transcript = False
            # The transcript that follows (if the STT heard words) is this turn's.
            book.stt_turn = turn
        elif event.name in _USER_MARKS:
            turn = book.user(event.at)
        else:
            turn = book.agent_target(event.at)
        turn._set_mark(event.name, event.at, explicit=True)
        return _touch(turn)

    def _wake(self, event: WakeWordHeard) -> bool:
        turn = self._book.user(event.at)
        turn.wake = event.describe()
        return _touch(turn)

    def _span(self, event: StageSpan) -> bool:
        book = self._book
        if event.stage == "stt":
            turn = book.stt_target(event.start)
        elif event.stage in _USER_LANES:
            current = book.current
            if (
                current is not None
                and current.user_text
                and event.start <= current.marks.get("stt_done", float("-inf"))
            ):
                # Work begun while that turn was heard (the LLM ahead) that ended after
                # its transcript: that turn's, not an empty new one.
                turn = current
            else:
                turn = book.user(event.start)
        else:
            turn = book.agent_target(event.start)
        turn._add_span(
            Span(event.stage, event.start, max(event.start, event.end), event.content),
            self.max_spans_per_turn,
        )
        return _touch(turn)


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


def format_tool_call(tool: ToolUse) -> str:
    """``calculator(expression='2+2')``."""
    args = ", ".join(f"{key}={value!r}" for key, value in tool.args.items())
    return f"{tool.name}({args})"
