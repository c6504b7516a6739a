"""PlayerNode: the agent speaks from the first sample of an answer to its last.

The sink running dry between two sentences (synthesis fell behind on a busy
machine) is a pause in the answer. If it ended the answer, the agent would stop
counting as busy mid-sentence: the user could no longer barge in, and
half-duplex would open the microphone to the agent's own voice.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from voiceterm.audio.frames import (
    IdleCallback,
    PlaybackPosition,
    PlaybackTag,
    StartedCallback,
    TagDoneCallback,
    WokeCallback,
)
from voiceterm.bus import Message
from voiceterm.events import (
    AgentAudioChunk,
    AgentSpeechSent,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    Event,
    StageSpan,
    UserTranscriptionReceived,
)
from voiceterm.pipeline.speak import PlayerNode
from voiceterm.timeline import Timeline


class ScriptedSink:
    """A sink whose progress the test reports by hand."""

    def __init__(self) -> None:
        self.on_started: StartedCallback | None = None
        self.on_tag_done: TagDoneCallback | None = None
        self.on_idle: IdleCallback | None = None
        self.queued: list[PlaybackTag] = []
        self.calls: list[str] = []
        self.sound_ends = 0.0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        pass

    def enqueue(self, audio: npt.NDArray[np.int16], sample_rate: int, tag: PlaybackTag) -> None:
        self.queued.append(tag)

    def stop_now(self) -> float:
        self.calls.append("stop")
        return self.sound_ends + 0.5  # later than the hold: it went silent at the hold

    def pause(self) -> float:
        self.calls.append("pause")
        return self.sound_ends

    def resume(self) -> None:
        self.calls.append("resume")

    def position(self, at: float | None = None) -> PlaybackPosition | None:
        return None

    def close(self) -> None:
        pass

    def sounds(self, t: float) -> None:
        """The first queued chunk became audible at ``t``."""
        assert self.on_started is not None
        self.on_started(self.queued[0], t)

    def play_all(self, t: float) -> None:
        """Everything queued has played; the last sample ended at ``t``."""
        for tag in self.queued:
            if tag.sentence_index == 0 and tag.chunk_index == 0 and self.on_started:
                self.on_started(tag, t - 1.0)
            if self.on_tag_done:
                self.on_tag_done(tag, t)
        self.queued.clear()
        if self.on_idle:
            self.on_idle(t)


class Heard:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def stops(self) -> list[AgentStoppedSpeaking]:
        return [e for e in self.events if isinstance(e, AgentStoppedSpeaking)]


def sound(index: int) -> Message:
    chunk = AgentAudioChunk(
        audio=np.zeros(2205, dtype=np.int16), text=f"piece {index}", sentence_index=index
    )
    return Message("tts", chunk)


def end_of(index: int, *, final: bool) -> Message:
    return Message(
        "tts",
        AgentAudioChunk(audio=None, sentence_index=index, chunk_index=1, last_of_answer=final),
    )


def player() -> tuple[PlayerNode, ScriptedSink, Heard]:
    sink, heard = ScriptedSink(), Heard()
    return PlayerNode(sink, heard), sink, heard  # type: ignore[arg-type]


def test_running_dry_between_sentences_does_not_end_the_answer() -> None:
    node, sink, heard = player()
    node.play(sound(0))
    node.play(end_of(0, final=False))
    sink.play_all(t=1.0)  # the second sentence is still being synthesized
    assert heard.stops() == []
    assert node.speaking
    node.play(sound(1))
    node.play(end_of(1, final=True))
    sink.play_all(t=2.5)
    assert [stop.last_sample_time for stop in heard.stops()] == [2.5]
    assert sum(isinstance(e, AgentStartedSpeaking) for e in heard.events) == 1
    assert not node.speaking


def test_the_last_piece_arriving_after_the_sink_ran_dry_ends_the_answer() -> None:
    node, sink, heard = player()
    node.play(sound(0))
    sink.play_all(t=1.0)
    node.play(end_of(0, final=True))
    assert [stop.last_sample_time for stop in heard.stops()] == [1.0]


def test_a_held_answer_cut_off_ends_where_it_was_held() -> None:
    node, sink, heard = player()
    node.play(sound(0))
    sink.sounds(1.0)
    sink.sound_ends = 1.2
    node.hold()
    node.stop()
    assert sink.calls == ["pause", "stop"]
    stops = heard.stops()
    assert [(s.interrupted, s.last_sample_time) for s in stops] == [(True, 1.2)]


def test_a_released_answer_plays_on() -> None:
    node, sink, heard = player()
    node.play(sound(0))
    sink.sounds(1.0)
    node.hold()
    node.release()
    node.release()  # a second release does nothing
    assert sink.calls == ["pause", "resume"]
    assert heard.stops() == []
    assert node.speaking


def test_nothing_is_held_when_nothing_is_playing() -> None:
    node, sink, _ = player()
    node.hold()
    assert sink.calls == []


async def test_a_hold_nobody_ends_lets_the_answer_play_on() -> None:
    import asyncio

    from voiceterm.pipeline import speak

    node, sink, heard = player()
    node.play(sound(0))
    sink.sounds(1.0)
    original, speak.MAX_HOLD_S = speak.MAX_HOLD_S, 0.05
    try:
        node.hold()
        await asyncio.sleep(0.15)
    finally:
        speak.MAX_HOLD_S = original
    assert sink.calls == ["pause", "resume"]
    assert heard.stops() == []


class WakingScriptedSink(ScriptedSink):
    """A sink whose stream sleeps while idle, as the speaker's does."""

    def __init__(self) -> None:
        super().__init__()
        self.on_woke: WokeCallback | None = None
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def test_an_answer_that_waited_for_the_speaker_to_wake_shows_the_wait_in_the_timeline() -> None:
    sink, heard = WakingScriptedSink(), Heard()
    PlayerNode(sink, heard)  # type: ignore[arg-type]
    timeline = Timeline()
    timeline.record(Message("stt", UserTranscriptionReceived(content="Who wrote Hamlet?")))
    assert sink.on_woke is not None, "the player node does not listen for the wait"
    sink.on_woke(10.0, 10.14)
    spans = [e for e in heard.events if isinstance(e, StageSpan)]
    assert [(s.stage, s.content) for s in spans] == [("speaker", "speaker waking, 140 ms")]
    for span in spans:
        timeline.record(Message("player", span))
    turn = timeline.turns[-1]
    assert [s.content for s in turn.lane_spans("speaker")] == ["speaker waking, 140 ms"]


