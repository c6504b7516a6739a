"""Reaching an OpenAI-compatible server: the SDK's clients, and failures in a user's words.

Two clients of the official ``openai`` SDK, one per way of calling:

- answers stream on the event loop that asks for them, through the async client
  (made on that loop: its connections belong to it);
- the blocking calls (:meth:`~voiceterm.engines.llm.server.ChatServerEngine.check`,
  the warm-up at a pause) run in the caller's thread, through the sync client.

Both ignore proxy settings from the environment (``trust_env`` off): the
connection goes exactly where ``llm.url`` says, and nowhere else. Neither retries:
a retry would answer late, and the app says what failed instead.

Every failure becomes an :class:`~voiceterm.errors.EngineError` that says what went
wrong: no server at the URL, a key refused (401), no such model or endpoint (404),
the server's own error (5xx), a server that stopped mid-answer.

``openai`` and ``httpx2`` are imported when a client is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voiceterm.errors import EngineError, ModelError

START_HINT = (
    "start the server, e.g. `llama-server -m model.gguf --port 8080` or `ollama serve`, "
    "or set llm.url to where it runs"
)


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where the server is and how to reach it.

    Attributes:
        url: The API's base URL, ending in ``/v1``.
        api_key_env: The environment variable holding the API key (``None``: no key).
        connect_timeout_s: How long to wait for the server to accept a connection.
        timeout_s: How long to wait for the first piece, and then for each next one.
    """

    url: str
    api_key_env: str | None
    connect_timeout_s: float
    timeout_s: float

    @property
    def where(self) -> str:
        """The start of every failure's sentence."""
        return f"The LLM server at {self.url}"

    def api_key(self) -> str | None:
        """The key from its environment variable (``None`` when none is asked for).

        Raises:
            EngineError: The variable is named but not set.
        """
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise EngineError(
                f"llm.api_key_env names ${self.api_key_env}, which is not set.",
                hint=f"export {self.api_key_env}=<your key> before starting voiceterm",
            )
        return key


def _import_sdk() -> tuple[Any, Any]:
    try:
        import httpx2
        import openai
    except ImportError as error:
        raise ModelError(
            f"llm.backend = 'openai' needs the openai package, which cannot be imported ({error}).",
            hint="pip install openai",
        ) from None
    return httpx2, openai


def async_client(address: ServerAddress) -> Any:
    """The SDK's async client; make it on the loop that will use it."""
    httpx2, openai = _import_sdk()
    timeout = httpx2.Timeout(address.timeout_s, connect=address.connect_timeout_s)
    return openai.AsyncOpenAI(
        base_url=address.url,
        api_key=address.api_key() or "none",  # the SDK wants one; keyless servers ignore it
        max_retries=0,
        http_client=httpx2.AsyncClient(trust_env=False, timeout=timeout),
    )


def sync_client(address: ServerAddress) -> Any:
    """The SDK's blocking client, for calls made from a worker thread."""
    httpx2, openai = _import_sdk()
    timeout = httpx2.Timeout(address.timeout_s, connect=address.connect_timeout_s)
    return openai.OpenAI(
        base_url=address.url,
        api_key=address.api_key() or "none",
        max_retries=0,
        http_client=httpx2.Client(trust_env=False, timeout=timeout),
    )


# How long closing the async client from another thread may take.
CLOSE_WAIT_S = 2.0


