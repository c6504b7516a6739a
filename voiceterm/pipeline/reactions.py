"""What a wired agent does when a stage fails or an answer has been spoken."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass

from voiceterm.events import AgentError, AgentInterrupted
from voiceterm.pipeline.freed_memory import FreedMemory
from voiceterm.pipeline.loading import Engines
from voiceterm.pipeline.quiet import Quiet
from voiceterm.pipeline.server_watch import ServerWatch
from voiceterm.pipeline.speak import TtsNode
from voiceterm.pipeline.wiring import Nodes

RunTask = Callable[[str, Callable[[], Coroutine[object, object, None]]], asyncio.Task[None] | None]
"""Runs a named task for the agent (who cancels it at stop), unless one by that name runs:
the coroutine is made only when the task starts."""


@dataclass(frozen=True, slots=True, eq=False)
class AgentReactions:
    """The agent's side of :class:`~voiceterm.pipeline.observe.Reactions`."""

    nodes: Nodes
    engines: Engines
    server: ServerWatch
    quiet: Quiet
    freed_memory: FreedMemory
    run: RunTask

    def answer_spoken(self) -> None:
        """Once this answer is over, hand back what the engines freed for it."""
        self.run("give-back-memory", lambda: self.quiet.give_back(self.freed_memory))

    def failed(self, error: AgentError) -> None:
        chat = self.nodes.chat
        if error.source == chat.id:
            self.server.watch(self.engines.llm, check_first=True)  # a server gone mid-session
        if error.source == TtsNode.id:
            # A piece of the answer was never heard: the conversation keeps what
            # was, as for an answer cut off.
            chat.add_event(AgentInterrupted(reason="speech_lost"))

    def no_more_sound(self, error: AgentError) -> bool:
        """Whether a failed stage leaves the answer without any sound to come."""
        if error.source == TtsNode.id:
            return True  # a later piece may still play: that starts the speaking again
        # A model that said some words before it failed has them spoken (the
        # sentence stage ends the answer there); one that said none has nothing.
        chat = self.nodes.chat
        return error.source == chat.id and not chat.chunk_counter