class CutSink(ScriptedSink):
    """A sink that is cut off a given way into a given chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.cut_at: PlaybackPosition | None = None

    def position(self, at: float | None = None) -> PlaybackPosition | None:
        return self.cut_at

    def chunk_played(self, index: int, t: float) -> None:
        assert self.on_tag_done is not None
        self.on_tag_done(self.queued[index], t)


SENTENCE = "The first half of this sentence and then the second half of it."


def two_chunk_sentence() -> tuple[PlayerNode, CutSink, Heard]:
    """One sentence that Piper spoke in two equal chunks (it split the piece itself)."""
    sink, heard = CutSink(), Heard()
    node = PlayerNode(sink, heard)  # type: ignore[arg-type]
    audio = np.zeros(22050, dtype=np.int16)
    node.play(Message("tts", AgentAudioChunk(audio=audio, text=SENTENCE, chunk_index=0)))
    node.play(Message("tts", AgentAudioChunk(audio=audio, chunk_index=1)))
    node.play(Message("tts", AgentAudioChunk(audio=None, chunk_index=2, last_of_answer=True)))
    sink.sounds(1.0)
    return node, sink, heard


def said(heard: Heard) -> str:
    return "".join(e.content for e in heard.events if isinstance(e, AgentSpeechSent)).strip()


def test_a_sentence_in_two_chunks_cut_off_in_the_second_keeps_only_the_words_heard() -> None:
    node, sink, heard = two_chunk_sentence()
    sink.chunk_played(0, 2.0)
    assert said(heard) == "", "the sentence counted as heard when only its first half had played"
    sink.cut_at = PlaybackPosition(tag=sink.queued[1], sample=0, total=22050, sample_rate=22050)
    node.stop()
    kept = said(heard)
    assert kept and SENTENCE.startswith(kept) and "second half" not in kept, kept


def test_a_sentence_in_two_chunks_played_whole_is_heard_once() -> None:
    _, sink, heard = two_chunk_sentence()
    sink.chunk_played(0, 2.0)
    sink.chunk_played(1, 3.0)
    assert said(heard) == SENTENCE
