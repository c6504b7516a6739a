"""Nodes: the conversation's memory and the generation loop around an LLM.

``ReasoningNode`` keeps the conversation (user transcripts, agent text, tool calls
and results, what was actually spoken, where the agent was cut off), builds a
:class:`ConversationContext` for each turn and streams what ``process_context``
yields, followed by ``AgentGenerationComplete``. Subclasses implement
``process_context`` — see ``shared/seed/streaming-responses.txt``.

History stays bounded: when a new turn starts and before each generation the
oldest whole turns are dropped past ``max_context_length`` turns or an
approximate token budget (4 characters a token, the usual rule of thumb for
English with BPE tokenizers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from voiceterm.bus import Message
from voiceterm.events import (
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentSpeechSent,
    ToolCall,
    ToolResult,
    UserTranscriptionReceived,
)
from voiceterm.patterns.streams import close_async_iterator

ChatMessage = dict[str, Any]

# Events the conversation remembers; everything else passes by.
_REMEMBERED = (
    UserTranscriptionReceived,
    AgentResponse,
    AgentSpeechSent,
    AgentInterrupted,
    ToolCall,
    ToolResult,
)

CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """A cheap token estimate (about 4 characters a token, at least 1 per word)."""
    return max(len(text) // CHARS_PER_TOKEN, len(text.split()))


def _event_of(message_or_event: Any) -> Any:
    return message_or_event.event if isinstance(message_or_event, Message) else message_or_event


@dataclass(slots=True)
class ConversationContext:
    """What a generation sees: the conversation so far and the system prompt."""

    events: list[Any] = field(default_factory=list)
    system_prompt: str = ""

    def get_latest_user_transcript_message(self) -> str | None:
        """The text of the most recent user transcript, or ``None``."""
        for event in reversed(self.events):
            if isinstance(event, UserTranscriptionReceived):
                return event.content
        return None

    def get_committed_events(self) -> list[Any]:
        """The conversation as the user experienced it.

        In a turn where the agent was cut off, its text is replaced by what was
        actually played (``AgentSpeechSent``), or removed if nothing was heard.
        Markers (``AgentSpeechSent``, ``AgentInterrupted``) are left out.
        """
        return committed_events(self.events)


def _split_turns(events: Sequence[Any]) -> list[list[Any]]:
    """Group events into turns, each starting at a user transcript."""
    turns: list[list[Any]] = []
    for event in events:
        if isinstance(event, UserTranscriptionReceived) or not turns:
            turns.append([])
        turns[-1].append(event)
    return turns


def committed_events(events: Sequence[Any]) -> list[Any]:
    """See :meth:`ConversationContext.get_committed_events`."""
    committed: list[Any] = []
    for turn in _split_turns(events):
        interrupted = any(isinstance(e, AgentInterrupted) for e in turn)
        spoken = "".join(e.content for e in turn if isinstance(e, AgentSpeechSent))
        spoken_placed = False
        for event in turn:
            if isinstance(event, (AgentSpeechSent, AgentInterrupted)):
                continue
            if isinstance(event, AgentResponse) and interrupted:
                if spoken_placed or not spoken.strip():
                    continue
                event = replace(event, content=spoken)
                spoken_placed = True
            committed.append(event)
    return committed


class Node:
    """Anything that sits on a bridge. Its ``id`` names it on the bus."""

    def __init__(self, node_id: str | None = None) -> None:
        self.id = node_id or type(self).__name__


class ReasoningNode(Node):
    """A node that remembers the conversation and generates the agent's answers.

    Args:
        system_prompt: the instructions given to the LLM on every turn.
        max_context_length: how many turns (a user transcript and what followed)
            are kept.
        max_context_tokens: an approximate token budget for the kept history.
        node_id: the node's id on the bus (default: the class name).

    Attributes:
        conversation_events: The remembered conversation, oldest first.
        chunk_counter: How many ``AgentResponse`` chunks the current (or last)
            generation has yielded so far; ``process_context`` may read it, e.g.
            for its own ``AgentGenerationComplete(chunk_count=self.chunk_counter)``.
        emit_completion: Whether :meth:`generate` ends with
            ``AgentGenerationComplete`` when ``process_context`` did not yield one.
            Stream stages after ``generate`` see that marker too; set this to
            ``False`` for stages that only understand ``AgentResponse``.
    """

    emit_completion: bool = True

    def __init__(
        self,
        system_prompt: str = "",
        max_context_length: int = 100,
        *,
        max_context_tokens: int = 4096,
        node_id: str | None = None,
    ) -> None:
        super().__init__(node_id)
        self.system_prompt = system_prompt
        self.max_context_length = max_context_length
        self.max_context_tokens = max_context_tokens
        self.conversation_events: list[Any] = []
        self.chunk_counter = 0
        # A new generation starts a new agent message instead of extending the last.
        self._agent_message_open = False

    # --- memory --------------------------------------------------------------------

    def add_event(self, message_or_event: Any) -> None:
        """Remember a user, agent or tool event; consecutive text chunks merge.

        Accepts a :class:`~voiceterm.bus.Message` or a bare event, so it can be used
        directly as a route step: ``bridge.on(UserTranscriptionReceived).map(node.add_event)``.
        """
        event = _event_of(message_or_event)
        if not isinstance(event, _REMEMBERED):
            return
        history = self.conversation_events
        last = history[-1] if history else None
        if last is event:
            return
        open_response = self._open_response()
        if isinstance(event, AgentResponse) and open_response is not None:
            # The answer goes on: one message, even if its first words were heard
            # (AgentSpeechSent) while the rest was still being generated.
            index, response = open_response
            history[index] = replace(response, content=response.content + event.content)
        elif isinstance(event, AgentSpeechSent) and type(last) is AgentSpeechSent:
            history[-1] = replace(last, content=last.content + event.content)
        elif (
            isinstance(event, UserTranscriptionReceived) and type(last) is UserTranscriptionReceived
        ):
            # Two utterances with no answer between them are one request.
            joined = f"{last.content.rstrip()} {event.content.lstrip()}".strip()
            history[-1] = replace(last, content=joined)
        elif isinstance(event, AgentInterrupted) and self._current_turn_interrupted():
            return
        else:
            history.append(event)
            if isinstance(event, UserTranscriptionReceived):
                # A new turn: keep memory bounded even if no generation follows.
                self.trim_context()
        if not isinstance(event, AgentSpeechSent):
            self._agent_message_open = isinstance(event, AgentResponse)

    def _open_response(self) -> tuple[int, AgentResponse] | None:
        """The answer being generated, if its text may still grow: (index, event)."""
        if not self._agent_message_open:
            return None
        history = self.conversation_events
        for index in range(len(history) - 1, -1, -1):
            event = history[index]
            if type(event) is AgentResponse:
                return index, event
            if not isinstance(event, AgentSpeechSent):
                return None
        return None

    def _current_turn_interrupted(self) -> bool:
        for event in reversed(self.conversation_events):
            if isinstance(event, AgentInterrupted):
                return True
            if isinstance(event, UserTranscriptionReceived):
                return False
        return False

    def clear_context(self) -> None:
        """Forget the whole conversation."""
        self.conversation_events.clear()
        self._agent_message_open = False

    def trim_context(self) -> None:
        """Drop the oldest whole turns past the turn limit or the token budget.

        The most recent turn is always kept, however long it is.
        """
        all_turns = _split_turns(self.conversation_events)
        turns = all_turns[-max(self.max_context_length, 1) :]
        budget = self.max_context_tokens - approx_tokens(self.system_prompt)
        sizes = [_turn_tokens(turn) for turn in turns]
        total = sum(sizes)
        first = 0
        while first < len(turns) - 1 and total > budget:
            total -= sizes[first]
            first += 1
        kept = turns[first:]
        if len(kept) < len(all_turns):
            self.conversation_events = [event for turn in kept for event in turn]

    # --- generation ------------------------------------------------------------------

    async def generate(self, message: Any = None) -> AsyncGenerator[Any, None]:
        """Stream the answer to the conversation so far.

        The triggering event is remembered first when it is one the conversation
        keeps (a transcript, a tool result). Yields what :meth:`process_context`
        yields (remembering agent text and tool events), then
        ``AgentGenerationComplete(total_length, chunk_count)`` unless
        ``process_context`` already yielded one (or ``emit_completion`` is off).

        If the run is cancelled, the turn is marked as interrupted and
        ``process_context`` is closed at once with ``CancelledError`` thrown into
        it, so its ``finally`` runs before the next run can start.
        """
        if message is not None:
            self.add_event(message)
        self.trim_context()
        self._agent_message_open = False
        self.chunk_counter = 0
        context = ConversationContext(list(self.conversation_events), self.system_prompt)
        total_length = 0
        completed = False
        iterator = self.process_context(context).__aiter__()
        try:
            async for item in iterator:
                event = _event_of(item)
                if isinstance(event, AgentResponse):
                    total_length += len(event.content)
                    self.chunk_counter += 1
                    self.add_event(event)
                elif isinstance(event, (ToolCall, ToolResult)):
                    self.add_event(event)
                elif isinstance(event, AgentGenerationComplete):
                    completed = True
                yield item
        except asyncio.CancelledError as exc:
            self.add_event(AgentInterrupted(reason="generation_cancelled"))
            await close_async_iterator(iterator, exc)
            raise
        except BaseException as exc:
            # Closed by the consumer (GeneratorExit) or failed: finish process_context
            # now rather than whenever the garbage collector gets to it.
            await close_async_iterator(iterator, exc)
            raise
        if not completed and self.emit_completion:
            yield AgentGenerationComplete(total_length=total_length, chunk_count=self.chunk_counter)

    async def process_context(self, context: ConversationContext) -> AsyncIterator[Any]:
        """Yield the answer's chunks for ``context``. Subclasses override this."""
        return
        yield  # pragma: no cover - makes this an async generator

    def on_interrupt_generate(self, message: Any = None) -> None:
        """Called once when the user cuts the generation off; marks the turn."""
        self.add_event(AgentInterrupted(reason="user_speech"))

    # --- LLM formatting ---------------------------------------------------------------

    def format_for_llm(self, events: Sequence[Any]) -> list[ChatMessage]:
        """Chat messages (``role``/``content``) for an LLM, starting with the system prompt.

        The events are first cut to what the user actually heard
        (:func:`committed_events`; a no-op for events that are already committed),
        so an answer that was cut off is remembered as far as it was spoken. Tool
        calls and results become short system notes, a form every chat template
        accepts (small models have no tool role); consecutive messages of the same
        role are joined (never into the system prompt).
        """
        messages: list[ChatMessage] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        prompt_only = bool(messages)
        for event in committed_events(events):
            role, content = _chat_line(event)
            if not content:
                continue
            if messages and not prompt_only and messages[-1]["role"] == role:
                messages[-1]["content"] = f"{messages[-1]['content']}\n{content}"
            else:
                messages.append({"role": role, "content": content})
            prompt_only = False
        return messages


def _chat_line(event: Any) -> tuple[str, str]:
    if isinstance(event, UserTranscriptionReceived):
        return "user", event.content.strip()
    if isinstance(event, AgentResponse):
        return "assistant", event.content.strip()
    if isinstance(event, ToolCall):
        return "system", f"(called tool {event.tool_name} with {event.tool_args})"
    if isinstance(event, ToolResult):
        outcome = f"failed: {event.error}" if event.error else f"returned: {event.result}"
        return "system", f"(tool {event.tool_name} {outcome})"
    return "", ""


def _turn_tokens(turn: Sequence[Any]) -> int:
    return sum(approx_tokens(_chat_line(event)[1]) for event in turn)
