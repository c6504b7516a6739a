"""``[llm]`` settings for an OpenAI-compatible server, and what the backend says on failure.

The backend against a real server: tests/integration/test_chat_server.py.
"""

from __future__ import annotations

import pytest

from voiceterm.cli import build_parser, config_from_args
from voiceterm.config import Config, check_config
from voiceterm.engines.llm import ChatEngine
from voiceterm.engines.llm.messages import characters, fit_messages, reply_budget
from voiceterm.engines.llm.protocol import reads_ahead, speculates, warms_up
from voiceterm.engines.llm.server import ChatServerEngine
from voiceterm.engines.llm.server_http import explain_status
from voiceterm.errors import ConfigError


def test_server_settings_are_flags_and_the_key_is_only_named() -> None:
    args = build_parser().parse_args(
        [
            *("--llm-backend", "openai"),
            *("--llm-url", "http://127.0.0.1:11434/v1"),
            *("--llm-model", "llama3.2"),
            *("--llm-api-key-env", "MY_SERVER_KEY"),
            *("--llm-timeout-s", "12.5"),
        ]
    )
    llm = config_from_args(args).llm
    assert (llm.backend, llm.url, llm.model) == ("openai", "http://127.0.0.1:11434/v1", "llama3.2")
    assert llm.api_key_env == "MY_SERVER_KEY" and llm.timeout_s == 12.5
    check_config(config_from_args(args))


def test_the_default_backend_runs_in_process() -> None:
    assert Config().llm.backend == "llama_cpp"


@pytest.mark.parametrize(
    ("backend", "url", "says"),
    [
        ("ollama", "http://127.0.0.1:8080/v1", "llm.backend must be llama_cpp or openai"),
        ("openai", "127.0.0.1:8080", "must be an http:// or https:// address"),
    ],
)
def test_server_settings_that_cannot_work_are_named(backend: str, url: str, says: str) -> None:
    config = Config()
    config.llm.backend, config.llm.url = backend, url
    with pytest.raises(ConfigError, match=says):
        check_config(config)


@pytest.mark.parametrize(
    ("status", "said", "says", "hint"),
    [
        (500, "CUDA out of memory", "failed while answering (500)", "server's own log"),
        (503, "", "failed while answering (503)", "server's own log"),
        (404, "model 'llama9' not found", "has no model named 'llama9'", "voiceterm models"),
        (401, "invalid key", "refused the API key (401)", "llm.api_key_env"),
        (400, "bad", "refused the request (400)", "llm.model"),
    ],
)
def test_each_http_failure_is_explained(status: int, said: str, says: str, hint: str) -> None:
    where = "The LLM server at http://127.0.0.1:8080/v1"
    error = explain_status(where, status, said, "llama9", None)
    assert says in error.message and said in error.message
    assert hint in error.hint


def test_the_history_keeps_the_system_prompt_and_drops_the_oldest_turns() -> None:
    system = {"role": "system", "content": "Be brief."}
    turns = [
        {"role": "user", "content": "a" * 100},
        {"role": "assistant", "content": "b" * 100},
        {"role": "user", "content": "c" * 100},
        {"role": "assistant", "content": "d" * 100},
        {"role": "user", "content": "e" * 100},
    ]
    assert fit_messages([system, *turns], 10_000, characters) == [system, *turns]
    assert fit_messages([system, *turns], 320, characters) == [system, *turns[2:]]
    # Counted in characters, nothing can be cut to fit: the question stays whole.
    assert fit_messages([system, *turns], 50, characters) == [system, turns[-1]]


def test_the_reply_keeps_its_room_but_never_more_than_half_the_window() -> None:
    assert reply_budget(None, 96, 2048) == 96
    assert reply_budget(200, 96, 2048) == 200
    assert reply_budget(4000, 96, 2048) == 1024
    assert reply_budget(0, 0, 1) == 1


def test_a_warm_up_without_a_server_costs_nothing_and_raises_nothing() -> None:
    engine = ChatServerEngine("http://127.0.0.1:9/v1")
    assert engine.warm_up([{"role": "user", "content": "Hello"}]) == 0.0


def test_the_server_backend_is_a_chat_engine_that_only_warms_up() -> None:
    engine = ChatServerEngine("http://127.0.0.1:9/v1")
    try:
        # What the reasoning node will ask of it: the answer, and the words read at a
        # pause; never a sampled start or a read-ahead after an answer.
        assert isinstance(engine, ChatEngine)
        assert warms_up(engine)
        assert not speculates(engine) and not reads_ahead(engine)
    finally:
        engine.close()
