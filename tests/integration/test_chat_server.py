"""The LLM stage on an OpenAI-compatible server, against a real one on loopback.

The server is llama-cpp-python's own (``python -m llama_cpp.server``) serving the
embedded SmolLM2, started by a fixture on a free 127.0.0.1 port and stopped after
the tests. It demands an API key, so that a wrong key is a real 401. Tests that
kill or restart a server get one of their own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.llm_server import LocalChatServer, free_port, running_server
from tests.pipeline_fakes import scripted_agent, scripted_engines, until
from voiceterm.bus import Message
from voiceterm.cli import main
from voiceterm.config import Config
from voiceterm.engines.llm.protocol import ReplyPiece, ToolRequest
from voiceterm.engines.llm.server import ChatServerEngine
from voiceterm.errors import EngineError
from voiceterm.events import (
    AgentError,
    AgentResponse,
    AgentStoppedSpeaking,
    StageSpan,
    StageStatus,
)
from voiceterm.nodes import ConversationContext
from voiceterm.pipeline import server_watch
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.end_of_turn.learned import WEIGHTS_FILE
from voiceterm.pipeline.loading import load_llm_server
from voiceterm.pipeline.wiring import learned_turn
from voiceterm.tools import default_registry
from voiceterm.tools.intent import parse_tool_calls

pytestmark = [pytest.mark.models, pytest.mark.slow]

KEY_VARIABLE = "VOICETERM_TEST_LLM_KEY"
KEY = "test-key-not-secret"
QUESTION = [{"role": "user", "content": "Tell me about the moon."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalChatServer]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(log, api_key=KEY) as running:
        yield running


@pytest.fixture
async def engine(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ChatServerEngine]:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    # Closed on the test's loop, where its answers streamed.
    async with ChatServerEngine(server.url, api_key_env=KEY_VARIABLE, max_tokens=48) as made:
        await asyncio.to_thread(made.check)
        yield made


async def answer(engine: ChatServerEngine, **options: Any) -> list[ReplyPiece]:
    return [piece async for piece in engine.stream_chat(QUESTION, **options)]


async def test_the_answer_streams_in_pieces_from_the_server(engine: ChatServerEngine) -> None:
    pieces = await answer(engine)
    assert len(pieces) > 3, pieces
    assert all(isinstance(piece, str) for piece in pieces)  # no tools offered, none called
    assert "moon" in "".join(map(str, pieces)).lower()
    stats = engine.last_stats
    assert stats.tokens_generated == len(pieces)
    assert stats.time_to_first_token is not None
    assert stats.stop_reason in ("stop", "length")


async def test_the_server_lists_the_model_it_serves(engine: ChatServerEngine) -> None:
    found = engine.check()
    assert found.available and found.chosen == found.available[0]
    assert found.chosen.endswith(".gguf")  # llama-cpp-python names it by its file
    assert engine.description.startswith("SmolLM2-135M-Instruct")


async def test_a_barge_in_closes_the_stream_and_the_server_stops(
    engine: ChatServerEngine, server: LocalChatServer
) -> None:
    heard: list[ReplyPiece] = []
    disconnects_before = server.output().count("Disconnected from client")

    async def listen() -> None:
        async for piece in engine.stream_chat(QUESTION, max_tokens=200):
            heard.append(piece)
            if len(heard) == 3:
                task.cancel()  # a barge-in: the answer's task is cancelled

    task = asyncio.create_task(listen())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(heard) == 3  # nothing after the cancel
    assert engine.last_stats.stop_reason == "cancelled"
    assert engine.last_close_seconds is not None  # the connection was closed, not left
    deadline = time.monotonic() + 10
    while server.output().count("Disconnected from client") == disconnects_before:
        assert time.monotonic() < deadline, server.output()[-2000:]
        await asyncio.sleep(0.05)
    # The server is free again: the next answer comes whole.
    assert "".join(map(str, await answer(engine)))


async def test_a_cancel_before_the_first_token_closes_the_connection(
    engine: ChatServerEngine,
) -> None:
    heard: list[ReplyPiece] = []

    async def listen() -> None:
        async for piece in engine.stream_chat(QUESTION):
            heard.append(piece)

    task = asyncio.create_task(listen())
    await asyncio.sleep(0)  # the request is on its way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert heard == []
    assert engine.last_stats.stop_reason == "cancelled"


async def test_a_wrong_key_is_explained(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "not-the-key")
    async with ChatServerEngine(server.url, api_key_env=KEY_VARIABLE) as engine:
        with pytest.raises(EngineError, match=r"refused the API key \(401\)") as failed:
            engine.check()
        assert KEY_VARIABLE in failed.value.hint
        with pytest.raises(EngineError, match="refused the API key"):
            await answer(engine)


def test_a_key_variable_that_is_not_set_is_named(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    with ChatServerEngine(server.url, api_key_env=KEY_VARIABLE) as engine:
        with pytest.raises(EngineError, match=f"names \\${KEY_VARIABLE}, which is not set"):
            engine.check()


def test_a_model_the_server_does_not_have_is_named_with_the_ones_it_has(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    with ChatServerEngine(server.url, model="llama-70b", api_key_env=KEY_VARIABLE) as engine:
        with pytest.raises(EngineError, match="has no model named 'llama-70b'") as failed:
            engine.check()
        assert "SmolLM2-135M-Instruct" in failed.value.message
        assert not engine.ready


async def test_a_url_without_the_api_path_is_explained(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    base = server.url.removesuffix("/v1")
    async with ChatServerEngine(base + "/api", api_key_env=KEY_VARIABLE) as engine:
        with pytest.raises(EngineError, match=r"no chat completions endpoint \(404\)") as failed:
            await answer(engine)
        assert "/v1" in failed.value.hint


async def test_no_server_at_the_url_is_explained_with_a_hint() -> None:
    async with ChatServerEngine(f"http://127.0.0.1:{free_port()}/v1") as engine:
        with pytest.raises(EngineError, match="is not answering") as failed:
            engine.check()
        assert "llama-server" in failed.value.hint
        with pytest.raises(EngineError, match="is not answering"):
            await answer(engine)


async def test_a_tool_call_comes_out_as_a_request_not_as_text(tmp_path: Path) -> None:
    # llama-cpp-python's function-calling chat format makes any model call tools; the
    # tiny model only does when told which one (it answers "auto" in words).
    extra = ("--chat_format", "chatml-function-calling")
    with running_server(tmp_path / "server.log", extra=extra) as server:
        async with ChatServerEngine(server.url) as engine:
            engine.check()
            pieces = [
                piece
                async for piece in engine.stream_chat(
                    [{"role": "user", "content": "What is 17 times 23?"}],
                    max_tokens=120,
                    tools=default_registry().specs(),
                    tool_choice={"type": "function", "function": {"name": "calculator"}},
                )
            ]
    [call] = [piece for piece in pieces if isinstance(piece, ToolRequest)]
    assert call.name == "calculator"
    assert call.call_id
    assert not parse_tool_calls("".join(p for p in pieces if isinstance(p, str)))


# --- the whole agent --------------------------------------------------------------------


class _Seen:
    """What the bus carried, for a test that did not get where it should."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages

    def __str__(self) -> str:
        seen = []
        for message in self.messages[-40:]:
            event = message.event
            said = getattr(event, "error", "") or getattr(event, "detail", "")
            seen.append(f"{type(event).__name__}({said})")
        return "; saw " + ", ".join(seen)


