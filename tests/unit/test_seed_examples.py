# The seed's classes and functions below are copied as written in
# shared/seed/streaming-responses.txt (only ``line.`` -> ``voiceterm.``), so they
# carry no type annotations and use attributes the seed never defines (llm_client,
# helper methods the tests fill in); mypy is told so for this file only.
# mypy: allow-untyped-defs, allow-untyped-calls, allow-incomplete-defs
# mypy: disable-error-code="attr-defined, override, assignment"
"""Every example section of the seed, as written there, on the real bus.

Each test runs the seed's own code with a fake streaming LLM client, filling in
only the helpers the seed leaves undefined (marked "filled in"), and checks what
a user would notice: the chunks, their order, the completion marker, an
interruption that really stops the answer, a tool call answered with a filler
first, a cached answer replayed identically, merged parallel streams.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from voiceterm.bridge import Bridge
from voiceterm.events import (
    AgentError,
    AgentGenerationComplete,
    AgentResponse,
    ToolCall,
    ToolResult,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionReceived,
)
from voiceterm.nodes import ReasoningNode
from voiceterm.patterns.cache import ResponseCache
from voiceterm.patterns.sentences import ends_with_sentence
from voiceterm.patterns.streams import merge_streams
from voiceterm.patterns.tooling import ToolRunner
from voiceterm.testing import FakeLLMClient, RouteHarness, word_chunks
from voiceterm.tools.registry import default_registry

logger = logging.getLogger("seed")


def texts(harness: RouteHarness) -> list[str]:
    return [e.content for e in harness.events(AgentResponse)]


def remember_transcripts(bridge: Bridge, node: ReasoningNode) -> None:
    """The seed's routes start on UserStoppedSpeaking; the transcript is remembered here."""
    bridge.on(UserTranscriptionReceived).map(node.add_event)


async def user_says(harness: RouteHarness, text: str) -> None:
    await harness.send(UserTranscriptionReceived(content=text), source="stt")
    await harness.settle()
    await harness.send(UserStoppedSpeaking(), source="vad")


# =============================================================================
# Basic Streaming Example (as written)
# =============================================================================


class StreamingChatNode(ReasoningNode):
    def __init__(self, system_prompt, llm_client):
        super().__init__(system_prompt=system_prompt)
        self.llm_client = llm_client

    async def process_context(self, context):
        # Format conversation for LLM
        messages = self.format_for_llm(context.events)

        # Stream response chunks
        async for chunk in self.llm_client.generate_stream(messages):
            if chunk.text:
                yield AgentResponse(content=chunk.text, chunk_type="text")


def route_basic(bridge, node):
    # Route streaming responses
    (
        bridge.on(UserStoppedSpeaking)
        .stream(node.generate)  # Processes each yielded chunk
        .broadcast()  # Sends each chunk immediately
    )


async def test_basic_streaming_sends_every_chunk_in_order_then_the_totals() -> None:
    reply = "Hello there! How can I help you today?"
    client = FakeLLMClient(reply, delay=0.001)
    node = StreamingChatNode("You are a helpful voice assistant.", client)
    bridge = Bridge(node)
    remember_transcripts(bridge, node)
    route_basic(bridge, node)
    async with RouteHarness(bridge) as harness:
        await user_says(harness, "Hi!")
        [done] = await harness.wait_for(AgentGenerationComplete)
        await user_says(harness, "And again?")
        await harness.wait_for(AgentGenerationComplete, count=2)
    assert texts(harness) == word_chunks(reply) * 2
    assert done == AgentGenerationComplete(total_length=len(reply), chunk_count=8)
    # The second turn's prompt holds the whole first exchange.
    assert client.calls[1] == [
        {"role": "system", "content": "You are a helpful voice assistant."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "And again?"},
    ]


# =============================================================================
# Chunked Processing with Validation (as written)
# =============================================================================


