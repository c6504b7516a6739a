"""The timeline groups bus events into turns with marks, spans and headline figures."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from voiceterm.bridge import Bridge
from voiceterm.bus import Bus, Message
from voiceterm.errors import VoicetermError
from voiceterm.events import (
    AgentAudioChunk,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentSentence,
    AgentSpeechSent,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    AudioLevel,
    StageSpan,
    ToolCall,
    ToolResult,
    TurnMark,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
)
from voiceterm.stats import percentile
from voiceterm.timeline import (
    Stats,
    Timeline,
    format_seconds,
    summarize,
)
from voiceterm.timeline_export import export_markdown, export_timeline, to_chrome_trace, to_markdown


def feed(timeline: Timeline, *events: Any) -> None:
    for event in events:
        timeline.record(Message("test", event))


def voice_turn(t0: float, question: str, answer: list[str]) -> list[Any]:
    """A full voice turn with explicit marks and spans, speech ending at ``t0``."""
    events: list[Any] = [
        UserStartedSpeaking(onset_time=t0 - 1.0, timestamp=t0 - 0.9),
        UserTranscriptionPartial(content=question.split()[0], timestamp=t0 - 0.5),
        TurnMark(name="speech_end", at=t0, timestamp=t0 + 0.30),
        UserStoppedSpeaking(speech_start=t0 - 1.0, speech_end=t0, timestamp=t0 + 0.30),
        TurnMark(name="vad_stop", at=t0 + 0.30, timestamp=t0 + 0.30),
        StageSpan(stage="vad", start=t0 - 1.0, end=t0, content="speech", timestamp=t0 + 0.3),
        StageSpan(stage="stt", start=t0 + 0.30, end=t0 + 0.35, content=question),
        TurnMark(name="stt_done", at=t0 + 0.35),
        UserTranscriptionReceived(content=question, timestamp=t0 + 0.35),
    ]
    t = t0 + 0.50
    events.append(TurnMark(name="llm_first_token", at=t))
    for token in answer:
        events += [
            AgentResponse(content=token, timestamp=t),
            StageSpan(stage="llm", start=t - 0.03, end=t, content=token),
        ]
        t += 0.03
    sentence = "".join(answer).strip()
    events += [
        AgentGenerationComplete(total_length=len(sentence), chunk_count=len(answer), timestamp=t),
        TurnMark(name="first_sentence", at=t0 + 0.55),
        AgentSentence(content=sentence, index=0, final=True, timestamp=t0 + 0.55),
        StageSpan(stage="sentence", start=t0 + 0.50, end=t0 + 0.55, content=sentence),
        StageSpan(stage="tts", start=t0 + 0.55, end=t0 + 0.65, content=sentence),
        TurnMark(name="tts_first_audio", at=t0 + 0.65),
        TurnMark(name="playback_start", at=t0 + 0.70),
        AgentStartedSpeaking(playback_start=t0 + 0.70, timestamp=t0 + 0.70),
        StageSpan(stage="playback", start=t0 + 0.70, end=t0 + 1.70, content=sentence),
        AgentSpeechSent(content=sentence, timestamp=t0 + 1.70),
        AgentStoppedSpeaking(last_sample_time=t0 + 1.70, timestamp=t0 + 1.71),
    ]
    return events


def test_a_voice_turn_collects_text_marks_spans_and_headline() -> None:
    timeline = Timeline(clock_offset=0.0)
    feed(timeline, *voice_turn(100.0, "What time is it?", ["It ", "is ", "noon."]))

    [turn] = timeline.turns
    assert turn.number == 1 and turn.source == "voice"
    assert turn.user_text == "What time is it?" and turn.user_partial == ""
    assert turn.agent_text == "It is noon."
    assert turn.spoken_text == "It is noon."
    assert not turn.interrupted and turn.generation_done
    assert [s.content for s in turn.lane_spans("llm")] == ["It ", "is ", "noon."]
    assert {s.lane for s in turn.spans} == {"vad", "stt", "llm", "sentence", "tts", "playback"}
    assert not any(s.derived for s in turn.spans)
    assert turn.anchor == 100.0
    headline = turn.headline()
    assert headline["voice_to_voice"] == pytest.approx(0.70)
    assert headline["stt"] == pytest.approx(0.05)
    assert headline["first_token"] == pytest.approx(0.15)
    assert headline["first_audio"] == pytest.approx(0.10)
    assert headline["barge_in"] is None
    assert turn.tokens_per_second() == pytest.approx(1 / 0.03)


def test_partial_transcript_shows_until_the_final_one() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserStartedSpeaking(timestamp=1.0),
        UserTranscriptionPartial(content="what ti", timestamp=1.2),
    )
    assert timeline.current is not None
    assert timeline.current.user_partial == "what ti"
    feed(timeline, UserTranscriptionReceived(content="What time is it?", timestamp=2.0))
    assert timeline.current.user_partial == ""
    assert timeline.current.user_text == "What time is it?"


def test_plain_events_give_derived_marks_and_spans() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserStartedSpeaking(onset_time=1.0, timestamp=1.1),
        UserStoppedSpeaking(speech_start=1.0, speech_end=2.0, timestamp=2.3),
        UserTranscriptionReceived(content="hello", timestamp=2.4),
        AgentResponse(content="Hi", timestamp=2.6),
        AgentResponse(content=" there.", timestamp=2.7),
        AgentSentence(content="Hi there.", timestamp=2.75),
        AgentAudioChunk(text="Hi there.", timestamp=2.9),
        AgentStartedSpeaking(playback_start=3.0, timestamp=3.0),
        AgentStoppedSpeaking(last_sample_time=4.0, timestamp=4.0),
    )
    [turn] = timeline.turns
    assert turn.marks == pytest.approx(
        {
            "speech_start": 1.0,
            "speech_end": 2.0,
            "vad_stop": 2.3,
            "stt_done": 2.4,
            "llm_first_token": 2.6,
            "first_sentence": 2.75,
            "tts_first_audio": 2.9,
            "playback_start": 3.0,
            "playback_end": 4.0,
        }
    )
    assert turn.headline()["voice_to_voice"] == pytest.approx(1.0)
    llm = turn.lane_spans("llm")
    assert [(s.start, s.end, s.content) for s in llm] == [(2.4, 2.6, "Hi"), (2.6, 2.7, " there.")]
    assert all(s.derived for s in turn.spans)
    assert {s.lane for s in turn.spans} == {"vad", "stt", "llm", "sentence", "tts", "playback"}


def test_explicit_spans_and_marks_replace_derived_ones() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserTranscriptionReceived(content="hi", timestamp=1.0),
        AgentResponse(content="Hello", timestamp=1.5),
        StageSpan(stage="llm", start=1.4, end=1.5, content="Hello"),
        AgentResponse(content="!", timestamp=1.6),
        TurnMark(name="llm_first_token", at=1.45),
    )
    [turn] = timeline.turns
    assert [(s.content, s.derived) for s in turn.lane_spans("llm")] == [("Hello", False)]
    assert turn.marks["llm_first_token"] == 1.45


def test_a_typed_message_starts_its_own_turn() -> None:
    timeline = Timeline()
    feed(timeline, *voice_turn(10.0, "one", ["One."]))
    feed(
        timeline,
        UserTranscriptionReceived(content="typed two", timestamp=20.0),
        AgentResponse(content="Two.", timestamp=20.2),
    )
    first, second = timeline.turns
    assert (second.number, second.source, second.user_text) == (2, "typed", "typed two")
    assert second.agent_text == "Two." and first.agent_text == "One."
    assert second.headline()["first_token"] == pytest.approx(0.2)
    assert second.headline()["voice_to_voice"] is None


def test_barge_in_keeps_trailing_agent_events_on_the_interrupted_turn() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserTranscriptionReceived(content="tell me a story", timestamp=1.0),
        AgentResponse(content="Once upon a time there was a cat. ", timestamp=1.2),
        AgentResponse(content="The cat was very old.", timestamp=1.3),
        AgentStartedSpeaking(playback_start=1.5, timestamp=1.5),
        AgentSpeechSent(content="Once upon a time", timestamp=2.0),
        # The user talks over the answer: a new turn opens, the old one is cut.
        UserStartedSpeaking(onset_time=2.0, timestamp=2.1),
        AgentInterrupted(reason="user_speech", timestamp=2.1),
        AgentSpeechSent(content=" there was a cat.", timestamp=2.12),
        AgentStoppedSpeaking(interrupted=True, last_sample_time=2.15, timestamp=2.15),
        UserStoppedSpeaking(speech_start=2.0, speech_end=2.8, timestamp=3.0),
        UserTranscriptionReceived(content="stop", timestamp=3.1),
        AgentResponse(content="Okay.", timestamp=3.3),
    )
    story, stop = timeline.turns
    assert story.interrupted and story.interrupt_reason == "user_speech"
    assert story.headline()["barge_in"] == pytest.approx(0.15)
    played, cut = story.cut_off_text()
    assert played == "Once upon a time there was a cat. "
    assert cut == "The cat was very old."
    assert (stop.user_text, stop.agent_text, stop.interrupted) == ("stop", "Okay.", False)
    assert "barge_in_onset" not in stop.marks


def test_an_interrupt_with_nothing_running_changes_nothing() -> None:
    timeline = Timeline()
    feed(timeline, *voice_turn(10.0, "hi", ["Hello."]))
    version = timeline.version
    feed(timeline, AgentInterrupted(reason="key", timestamp=20.0))
    assert timeline.version == version
    assert not timeline.turns[0].interrupted


def test_played_text_is_matched_ignoring_whitespace() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserTranscriptionReceived(content="q", timestamp=1.0),
        AgentResponse(content="First  part.\nSecond part.", timestamp=1.1),
        AgentStartedSpeaking(timestamp=1.2),
        AgentSpeechSent(content="First part.", timestamp=1.3),
        AgentInterrupted(reason="key", timestamp=1.4),
    )
    assert timeline.turns[0].cut_off_text() == ("First  part.\n", "Second part.")


def test_a_cough_the_stt_dropped_leaves_no_turn_behind() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserStartedSpeaking(timestamp=1.0),
        UserStoppedSpeaking(speech_end=1.2, timestamp=1.3),
        TurnMark(name="stt_done", at=1.4, detail=""),  # the STT heard no words
        UserStartedSpeaking(timestamp=5.0),
        UserStoppedSpeaking(speech_end=5.8, timestamp=6.0),
        TurnMark(name="stt_done", at=6.1, timestamp=6.1),
        UserTranscriptionReceived(content="hello", timestamp=6.1),
    )
    [turn] = timeline.turns
    assert (turn.number, turn.user_text, turn.started_at) == (1, "hello", 5.0)


def test_sound_that_was_not_a_turn_leaves_no_turn_in_the_timeline_or_the_export() -> None:
    timeline = Timeline()
    feed(timeline, *voice_turn(2.0, "What time is it?", ["It is ", "noon."]))
    feed(
        timeline,
        UserStartedSpeaking(timestamp=9.0),  # a click at the end of the recording
        UserStoppedSpeaking(speech_end=9.1, timestamp=9.2, discarded=True),
    )
    assert [turn.number for turn in timeline.turns] == [1]
    feed(
        timeline,
        UserStartedSpeaking(timestamp=12.0),  # words the STT did not hear as any
        UserStoppedSpeaking(speech_end=12.5, timestamp=12.6),
        TurnMark(name="stt_done", at=12.7, detail=""),
    )
    markdown = to_markdown(timeline.turns)
    assert markdown.count("## Turn ") == 1
    assert "1 turns." in markdown
    feed(timeline, *voice_turn(20.0, "And the date?", ["Monday."]))
    assert [turn.number for turn in timeline.turns] == [1, 2]


def test_work_ahead_that_ends_after_the_transcript_stays_with_its_turn() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserStartedSpeaking(timestamp=1.0),
        UserStoppedSpeaking(speech_start=1.0, speech_end=2.0, timestamp=2.2),
        TurnMark(name="stt_done", at=2.3, timestamp=2.3),
        UserTranscriptionReceived(content="Tell me a story.", timestamp=2.3),
        StageSpan(stage="ahead", start=2.05, end=2.4, content="Once upon …"),
    )
    [turn] = timeline.turns
    assert [span.content for span in turn.lane_spans("ahead")] == ["Once upon …"]


def test_a_transcript_goes_to_its_utterance_when_the_next_one_has_begun() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserStartedSpeaking(onset_time=1.0, timestamp=1.1),
        UserStoppedSpeaking(speech_start=1.0, speech_end=2.0, timestamp=2.3),
        # The user goes on talking before the STT has finished the first part.
        UserStartedSpeaking(onset_time=2.5, timestamp=2.6),
        TurnMark(name="stt_done", at=2.7, timestamp=2.7),
        StageSpan(stage="stt", start=2.3, end=2.7, content="first part", timestamp=2.7),
        UserTranscriptionReceived(content="first part", timestamp=2.7),
        UserStoppedSpeaking(speech_start=2.5, speech_end=3.5, timestamp=3.8),
        TurnMark(name="stt_done", at=3.9, timestamp=3.9),
        UserTranscriptionReceived(content="second part", timestamp=3.9),
    )
    first, second = timeline.turns
    assert (first.user_text, first.marks["stt_done"]) == ("first part", 2.7)
    assert [s.content for s in first.lane_spans("stt")] == ["first part"]
    assert (second.user_text, second.marks["stt_done"]) == ("second part", 3.9)
    assert second.marks["speech_end"] == 3.5


def test_text_from_the_keyboard_is_a_typed_turn_even_while_an_utterance_waits() -> None:
    timeline = Timeline()
    timeline.record(Message("listener", UserStartedSpeaking(timestamp=1.0)))
    timeline.record(Message("listener", UserStoppedSpeaking(speech_end=1.5, timestamp=1.8)))
    timeline.record(Message("keyboard", UserTranscriptionReceived(content="typed", timestamp=2)))
    spoken, typed = timeline.turns
    assert spoken.awaiting_transcript and not spoken.user_text
    assert (typed.source, typed.user_text) == ("typed", "typed")


def test_tool_calls_pair_with_their_results() -> None:
    timeline = Timeline()
    feed(
        timeline,
        UserTranscriptionReceived(content="what is 2+2", timestamp=1.0),
        ToolCall(tool_name="calculator", tool_args={"expression": "2+2"}, tool_call_id="c1"),
        ToolResult(tool_name="calculator", result="4", tool_call_id="c1"),
        ToolCall(tool_name="clock", tool_call_id="c2"),
        ToolResult(tool_name="clock", error="no clock", tool_call_id="c2"),
    )
    calc, clock = timeline.turns[0].tools
    assert (calc.name, calc.args, calc.result, calc.error) == (
        "calculator",
        {"expression": "2+2"},
        "4",
        None,
    )
    assert calc.finished and clock.error == "no clock"


def test_memory_stays_bounded() -> None:
    timeline = Timeline(max_turns=3, max_spans_per_turn=5)
    for n in range(5):
        feed(timeline, UserTranscriptionReceived(content=f"m{n}", timestamp=float(n)))
    assert [t.number for t in timeline.turns] == [3, 4, 5]
    for i in range(8):
        feed(timeline, StageSpan(stage="llm", start=10.0 + i, end=10.5 + i, content="x"))
    turn = timeline.turns[-1]
    assert len(turn.spans) == 5 and turn.dropped_spans == 3


def test_unrelated_events_are_ignored_and_subclasses_are_understood() -> None:
    class LoudStart(UserStartedSpeaking):
        pass

    timeline = Timeline()
    feed(timeline, AudioLevel(level_db=-20.0))
    assert timeline.turns == [] and timeline.version == 0
    feed(timeline, LoudStart(timestamp=1.0))
    assert len(timeline.turns) == 1


def test_clear_forgets_turns_but_numbering_goes_on() -> None:
    timeline = Timeline()
    feed(timeline, UserTranscriptionReceived(content="a", timestamp=1.0))
    timeline.clear()
    assert timeline.turns == []
    feed(timeline, UserTranscriptionReceived(content="b", timestamp=2.0))
    assert timeline.turns[0].number == 2


async def test_a_bridge_feeds_the_timeline_from_the_bus() -> None:
    bus = Bus()
    timeline = Timeline()
    bridge = Bridge("timeline")
    bridge.on("*").map(timeline.record)
    bus.register_bridge(bridge)
    await bus.start()
    for event in voice_turn(50.0, "hi", ["Hello", " you."]):
        await bus.broadcast(Message("pipeline", event))
    for _ in range(20):
        await asyncio.sleep(0)
    await bus.stop()
    [turn] = timeline.turns
    assert turn.agent_text == "Hello you." and turn.headline()["voice_to_voice"] is not None


def test_percentiles_and_summary() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert summarize([])["voice_to_voice"] == Stats(0, None, None)
    timeline = Timeline()
    feed(timeline, *voice_turn(10.0, "a", ["A."]), *voice_turn(20.0, "b", ["B."]))
    stats = summarize(timeline.turns)
    assert stats["voice_to_voice"].count == 2
    assert stats["voice_to_voice"].p50 == pytest.approx(0.70)
    assert stats["barge_in"].count == 0 and stats["barge_in"].p95 is None
    assert format_seconds(0.6404) == "640 ms"
    assert format_seconds(12.34) == "12.3 s"
    assert format_seconds(None) == "—"


def test_chrome_trace_has_a_thread_per_lane_and_complete_events_in_microseconds() -> None:
    timeline = Timeline(clock_offset=0.0)
    feed(timeline, *voice_turn(100.0, "What time is it?", ["It ", "is ", "noon."]))
    trace = json.loads(json.dumps(to_chrome_trace(timeline.turns)))

    events = trace["traceEvents"]
    threads = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert {"turns", "marks", "speech/VAD", "STT", "LLM tokens", "TTS synth"} <= set(
        threads.values()
    )
    tokens = [e for e in events if e["ph"] == "X" and e["cat"] == "llm"]
    assert [e["args"]["content"] for e in tokens] == ["It ", "is ", "noon."]
    assert all(e["dur"] == pytest.approx(30_000) for e in tokens)
    assert len({e["tid"] for e in tokens}) == 1
    playback = next(e for e in events if e["ph"] == "X" and e["cat"] == "playback")
    # ts counts from the turn's start (speech onset at 99.0); playback began at 100.7.
    assert playback["ts"] == pytest.approx(1_700_000)
    assert playback["args"]["relative_ms"] == pytest.approx(700)
    turn_event = next(e for e in events if e["ph"] == "X" and e["cat"] == "turn")
    assert turn_event["args"]["user"] == "What time is it?"
    assert turn_event["args"]["headline_ms"]["voice_to_voice"] == pytest.approx(700)
    marks = {e["name"] for e in events if e["ph"] == "i"}
    assert {"speech_end", "playback_start"} <= marks


def test_markdown_shows_the_conversation_the_cut_and_the_timings() -> None:
    timeline = Timeline(clock_offset=0.0)
    feed(timeline, *voice_turn(100.0, "What is *this*?", ["A ", "test."]))
    feed(
        timeline,
        UserTranscriptionReceived(content="go on", timestamp=200.0),
        AgentResponse(content="Heard part. Lost part.", timestamp=200.1),
        AgentStartedSpeaking(timestamp=200.2),
        AgentSpeechSent(content="Heard part.", timestamp=200.3),
        AgentInterrupted(reason="key", timestamp=200.4),
    )
    text = to_markdown(timeline.turns)
    assert "**You:** What is \\*this\\*?" in text
    assert "**voiceterm:** A test." in text
    assert "Heard part. ~~Lost part.~~ *(cut off)*" in text
    assert "| 700 ms | 50 ms | 150 ms | 100 ms | — |" in text
    assert "| voice→voice | 1 | 700 ms | 700 ms |" in text


def test_exports_write_files_and_fail_with_a_hint(tmp_path: Path) -> None:
    timeline = Timeline()
    feed(timeline, *voice_turn(10.0, "hi", ["Hello."]))
    trace_file = export_timeline(timeline, tmp_path / "t.json")
    assert json.loads(trace_file.read_text())["traceEvents"]
    in_folder = export_timeline(timeline, tmp_path)
    assert in_folder.parent == tmp_path and in_folder.name.endswith(".trace.json")
    md_file = export_markdown(timeline, tmp_path / "c.md")
    assert md_file.read_text().startswith("# voiceterm conversation")
    with pytest.raises(VoicetermError) as failure:
        export_markdown(timeline, tmp_path / "missing" / "c.md")
    assert failure.value.hint


def test_work_done_ahead_is_drawn_in_the_turn_being_heard_before_the_llm_lane() -> None:
    timeline = Timeline()
    feed(timeline, *voice_turn(10.0, "Hello there.", ["Hi", " there."]))
    # The next question: its answer is started during the end-of-speech wait.
    feed(
        timeline,
        UserStartedSpeaking(onset_time=19.0, timestamp=19.1),
        StageSpan(stage="ahead", start=20.15, end=20.3, content="The moon is …"),
    )
    first, second = timeline.turns
    assert [s.content for s in second.lane_spans("ahead")] == ["The moon is …"]
    assert second.lanes()[:4] == ["vad", "stt", "ahead", "llm"]
    assert "ahead" not in first.lanes()
