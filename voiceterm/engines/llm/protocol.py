"""What the pipeline needs from an LLM backend: :class:`ChatEngine`, and capabilities.

``voiceterm.pipeline.respond.ChatNode`` depends on these protocols only, never
on a backend's class. A backend implements :class:`ChatEngine`; the capabilities
are optional. The pipeline finds them with :func:`speculates`,
:func:`warms_up`, :func:`reads_ahead` and :func:`chat_template_source`, by their members, so that a
wrapper forwarding attributes with ``__getattr__`` keeps them (``isinstance`` on
the runtime-checkable protocols misses those from Python 3.12 on):

- :class:`Speculates`: samples the reply's first words during the end-of-speech
  wait, and starts the real reply with them;
- :class:`WarmsUp`: reads a prompt into a cache ahead of time (the words the
  user is still saying, at a pause);
- :class:`ReadsAhead`: also reads the conversation ahead after an answer, as the
  next turn will fit it;
- :class:`HasChatTemplate`: says which chat template renders the prompt, which
  picks how tools are offered (``voiceterm.tools.intent.choose_strategy``).

``voiceterm.engines.llm.LlamaEngine`` has all of them; the OpenAI-compatible
server backend (``voiceterm.engines.llm.server``) has :class:`WarmsUp` only.

This module imports no ML library.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

from voiceterm.engines.llm.messages import ChatMessage, ToolSpecs

if TYPE_CHECKING:
    from voiceterm.engines.llm.words_end import TextProbe


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """A tool to run: its name, arguments, and the id of the call (if the model gave one)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None


ReplyPiece = str | ToolRequest
"""What a reply streams: text to say, or a tool the model asks for."""


@runtime_checkable
class ChatEngine(Protocol):
    """An LLM backend the pipeline can talk to.

    Attributes:
        n_ctx: The context window in tokens (the node keeps its history within a
            few times this; the backend does the exact fitting).
    """

    n_ctx: int

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: ToolSpecs = None,
    ) -> AsyncGenerator[ReplyPiece, None]:
        """Stream the assistant's reply to ``messages``, piece by piece, on the event loop.

        One call at a time per engine. To stop early, cancel the consuming task
        (a barge-in) or close the iterator: either returns only once the model
        (or the connection) is free for the next call.

        Args:
            messages: The conversation, oldest first (a leading system message,
                then user/assistant/tool messages), ending with the user's turn.
                The backend fits it into its context window itself; the list is
                read before the first piece, so the caller may change it after.
            max_tokens: Cap on the reply's tokens (``None``: the backend's default).
            grammar: GBNF text constraining the output; a backend without
                grammars may raise ``EngineError`` when one is given.
            tools: OpenAI-style tool specs (``{"type": "function", ...}``).

        Yields:
            Text pieces as they come, and a :class:`ToolRequest` for each tool
            call the backend receives as such (a model that writes its calls as
            text hands out that text: ``voiceterm.tools.intent`` reads it).

        Raises:
            EngineError: The reply failed (with a hint for the user).
        """
        ...


@dataclass(frozen=True, slots=True)
class SampledStart:
    """What :meth:`Speculates.speculate` sampled.

    Attributes:
        pieces: The reply's first text pieces (empty when cancelled before the first).
        whole_reply: The reply ended within them, so they are all of it.
    """

    pieces: tuple[str, ...] = ()
    whole_reply: bool = False


@runtime_checkable
class Speculates(Protocol):
    """Can sample a reply's start ahead of time, and start the real reply with it."""

    def speculate(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        *,
        tokens: int = 12,
        max_tokens: int | None = None,
        enough: Callable[[str], bool] | None = None,
    ) -> SampledStart:
        """Sample the first ``tokens`` of the reply to ``messages`` (until ``enough(text)``).

        If the next ``stream_chat`` gets the same conversation (and no grammar),
        its reply starts with these pieces at once and continues after them.
        ``max_tokens`` must be the one that call will use.
        """
        ...