class ValidatedStreamingNode(ReasoningNode):
    async def process_context(self, context):
        accumulated_response = ""

        async for chunk in self.llm_client.generate_stream(context):
            # Validate each chunk
            if self.is_valid_chunk(chunk.text):
                accumulated_response += chunk.text

                # Yield validated chunk
                yield AgentResponse(content=chunk.text, chunk_type="text")
            else:
                # Handle invalid chunks
                logger.warning(f"Invalid chunk filtered: {chunk.text}")

        # Optionally yield completion marker
        yield AgentGenerationComplete(
            total_length=len(accumulated_response),
            chunk_count=self.chunk_counter,
        )

    def is_valid_chunk(self, text):
        # Filter inappropriate content, malformed text, etc.
        return text and len(text.strip()) > 0 and not self.contains_inappropriate_content(text)


class FilledValidatedStreamingNode(ValidatedStreamingNode):
    """Filled in: the LLM client and the content check the seed leaves undefined."""

    def __init__(self, llm_client):
        super().__init__()
        self.llm_client = llm_client

    def contains_inappropriate_content(self, text):
        return "darn" in text.lower()


async def test_validation_drops_bad_chunks_and_the_marker_counts_what_was_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FakeLLMClient(["Hello", "   ", " darn", " world", "", "."])
    node = FilledValidatedStreamingNode(client)
    bridge = Bridge(node)
    remember_transcripts(bridge, node)
    route_basic(bridge, node)
    with caplog.at_level(logging.WARNING, logger="seed"):
        async with RouteHarness(bridge) as harness:
            await user_says(harness, "Say hello")
            await harness.wait_for(AgentGenerationComplete)
            await harness.settle()
    assert texts(harness) == ["Hello", " world", "."]
    assert harness.events(AgentGenerationComplete) == [
        AgentGenerationComplete(total_length=len("Hello world."), chunk_count=3)
    ]
    assert caplog.text.count("Invalid chunk filtered") == 3


# =============================================================================
# Multi-Stage Streaming Pipeline (as written)
# =============================================================================


def clean_text(text):
    """Filled in: collapse runs of whitespace (keeping one leading space)."""
    return (" " if text[:1].isspace() else "") + " ".join(text.split())


def needs_punctuation(text):
    """Filled in: the word that ends this fake answer lacks its full stop."""
    return text.strip() == "now"


def add_punctuation(text):
    """Filled in."""
    return text + "."


def apply_style_guide(text):
    """Filled in: no slang."""
    return text.replace("gonna", "going to")


def is_appropriate_for_user(text):
    """Filled in."""
    return "darn" not in text


async def preprocess_chunks(message):
    """First stage: clean and format chunks."""
    chunk = message.event

    # Clean up chunk text
    cleaned_text = clean_text(chunk.content)

    # Add formatting
    if needs_punctuation(cleaned_text):
        cleaned_text = add_punctuation(cleaned_text)

    yield AgentResponse(content=cleaned_text, chunk_type="preprocessed")


async def postprocess_chunks(message):
    """Second stage: final processing and validation."""
    chunk = message.event

    # Apply final transformations
    final_text = apply_style_guide(chunk.content)

    # Validate before sending to user
    if is_appropriate_for_user(final_text):
        yield AgentResponse(content=final_text, chunk_type="final")


def route_multi_stage(bridge, node):
    # Multi-stage streaming pipeline
    (
        bridge.on(UserStoppedSpeaking)
        .stream(node.generate)  # Generate raw chunks
        .stream(preprocess_chunks)  # Clean chunks
        .stream(postprocess_chunks)  # Final processing
        .broadcast()  # Send to user
    )


async def test_multi_stage_pipeline_cleans_styles_and_filters_in_order() -> None:
    client = FakeLLMClient(["Hello", "   there", " gonna", " help", " you", " darn", " now"])
    node = StreamingChatNode("Be nice.", client)
    # The seed's stages read ``.content`` of everything generate() yields; voiceterm's
    # generate() ends with an AgentGenerationComplete, which has none: turn it off.
    node.emit_completion = False
    bridge = Bridge(node)
    remember_transcripts(bridge, node)
    route_multi_stage(bridge, node)
    async with RouteHarness(bridge) as harness:
        await user_says(harness, "Can you help?")
        await harness.wait_for(AgentResponse, count=6)
        await harness.settle()
    assert texts(harness) == ["Hello", " there", " going to", " help", " you", " now."]
    assert {e.chunk_type for e in harness.events(AgentResponse)} == {"final"}
    assert harness.events(AgentError) == []


