"""``voiceterm models``: each stage's model, where it came from, its size, and
whether it loads (all are loaded in parallel, as at start-up); then the chat
models other tools already downloaded, which ``--llm-model NAME`` picks. With
``llm.backend = "openai"`` the LLM line checks the server instead and lists its
models (``*`` marks the one answers come from)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from voiceterm.config import Config
from voiceterm.discovery import discover
from voiceterm.errors import VoicetermError
from voiceterm.modelstore import STAGES, ResolvedModel, Stage, resolve_model


def _load(stage: Stage, model: ResolvedModel, config: Config) -> Any:
    if stage == "stt":
        from voiceterm.engines.stt import WhisperTranscriber

        return WhisperTranscriber(model.path)
    if stage == "llm":
        from voiceterm.engines.llm import LlamaEngine

        return LlamaEngine(model.path, n_ctx=config.llm.context_tokens)
    if stage == "turn":
        from voiceterm.engines.smart_turn import SmartTurn

        return SmartTurn(model.path)
    from voiceterm.engines.tts import PiperSynthesizer

    return PiperSynthesizer(model.path, warm_up=False)


def _check_server(config: Config) -> tuple[str, bool]:
    """The LLM server: whether it answers, and the models it has."""
    from voiceterm.engines.llm.server import ChatServerEngine

    llm = config.llm
    head = f"LLM  OpenAI-compatible server at {llm.url}"
    with ChatServerEngine(
        llm.url,
        model=llm.model,
        api_key_env=llm.api_key_env,
        connect_timeout_s=llm.connect_timeout_s,
        timeout_s=llm.timeout_s,
    ) as engine:
        try:
            found = engine.check()
        except VoicetermError as error:
            hint = f"\n     hint: {error.hint}" if error.hint else ""
            return f"{head}\n     does NOT work: {error.message}{hint}", False
    lines = [f"{head} answers; its models:"]
    lines += [f"     {'*' if name == found.chosen else ' '} {name}" for name in found.available]
    if found.chosen not in found.available:
        lines.append(f"     * {found.chosen} (asked for by llm.model)")
    return "\n".join(lines), True


def _check(stage: Stage, config: Config) -> tuple[str, bool]:
    if stage == "llm" and config.llm.backend == "openai":
        return _check_server(config)
    explicit = {
        "stt": config.stt.model,
        "llm": config.llm.model,
        "tts": config.tts.model,
        "turn": config.turn.model,
    }[stage]
    try:
        model = resolve_model(stage, explicit)
    except VoicetermError as error:
        return f"{stage.upper():4} missing   {error}", False
    size_mb = model.size_bytes / 1e6
    head = (
        f"{stage.upper():4} {model.description}\n     {model.path}\n"
        f"     from {model.origin}, {size_mb:.0f} MB"
    )
    started = time.monotonic()
    try:
        _load(stage, model, config)
    except VoicetermError as error:
        return f"{head}, does NOT load: {error}", False
    return f"{head}, loads in {time.monotonic() - started:.1f} s", True


def print_models(config: Config) -> int:
    """Print the report; exit status 0 when every model loads, else 2."""
    # Every loader imports numpy: once here, so that they do not race to initialise it
    # (as in the agent; seen here when the LLM failed at once and the other three raced).
    import numpy  # noqa: F401

    with ThreadPoolExecutor(max_workers=len(STAGES)) as pool:
        results = list(pool.map(lambda stage: _check(stage, config), STAGES))
    for text, _ok in results:
        print(text)
    print(f"\n{discover().describe()}")
    ok = all(ok for _text, ok in results)
    if not ok:
        print("voiceterm: a model is missing or does not load (see above).", file=sys.stderr)
    return 0 if ok else 2
