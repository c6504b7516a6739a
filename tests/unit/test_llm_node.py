"""The LLM node's tool routes, with a scripted model standing in for llama.cpp."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from voiceterm.engines.llm.protocol import ToolRequest
from voiceterm.events import AgentResponse, ToolCall, ToolResult, UserTranscriptionReceived
from voiceterm.nodes import ConversationContext
from voiceterm.pipeline.respond import ChatNode
from voiceterm.tools import default_registry


class ScriptedModel:
    """Answers each call with the next scripted reply, token by token."""

    n_ctx = 2048

    def __init__(self, replies: list[list[str | ToolRequest]], template: str) -> None:
        self.replies = replies
        self.chat_template_source = template
        self.calls: list[list[dict[str, Any]]] = []
        self.tools_seen: list[Any] = []

    async def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> AsyncGenerator[str | ToolRequest, None]:
        self.calls.append([dict(m) for m in messages])
        self.tools_seen.append(tools)
        for piece in self.replies[len(self.calls) - 1]:
            yield piece


async def answer(node: ChatNode, text: str) -> list[Any]:
    node.add_event(UserTranscriptionReceived(content=text))
    context = ConversationContext(list(node.conversation_events), node.system_prompt)
    return [item async for item in node.process_context(context)]


async def test_function_calling_model_calls_a_tool_and_answers_with_its_result() -> None:
    model = ScriptedModel(
        [
            [
                "<tool_",
                'call>{"name": "calculator", ',
                '"arguments": {"expression": "12*7"}}',
                "</tool_call>",
            ],
            ["Twelve times seven ", "is 84."],
        ],
        template="{% for tool in tools %}{{ tool }}{% endfor %}",
    )
    node = ChatNode(model, system_prompt="Be brief.", tools=default_registry())
    assert node.tool_strategy == "native"
    items = await answer(node, "What is twelve times seven?")
    spoken = "".join(i.content for i in items if isinstance(i, AgentResponse))
    assert spoken == "Twelve times seven is 84."  # no tool-call markup is ever spoken
    calls = [i for i in items if isinstance(i, ToolCall)]
    results = [i for i in items if isinstance(i, ToolResult)]
    assert [c.tool_name for c in calls] == ["calculator"]
    assert results[0].result == "84" and results[0].error is None
    assert model.tools_seen[0] and {t["function"]["name"] for t in model.tools_seen[0]} == {
        "calculator",
        "clock",
    }
    # The second call hands the result back to the model in its own format.
    assert model.calls[1][-1]["role"] == "tool" and model.calls[1][-1]["content"] == "84"


async def test_a_tool_call_a_server_sends_as_such_is_run_without_reading_text() -> None:
    model = ScriptedModel(
        [
            ["Let me work that out. ", ToolRequest("calculator", {"expression": "12*7"}, "c1")],
            ["It is 84."],
        ],
        template="{% for tool in tools %}{{ tool }}{% endfor %}",
    )
    node = ChatNode(model, system_prompt="Be brief.", tools=default_registry())
    items = await answer(node, "What is twelve times seven?")
    spoken = "".join(i.content for i in items if isinstance(i, AgentResponse))
    assert spoken == "Let me work that out. It is 84."
    assert [i.tool_name for i in items if isinstance(i, ToolCall)] == ["calculator"]
    assert model.calls[1][-2]["tool_calls"][0]["id"] == "c1"
    assert model.calls[1][-1] == {
        "role": "tool",
        "name": "calculator",
        "tool_call_id": "c1",
        "content": "84",
    }


async def test_tiny_model_gets_tools_through_the_intent_step_not_the_model() -> None:
    model = ScriptedModel([["I should not be asked."]], template="<|im_start|>{{ message }}")
    node = ChatNode(model, system_prompt="Be brief.", tools=default_registry())
    assert node.tool_strategy == "rules"
    items = await answer(node, "What is twelve times seven?")
    spoken = "".join(i.content for i in items if isinstance(i, AgentResponse))
    assert "84" in spoken
    assert model.calls == []


async def test_a_model_that_keeps_calling_tools_is_stopped() -> None:
    looping: list[str | ToolRequest] = ['<tool_call>{"name": "clock", "arguments": {}}</tool_call>']
    model = ScriptedModel([looping] * 10, template="{{ tools }}")
    node = ChatNode(model, system_prompt="", tools=default_registry())
    items = await answer(node, "Time?")
    assert len([i for i in items if isinstance(i, ToolCall)]) == 3
    assert len(model.calls) == 3
