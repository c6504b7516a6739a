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

- the official ``openai`` SDK streams chat completions (Server-Sent Events parsed
  by the library), on the SDK's async client in one event loop of its own (a
  daemon thread). ``stream_chat`` is a plain generator run in a worker thread, like
  ``LlamaEngine``'s, and hands out the pieces that loop receives.
- a barge-in (the ``cancel`` event) cancels the request's task in that loop, which
  closes the HTTP connection at once, whether the server is sending tokens or
  still reading the prompt (a blocked synchronous read could not be woken: closing
  a client from another thread leaves it waiting). llama-server and vLLM stop
  generating when their client goes away.
- the HTTP client ignores proxy settings from the environment (``trust_env`` off):
  the connection goes exactly where ``llm.url`` says, and nowhere else.
- every failure becomes an :class:`~voiceterm.errors.EngineError` that says what
  went wrong in a user's words: no server at the URL, a key refused (401), no such
  model or endpoint (404), the server's own error (5xx), a server that stopped
  mid-answer (the words so far were handed out: the answer ends there).
- :meth:`ChatServerEngine.check` asks the server for its models (``GET /models``)
  before the first turn: the app reports a server that is down, a key that is
  refused or a model the server does not have, and retries until it works.

``openai`` is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, replace
from typing import Any

from voiceterm.engines.llm.messages import ChatMessage
from voiceterm.engines.llm.stats import GenerationStats
from voiceterm.engines.llm.words_end import end_marker, server_end_probability
from voiceterm.errors import EngineError, ModelError

log = logging.getLogger(__name__)

# How often the generator looks at the cancel flag while it waits for the next
# piece: a barge-in reaches the HTTP connection at most this late.
CANCEL_POLL_S = 0.005
# How long a cancelled request may take to close its connection before the
# generator gives up waiting for it (it is closed in the background then).
CLOSE_WAIT_S = 2.0
# A rough token count for trimming the history to llm.context_tokens: the server's
# tokenizer is not at hand. Four characters a token is right for English text.
CHARS_PER_TOKEN = 4

START_HINT = (
    "start the server, e.g. `llama-server -m model.gguf --port 8080` or `ollama serve`, "
    "or set llm.url to where it runs"
)


@dataclass(frozen=True, slots=True)
class ServerModels:
    """What :meth:`ChatServerEngine.check` found on the server.

    Attributes:
        available: The model names the server lists.
        chosen: The model the answers will come from.
        tool_template: The chat template the server renders tools with, when it
            says (llama-server's ``/props``); ``None`` when unknown.
    """

    available: tuple[str, ...]
    chosen: str
    tool_template: str | None = None