def _statuses(messages: list[Message], state: str) -> list[StageStatus]:
    return [
        m.event
        for m in messages
        if isinstance(m.event, StageStatus) and m.event.stage == "llm" and m.event.state == state
    ]


def _history(agent: VoiceAgent) -> list[tuple[str, str]]:
    node = agent.nodes.chat
    assert node is not None
    messages = node.format_for_llm(
        ConversationContext(node.conversation_events).get_committed_events()
    )
    return [(m["role"], m["content"].strip()) for m in messages if m["role"] != "system"]


async def test_the_app_opens_without_the_server_says_so_and_answers_once_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_watch, "SERVER_RETRY_S", 0.2)
    port = free_port()
    config = Config()
    config.llm.backend, config.llm.url = "openai", f"http://127.0.0.1:{port}/v1"
    config.llm.temperature = 0.0  # sampled, the 135M model now and then replied nothing
    reported: list[tuple[str, str]] = []
    engine, _description = await asyncio.to_thread(
        load_llm_server, config, lambda _stage, state, detail: reported.append((state, detail))
    )
    assert reported[-1][0] == "failed"
    assert config.llm.url in reported[-1][1] and "retrying" in reported[-1][1]
    agent = scripted_agent(scripted_engines(llm=engine), config)
    messages: list[Message] = []
    agent.bus.tap(messages.append)
    await agent.start()
    try:
        await agent.submit_text("Tell me about the moon.")
        await until(lambda: [m for m in messages if isinstance(m.event, AgentError)])
        [error] = [m.event for m in messages if isinstance(m.event, AgentError)]
        assert error.source == "llm" and "is not answering" in error.error
        server = LocalChatServer(tmp_path / "server.log", port=port)
        ready_before = len(_statuses(messages, "ready"))
        await asyncio.to_thread(server.start)
        try:
            await until(lambda: len(_statuses(messages, "ready")) > ready_before, limit_s=30)
            await agent.submit_text("Tell me about the sun.")
            await until(
                lambda: any(isinstance(m.event, AgentStoppedSpeaking) for m in messages),
                limit_s=60,
                what=_Seen(messages),
            )
        finally:
            await asyncio.to_thread(server.stop)
    finally:
        await agent.stop()
        await engine.aclose()
    # The question asked while the server was down is kept, and asked with the next.
    assert _history(agent)[0] == ("user", "Tell me about the moon. Tell me about the sun.")
    assert _history(agent)[1][0] == "assistant" and _history(agent)[1][1]
    requests = [
        m.event
        for m in messages
        if isinstance(m.event, StageSpan) and m.event.content.startswith("request to")
    ]
    assert requests and config.llm.url in requests[-1].content  # shown in the timeline