# =============================================================================
# Buffered Streaming (as written)
# =============================================================================


class BufferedStreamingNode(ReasoningNode):
    def __init__(self, buffer_size=50):
        super().__init__()
        self.buffer_size = buffer_size

    async def process_context(self, context):
        buffer = ""

        async for chunk in self.llm_client.generate_stream(context):
            buffer += chunk.text

            # Send buffer when it reaches target size or at sentence boundaries
            if len(buffer) >= self.buffer_size or self.ends_with_sentence(buffer):
                yield AgentResponse(content=buffer, chunk_type="buffered")
                buffer = ""

        # Send any remaining content
        if buffer.strip():
            yield AgentResponse(content=buffer, chunk_type="final")

    def ends_with_sentence(self, text):
        return text.rstrip().endswith((".", "!", "?"))


LONG_ANSWER = (
    "Sure. The weather today is mild with a light breeze coming from the west "
    "and a few clouds. Enjoy the walk"
)


async def test_buffered_streaming_flushes_at_size_or_sentence_and_sends_the_rest() -> None:
    node = BufferedStreamingNode(buffer_size=50)
    node.llm_client = FakeLLMClient(LONG_ANSWER)  # filled in: the seed never sets it
    bridge = Bridge(node)
    remember_transcripts(bridge, node)
    route_basic(bridge, node)
    async with RouteHarness(bridge) as harness:
        await user_says(harness, "Weather?")
        await harness.wait_for(AgentGenerationComplete)
    chunks = harness.events(AgentResponse)
    assert "".join(c.content for c in chunks) == LONG_ANSWER
    assert [c.chunk_type for c in chunks] == ["buffered", "buffered", "buffered", "final"]
    assert chunks[0].content == "Sure."
    assert len(chunks[1].content) >= 50
    assert chunks[2].content.endswith("clouds.")
    assert chunks[-1].content == " Enjoy the walk"


class SentenceAwareBufferedNode(BufferedStreamingNode):
    """The seed's hook, given voiceterm's sentence rule instead of endswith('.')."""

    def ends_with_sentence(self, text):
        return ends_with_sentence(text)


async def test_buffered_streaming_with_the_real_sentence_rule_is_not_fooled() -> None:
    answer = "Dr. Smith says pi is 3.14 today. Bye"
    naive = BufferedStreamingNode(buffer_size=50)
    smart = SentenceAwareBufferedNode(buffer_size=50)
    results = []
    for node in (naive, smart):
        node.llm_client = FakeLLMClient(answer)
        bridge = Bridge(node)
        route_basic(bridge, node)
        async with RouteHarness(bridge) as harness:
            await harness.send(UserStoppedSpeaking())
            await harness.wait_for(AgentGenerationComplete)
        results.append(texts(harness))
    assert results[0][0] == "Dr."  # the seed's rule cuts after the title
    assert results[1] == ["Dr. Smith says pi is 3.14 today.", " Bye"]


# =============================================================================
# Streaming with Tool Integration (as written)
# =============================================================================


class ToolAwareStreamingNode(ReasoningNode):
    async def process_context(self, context):
        # Check for tool results first
        tool_results = [e for e in context.events if isinstance(e, ToolResult)]

        if tool_results:
            # Stream response incorporating tool results
            async for chunk in self.generate_with_tools(context, tool_results):
                yield chunk
        else:
            # Check if we need to call tools
            user_input = context.get_latest_user_transcript_message()

            if self.requires_tool_call(user_input):
                # Call tool first
                tool_call = self.determine_tool_call(user_input)
                yield tool_call

                # Stream initial response while tool executes
                yield AgentResponse(content="Let me check that for you...")
            else:
                # Normal streaming response
                async for chunk in self.generate_normal_response(context):
                    yield chunk

    async def generate_with_tools(self, context, tool_results):
        """Stream response that incorporates tool results."""
        # Format context with tool results
        enhanced_context = self.add_tool_results_to_context(context, tool_results)

        async for chunk in self.llm_client.generate_stream(enhanced_context):
            if chunk.text:
                yield AgentResponse(content=chunk.text)


