"""The LLM node: answers each transcript by streaming tokens from the LLM engine.

Tools first: a small deterministic intent step (``voiceterm.tools.intent``) spots
questions the tiny embedded model cannot answer reliably (the time, arithmetic),
runs the tool (``ToolCall`` -> ``ToolResult``) and speaks its result. Everything
else streams from the model with the conversation as the user heard it
(``get_committed_events``), trimmed to the context window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.engines.llm.messages import ChatMessage
from voiceterm.engines.llm.protocol import (
    ChatEngine,
    ToolRequest,
    chat_template_source,
    labels_requests,
    reads_ahead,
    speculates,
    warms_up,
)
from voiceterm.events import (
    AgentInterrupted,
    AgentResponse,
    AgentSpeculation,
    AgentSpeechSent,
    AgentStoppedSpeaking,
    Event,
    StageSpan,
    ToolCall,
    ToolResult,
    TurnMark,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
)
from voiceterm.nodes import ConversationContext, ReasoningNode
from voiceterm.pipeline.end_of_turn.transcript import sounds_finished

if TYPE_CHECKING:
    from voiceterm.tools.registry import ToolOutcome, ToolRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prefilled:
    """What :meth:`ChatNode.prefill` got ready for the words so far.

    Attributes:
        speculation: The answer's start (or all of it), to announce; ``None`` if none.
        unread: Words answered without the model (a tool's answer ahead) that it
            should still read, after the answer is announced: the learned end of
            turn takes how likely the message ends there from that read.
    """

    speculation: AgentSpeculation | None = None
    unread: list[ChatMessage] | None = None


class ChatNode(ReasoningNode):
    """A ``ReasoningNode`` backed by an LLM engine (``voiceterm.engines.llm.ChatEngine``).

    The engine's optional capabilities are used when it has them: ``speculate``
    (the answer's first words sampled during the end-of-speech wait), and
    ``warm_up``/``read_ahead`` (the conversation read into its cache ahead of time).
    """

    def __init__(
        self,
        engine: ChatEngine,
        *,
        system_prompt: str,
        max_tokens: int = 96,
        tools: ToolRegistry | None = None,
        node_id: str = "llm",
        speculate_tokens: int = 12,
        first_piece_words: int = 3,
    ) -> None:
        # The engine fits the prompt into its window itself, trimming in steps so
        # the prompt's start (and llama.cpp's KV cache) stays the same for several
        # turns. The node's own bounds only cap memory, far above the window, so
        # they never trim a turn the engine would have kept.
        super().__init__(
            system_prompt=system_prompt,
            max_context_length=500,
            max_context_tokens=engine.n_ctx * 8,
            node_id=node_id,
        )
        self.engine = engine
        self.max_tokens = max_tokens
        self.tools = tools
        self.speculate_tokens = speculate_tokens
        self.first_piece_words = first_piece_words
        self._speculating: tuple[str, threading.Event] | None = None
        self._answering_since = 0.0  # when the newest answer began

    def attach(self, bridge: Bridge) -> None:
        (
            bridge.on(UserTranscriptionReceived)
            .named(self.id)  # its failures are the stage's: AgentError(source="llm")
            .exclusive()
            .interrupt_on(AgentInterrupted, handler=self.on_interrupt_generate)
            .stream(self.generate)
            .broadcast()
        )
        # One route keeps them in order: what was heard is in the history before the
        # history is read ahead.
        bridge.on(Event, filter_fn=_speech_played).map(self._after_speech)
        bridge.on(AgentInterrupted).map(self.add_event)
        bridge.on(UserTranscriptionPartial).stream(self._work_ahead).broadcast()

    async def _after_speech(self, message: Message) -> None:
        if isinstance(message.event, AgentSpeechSent):
            self.add_event(message)
            return
        engine = self.engine
        if not reads_ahead(engine) or self._speculating is not None:
            return  # the user's next words are being worked on already
        messages = self.format_for_llm(
            ConversationContext(self.conversation_events).get_committed_events()
        )
        if len(messages) > 1:
            seconds = await asyncio.to_thread(
                engine.read_ahead, messages, max_tokens=self.max_tokens
            )
            logger.info("read the conversation ahead in %.0f ms", 1000 * seconds)

    async def _work_ahead(self, message: Message) -> AsyncIterator[Any]:
        """``prefill``, shown in the timeline's "ahead" lane of the turn being heard."""
        start = time.monotonic()
        prefilled = await self.prefill(message)
        speculation = prefilled.speculation
        sampled = "".join(speculation.pieces).strip() if speculation is not None else ""
        content = f"{sampled} …" if sampled else "(prompt read)"
        yield StageSpan(stage="ahead", start=start, end=time.monotonic(), content=content)
        if speculation is not None:
            yield speculation
        if prefilled.unread is not None and warms_up(self.engine):
            await asyncio.to_thread(
                self.engine.warm_up, prefilled.unread, max_tokens=self.max_tokens
            )

    async def prefill(self, message: Message) -> Prefilled:
        """Get ready to answer the user's words so far, during the end-of-speech wait.

        The prompt they would give is evaluated into the KV cache; when they sound
        like a finished turn, the answer's first tokens are sampled too
        (``LlamaEngine.speculate``), and announced as ``AgentSpeculation`` so that
        the sentence and TTS stages can prepare its first piece. When the turn then
        ends with the same words, the answer starts with all of it at once.
        Different words only cost the work that no longer matches. A question a
        tool answers is answered here without the model, which still has to read
        the words (``Prefilled.unread``).
        """
        partial: UserTranscriptionPartial = message.event
        if partial.timestamp <= self._answering_since:
            # Queued behind other work while the turn ended: its words are being
            # answered already (or were superseded), and the answer needs the model.
            return Prefilled()
        events = [*self.conversation_events, UserTranscriptionReceived(content=partial.content)]
        messages = self.format_for_llm(ConversationContext(events).get_committed_events())
        self._stop_speculating()
        tool_answer = self._tool_answer_ahead(partial.content)
        if tool_answer is not None:
            # Known at once, and all of the reply: the model is not needed for it, but
            # reads the words after it is announced (see _work_ahead).
            answer = AgentSpeculation(
                transcript=partial.content, pieces=(tool_answer,), complete=True
            )
            return Prefilled(answer, unread=list(messages))
        engine = self.engine
        pieces: tuple[str, ...] = ()
        whole_reply = False
        if speculates(engine) and self._worth_speculating(partial.content):
            cancel = threading.Event()
            self._speculating = (partial.content, cancel)
            sampled = await asyncio.to_thread(
                engine.speculate,
                messages,
                cancel,
                tokens=self.speculate_tokens,
                max_tokens=self.max_tokens,
                enough=self._has_first_piece,
            )
            if self._speculating is not None and self._speculating[1] is cancel:
                self._speculating = None
            pieces, whole_reply = sampled.pieces, sampled.whole_reply
        else:
            if not warms_up(engine):
                return Prefilled()
            await asyncio.to_thread(engine.warm_up, messages, max_tokens=self.max_tokens)
        if not pieces:
            return Prefilled()
        return Prefilled(
            AgentSpeculation(transcript=partial.content, pieces=pieces, complete=whole_reply)
        )

    def _tool_answer_ahead(self, transcript: str) -> str | None:
        """What the tools would say to ``transcript``, if they would answer it.

        Only the rules strategy's tools (the clock, the calculator) are spotted
        without the model, and they have no side effects: running one ahead is
        as good as running it when the turn ends.
        """
        if self.tools is None or self.tool_strategy != "rules":
            return None
        if not sounds_finished(transcript):
            return None
        from voiceterm.tools.intent import detect_intent, spoken_answer

        request = detect_intent(transcript)
        if request is None:
            return None
        return spoken_answer(request, self.tools.run(request.name, request.args))

    def _has_first_piece(self, text: str) -> bool:
        # The sentence stage speaks the first words once the word after them begins
        # (or a clause before that): sampling more would only come later.
        return len(text.split()) > self.first_piece_words

    def _worth_speculating(self, transcript: str) -> bool:
        # An unfinished-sounding turn waits longer for more words anyway. (A question
        # the rules' tools answer never gets here: ``prefill`` answers it ahead.)
        if not self.speculate_tokens or not sounds_finished(transcript):
            return False
        return self.tool_strategy != "native"

    def _stop_speculating(self, unless_for: str | None = None) -> None:
        speculating = self._speculating
        if speculating is not None and speculating[0] != unless_for:
            speculating[1].set()
            self._speculating = None

    async def process_context(self, context: ConversationContext) -> AsyncIterator[Any]:
        # A speculation for other words would only hold the model up.
        self._answering_since = time.monotonic()
        self._stop_speculating(unless_for=context.get_latest_user_transcript_message())
        async for item in self._process_context(context):
            yield item

    @property
    def tool_strategy(self) -> str:
        """``"native"`` when the model's chat template takes tool specs, else ``"rules"``."""
        from voiceterm.tools.intent import choose_strategy

        if self.tools is None:
            return "none"
        return choose_strategy(chat_template_source(self.engine))

    async def _process_context(self, context: ConversationContext) -> AsyncIterator[Any]:
        user_text = context.get_latest_user_transcript_message() or ""
        if self.tools is not None and self.tool_strategy == "native":
            async for item in self._stream_llm_with_tools(context, self.tools):
                yield item
            return
        if self.tools is not None:
            answered = False
            async for item in answer_with_tool(self.tools, user_text):
                answered = True
                yield item
            if answered:
                return
        async for item in self._stream_llm(context):
            yield item

    def _request_span(self, at: float) -> StageSpan | None:
        """For a model behind a server: the request, in the timeline while it is waited for."""
        if not labels_requests(self.engine):
            return None
        return StageSpan(stage="llm", start=at, end=at, content=self.engine.request_label)

    async def _stream_llm(self, context: ConversationContext) -> AsyncIterator[Any]:
        messages = self.format_for_llm(context.get_committed_events())
        previous = time.monotonic()
        first = True
        request_sent = self._request_span(previous)
        if request_sent is not None:
            yield request_sent
        stream = self.engine.stream_chat(messages, max_tokens=self.max_tokens)
        async with contextlib.aclosing(stream) as pieces:
            async for piece in pieces:
                if isinstance(piece, ToolRequest):
                    continue  # offered no tools, it has none to call
                now = time.monotonic()
                if first:
                    first = False
                    yield TurnMark(name="llm_first_token", at=now)
                yield StageSpan(stage="llm", start=previous, end=now, content=piece)
                previous = now
                if piece:
                    yield AgentResponse(content=piece)

    async def _stream_llm_with_tools(
        self, context: ConversationContext, tools: ToolRegistry
    ) -> AsyncIterator[Any]:
        """A function-calling model decides on tools itself, in its own call format.

        Text is spoken as it streams; a tool call in the output is held back, run,
        and its result handed back to the model, which then answers (at most
        ``MAX_TOOL_ROUNDS`` rounds, so a confused model cannot loop forever).
        """
        from voiceterm.tools.intent import assistant_tool_call_message, tool_result_message

        messages: list[dict[str, Any]] = self.format_for_llm(context.get_committed_events())
        timing = _PieceTiming(time.monotonic())
        request_sent = self._request_span(timing.previous)
        if request_sent is not None:
            yield request_sent
        for _round in range(MAX_TOOL_ROUNDS):
            requests: list[ToolRequest] = []
            async for item in self._tool_round(messages, timing, requests, tools):
                yield item
            if not requests:
                return
            messages.append(assistant_tool_call_message(requests))
            for request in requests:
                call = ToolCall(tool_name=request.name, tool_args=dict(request.args))
                yield call
                outcome = tools.run(request.name, request.args)
                yield _result_of(call, outcome)
                messages.append(tool_result_message(request, outcome, request.call_id))

    async def _tool_round(
        self,
        messages: list[dict[str, Any]],
        timing: _PieceTiming,
        requests: list[ToolRequest],
        tools: ToolRegistry,
    ) -> AsyncIterator[Any]:
        """One reply with the tools offered: its text spoken, its calls put in ``requests``.

        A model that writes its calls as text has them read from it; a backend
        that receives them as such hands them over as ``ToolRequest`` pieces.
        """
        from voiceterm.tools.intent import ToolCallStreamFilter

        calls_filter = ToolCallStreamFilter()
        stream = self.engine.stream_chat(messages, max_tokens=self.max_tokens, tools=tools.specs())
        async with contextlib.aclosing(stream) as pieces:
            async for piece in pieces:
                for mark in timing.piece_came(piece):
                    yield mark
                if isinstance(piece, ToolRequest):
                    requests.append(piece)
                    continue
                speakable = calls_filter.feed(piece)
                if speakable:
                    yield AgentResponse(content=speakable)
        rest, written = calls_filter.finish()
        if rest:
            yield AgentResponse(content=rest)
        requests[:0] = written


class _PieceTiming:
    """The first-token mark and a timeline span for each piece of a reply's rounds."""

    def __init__(self, started: float) -> None:
        self.previous = started
        self.first = True

    def piece_came(self, piece: str | ToolRequest) -> list[Any]:
        now = time.monotonic()
        marks: list[Any] = []
        if self.first:
            self.first = False
            marks.append(TurnMark(name="llm_first_token", at=now))
        content = piece if isinstance(piece, str) else f"tool call {piece.name}"
        marks.append(StageSpan(stage="llm", start=self.previous, end=now, content=content))
        self.previous = now
        return marks


async def answer_with_tool(tools: ToolRegistry, user_text: str) -> AsyncIterator[Any]:
    """The rules' route: a tool the words ask for runs, and its answer is said.

    Yields nothing when no tool is asked for (the model answers then).
    """
    from voiceterm.tools.intent import detect_intent, spoken_answer

    request = detect_intent(user_text)
    if request is None:
        return
    call = ToolCall(tool_name=request.name, tool_args=dict(request.args))
    yield call
    start = time.monotonic()
    outcome = tools.run(request.name, request.args)
    end = time.monotonic()
    yield _result_of(call, outcome)
    yield StageSpan(stage="llm", start=start, end=end, content=f"tool {call.tool_name}")
    yield TurnMark(name="llm_first_token", at=end)
    yield AgentResponse(content=spoken_answer(request, outcome))


def _result_of(call: ToolCall, outcome: ToolOutcome) -> ToolResult:
    return ToolResult(
        tool_name=call.tool_name,
        tool_args=call.tool_args,
        result=outcome.result,
        error=outcome.error,
        tool_call_id=call.tool_call_id,
    )


MAX_TOOL_ROUNDS = 3


def _speech_played(message: Message) -> bool:
    return isinstance(message.event, (AgentSpeechSent, AgentStoppedSpeaking))
