"""The tool runner: ToolCall -> registry -> ToolResult, on the bus, never crashing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.events import AgentError, ToolCall, ToolResult
from voiceterm.patterns.tooling import ToolExecutor, ToolRunner
from voiceterm.testing import RouteHarness
from voiceterm.tools.registry import ToolOutcome, default_registry


class Plain:
    """A minimal executor: returns values, raises, or answers asynchronously."""

    def run(self, name: str, args: dict[str, Any]) -> Any:
        if name == "echo":
            return args["text"]
        if name == "async":
            return self._later(args)
        if name == "slow":
            time.sleep(0.2)
            return "late"
        if name == "outcome":
            return ToolOutcome(error="bad input")
        raise LookupError(f"no tool {name}")

    async def _later(self, args: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return "async " + str(args)


async def test_the_real_registry_fits_the_protocol_and_runs_on_the_bus() -> None:
    registry: ToolExecutor = default_registry()  # type-checked: ToolRegistry has the shape
    tools = Bridge("tools")
    ToolRunner(registry).attach(tools)
    async with RouteHarness(tools) as harness:
        call = ToolCall(tool_name="calculator", tool_args={"expression": "6 * 7"})
        await harness.send(call, source="llm")
        [result] = await harness.wait_for(ToolResult)
    assert result.tool_call_id == call.tool_call_id
    assert (result.tool_name, result.tool_args) == ("calculator", {"expression": "6 * 7"})
    assert result.result == "42"
    assert result.error is None


async def test_values_outcomes_awaitables_and_exceptions_all_become_results() -> None:
    runner = ToolRunner(Plain())
    echo = await runner(Message("llm", ToolCall(tool_name="echo", tool_args={"text": "hi"})))
    assert (echo.result, echo.error) == ("hi", None)
    later = await runner(ToolCall(tool_name="async", tool_args={"a": 1}))
    assert later.result == "async {'a': 1}"
    outcome = await runner(ToolCall(tool_name="outcome"))
    assert (outcome.result, outcome.error) == (None, "bad input")
    broken = await runner(ToolCall(tool_name="missing"))
    assert broken.error == "The missing tool failed: no tool missing"


async def test_blocking_tools_can_run_in_a_thread_with_a_time_limit() -> None:
    runner = ToolRunner(Plain(), in_thread=True, timeout_s=0.05)
    result = await runner(ToolCall(tool_name="slow"))
    assert result.error == "The slow tool took longer than 0.05 s."
    quick = await ToolRunner(Plain(), in_thread=True)(
        ToolCall(tool_name="echo", tool_args={"text": "x"})
    )
    assert quick.result == "x"


async def test_a_non_tool_call_is_reported_as_an_error_on_the_bus() -> None:
    tools = Bridge("tools")
    tools.on(ToolResult).map(ToolRunner(Plain())).broadcast()  # wired wrongly on purpose
    async with RouteHarness(tools) as harness:
        await harness.send(ToolResult(tool_name="x"))
        await harness.settle()
    [error] = harness.events(AgentError)
    assert "needs a ToolCall" in error.error