class FilledToolAwareStreamingNode(ToolAwareStreamingNode):
    """Filled in: the decisions and formatting the seed leaves undefined."""

    def __init__(self, llm_client):
        super().__init__(system_prompt="Use tools for arithmetic.")
        self.llm_client = llm_client

    def requires_tool_call(self, user_input):
        return "times" in (user_input or "")

    def determine_tool_call(self, user_input):
        left, right = user_input.split("what is ")[1].rstrip("?").split(" times ")
        return ToolCall(tool_name="calculator", tool_args={"expression": f"{left} * {right}"})

    def add_tool_results_to_context(self, context, tool_results):
        return self.format_for_llm(context.events)

    async def generate_normal_response(self, context):
        async for chunk in self.llm_client.generate_stream(self.format_for_llm(context.events)):
            yield AgentResponse(content=chunk.text)


def answer_from_tool(messages: Any) -> str:
    notes = [m["content"] for m in messages if m["role"] == "system"]
    result = next((n for n in notes if "returned:" in n), "")
    return f"It is {result.split('returned: ')[1].rstrip(')')}." if result else "Hello!"


async def test_tool_call_runs_and_the_answer_continues_after_a_filler() -> None:
    client = FakeLLMClient(answer_from_tool)
    node = FilledToolAwareStreamingNode(client)
    bridge = Bridge(node)
    # One route for both triggers: the turn with the tool result waits for the first.
    bridge.on((UserTranscriptionReceived, ToolResult)).stream(node.generate).broadcast()
    tools = Bridge("tools")
    ToolRunner(default_registry()).attach(tools)
    async with RouteHarness(bridge, tools) as harness:
        await harness.send(UserTranscriptionReceived(content="what is 6 times 7?"))
        await harness.wait_for(AgentGenerationComplete, count=2)
        await harness.settle()
    kinds = [
        type(m.event).__name__
        for m in harness.messages
        if isinstance(m.event, (ToolCall, ToolResult, AgentResponse))
    ]
    assert kinds[0] == "ToolCall"
    assert kinds.index("ToolResult") < len(kinds) - 1
    [call] = harness.events(ToolCall)
    [result] = harness.events(ToolResult)
    assert (call.tool_args, result.result, result.tool_call_id) == (
        {"expression": "6 * 7"},
        "42",
        call.tool_call_id,
    )
    assert texts(harness) == ["Let me check that for you...", "It", " is", " 42."]
    # The node remembers the whole exchange for the next turn.
    assert [type(e).__name__ for e in node.conversation_events] == [
        "UserTranscriptionReceived",
        "ToolCall",
        "AgentResponse",
        "ToolResult",
        "AgentResponse",
    ]


async def test_a_question_without_a_tool_is_answered_directly() -> None:
    node = FilledToolAwareStreamingNode(FakeLLMClient(answer_from_tool))
    bridge = Bridge(node)
    bridge.on((UserTranscriptionReceived, ToolResult)).stream(node.generate).broadcast()
    async with RouteHarness(bridge) as harness:
        await harness.send(UserTranscriptionReceived(content="hi"))
        await harness.wait_for(AgentGenerationComplete)
    assert texts(harness) == ["Hello!"]
    assert harness.events(ToolCall) == []


# =============================================================================
# Interruption-Aware Streaming (as written)
# =============================================================================


class InterruptibleStreamingNode(ReasoningNode):
    def __init__(self):
        super().__init__()
        self.current_stream = None
        self.chunks_sent = 0

    def on_interrupt_generate(self, message):
        """Handle interruption during streaming."""
        logger.info(f"Streaming interrupted after {self.chunks_sent} chunks")

        # Clean up streaming resources
        if self.current_stream:
            # Cancel ongoing LLM stream
            self.current_stream.cancel()
            self.current_stream = None

        self.chunks_sent = 0

    async def process_context(self, context):
        try:
            self.chunks_sent = 0
            self.current_stream = self.llm_client.generate_stream(context)

            async for chunk in self.current_stream:
                if chunk.text:
                    yield AgentResponse(content=chunk.text)
                    self.chunks_sent += 1

        except asyncio.CancelledError:
            logger.info("Stream cancelled due to interruption")
            raise
        finally:
            self.current_stream = None


def route_interruptible(bridge, node):
    # Route with interruption support
    (
        bridge.on(UserStoppedSpeaking)
        .interrupt_on(UserStartedSpeaking, handler=node.on_interrupt_generate)
        .stream(node.generate)
        .broadcast()
    )


