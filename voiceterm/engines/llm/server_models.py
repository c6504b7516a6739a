"""Which models an OpenAI-compatible server has, and which one answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voiceterm.errors import EngineError


@dataclass(frozen=True, slots=True)
class ServerModels:
    """What ``ChatServerEngine.check`` found on the server.

    Attributes:
        available: The model names the server lists.
        chosen: The model the answers will come from.
        tool_template: The chat template the server renders tools with, when it
            says (llama-server's ``/props``); ``None`` when unknown.
    """

    available: tuple[str, ...]
    chosen: str
    tool_template: str | None = None


def choose_model(url: str, wanted: str | None, names: tuple[str, ...]) -> str:
    """``wanted`` if the server has it (or lists nothing), else its first model.

    Raises:
        EngineError: It lists none, or not the one wanted.
    """
    if wanted is None:
        if not names:
            raise EngineError(
                f"The LLM server at {url} lists no models.",
                hint="load a model into the server, or set llm.model to its name",
            )
        return names[0]
    if not names or wanted in names or _same_ollama_model(wanted, names):
        return wanted
    raise EngineError(
        f"The LLM server at {url} has no model named {wanted!r}; it has {_listed(names)}.",
        hint="set llm.model to one of those (or leave it out to use the first)",
    )


def ask_tool_template(client: Any, url: str, timeout_s: float) -> str | None:
    """llama-server tells its chat template at ``/props``; others say nothing.

    ``client`` is the SDK's blocking client.
    """
    base = url.removesuffix("/v1")
    try:
        response = client._client.get(f"{base}/props", timeout=timeout_s)
        if response.status_code != 200:
            return None
        template = response.json().get("chat_template")
    except Exception:  # not llama-server: unknown, so the rule-based tools are used
        return None
    return template if isinstance(template, str) else None


def _same_ollama_model(name: str, names: tuple[str, ...]) -> bool:
    # Ollama lists "llama3.2:latest" and answers to "llama3.2".
    return ":" not in name and f"{name}:latest" in names


def _listed(names: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
