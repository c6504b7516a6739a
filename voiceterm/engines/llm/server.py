"""The LLM stage on an OpenAI-compatible server: llama-server, Ollama, vLLM, LM Studio.

:class:`ChatServerEngine` implements :class:`~voiceterm.engines.llm.protocol.ChatEngine`
and :class:`~voiceterm.engines.llm.protocol.WarmsUp` (plus ``model_name``,
``last_stats``, ``reset`` and ``close``, as ``LlamaEngine``), so answers stream into
the same sentence and speech stages. It has no speculation or read-ahead: the
server keeps its own prompt cache (llama-server's ``cache_prompt``, vLLM's prefix
caching), so a turn that extends the last one only reads the new words there too.
``warm_up`` (called at a pause in the user's speech) has the server read the words
so far, so the answer only reads what changed.

How it talks to the server, and why:

- ``stream_chat`` awaits the official ``openai`` SDK's async client on the event
  loop that consumes the answer (:mod:`.server_reply`): no thread of its own. A
  barge-in cancels that task (or closes the stream), which closes the HTTP
  connection at once, whether the server is sending tokens or still reading the
  prompt, and returns once it is closed.
- tool calls the server sends come out as
  :class:`~voiceterm.engines.llm.protocol.ToolRequest` pieces.
- the blocking calls (:meth:`ChatServerEngine.check`, ``warm_up``) use the SDK's
  sync client in the caller's thread (:mod:`.server_http`).
- :meth:`ChatServerEngine.check` asks the server for its models (``GET /models``)
  before the first turn: the app reports a server that is down, a key that is
  refused or a model the server does not have, and retries until it works.

``openai`` is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from voiceterm.engines.llm.messages import (
    ChatMessage,
    characters,
    fit_messages,
    reply_budget,
)
from voiceterm.engines.llm.protocol import ReplyPiece
from voiceterm.engines.llm.server_http import (
    ServerAddress,
    ServerClients,
    explain,
    refuses_tools,
)
from voiceterm.engines.llm.server_models import ServerModels, ask_tool_template, choose_model
from voiceterm.engines.llm.server_reply import chat_request, prompt_request, reply_pieces
from voiceterm.engines.llm.server_words_end import ServerWordsEnd
from voiceterm.engines.llm.stats import GenerationStats
from voiceterm.errors import EngineError

log = logging.getLogger(__name__)

# A rough token count for trimming the history to llm.context_tokens: the server's
# tokenizer is not at hand. Four characters a token is right for English text.
CHARS_PER_TOKEN = 4


class ChatServerEngine:
    """Streaming chat with an OpenAI-compatible server, cancellable within one piece.

    Nothing connects in the constructor: a server that is not running yet is found
    by :meth:`check` (the app reports it and retries) or by the first answer.

    Args:
        url: The API's base URL, ending in ``/v1`` (``http://127.0.0.1:8080/v1``).
        model: The server's name for the model; ``None`` takes the first one it lists.
        api_key_env: The name of the environment variable that holds the API key
            (the key itself never sits in a config file); ``None`` sends none.
        n_ctx: The server's context window in tokens (the history is trimmed to it).
        max_tokens: Default cap on tokens per answer.
        temperature: Sampling temperature.
        connect_timeout_s: How long to wait for the server to accept a connection.
        timeout_s: How long to wait for the first piece, and then for each next one.
        words_end: At each pause, also ask how likely the user's message ends after
            the words so far (one more request: for the learned end of turn only).
    """

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        api_key_env: str | None = None,
        n_ctx: int = 2048,
        max_tokens: int = 96,
        temperature: float = 0.3,
        connect_timeout_s: float = 3.0,
        timeout_s: float = 60.0,
        words_end: bool = False,
    ) -> None:
        self.address = ServerAddress(url.rstrip("/"), api_key_env, connect_timeout_s, timeout_s)
        """Where the server is and how to reach it."""
        self.model = model
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.ready = False
        """Whether the last :meth:`check` (or answer) found the server working."""
        self.last_close_seconds: float | None = None
        """How long closing the connection took, for the latest answer closed early."""
        self.tool_template: str | None = None
        self.last_error = ""
        """Why the last :meth:`check` failed (with its hint)."""
        self._stats = GenerationStats()
        self._clients = ServerClients(self.address)
        self._tools_refused = False
        self._words_end = ServerWordsEnd(wanted=words_end)

    # --- facts ------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model's name on the server (``"server default"`` before it is known)."""
        return self.model or "server default"

    @property
    def description(self) -> str:
        """One line for the status bar: the model and where it runs."""
        # llama-cpp-python's server names a model by its file's path: the name will do.
        return f"{self.model_name.rsplit('/', 1)[-1]} at {self.address.url}"

    @property
    def request_label(self) -> str:
        """What the timeline shows for a request: where it went."""
        return f"request to {self.address.url} ({self.model_name})"

    @property
    def chat_template_source(self) -> str | None:
        """The template the server renders tools with, if it says (for the tool strategy).

        ``None`` (unknown, or the server refused tools once) keeps the rule-based tools.
        """
        return None if self._tools_refused else self.tool_template

    @property
    def last_stats(self) -> GenerationStats:
        """A copy of the statistics of the last (or running) call."""
        return replace(self._stats)

    # --- checking the server -------------------------------------------------------------

    def check(self) -> ServerModels:
        """Ask the server which models it has; pick ``model`` (or its first one).

        Blocks: call it from a worker thread.

        Returns:
            The models found and the one chosen.

        Raises:
            EngineError: No server answers at the URL, it refused the key, it does
                not have the model asked for, or it failed; the message says which.
        """
        try:
            client = self._clients.blocking()
            try:
                names = tuple(str(model.id) for model in client.models.list().data)
            except Exception as error:
                raise self._explained(error, answered=False) from None
            address = self.address
            found = ServerModels(
                names,
                choose_model(address.url, self.model, names),
                ask_tool_template(client, address.url, address.connect_timeout_s),
            )
        except EngineError as error:
            self.ready = False
            self.last_error = str(error)
            raise
        self.model = found.chosen
        self.tool_template = found.tool_template
        self.ready = True
        self._clients.prepare()
        return found

    def _explained(self, error: BaseException, *, answered: bool) -> EngineError:
        explained = explain(error, self.address, self.model_name, answered=answered)
        if explained.reachable is not None:
            self.ready = explained.reachable
        return explained.error

    # --- answering -------------------------------------------------------------------------

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[ReplyPiece, None]:
        """Stream the reply from the server: its text as sent, then its tool calls.

        As :meth:`ChatEngine.stream_chat <voiceterm.engines.llm.protocol.ChatEngine.stream_chat>`;
        a ``grammar`` is an error (the OpenAI API takes none), and ``tool_choice``
        is OpenAI's ("auto" when omitted; a ``{"type": "function", ...}`` mapping
        makes the model call that one).

        Raises:
            EngineError: The server is not there, refused the request, or stopped
                mid-answer (the pieces before that were handed out).
        """
        if grammar is not None:
            raise EngineError(
                "A grammar needs the in-process model (llm.backend = 'llama_cpp').",
                hint="OpenAI-compatible servers take no GBNF grammar",
            )
        stats = GenerationStats(started_at=time.monotonic())
        self._stats = stats
        budget, fitted = self._fit(messages, max_tokens)
        stats.messages_dropped = len(messages) - len(fitted)
        send_tools = list(tools) if tools and not self._tools_refused else None
        try:
            async with contextlib.aclosing(
                self._answer(fitted, budget, send_tools, tool_choice, stats)
            ) as pieces:
                async for piece in pieces:
                    if stats.first_token_at is None:
                        stats.first_token_at = time.monotonic()
                    stats.tokens_generated += 1
                    yield piece
            stats.stop_reason = stats.stop_reason or "stop"
        except (asyncio.CancelledError, GeneratorExit):
            stats.stop_reason = stats.stop_reason or "cancelled"
            raise
        finally:
            stats.finished_at = time.monotonic()

    async def _answer(
        self,
        messages: list[ChatMessage],
        budget: int,
        tools: list[Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
        stats: GenerationStats,
    ) -> AsyncGenerator[ReplyPiece, None]:
        """One request's pieces; without tools again if the server refuses them."""
        answered = False
        try:
            client = self._clients.for_this_loop()
            request = chat_request(
                self.model or "default", messages, budget, self.temperature, tools, tool_choice
            )
            async with contextlib.aclosing(
                reply_pieces(client, request, stats, self._took_to_close)
            ) as pieces:
                async for piece in pieces:
                    answered = True
                    yield piece
            self.ready = True
        except Exception as error:
            if tools is None or answered or not refuses_tools(error):
                raise self._explained(error, answered=answered) from None
            # This server or model takes no tool specs: answer without them now, and
            # from now on the rule-based tools are used.
            log.info(
                "llm: %s refused tool specs (%s); using the rule-based tools",
                self.address.url,
                error,
            )
            self._tools_refused = True
            async with contextlib.aclosing(
                self._answer(messages, budget, None, None, stats)
            ) as pieces:
                async for piece in pieces:
                    yield piece

    def _took_to_close(self, seconds: float) -> None:
        self.last_close_seconds = seconds

    def _fit(
        self, messages: Sequence[ChatMessage], max_tokens: int | None
    ) -> tuple[int, list[ChatMessage]]:
        """The reply's token budget, and the history trimmed to leave room for it.

        The words read at a pause must be the prompt the answer sends, or the cache misses.
        """
        budget = reply_budget(max_tokens, self.max_tokens, self.n_ctx)
        return budget, fit_messages(messages, (self.n_ctx - budget) * CHARS_PER_TOKEN, characters)

    def warm_up(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None) -> float:
        """Have the server read ``messages`` now (the words so far, at a pause); seconds spent.

        Blocks: call it from a worker thread. A one-token request: the server keeps
        the prompt's KV cache (llama-server's ``cache_prompt``; llama-cpp-python's
        server keeps its last prompt anyway), and the answer that follows with the
        same words only reads what differs. Failures are left for the answer to report.
        """
        started = time.monotonic()
        if not self.ready:
            return 0.0
        _budget, fitted = self._fit(messages, max_tokens)
        try:
            client = self._clients.blocking()
            template = self.tool_template
            if template is not None and self.words_end_available:
                base = self.address.url.removesuffix("/v1")
                self._words_end.read(
                    client,
                    base,
                    self.model or "default",
                    template,
                    fitted,
                    timeout_s=self.address.connect_timeout_s,
                )
            client.chat.completions.create(**prompt_request(self.model, fitted, self.temperature))
        except Exception as error:  # the answer itself says what is wrong
            log.debug("llm: warming the server up failed: %s", error)
        return time.monotonic() - started

    # --- P(end of the user's message), for the learned end of turn ---------------------

    def ask_words_end(self) -> None:
        """From now on each pause also asks P(end of message) (for the learned end of turn)."""
        self._words_end.ask()

    @property
    def words_end_available(self) -> bool:
        """Whether it was asked for and this server can say (:mod:`.server_words_end`)."""
        return self._words_end.available(self.tool_template)

    def words_end_probability(self, words: str) -> float | None:
        """P(end of the user's message) after ``words``, if the latest pause read them."""
        return self._words_end.probability(words)

    # --- the rest of the engine's shape ------------------------------------------------

    def reset(self) -> None:
        """Nothing to forget here: the server keeps (and matches) its own prompt cache."""

    def close(self) -> None:
        """Close the connections (the async client's on its loop, if that still runs)."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the connections, on the loop the answers streamed on (before it ends)."""
        await self._clients.aclose()

    def __enter__(self) -> ChatServerEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ChatServerEngine:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
