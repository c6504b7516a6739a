"""Tool integration: a route piece that runs ``ToolCall`` s and publishes ``ToolResult`` s.

The seed's ``ToolAwareStreamingNode`` yields a ``ToolCall`` (and a filler such
as "Let me check that for you...") and continues when the ``ToolResult`` comes
back. :class:`ToolRunner` is the part in between: give it anything with a
``run(name, args)`` method (``voiceterm.tools.registry.ToolRegistry`` or a test
double) and attach it to a bridge::

    runner = ToolRunner(default_registry())
    runner.attach(Bridge("tools"))            # ToolCall -> ToolResult, on the bus

``run`` may return a plain value, an object with ``result``/``error`` attributes
(``ToolOutcome``), or an awaitable of either; an exception becomes
``ToolResult(error=...)``. A tool never brings the route down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from voiceterm.bus import Message
from voiceterm.events import ToolCall, ToolResult

if TYPE_CHECKING:
    from voiceterm.bridge import Bridge, Route

logger = logging.getLogger(__name__)


class ToolExecutor(Protocol):
    """Anything that can run a tool by name (``ToolRegistry`` has this shape)."""

    def run(self, name: str, args: dict[str, Any]) -> Any:
        """Run tool ``name`` with ``args``; return its result or an outcome."""
        ...


class ToolRunner:
    """Turns each ``ToolCall`` into a ``ToolResult`` by running ``tools``.

    Args:
        tools: The executor (e.g. a ``ToolRegistry``).
        in_thread: Run each call in a worker thread (for tools that block).
        timeout_s: Give up on a call after this long (reported as an error).

    Usable directly as a ``map`` step: ``bridge.on(ToolCall).map(runner).broadcast()``.
    """

    def __init__(
        self, tools: ToolExecutor, *, in_thread: bool = False, timeout_s: float | None = None
    ) -> None:
        self.tools = tools
        self.in_thread = in_thread
        self.timeout_s = timeout_s

    async def __call__(self, message: Message | ToolCall) -> ToolResult:
        """Run the call in ``message`` and describe what happened."""
        call = message.event if isinstance(message, Message) else message
        if not isinstance(call, ToolCall):
            raise TypeError(f"ToolRunner needs a ToolCall, got {type(call).__name__}")
        try:
            outcome = await asyncio.wait_for(self._run(call), self.timeout_s)
        except TimeoutError:
            return self._result(
                call, error=f"The {call.tool_name} tool took longer than {self.timeout_s} s."
            )
        except Exception as exc:
            logger.warning("tool %s failed", call.tool_name, exc_info=exc)
            return self._result(call, error=f"The {call.tool_name} tool failed: {exc}")
        if hasattr(outcome, "error") and hasattr(outcome, "result"):
            return self._result(call, result=outcome.result, error=outcome.error)
        return self._result(call, result=outcome)

    def attach(self, bridge: Bridge, *, source: str | None = None) -> Route:
        """Add the ``ToolCall -> ToolResult`` route to ``bridge`` and return it."""
        return bridge.on(ToolCall, source=source).map(self).broadcast().named("tools")

    async def _run(self, call: ToolCall) -> Any:
        args = dict(call.tool_args)
        if self.in_thread:
            outcome = await asyncio.to_thread(self.tools.run, call.tool_name, args)
        else:
            outcome = self.tools.run(call.tool_name, args)
        if hasattr(outcome, "__await__"):
            outcome = await outcome
        return outcome

    @staticmethod
    def _result(call: ToolCall, *, result: Any = None, error: str | None = None) -> ToolResult:
        return ToolResult(
            tool_name=call.tool_name,
            tool_args=dict(call.tool_args),
            result=result,
            error=error,
            tool_call_id=call.tool_call_id,
        )


__all__ = ["ToolExecutor", "ToolRunner"]