class ServerClients:
    """The two clients, made on first use: the blocking one, and one per event loop.

    Args:
        address: Where the server is.
    """

    def __init__(self, address: ServerAddress) -> None:
        self._address = address
        self._lock = threading.Lock()
        self._blocking: Any = None
        self._answering: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._spare: Any = None
        # Closes scheduled on the answering loop; held so none is collected mid-close.
        self._closing: set[asyncio.Task[None]] = set()

    def blocking(self) -> Any:
        """The sync client, for calls from worker threads."""
        with self._lock:
            if self._blocking is None:
                self._blocking = sync_client(self._address)
            return self._blocking

    def prepare(self) -> None:
        """Make an async client now, in this (worker) thread, for the first answer to take.

        Making one takes tens of milliseconds: not on the event loop, not in an answer.
        It opens no connection, so it belongs to no loop until an answer uses it.
        """
        with self._lock:
            if self._answering is None and self._spare is None:
                self._spare = async_client(self._address)

    def for_this_loop(self) -> Any:
        """The async client of the running loop (a client's connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._answering is None or self._answering[0] is not loop:
                made = self._spare if self._spare is not None else async_client(self._address)
                self._spare = None
                self._answering = (loop, made)
            return self._answering[1]

    async def aclose(self) -> None:
        """Close both, awaiting the async one if it belongs to the running loop."""
        with self._lock:
            answering = self._answering
            if answering is not None and answering[0] is asyncio.get_running_loop():
                self._answering = None
        if answering is not None and self._answering is None:
            await answering[1].close()
        self.close()

    def close(self) -> None:
        """Close both; the async one on its own loop, if that still runs."""
        with self._lock:
            blocking, answering = self._blocking, self._answering
            self._blocking = self._answering = self._spare = None  # a spare has no connection
        if blocking is not None:
            with contextlib.suppress(Exception):
                blocking.close()
        if answering is None:
            return
        loop, client = answering
        if loop.is_closed() or not loop.is_running():
            return  # its connections went with the loop
        with contextlib.suppress(RuntimeError):
            if _running_loop() is loop:
                task = loop.create_task(client.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
            else:
                asyncio.run_coroutine_threadsafe(client.close(), loop).result(CLOSE_WAIT_S)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(frozen=True, slots=True)
class Explained:
    """A failure in the user's words, and what it says about the server.

    Attributes:
        error: The sentence (with a hint) to report.
        reachable: Whether the server still answers (``None``: it says nothing about that).
    """

    error: EngineError
    reachable: bool | None = None


def explain(
    error: BaseException, address: ServerAddress, model_name: str, *, answered: bool
) -> Explained:
    """The user's sentence for what went wrong with a request.

    Args:
        error: What the SDK (or its HTTP client) raised.
        address: The server asked.
        model_name: The model asked for, named in a 404.
        answered: Some of the answer had come already (it is cut there).
    """
    import httpx2
    import openai

    where = address.where
    if isinstance(error, EngineError):
        return Explained(error)
    if isinstance(error, openai.APITimeoutError | httpx2.TimeoutException):
        said = f"{where} sent nothing for {address.timeout_s:.0f} s"
        return Explained(
            EngineError(
                said + ("; the answer was cut there." if answered else "."),
                hint="the server may be overloaded or the model too big for it; "
                "raise llm.timeout_s to wait longer",
            ),
            reachable=answered,
        )
    if isinstance(error, openai.APIConnectionError | httpx2.TransportError):
        if answered:
            cut = EngineError(
                f"{where} stopped in the middle of the answer; it was cut there.",
                hint="check the server (its log says why it stopped); voiceterm "
                "keeps the conversation and retries",
            )
            return Explained(cut, reachable=False)
        down = EngineError(f"{where} is not answering (no connection).", hint=START_HINT)
        return Explained(down, reachable=False)
    if isinstance(error, openai.APIStatusError):
        said = server_message(error)
        return Explained(
            explain_status(where, error.status_code, said, model_name, address.api_key_env)
        )
    return Explained(EngineError(f"{where} failed: {error}.", hint="check the server's log"))


def explain_status(
    where: str, status: int, said: str, model_name: str, api_key_env: str | None
) -> EngineError:
    """The sentence for an HTTP error status, quoting the server's own words."""
    quoted = f" (it said: {said})" if said else ""
    if status in (401, 403):
        if api_key_env:
            hint = f"check the key in ${api_key_env}"
        else:
            hint = "set llm.api_key_env to the name of the environment variable holding the key"
        return EngineError(f"{where} refused the API key ({status}){quoted}.", hint=hint)
    if status == 404 and "model" in said.lower():
        return EngineError(
            f"{where} has no model named {model_name!r}{quoted}.",
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


def server_message(error: Any) -> str:
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


def refuses_tools(error: BaseException) -> bool:
    """Whether the server turned a request down because it takes no tool specs."""
    import openai

    if not isinstance(error, openai.APIStatusError):
        return False
    return error.status_code in (400, 422, 500, 501) and "tool" in server_message(error).lower()


def as_dict(value: Any) -> dict[str, Any]:
    """An SDK object (or ``None``) as the plain JSON it came from."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    dumped = value.model_dump() if hasattr(value, "model_dump") else {}
    return dumped if isinstance(dumped, dict) else {}