async def test_interruption_stops_the_stream_and_the_next_turn_starts_fresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    story = "Once upon a time there was a very long story that nobody wanted to hear."
    node = InterruptibleStreamingNode()
    node.llm_client = FakeLLMClient(story, delay=0.002)  # filled in
    bridge = Bridge(node)
    route_interruptible(bridge, node)
    with caplog.at_level(logging.INFO, logger="seed"):
        async with RouteHarness(bridge) as harness:
            await harness.send(UserStoppedSpeaking())
            await harness.wait_for(AgentResponse, count=3)
            await harness.send(UserStartedSpeaking())
            await harness.settle()
            heard = texts(harness)
            await asyncio.sleep(0.01)  # the LLM would have gone on by now
            assert texts(harness) == heard == word_chunks(story)[:3]
            assert harness.events(AgentGenerationComplete) == []
            first_stream = node.llm_client.streams[0]
            assert first_stream.cancelled  # the seed's handler cancelled the LLM stream
            assert node.current_stream is None

            await harness.send(UserStoppedSpeaking())
            await harness.wait_for(AgentGenerationComplete)
    assert texts(harness) == word_chunks(story)[:3] + word_chunks(story)
    assert "Streaming interrupted after 3 chunks" in caplog.text
    assert "Stream cancelled due to interruption" in caplog.text


# =============================================================================
# Parallel Streaming (as written)
# =============================================================================


class ParallelStreamingNode(ReasoningNode):
    async def process_context(self, context):
        # Start multiple streams in parallel for faster response
        tasks = [
            self.generate_main_response(context),
            self.generate_context_analysis(context),
            self.generate_suggestions(context),
        ]

        # Stream results as they become available
        async for chunk in self.merge_streams(tasks):
            yield chunk

    async def merge_streams(self, tasks):
        """Merge multiple async generators."""
        active_tasks = [task.__aiter__() for task in tasks]

        while active_tasks:
            # Wait for next chunk from any stream
            done, pending = await asyncio.wait(
                [task.__anext__() for task in active_tasks],
                return_when=asyncio.FIRST_COMPLETED,
            )

            for task in done:
                try:
                    chunk = await task
                    yield chunk
                except StopAsyncIteration:
                    # Stream completed, remove from active tasks
                    active_tasks.remove(task)


class FilledParallelStreamingNode(ParallelStreamingNode):
    """Filled in: three streams, each from its own fake client."""

    def __init__(self):
        super().__init__()
        self.clients = {
            "main": FakeLLMClient(["M1", "M2", "M3", "M4"], delay=0.002),
            "analysis": FakeLLMClient(["A1", "A2"], delay=0.003),
            "suggestions": FakeLLMClient(["S1", "S2", "S3"], first_delay=0.001, delay=0.002),
        }
        self.finished: list[str] = []

    async def _stream(self, name, context):
        try:
            async for chunk in self.clients[name].generate_stream(context):
                yield AgentResponse(content=chunk.text, chunk_type=name)
        finally:
            self.finished.append(name)

    def generate_main_response(self, context):
        return self._stream("main", context)

    def generate_context_analysis(self, context):
        return self._stream("analysis", context)

    def generate_suggestions(self, context):
        return self._stream("suggestions", context)


class CorrectlyMergedParallelNode(FilledParallelStreamingNode):
    """The seed's node with voiceterm's merge_streams in place of its broken one."""

    def merge_streams(self, tasks):
        return merge_streams(*tasks)


async def test_the_seeds_own_merge_streams_fails_as_written() -> None:
    node = FilledParallelStreamingNode()
    bridge = Bridge(node)
    route_basic(bridge, node)
    async with RouteHarness(bridge) as harness:
        await harness.send(UserStoppedSpeaking())
        [error] = await harness.wait_for(AgentError)
        await harness.settle()
    # asyncio.wait() refuses the bare __anext__() awaitables on Python 3.11+.
    assert "TypeError" in error.error
    assert texts(harness) == []


