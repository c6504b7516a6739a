"""The sentence stage on the bus: what an interrupt does to chunks it has not cut yet."""

from __future__ import annotations

from voiceterm.bridge import Bridge
from voiceterm.events import (
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentSentence,
)
from voiceterm.pipeline.speak import SentenceNode
from voiceterm.testing import RouteHarness, word_chunks

ANSWER = "The moon is far away. It is made of rock and dust. Ask me more."


async def test_chunks_still_queued_when_the_answer_is_cut_off_are_never_said() -> None:
    # A busy loop: the model streamed the whole answer before the sentence stage ran.
    node = SentenceNode()
    bridge = Bridge(node)
    node.attach(bridge, "llm")
    async with RouteHarness(bridge) as harness:
        for chunk in word_chunks(ANSWER):
            await harness.send(AgentResponse(content=chunk), source="llm")
        await harness.send(AgentGenerationComplete(), source="llm")
        await harness.send(AgentInterrupted(reason="typed_message"), source="agent")
        await harness.settle()
        assert harness.events(AgentSentence) == []
        # The next answer is cut as if nothing had come before it.
        for chunk in word_chunks("Saturn has rings."):
            await harness.send(AgentResponse(content=chunk), source="llm")
        await harness.send(AgentGenerationComplete(), source="llm")
        await harness.settle()
    said = [sentence.content for sentence in harness.events(AgentSentence)]
    assert said == ["Saturn has rings."]