@runtime_checkable
class WarmsUp(Protocol):
    """Can read a prompt ahead of time, so a reply to it starts sooner."""

    def warm_up(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None) -> float:
        """Evaluate ``messages`` now (the system prompt, or the words so far); seconds spent."""
        ...


@runtime_checkable
class ReadsAhead(Protocol):
    """Can evaluate the conversation after an answer, so the next reply starts sooner."""

    def read_ahead(
        self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None
    ) -> float:
        """Evaluate the conversation so far as the next turn will fit it; seconds spent."""
        ...


@runtime_checkable
class HasChatTemplate(Protocol):
    """Says which chat template renders its prompts."""

    @property
    def chat_template_source(self) -> str:
        """Where the template came from (``"gguf"``, ``"chatml-fallback"``, ...)."""
        ...


def speculates(engine: object) -> TypeGuard[Speculates]:
    """Whether ``engine`` can sample a reply's start ahead of time."""
    return callable(getattr(engine, "speculate", None))


def warms_up(engine: object) -> TypeGuard[WarmsUp]:
    """Whether ``engine`` can read a prompt ahead of time."""
    return callable(getattr(engine, "warm_up", None))


def reads_ahead(engine: object) -> TypeGuard[ReadsAhead]:
    """Whether ``engine`` can evaluate the conversation ahead after an answer."""
    return callable(getattr(engine, "read_ahead", None))


def chat_template_source(engine: object) -> str | None:
    """Where ``engine``'s chat template came from; ``None`` if it does not say."""
    source = getattr(engine, "chat_template_source", None)
    return source if isinstance(source, str) else None


class ReadsWordsEnd(Protocol):
    """Says how likely the user's message ends after ``words`` (the learned end of turn)."""

    def words_end_probability(self, words: str) -> float | None:
        """P(end of message) after ``words``; ``None`` when it cannot say now."""
        ...


class ProbesWordsEnd(ReadsWordsEnd, Protocol):
    """Reads P(end of message) through a probe on its whole next-token distribution."""

    def use_words_end_probe(self, probe: TextProbe) -> None:
        """Read the probe's score from now on, instead of the end token's probability."""
        ...


class AsksWordsEnd(ReadsWordsEnd, Protocol):
    """A server that reads P(end of message) only once asked (one request per pause)."""

    @property
    def words_end_available(self) -> bool:
        """Whether the server can say it (its logprobs name the end-of-message token)."""
        ...

    def ask_words_end(self) -> None:
        """Read it at each pause from now on."""
        ...


class ChecksServer(Protocol):
    """A backend on a server that may not answer: it can be asked whether it works."""

    @property
    def ready(self) -> bool:
        """Whether the last request (or check) was answered."""
        ...

    @property
    def last_error(self) -> str:
        """Why the last request failed, as the user is told."""
        ...

    @property
    def description(self) -> str: ...

    def check(self) -> object:
        """Ask the server (blocking); raise ``VoicetermError`` saying what is wrong."""
        ...


def reads_words_end(engine: object) -> TypeGuard[ReadsWordsEnd]:
    return callable(getattr(engine, "words_end_probability", None))


def probes_words_end(engine: object) -> TypeGuard[ProbesWordsEnd]:
    return reads_words_end(engine) and callable(getattr(engine, "use_words_end_probe", None))


def asks_words_end(engine: object) -> TypeGuard[AsksWordsEnd]:
    return reads_words_end(engine) and callable(getattr(engine, "ask_words_end", None))


def checks_server(engine: object) -> TypeGuard[ChecksServer]:
    return callable(getattr(engine, "check", None)) and isinstance(
        getattr(engine, "ready", None), bool
    )


class LabelsRequests(Protocol):
    """A backend behind a server: its requests show in the timeline while waited for."""

    @property
    def request_label(self) -> str:
        """What the timeline shows for a request (where it went)."""
        ...


def labels_requests(engine: object) -> TypeGuard[LabelsRequests]:
    return isinstance(getattr(engine, "request_label", None), str)