async def test_a_server_killed_mid_answer_cuts_it_keeps_the_talk_and_comes_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_watch, "SERVER_RETRY_S", 0.2)
    server = LocalChatServer(tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    # Greedy: the 135M model sampled an empty reply to the follow-up now and then.
    engine = ChatServerEngine(server.url, max_tokens=200, temperature=0.0)
    await asyncio.to_thread(engine.check)
    config = Config()
    agent = scripted_agent(scripted_engines(llm=engine), config)
    messages: list[Message] = []
    agent.bus.tap(messages.append)
    await agent.start()
    try:
        await agent.submit_text("Tell me a long story about the moon.")
        await until(
            lambda: sum(isinstance(m.event, AgentResponse) for m in messages) >= 4, limit_s=60
        )
        await asyncio.to_thread(server.kill)
        await until(lambda: [m for m in messages if isinstance(m.event, AgentError)], limit_s=30)
        await until(lambda: _statuses(messages, "failed"), limit_s=30)
        await until(lambda: not agent.activity.busy, limit_s=30)
        ready_before = len(_statuses(messages, "ready"))  # the start-up's own
        await asyncio.to_thread(server.start)
        await until(lambda: len(_statuses(messages, "ready")) > ready_before, limit_s=30)
        await agent.submit_text("Tell me a long story about the sun.")
        await until(
            lambda: (
                len(agent.timeline.turns) == 2 and "playback_end" in agent.timeline.turns[1].marks
            ),
            limit_s=60,
        )
    finally:
        await agent.stop()
        await engine.aclose()
        await asyncio.to_thread(server.stop)
    [error] = [m.event for m in messages if isinstance(m.event, AgentError)]
    assert error.source == "llm" and "stopped in the middle of the answer" in error.error
    [down] = _statuses(messages, "failed")
    assert "is not answering" in down.detail
    cut, answered = agent.timeline.turns
    assert "llm_failed" in cut.marks and cut.errors
    said = cut.spoken_text.strip()
    assert said  # the words that came before the server died were spoken
    history = _history(agent)
    assert history[:3] == [
        ("user", "Tell me a long story about the moon."),
        ("assistant", said),
        ("user", "Tell me a long story about the sun."),
    ]
    assert answered.spoken_text.strip()


def test_voiceterm_models_checks_the_server_and_lists_its_models(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    flags = ["--llm-backend", "openai", "--llm-api-key-env", KEY_VARIABLE]
    assert main(["models", *flags, "--llm-url", server.url]) == 0
    out = capsys.readouterr().out
    assert f"LLM  OpenAI-compatible server at {server.url} answers; its models:" in out
    assert f"* {server.model}" in out
    down = f"http://127.0.0.1:{free_port()}/v1"
    assert main(["models", *flags, "--llm-url", down]) == 2
    out = capsys.readouterr().out
    assert f"does NOT work: The LLM server at {down} is not answering" in out
    assert "hint: start the server" in out


def gguf_chat_template(model: Path) -> str:
    """The chat template stored in the GGUF (what llama-server says at ``/props``)."""
    import llama_cpp

    vocab = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    try:
        return str(vocab.metadata["tokenizer.chat_template"])
    finally:
        vocab.close()


def test_the_server_says_how_likely_the_users_message_ends(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    with ChatServerEngine(server.url, api_key_env=KEY_VARIABLE, words_end=True) as engine:
        engine.check()
        # llama-cpp-python's server has no /props: the template comes from the same GGUF.
        assert not engine.words_end_available
        engine.tool_template = gguf_chat_template(server.model)
        assert engine.words_end_available
        system = {"role": "system", "content": Config().llm.system_prompt}
        said = {}
        for words in ("What is the capital of", "What is the capital of France?"):
            engine.warm_up([system, {"role": "user", "content": words}])
            said[words] = engine.words_end_probability(words)
        unfinished, finished = said.values()
        assert unfinished is not None and finished is not None, said
        assert finished > 10 * unfinished, said
        assert engine.words_end_probability("something else") is None
        assert engine.words_end_available


async def test_the_server_is_not_asked_for_it_unless_the_learned_end_of_turn_is(
    server: LocalChatServer, engine: ChatServerEngine
) -> None:
    engine.tool_template = gguf_chat_template(server.model)
    assert not engine.words_end_available
    engine.warm_up([{"role": "user", "content": "What is the capital of France?"}])
    assert engine.words_end_probability("What is the capital of France?") is None


def test_without_the_template_the_learned_end_of_turn_leaves_the_rule_to_decide(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Weights fitted on the plain P(<|im_end|>), which the server's logprobs give.
    plain = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8")) | {"words_signal": "end_token"}
    (tmp_path / "weights.json").write_text(json.dumps(plain), encoding="utf-8")
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    config = Config()
    config.turn.detector = "learned"
    config.turn.weights = str(tmp_path / "weights.json")
    config.llm.backend, config.llm.url = "openai", server.url
    config.llm.api_key_env = KEY_VARIABLE
    engine, _ = load_llm_server(config, lambda *_: None)
    try:
        assert learned_turn(config, engine, print) == (None, None)
        engine.tool_template = gguf_chat_template(server.model)
        weights, words_end = learned_turn(config, engine, print)
        assert weights is not None and words_end is not None
        assert engine.words_end_available  # asked for logprobs at every pause
    finally:
        engine.close()


def test_weights_fitted_on_the_words_probe_go_without_the_servers_probability(
    server: LocalChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe reads the whole next-token distribution; a server lists only its top tokens.
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    config = Config()
    config.turn.detector = "learned"
    config.llm.backend, config.llm.url = "openai", server.url
    config.llm.api_key_env = KEY_VARIABLE
    engine, _ = load_llm_server(config, lambda *_: None)
    try:
        engine.tool_template = gguf_chat_template(server.model)
        weights, words_end = learned_turn(config, engine, print)
        assert weights is not None and weights.words_signal == "probe"
        assert words_end is None
        assert not engine.words_end_available  # nor asked for logprobs at every pause
    finally:
        engine.close()
