"""One streamed chat completion from an OpenAI-compatible server, as reply pieces.

The SDK parses the Server-Sent Events; this turns its chunks into what
:class:`~voiceterm.engines.llm.protocol.ChatEngine` streams: the text as it comes,
then a :class:`~voiceterm.engines.llm.protocol.ToolRequest` for each tool call the
server sent (their names and arguments arrive in parts, spread over chunks).

Closing the pieces early (a barge-in) closes the HTTP response, whether the
server is sending tokens or still reading the prompt; llama-server and vLLM stop
generating when their client goes away.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from voiceterm.engines.llm.messages import ChatMessage
from voiceterm.engines.llm.protocol import ReplyPiece, ToolRequest
from voiceterm.engines.llm.stats import GenerationStats


@dataclass(slots=True)
class _HeldCall:
    """A tool call being received: its parts so far."""

    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def request(self) -> ToolRequest | None:
        """The call, or ``None`` when it came without a name or with unreadable arguments."""
        args = _arguments("".join(self.arguments))
        if not self.name or args is None:
            return None
        return ToolRequest(self.name, args, self.call_id or None)


def chat_request(
    model: str,
    messages: Sequence[ChatMessage],
    max_tokens: int,
    temperature: float,
    tools: Sequence[Mapping[str, Any]] | None,
    tool_choice: str | Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The keyword arguments of a streaming ``chat.completions.create``."""
    request: dict[str, Any] = {
        "model": model,
        "messages": [dict(message) for message in messages],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
        # llama-server keeps the prompt's KV cache for the next request (the next
        # turn extends this one); other servers ignore the field.
        "extra_body": {"cache_prompt": True},
    }
    if tools:
        request["tools"] = list(tools)
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
    return request


def prompt_request(
    model: str | None, messages: Sequence[ChatMessage], temperature: float
) -> dict[str, Any]:
    """A one-token request: has the server read the prompt into its cache (a warm-up)."""
    return {
        "model": model or "default",
        "messages": [dict(message) for message in messages],
        "max_tokens": 1,
        "temperature": temperature,
        "extra_body": {"cache_prompt": True},
    }


async def reply_pieces(
    client: Any,
    request: Mapping[str, Any],
    stats: GenerationStats,
    closed: Callable[[float], None],
) -> AsyncGenerator[ReplyPiece, None]:
    """Send ``request``; yield its text, then its tool calls.

    Args:
        client: The SDK's async client.
        request: From :func:`chat_request`.
        stats: Gets the stop reason the server gives.
        closed: Told how long closing the response took, when it was closed early.
    """
    calls: dict[int, _HeldCall] = {}
    stream = await client.chat.completions.create(**request)
    async with contextlib.aclosing(_chunks(stream, closed)) as chunks:
        async for chunk in chunks:
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            delta = choice.delta
            if delta is not None and delta.content:
                yield delta.content
            for call in (delta.tool_calls or []) if delta is not None else []:
                held = calls.setdefault(call.index, _HeldCall())
                held.call_id = call.id or held.call_id
                if call.function is not None:
                    held.name = _grown(held.name, call.function.name or "")
                    held.arguments.append(call.function.arguments or "")
            if choice.finish_reason:
                stats.stop_reason = "length" if choice.finish_reason == "length" else "stop"
    for held in calls.values():
        request_made = held.request()
        if request_made is not None:
            yield request_made


async def _chunks(stream: Any, closed: Callable[[float], None]) -> AsyncGenerator[Any, None]:
    """The SDK's stream, closing its response when the chunks are closed.

    Both are closed here, at once: the iterator ``async for`` would leave open when
    stopped early, and the response (which ends the HTTP connection).
    """
    finished = False
    try:
        async with contextlib.aclosing(aiter(stream)) as chunks:
            async for chunk in chunks:
                yield chunk
        finished = True
    finally:
        started = time.monotonic()
        await stream.aclose()
        if not finished:
            closed(time.monotonic() - started)


def _arguments(text: str) -> dict[str, Any] | None:
    """A call's arguments: a JSON object, possibly encoded twice; ``{}`` for none or junk."""
    try:
        value: Any = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            return None
    return dict(value) if isinstance(value, Mapping) else None


def _grown(held: str, more: str) -> str:
    """A tool's name streamed in parts ("calc", "ulator") or whole every time."""
    if not more or more == held:
        return held  # llama-cpp-python repeats the whole name in every chunk
    return more if more.startswith(held) and held else held + more
