"""Nodes: conversation memory, committed history, trimming, LLM formatting, generation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.events import (
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentSpeechSent,
    AudioLevel,
    ToolCall,
    ToolResult,
    UserStartedSpeaking,
    UserTranscriptionReceived,
)
from voiceterm.nodes import (
    ConversationContext,
    Node,
    ReasoningNode,
    approx_tokens,
    committed_events,
)
from voiceterm.testing import FakeLLMClient, RouteHarness


def user(text: str) -> UserTranscriptionReceived:
    return UserTranscriptionReceived(content=text)


def agent(text: str) -> AgentResponse:
    return AgentResponse(content=text)


class ScriptedNode(ReasoningNode):
    """Answers from a fake LLM, word by word."""

    def __init__(self, client: FakeLLMClient, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.log: list[str] = []

    async def process_context(self, context: ConversationContext) -> AsyncIterator[Any]:
        self.log.append("start")
        try:
            async for chunk in self.client.generate_stream(self.format_for_llm(context.events)):
                yield AgentResponse(content=chunk.text)
        except asyncio.CancelledError:
            self.log.append("cancelled")
            raise
        except GeneratorExit:
            self.log.append("closed")
            raise
        finally:
            self.log.append("finally")


def contents(events: list[Any]) -> list[tuple[str, str]]:
    return [(type(e).__name__, getattr(e, "content", "")) for e in events]


# --- memory ------------------------------------------------------------------------------


def test_node_id_defaults_to_the_class_name() -> None:
    assert Node().id == "Node"
    assert ReasoningNode(node_id="brain").id == "brain"


def test_add_event_merges_consecutive_chunks_and_keeps_what_matters() -> None:
    node = ReasoningNode()
    node.add_event(Message("stt", user("what time")))
    node.add_event(user("is it"))  # two utterances with no answer between: one request
    node.add_event(AudioLevel())  # not part of the conversation
    node.add_event(agent("It is "))
    node.add_event(Message("llm", agent("noon.")))
    speech = AgentSpeechSent(content="It is ")
    node.add_event(speech)
    node.add_event(speech)  # the same event twice is remembered once
    node.add_event(AgentSpeechSent(content="noon."))
    assert contents(node.conversation_events) == [
        ("UserTranscriptionReceived", "what time is it"),
        ("AgentResponse", "It is noon."),
        ("AgentSpeechSent", "It is noon."),
    ]


def test_an_answer_heard_while_it_is_still_generated_stays_one_message() -> None:
    # The first piece plays (AgentSpeechSent) before the model has finished.
    node = ReasoningNode(system_prompt="Be brief.")
    node.add_event(user("Tell me about the moon."))
    node.add_event(agent("The moon is"))
    node.add_event(AgentSpeechSent(content="The moon is "))
    node.add_event(agent(" far away."))
    node.add_event(AgentSpeechSent(content="far away. "))
    committed = ConversationContext(node.conversation_events).get_committed_events()
    assert node.format_for_llm(committed)[-1] == {
        "role": "assistant",
        "content": "The moon is far away.",
    }


def test_interruption_is_recorded_once_per_turn() -> None:
    node = ReasoningNode()
    node.add_event(user("tell me a story"))
    node.on_interrupt_generate(Message("vad", UserStartedSpeaking()))
    node.add_event(AgentInterrupted(reason="user_speech"))
    assert [type(e) for e in node.conversation_events] == [
        UserTranscriptionReceived,
        AgentInterrupted,
    ]
    node.clear_context()
    assert node.conversation_events == []


async def test_each_generation_starts_a_new_agent_message() -> None:
    node = ScriptedNode(FakeLLMClient(["Hi", " there."]))
    node.add_event(user("hello"))
    assert [e async for e in node.generate()][-1] == AgentGenerationComplete(
        total_length=9, chunk_count=2
    )
    node.add_event(agent("Extra."))  # after a finished generation: still the same message
    async for _ in node.generate():
        pass
    assert contents(node.conversation_events) == [
        ("UserTranscriptionReceived", "hello"),
        ("AgentResponse", "Hi there.Extra."),
        ("AgentResponse", "Hi there."),
    ]


# --- committed history ----------------------------------------------------------------------


def test_committed_events_cut_an_interrupted_answer_to_what_was_spoken() -> None:
    events = [
        user("tell me a story"),
        agent("Once upon a time there was a dragon who"),
        AgentSpeechSent(content="Once upon a time"),
        AgentInterrupted(),
        user("a shorter one"),
        agent("A cat sat."),
        AgentSpeechSent(content="A cat sat."),
    ]
    context = ConversationContext(events=events)
    assert contents(context.get_committed_events()) == [
        ("UserTranscriptionReceived", "tell me a story"),
        ("AgentResponse", "Once upon a time"),
        ("UserTranscriptionReceived", "a shorter one"),
        ("AgentResponse", "A cat sat."),
    ]
    # Already committed history stays as it is.
    assert committed_events(context.get_committed_events()) == context.get_committed_events()


def test_an_answer_cut_off_before_any_sound_is_forgotten() -> None:
    events = [user("hi"), agent("Hello, how"), AgentInterrupted(), user("bye")]
    assert contents(committed_events(events)) == [
        ("UserTranscriptionReceived", "hi"),
        ("UserTranscriptionReceived", "bye"),
    ]


def test_tool_events_stay_in_committed_history() -> None:
    call = ToolCall(tool_name="clock", tool_args={})
    result = ToolResult(tool_name="clock", result="12:00", tool_call_id=call.tool_call_id)
    events = [user("time?"), call, agent("Let me check."), result, agent("It is noon.")]
    assert committed_events(events) == events


# --- trimming -------------------------------------------------------------------------------


def test_trimming_keeps_the_newest_turns() -> None:
    node = ReasoningNode(max_context_length=2)
    for n in range(5):
        node.add_event(user(f"question {n}"))
        node.add_event(agent(f"answer {n}"))
    node.trim_context()
    assert contents(node.conversation_events) == [
        ("UserTranscriptionReceived", "question 3"),
        ("AgentResponse", "answer 3"),
        ("UserTranscriptionReceived", "question 4"),
        ("AgentResponse", "answer 4"),
    ]


def test_trimming_by_token_budget_drops_whole_old_turns() -> None:
    long_answer = "word " * 40  # about 50 tokens
    node = ReasoningNode(system_prompt="Be brief.", max_context_tokens=120)
    for n in range(6):
        node.add_event(user(f"question {n}"))
        node.add_event(agent(long_answer))
    node.trim_context()
    kept = [e.content for e in node.conversation_events if isinstance(e, UserTranscriptionReceived)]
    assert kept == ["question 4", "question 5"]
    budget_used = sum(approx_tokens(getattr(e, "content", "")) for e in node.conversation_events)
    assert budget_used + approx_tokens("Be brief.") <= 120


def test_the_newest_turn_is_kept_even_when_it_alone_is_over_budget() -> None:
    node = ReasoningNode(max_context_tokens=10)
    node.add_event(user("short"))
    node.add_event(user("x " * 100))
    node.add_event(user("y " * 100))
    node.trim_context()
    assert len(node.conversation_events) == 1  # the joined request


def test_memory_stays_bounded_over_a_long_session_without_generating() -> None:
    node = ReasoningNode(max_context_length=3)
    for n in range(1000):
        node.add_event(user(f"q{n}"))
        node.add_event(agent(f"a{n}"))
    assert len(node.conversation_events) <= 2 * 4


def test_approx_tokens_counts_at_least_one_per_word() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("a b c d e") == 5
    assert approx_tokens("x" * 400) == 100


# --- formatting for the LLM -------------------------------------------------------------------


def test_format_for_llm_gives_roles_tool_notes_and_joins_same_roles() -> None:
    node = ReasoningNode(system_prompt="You are helpful.")
    call = ToolCall(tool_name="calculator", tool_args={"expression": "2+2"})
    events = [
        user("what is 2+2"),
        call,
        ToolResult(tool_name="calculator", result="4", tool_call_id=call.tool_call_id),
        agent("It is 4."),
        ToolResult(tool_name="clock", error="no clock"),
    ]
    assert node.format_for_llm(events) == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "what is 2+2"},
        {
            "role": "system",
            "content": "(called tool calculator with {'expression': '2+2'})\n"
            "(tool calculator returned: 4)",
        },
        {"role": "assistant", "content": "It is 4."},
        {"role": "system", "content": "(tool clock failed: no clock)"},
    ]


def test_format_for_llm_never_merges_into_the_system_prompt_and_merges_without_one() -> None:
    tool_note = ToolResult(tool_name="clock", result="noon")
    with_prompt = ReasoningNode(system_prompt="Rules.").format_for_llm([tool_note])
    assert with_prompt == [
        {"role": "system", "content": "Rules."},
        {"role": "system", "content": "(tool clock returned: noon)"},
    ]
    # AgentResponse chunks from two generations in a row: one assistant message.
    without_prompt = ReasoningNode().format_for_llm([user("a"), agent("b"), agent("c")])
    assert without_prompt == [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b\nc"},
    ]


def test_format_for_llm_sends_what_was_heard_of_an_interrupted_answer() -> None:
    node = ReasoningNode()
    events = [
        user("story"),
        agent("Once upon a time, far away"),
        AgentSpeechSent(content="Once upon a time,"),
        AgentInterrupted(),
        user("stop"),
    ]
    assert node.format_for_llm(events) == [
        {"role": "user", "content": "story"},
        {"role": "assistant", "content": "Once upon a time,"},
        {"role": "user", "content": "stop"},
    ]


def test_latest_user_transcript() -> None:
    assert ConversationContext().get_latest_user_transcript_message() is None
    context = ConversationContext(events=[user("first"), agent("ok"), user("second")])
    assert context.get_latest_user_transcript_message() == "second"


# --- generation ---------------------------------------------------------------------------------


async def test_generate_remembers_the_trigger_streams_and_ends_with_totals() -> None:
    client = FakeLLMClient("It is sunny today.")
    node = ScriptedNode(client, system_prompt="Weather bot.")
    items = [item async for item in node.generate(Message("stt", user("weather?")))]
    assert [e.content for e in items if isinstance(e, AgentResponse)] == [
        "It",
        " is",
        " sunny",
        " today.",
    ]
    assert items[-1] == AgentGenerationComplete(total_length=18, chunk_count=4)
    assert node.chunk_counter == 4
    assert client.calls == [
        [{"role": "system", "content": "Weather bot."}, {"role": "user", "content": "weather?"}]
    ]
    assert contents(node.conversation_events) == [
        ("UserTranscriptionReceived", "weather?"),
        ("AgentResponse", "It is sunny today."),
    ]


async def test_generate_does_not_add_a_second_completion_marker_and_can_omit_it() -> None:
    class OwnMarker(ReasoningNode):
        async def process_context(self, context: ConversationContext) -> AsyncIterator[Any]:
            yield agent("done")
            yield AgentGenerationComplete(total_length=4, chunk_count=self.chunk_counter)

    items = [item async for item in OwnMarker().generate()]
    assert items == [agent("done"), AgentGenerationComplete(total_length=4, chunk_count=1)]

    quiet = ScriptedNode(FakeLLMClient("ok"))
    quiet.emit_completion = False
    assert [item async for item in quiet.generate()] == [agent("ok")]


async def test_generate_remembers_tool_events() -> None:
    call = ToolCall(tool_name="clock")

    class Caller(ReasoningNode):
        async def process_context(self, context: ConversationContext) -> AsyncIterator[Any]:
            if any(isinstance(e, ToolResult) for e in context.events):
                yield agent("It is noon.")
            else:
                yield call
                yield agent("Let me check.")

    node = Caller()
    async for _ in node.generate(user("time?")):
        pass
    async for _ in node.generate(ToolResult(tool_name="clock", tool_call_id=call.tool_call_id)):
        pass
    assert [type(e).__name__ for e in node.conversation_events] == [
        "UserTranscriptionReceived",
        "ToolCall",
        "AgentResponse",
        "ToolResult",
        "AgentResponse",
    ]


async def test_cancelled_generation_marks_the_turn_and_cancels_process_context() -> None:
    client = FakeLLMClient("one two three four five six", delay=0.001)
    node = ScriptedNode(client)
    bridge = Bridge(node)
    (
        bridge.on(UserTranscriptionReceived)
        .interrupt_on(UserStartedSpeaking, handler=node.on_interrupt_generate)
        .stream(node.generate)
        .broadcast()
    )
    async with RouteHarness(bridge) as harness:
        await harness.send(user("count"))
        await harness.wait_for(AgentResponse, count=2)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
    assert node.log == ["start", "cancelled", "finally"]
    assert AgentInterrupted in [type(e) for e in node.conversation_events]
    assert harness.events(AgentGenerationComplete) == []


async def test_cancelled_while_downstream_still_cancels_process_context_at_once() -> None:
    node = ScriptedNode(FakeLLMClient("one two three"))
    hold = asyncio.Event()

    async def slow_consumer(message: Message) -> Message:
        await hold.wait()
        return message

    bridge = Bridge(node)
    (
        bridge.on(UserTranscriptionReceived)
        .interrupt_on(UserStartedSpeaking)
        .stream(node.generate)
        .map(slow_consumer)
        .broadcast()
    )
    async with RouteHarness(bridge) as harness:
        await harness.send(user("count"))
        for _ in range(5):
            await asyncio.sleep(0)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
        # process_context saw the cancellation before the route took a new trigger.
        assert node.log == ["start", "cancelled", "finally"]


async def test_closing_generate_early_closes_process_context() -> None:
    node = ScriptedNode(FakeLLMClient("one two three"))
    stream = node.generate(user("count"))
    assert isinstance(await stream.__anext__(), AgentResponse)
    await stream.aclose()
    assert node.log == ["start", "closed", "finally"]