async def test_parallel_streams_merge_every_chunk_as_it_comes() -> None:
    node = CorrectlyMergedParallelNode()
    bridge = Bridge(node)
    route_basic(bridge, node)
    async with RouteHarness(bridge) as harness:
        await harness.send(UserStoppedSpeaking())
        [done] = await harness.wait_for(AgentGenerationComplete)
    chunks = harness.events(AgentResponse)
    assert sorted(c.content for c in chunks) == [
        "A1",
        "A2",
        "M1",
        "M2",
        "M3",
        "M4",
        "S1",
        "S2",
        "S3",
    ]
    for name, expected in (("main", "M"), ("analysis", "A"), ("suggestions", "S")):
        own = [c.content for c in chunks if c.chunk_type == name]
        assert own == sorted(own) and all(text.startswith(expected) for text in own)
    assert chunks[0].content != "M1" or chunks[1].content != "M2"  # interleaved, not one by one
    assert done.chunk_count == 9
    assert sorted(node.finished) == ["analysis", "main", "suggestions"]


async def test_interrupting_parallel_streams_stops_all_of_them() -> None:
    node = CorrectlyMergedParallelNode()
    bridge = Bridge(node)
    route_interruptible(bridge, node)
    async with RouteHarness(bridge) as harness:
        await harness.send(UserStoppedSpeaking())
        await harness.wait_for(AgentResponse, count=2)
        await harness.send(UserStartedSpeaking())
        await harness.settle()
        sent = len(texts(harness))
        await asyncio.sleep(0.02)
        assert len(texts(harness)) == sent < 9
    assert sorted(node.finished) == ["analysis", "main", "suggestions"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


# =============================================================================
# Cached Streaming (as written)
# =============================================================================


class CachedStreamingNode(ReasoningNode):
    def __init__(self):
        super().__init__()
        self.response_cache = {}

    async def process_context(self, context):
        # Create cache key from context
        cache_key = self.create_cache_key(context)

        if cache_key in self.response_cache:
            # Stream cached response
            cached_response = self.response_cache[cache_key]
            for chunk in cached_response:
                yield AgentResponse(content=chunk)
        else:
            # Generate and cache new response
            response_chunks = []

            async for chunk in self.llm_client.generate_stream(context):
                if chunk.text:
                    response_chunks.append(chunk.text)
                    yield AgentResponse(content=chunk.text)

            # Cache the complete response
            self.response_cache[cache_key] = response_chunks


class FilledCachedStreamingNode(CachedStreamingNode):
    """Filled in: the LLM client and the cache key (the question asked)."""

    def __init__(self, llm_client):
        super().__init__()
        self.llm_client = llm_client

    def create_cache_key(self, context):
        return context.get_latest_user_transcript_message()


async def ask(harness: RouteHarness, question: str) -> list[str]:
    before = len(harness.events(AgentGenerationComplete))
    start = len(harness.events(AgentResponse))
    await harness.send(UserTranscriptionReceived(content=question))
    await harness.wait_for(AgentGenerationComplete, count=before + 1)
    return [e.content for e in harness.events(AgentResponse)[start:]]


async def test_a_cached_second_run_is_identical_and_does_not_call_the_llm() -> None:
    client = FakeLLMClient("Paris is the capital of France.")
    node = FilledCachedStreamingNode(client)
    bridge = Bridge(node)
    bridge.on(UserTranscriptionReceived).stream(node.generate).broadcast()
    async with RouteHarness(bridge) as harness:
        first = await ask(harness, "Capital of France?")
        second = await ask(harness, "Capital of France?")
    assert first == second == word_chunks("Paris is the capital of France.")
    assert len(client.calls) == 1


async def test_the_bounded_cache_drops_to_the_seeds_dict_and_evicts_old_answers() -> None:
    client = FakeLLMClient(lambda context: f"Answer {len(client.calls)}.")
    node = FilledCachedStreamingNode(client)
    node.response_cache = ResponseCache(max_entries=2)
    bridge = Bridge(node)
    bridge.on(UserTranscriptionReceived).stream(node.generate).broadcast()
    async with RouteHarness(bridge) as harness:
        for question in ["one", "two", "one", "three", "two"]:
            await ask(harness, question)
    # "one" was used again before "three" came, so "two" was the one evicted.
    assert len(client.calls) == 4
    assert len(node.response_cache) == 2
