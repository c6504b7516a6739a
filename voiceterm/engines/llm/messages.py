"""Chat messages, and fitting a conversation into the model's context window.

Turns (a user message and what follows it) are dropped whole, oldest first; a
leading system message is never dropped. :func:`fit_messages` is the one fitter
for every backend: the size it fits to is the caller's (the in-process model
counts its prompt's tokens; a server's tokenizer is not at hand, so its backend
counts characters, :func:`characters`). :class:`TrimmedWindow` drops turns in
steps, so that the prompt's start -- and the KV cache computed for it -- stays
the same for several turns after a trim. :func:`reply_budget` is the room both
backends keep for the reply.

This module knows no tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from voiceterm.errors import EngineError

ChatMessage = Mapping[str, Any]
"""One chat message: ``{"role": "system" | "user" | "assistant" | "tool", "content": str}``."""

ToolSpecs = Sequence[Mapping[str, Any]] | None
"""OpenAI-style tool specs, rendered into the prompt by templates that take them."""

PromptSize = Callable[[Sequence[ChatMessage], ToolSpecs], int]
"""Tokens of the prompt rendered from these messages (and tool specs)."""

Size = Callable[[Sequence[ChatMessage]], int]
"""How big the prompt of these messages is, in the unit of the budget."""

KeepTail = Callable[[str, int], str]
"""The end of a text that fits in this many tokens."""

# After the conversation overflows, trim it to this share of the budget, so that
# the next few turns fit without trimming again (a trim moves the whole cache, and
# re-reads all of it for a model whose cache cannot move).
TRIM_TARGET = 0.75


def reply_budget(max_tokens: int | None, default: int, n_ctx: int) -> int:
    """The tokens kept free for a reply of ``max_tokens`` (``None``: ``default``).

    Every call that fits the conversation (a reply, a speculation, a warm-up, a
    read-ahead) fits it for this room, so they all keep the same turns: the
    prompt read ahead is then the prompt the reply finds in the cache.
    """
    return max(1, min(max_tokens or default, n_ctx // 2))


def characters(messages: Sequence[ChatMessage]) -> int:
    """The messages' text length: a size for a backend whose tokenizer is not at hand."""
    return sum(len(str(message.get("content") or "")) for message in messages)


def fit_messages(
    messages: Sequence[ChatMessage],
    budget: int,
    size: Size,
    keep_tail: KeepTail | None = None,
) -> list[ChatMessage]:
    """Drop the oldest turns until the prompt's ``size`` fits ``budget``.

    A leading system message is always kept; turns (a user message and what
    follows it) are dropped whole, oldest first; the newest turn is always kept.
    If it alone is too long, its first message keeps only its end when
    ``keep_tail`` can cut it, and is sent whole otherwise.

    Args:
        messages: The conversation, oldest first.
        budget: The largest prompt allowed, in ``size``'s unit.
        size: Measures a list of messages (tokens of the rendered prompt, or characters).
        keep_tail: Cuts a message's text to its last ``room`` units.

    Returns:
        The messages to send, oldest first.

    Raises:
        EngineError: With ``keep_tail``: the system prompt alone does not fit.
    """
    system, turns = split_turns(messages)

    def size_from(start: int) -> int:
        return size(system + flatten(turns[start:]))

    if not turns:
        if keep_tail is not None and size_from(0) > budget:
            raise system_prompt_too_long()
        return list(messages)
    if size_from(0) <= budget:
        return list(messages)
    # The size only falls as the start grows: binary search the first start that fits.
    low, high = 1, len(turns) - 1
    while low < high:
        middle = (low + high) // 2
        if size_from(middle) <= budget:
            high = middle
        else:
            low = middle + 1
    if low < len(turns) and size_from(low) <= budget:
        return system + flatten(turns[low:])
    if keep_tail is None:
        return system + turns[-1]
    return _truncate_turn(system, turns[-1], budget, size, keep_tail)


def _truncate_turn(
    system: list[ChatMessage],
    turn: list[ChatMessage],
    budget: int,
    size: Size,
    keep_tail: KeepTail,
) -> list[ChatMessage]:
    first = turn[0]
    emptied = [{**first, "content": ""}, *turn[1:]]
    room = budget - size(system + emptied)
    if room <= 0:
        raise system_prompt_too_long()
    tail = keep_tail(str(first.get("content", "")), room)
    return system + [{**first, "content": tail.lstrip()}, *turn[1:]]


class TrimmedWindow:
    """Fits the context, dropping turns in steps so the prefix (and cache) stays put.

    After a trim it remembers the first message it kept. While the caller's
    history still has that message at the same place, later calls start there
    too, instead of dropping one more turn every time (which would change the
    prompt's start, and so re-evaluate all of it, each turn).
    """

    def __init__(self, prompt_size: PromptSize, keep_tail: KeepTail) -> None:
        self._prompt_size = prompt_size
        self._keep_tail = keep_tail
        self._anchor: tuple[int, ChatMessage] | None = None

    def fit(
        self, messages: Sequence[ChatMessage], budget: int, tools: ToolSpecs
    ) -> list[ChatMessage]:
        """``messages`` from the remembered start on, trimmed again when they outgrow ``budget``."""
        system, rest = list(messages[:1]), list(messages[1:])
        if not system or system[0].get("role") != "system":
            system, rest = [], list(messages)
        start = 0
        if self._anchor is not None:
            index, anchor = self._anchor
            if index < len(rest) and rest[index] == anchor:
                start = index
        candidate = system + rest[start:]
        if self._prompt_size(candidate, tools) <= budget:
            return candidate
        fitted = fit_messages(
            candidate,
            int(budget * TRIM_TARGET),
            lambda kept: self._prompt_size(kept, tools),
            self._keep_tail,
        )
        kept = fitted[len(system) :]
        first_kept = start + (len(rest) - start - len(kept))
        if kept and first_kept < len(rest) and rest[first_kept] == kept[0]:
            self._anchor = (first_kept, kept[0])
        else:
            self._anchor = None  # the newest turn was cut: no stable prefix to keep
        return fitted

    def forget(self) -> None:
        """Start from the whole conversation again (the cache was cleared)."""
        self._anchor = None


def system_prompt_too_long() -> EngineError:
    return EngineError(
        "The system prompt is longer than the model's context window allows.",
        hint="shorten the system prompt or raise the LLM context size",
    )


def split_turns(
    messages: Sequence[ChatMessage],
) -> tuple[list[ChatMessage], list[list[ChatMessage]]]:
    """Leading system message, then turns that each start at a user message."""
    system: list[ChatMessage] = []
    rest = list(messages)
    if rest and rest[0].get("role") == "system":
        system, rest = rest[:1], rest[1:]
    turns: list[list[ChatMessage]] = []
    for message in rest:
        if message.get("role") == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return system, turns


def flatten(turns: Sequence[Sequence[ChatMessage]]) -> list[ChatMessage]:
    return [message for turn in turns for message in turn]