@dataclass(frozen=True, slots=True)
class _End:
    """The request ended: ``error`` is what went wrong, if anything."""

    error: BaseException | None = None


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
        self.url = url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.ready = False
        """Whether the last :meth:`check` (or answer) found the server working."""
        self.last_close_seconds: float | None = None
        """From a cancel to the closed connection, for the latest cancelled answer."""
        self.tool_template: str | None = None
        self.last_error = ""
        """Why the last :meth:`check` failed (with its hint)."""
        self._stats = GenerationStats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._tools_refused = False
        self._wants_words_end = words_end
        self._words_end: tuple[str, float] | None = None
        self._no_logprobs = False
        self._marker_ids: dict[str, list[int]] = {}

    # --- facts ------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The model's name on the server (``"server default"`` before it is known)."""
        return self.model or "server default"

    @property
    def description(self) -> str:
        """One line for the status bar: the model and where it runs."""
        # llama-cpp-python's server names a model by its file's path: the name will do.
        return f"{self.model_name.rsplit('/', 1)[-1]} at {self.url}"

    @property
    def request_label(self) -> str:
        """What the timeline shows for a request: where it went."""
        return f"request to {self.url} ({self.model_name})"

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

    # --- the client and its loop -------------------------------------------------------

    def _client_loop(self) -> tuple[asyncio.AbstractEventLoop, Any]:
        """The event loop thread and the SDK's async client on it (made on first use)."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="voiceterm-llm-http", daemon=True
                )
                thread.start()
                self._client = asyncio.run_coroutine_threadsafe(self._make_client(), loop).result()
                self._loop, self._thread = loop, thread
            return self._loop, self._client

    async def _make_client(self) -> Any:
        try:
            import httpx2
            import openai
        except ImportError as error:
            raise ModelError(
                f"llm.backend = 'openai' needs the openai package, which cannot be imported "
                f"({error}).",
                hint="pip install openai",
            ) from None
        timeout = httpx2.Timeout(self.timeout_s, connect=self.connect_timeout_s)
        http = httpx2.AsyncClient(trust_env=False, timeout=timeout)
        return openai.AsyncOpenAI(
            base_url=self.url,
            api_key=self._api_key() or "none",  # the SDK wants one; servers without keys ignore it
            max_retries=0,  # a retry would answer late; the app says what failed instead
            http_client=http,
        )

    def _api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise EngineError(
                f"llm.api_key_env names ${self.api_key_env}, which is not set.",
                hint=f"export {self.api_key_env}=<your key> before starting voiceterm",
            )
        return key

    def _run(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        # The coroutine is made once the loop exists: one that is never run warns.
        loop, _client = self._client_loop()
        return asyncio.run_coroutine_threadsafe(make(), loop).result()

    # --- checking the server -------------------------------------------------------------

    def check(self) -> ServerModels:
        """Ask the server which models it has; pick ``model`` (or its first one).

        Returns:
            The models found and the one chosen.

        Raises:
            EngineError: No server answers at the URL, it refused the key, it does
                not have the model asked for, or it failed; the message says which.
        """
        try:
            found: ServerModels = self._run(self._check)
        except EngineError as error:
            self.ready = False
            self.last_error = str(error)
            raise
        self.model = found.chosen
        self.tool_template = found.tool_template
        self.ready = True
        return found

    async def _check(self) -> ServerModels:
        _loop, client = self._client_loop_here()
        try:
            page = await client.models.list()
            names = tuple(str(model.id) for model in page.data)
        except Exception as error:
            raise self._explain(error, answered=False) from None
        chosen = self._choose(names)
        return ServerModels(names, chosen, await self._tool_template(client))

    def _client_loop_here(self) -> tuple[asyncio.AbstractEventLoop, Any]:
        # Called on the client's own loop, where it was made.
        assert self._loop is not None
        return self._loop, self._client

    def _choose(self, names: tuple[str, ...]) -> str:
        if self.model is None:
            if not names:
                raise EngineError(
                    f"The LLM server at {self.url} lists no models.",
                    hint="load a model into the server, or set llm.model to its name",
                )
            return names[0]
        if not names or self.model in names or _same_ollama_model(self.model, names):
            return self.model
        raise EngineError(
            f"The LLM server at {self.url} has no model named {self.model!r}; "
            f"it has {_listed(names)}.",
            hint="set llm.model to one of those (or leave it out to use the first)",
        )

    async def _tool_template(self, client: Any) -> str | None:
        """llama-server tells its chat template at ``/props``; others say nothing."""
        base = self.url.removesuffix("/v1")
        try:
            response = await client._client.get(f"{base}/props", timeout=self.connect_timeout_s)
            if response.status_code != 200:
                return None
            template = response.json().get("chat_template")
        except Exception:  # not llama-server: unknown, so the rule-based tools are used
            return None
        return template if isinstance(template, str) else None

    # --- answering -------------------------------------------------------------------------

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        cancel: threading.Event,
        *,
        max_tokens: int | None = None,
        grammar: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
    ) -> Generator[str, None, None]:
        """Stream the assistant's reply to ``messages`` from the server, piece by piece.

        Args:
            messages: The conversation, oldest first, ending with the user's turn.
            cancel: Set it (from any thread) to stop; the request is cancelled and
                its connection closed within :data:`CANCEL_POLL_S`.
            max_tokens: Cap on generated tokens (default: the engine's).
            grammar: Not supported by the OpenAI API (an error if given).
            tools: OpenAI tool specs; a call the model makes comes out as
                ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``, the
                markup ``voiceterm.tools.intent.ToolCallStreamFilter`` reads.
            tool_choice: OpenAI's ``tool_choice`` ("auto" when omitted; a
                ``{"type": "function", ...}`` mapping makes the model call that one).

        Yields:
            Text pieces as the server sends them.

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
        loop, _client = self._client_loop()
        pieces: queue.SimpleQueue[str | _End] = queue.SimpleQueue()
        closed = threading.Event()
        task = asyncio.run_coroutine_threadsafe(
            self._stream(fitted, budget, send_tools, tool_choice, pieces.put, closed), loop
        )
        cancelled_at: float | None = None
        try:
            while True:
                try:
                    item = pieces.get(timeout=CANCEL_POLL_S)
                except queue.Empty:
                    if cancel.is_set():
                        break
                    continue
                if cancel.is_set():  # arrived while we were being cancelled: drop it
                    break
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    stats.stop_reason = stats.stop_reason or "stop"
                    return
                if stats.first_token_at is None:
                    stats.first_token_at = time.monotonic()
                stats.tokens_generated += 1
                yield item
        finally:
            if not closed.is_set():
                cancelled_at = time.monotonic()
                task.cancel()  # the loop cancels the request: its connection closes
                if closed.wait(CLOSE_WAIT_S):
                    self.last_close_seconds = time.monotonic() - cancelled_at
                if not stats.stop_reason:
                    stats.stop_reason = "cancelled"
            stats.finished_at = time.monotonic()

    async def _stream(
        self,
        messages: list[ChatMessage],
        max_tokens: int,
        tools: list[Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
        put: Any,
        closed: threading.Event,
    ) -> None:
        """Run one streaming request on the client's loop; hand pieces to ``put``."""
        answered = False
        try:
            async for piece in self._pieces(messages, max_tokens, tools, tool_choice):
                answered = True
                put(piece)
            self.ready = True
            put(_End())
        except asyncio.CancelledError:
            pass  # a barge-in: the connection is closed by leaving the ``async with``
        except Exception as error:
            if tools is not None and not answered and _refuses_tools(error):
                # This server or model takes no tool specs: answer without them now,
                # and from now on the rule-based tools are used.
                log.info(
                    "llm: %s refused tool specs (%s); using the rule-based tools", self.url, error
                )
                self._tools_refused = True
                await self._stream(messages, max_tokens, None, None, put, closed)
                return
            put(_End(self._explain(error, answered=answered)))
        finally:
            closed.set()

    async def _pieces(
        self,
        messages: list[ChatMessage],
        max_tokens: int,
        tools: list[Mapping[str, Any]] | None,
        tool_choice: str | Mapping[str, Any] | None,
    ) -> AsyncIterator[str]:
        _loop, client = self._client_loop_here()
        request: dict[str, Any] = {
            "model": self.model or "default",
            "messages": [dict(message) for message in messages],
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": True,
            # llama-server keeps the prompt's KV cache for the next request (the
            # next turn extends this one); other servers ignore the field.
            "extra_body": {"cache_prompt": True},
        }
        if tools:
            request["tools"] = tools
            if tool_choice is not None:
                request["tool_choice"] = tool_choice
        stats = self._stats
        calls: dict[int, dict[str, str]] = {}
        stream = await client.chat.completions.create(**request)
        async with contextlib.aclosing(_chunks(stream)) as chunks:
            async for chunk in chunks:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                delta = choice.delta
                if delta is not None and delta.content:
                    yield delta.content
                for call in (delta.tool_calls or []) if delta is not None else []:
                    held = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    held["id"] = call.id or held["id"]
                    if call.function is not None:
                        held["name"] = _grown(held["name"], call.function.name or "")
                        held["arguments"] += call.function.arguments or ""
                if choice.finish_reason:
                    stats.stop_reason = "length" if choice.finish_reason == "length" else "stop"
        for held in calls.values():
            yield _tool_call_markup(held)

    def _explain(self, error: BaseException, *, answered: bool) -> EngineError:
        """The user's sentence for what went wrong with a request."""
        import httpx2
        import openai

        where = f"The LLM server at {self.url}"
        if isinstance(error, EngineError):
            return error
        if isinstance(error, openai.APITimeoutError) or isinstance(error, httpx2.TimeoutException):
            self.ready = answered
            return EngineError(
                f"{where} sent nothing for {self.timeout_s:.0f} s"
                + ("; the answer was cut there." if answered else "."),
                hint="the server may be overloaded or the model too big for it; "
                "raise llm.timeout_s to wait longer",
            )
        if answered and isinstance(error, openai.APIConnectionError | httpx2.TransportError):
            self.ready = False
            return EngineError(
                f"{where} stopped in the middle of the answer; it was cut there.",
                hint="check the server (its log says why it stopped); voiceterm "
                "keeps the conversation and retries",
            )
        if isinstance(error, openai.APIConnectionError | httpx2.TransportError):
            self.ready = False
            return EngineError(f"{where} is not answering (no connection).", hint=START_HINT)
        if isinstance(error, openai.APIStatusError):
            return self._explain_status(where, error.status_code, _server_message(error))
        return EngineError(f"{where} failed: {error}.", hint="check the server's log")

    def _explain_status(self, where: str, status: int, said: str) -> EngineError:
        quoted = f" (it said: {said})" if said else ""
        if status in (401, 403):
            if self.api_key_env:
                hint = f"check the key in ${self.api_key_env}"
            else:
                hint = "set llm.api_key_env to the name of the environment variable holding the key"
            return EngineError(f"{where} refused the API key ({status}){quoted}.", hint=hint)
        if status == 404 and "model" in said.lower():
            return EngineError(
                f"{where} has no model named {self.model_name!r}{quoted}.",
                hint="`voiceterm models` lists the server's models; set llm.model to one",
            )
        if status == 404:
            return EngineError(
                f"{where} has no chat completions endpoint (404){quoted}.",
                hint="llm.url should be the API's base, usually ending in /v1 "
                "(http://127.0.0.1:8080/v1)",
            )
        if status >= 500:
            return EngineError(
                f"{where} failed while answering ({status}){quoted}.",
                hint="the server's own log says why",
            )
        return EngineError(
            f"{where} refused the request ({status}){quoted}.",
            hint="check llm.model and the server's log",
        )

    def _fit(
        self, messages: Sequence[ChatMessage], max_tokens: int | None
    ) -> tuple[int, list[ChatMessage]]:
        """The reply's token budget, and the history trimmed to leave room for it.

        One place for both the answer and :meth:`warm_up`: the words read at a
        pause must be the prompt the answer sends, or the server's cache misses.
        """
        budget = max(1, min(max_tokens or self.max_tokens, self.n_ctx // 2))
        return budget, fit_history(messages, (self.n_ctx - budget) * CHARS_PER_TOKEN)

    def warm_up(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None) -> float:
        """Have the server read ``messages`` now (the words so far, at a pause).

        A one-token request: the server keeps the prompt's KV cache (llama-server's
        ``cache_prompt``; llama-cpp-python's server keeps its last prompt anyway), and
        the answer that follows with the same words only reads what differs. Any
        failure is left for the answer to report.

        Returns:
            Seconds spent.
        """
        started = time.monotonic()
        if not self.ready:
            return 0.0
        _budget, fitted = self._fit(messages, max_tokens)

        async def read() -> None:
            _loop, client = self._client_loop_here()
            if self.words_end_available:
                try:
                    await self._read_words_end(client, fitted)
                except Exception as error:
                    log.info("llm: no P(end of message) from %s: %s", self.url, error)
                    self._no_logprobs = True
            await client.chat.completions.create(
                model=self.model or "default",
                messages=[dict(message) for message in fitted],
                max_tokens=1,
                temperature=self.temperature,
                extra_body={"cache_prompt": True},
            )

        try:
            self._run(read)
        except Exception as error:  # the answer itself says what is wrong
            log.debug("llm: warming the server up failed: %s", error)
        return time.monotonic() - started

    # --- P(end of the user's message), for the learned end of turn ---------------------

    def ask_words_end(self) -> None:
        """From now on, each pause also asks how likely the user's message ends there.

        The learned end of turn calls it when its weights read P(end of message).
        """
        self._wants_words_end = True

    @property
    def words_end_available(self) -> bool:
        """Whether this server can say how likely the user's message ends at a pause.

        Only when asked for (``words_end``, :meth:`ask_words_end`). It needs the chat
        template (llama-server tells it at ``/props``) and the top ``logprobs`` of a
        completion; without them the hand-set rule decides.
        """
        return self._wants_words_end and self.tool_template is not None and not self._no_logprobs

    def words_end_probability(self, words: str) -> float | None:
        """P(end of the user's message) after ``words``, if the latest pause read them."""
        latest = self._words_end
        return latest[1] if latest is not None and latest[0] == words else None

    async def _read_words_end(self, client: Any, messages: Sequence[ChatMessage]) -> None:
        """One token of ``/v1/completions`` after the user's words; keep P(end marker)."""
        words = messages[-1]["content"] if messages else None
        template = self.tool_template
        if template is None or messages[-1]["role"] != "user" or not isinstance(words, str):
            return
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        formatter: Any = Jinja2ChatFormatter(
            template=template, eos_token="", bos_token="", add_generation_prompt=True
        )
        text = str(formatter(messages=[dict(m) for m in messages]).prompt)
        at = text.rfind(words)
        marker = end_marker(text[at + len(words) :]) if at >= 0 and words.strip() else None
        if marker is None:
            return
        request: dict[str, Any] = {
            "model": self.model or "default",
            "prompt": text[: at + len(words)],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": 20,
            "extra_body": {"cache_prompt": True, "n_probs": 20},
        }
        choice = (await client.completions.create(**request)).choices[0]
        logprobs = _as_dict(choice.logprobs)
        probability = server_end_probability(logprobs, marker)
        if probability is None and not choice.text and choice.finish_reason == "stop":
            # The marker was the model's first choice, and this server (llama-cpp-python's)
            # stops before listing it: ask again with the marker forbidden, for its number.
            ids = await self._token_ids(client, marker)
            if ids:
                request["logit_bias"] = {str(i): -100 for i in ids}
                again = await client.completions.create(**request)
                probability = server_end_probability(_as_dict(again.choices[0].logprobs), marker)
        if probability is None:
            log.info("llm: %s gives no logprobs; the hand-set end-of-turn rule decides", self.url)
            self._no_logprobs = True
            return
        self._words_end = (words, probability)

    async def _token_ids(self, client: Any, text: str) -> list[int]:
        """The server's token ids of a special marker (llama-server, llama-cpp-python)."""
        if text in self._marker_ids:
            return self._marker_ids[text]
        base = self.url.removesuffix("/v1")
        ids: list[int] = []
        for url, body, key in (
            (f"{base}/tokenize", {"content": text, "parse_special": True}, "tokens"),
            (f"{base}/extras/tokenize", {"input": text}, "tokens"),
        ):
            try:
                response = await client._client.post(
                    url,
                    json=body,
                    headers=dict(client.auth_headers),
                    timeout=self.connect_timeout_s,
                )
                if response.status_code == 200:
                    found = response.json().get(key)
                    if isinstance(found, list) and len(found) == 1:
                        ids = [int(found[0])]
                        break
            except Exception:  # not this server's endpoint
                continue
        self._marker_ids[text] = ids
        return ids

    # --- the rest of the engine's shape ------------------------------------------------

    def reset(self) -> None:
        """Nothing to forget here: the server keeps (and matches) its own prompt cache."""

    def close(self) -> None:
        """Close the connections and stop the client's loop."""
        with self._lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = None
        if loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(CLOSE_WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(CLOSE_WAIT_S)
        if not loop.is_running():
            loop.close()

    def __enter__(self) -> ChatServerEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _as_dict(value: Any) -> dict[str, Any]:
    """An SDK object (or ``None``) as the plain JSON it came from."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    dumped = value.model_dump() if hasattr(value, "model_dump") else {}
    return dumped if isinstance(dumped, dict) else {}


async def _chunks(stream: Any) -> AsyncGenerator[Any, None]:
    """The SDK's stream as an async generator that closes the response when closed."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.close()


def fit_history(messages: Sequence[ChatMessage], budget_chars: int) -> list[ChatMessage]:
    """Drop the oldest turns (never the system prompt, never the newest turn) to fit.

    The server's tokenizer is not at hand, so the budget is in characters.
    """
    system = [m for m in messages[:1] if m.get("role") == "system"]
    rest = list(messages[len(system) :])

    def size(kept: Sequence[ChatMessage]) -> int:
        return sum(len(str(m.get("content") or "")) for m in kept)

    starts = [i for i, m in enumerate(rest) if m.get("role") == "user"] or [0]
    for start in starts:
        if size(system) + size(rest[start:]) <= budget_chars:
            return system + rest[start:]
    return system + rest[starts[-1] :]


def _grown(held: str, more: str) -> str:
    """A tool's name streamed in parts ("calc", "ulator") or whole every time."""
    if not more or more == held:
        return held  # llama-cpp-python repeats the whole name in every chunk
    return more if more.startswith(held) and held else held + more


def _same_ollama_model(name: str, names: tuple[str, ...]) -> bool:
    # Ollama lists "llama3.2:latest" and answers to "llama3.2".
    return ":" not in name and f"{name}:latest" in names


def _listed(names: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _server_message(error: Any) -> str:
    """The server's own words from an error response (OpenAI's ``error.message`` or raw)."""
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            body = inner.get("message") or inner.get("detail") or body
        else:
            body = inner
    text = body if isinstance(body, str) else str(getattr(error, "message", "") or "")
    return " ".join(text.split())[:200]


def _refuses_tools(error: BaseException) -> bool:
    import openai

    if not isinstance(error, openai.APIStatusError) or error.status_code not in (
        400,
        422,
        500,
        501,
    ):
        return False
    return "tool" in _server_message(error).lower()


def _tool_call_markup(held: Mapping[str, str]) -> str:
    try:
        arguments: Any = json.loads(held["arguments"] or "{}")
    except json.JSONDecodeError:
        arguments = {}
    call = {"name": held["name"], "arguments": arguments}
    if held["id"]:
        call["id"] = held["id"]
    return f"<tool_call>{json.dumps(call)}</tool_call>"
