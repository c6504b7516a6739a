"""From the agent's text to sound: sentence pieces, Piper synthesis, playback.

Three nodes, each on its own bridge:

* ``SentenceNode`` cuts the streamed answer into pieces (a short first clause so
  sound starts early, then sentences) and broadcasts ``AgentSentence``.
* ``TtsNode`` synthesizes each piece in a worker thread and broadcasts
  ``AgentAudioChunk``; an ``AgentInterrupted`` cancels it between chunks.
* ``PlayerNode`` hands chunks to an ``AudioSink`` and turns the sink's progress
  reports into ``AgentStartedSpeaking``, ``AgentSpeechSent`` (what was actually
  heard) and ``AgentStoppedSpeaking``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from voiceterm.audio.frames import PlaybackTag, WakingSink
from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.events import (
    AgentAudioChunk,
    AgentError,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentSentence,
    AgentSpeculation,
    AgentSpeechSent,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    BargeInDismissed,
    BargeInSuspected,
    Event,
    SpeculativeSentence,
    StageSpan,
    TurnMark,
)
from voiceterm.patterns.sentences import SentenceSplitter
from voiceterm.pipeline.publish import Publisher

if TYPE_CHECKING:
    from voiceterm.audio.frames import AudioSink, Int16Array


class Synthesizer(Protocol):
    """What the TTS node needs from an engine (``PiperSynthesizer`` fits)."""

    @property
    def sample_rate(self) -> int: ...

    def synthesize(
        self, text: str, cancel: threading.Event | None = None, *, every_core: bool = False
    ) -> Iterator[Int16Array]: ...


class SentenceNode:
    """Cuts the answer into speakable pieces as the tokens arrive."""

    id = "sentences"

    def __init__(
        self, *, first_piece_min_chars: int | None = 12, first_piece_words: int = 3
    ) -> None:
        self._first_piece_min_chars = first_piece_min_chars
        self._splitter = SentenceSplitter(first_piece_min_chars=first_piece_min_chars)
        self._first_piece_words = first_piece_words
        self._index = 0
        self._llm_node_id = "llm"

    def attach(self, bridge: Bridge, llm_node_id: str) -> None:
        self._llm_node_id = llm_node_id
        # One route for both event types keeps them in order: the final flush must
        # come after the last chunk. An interrupt drops the chunks still queued (a
        # busy loop may hold a whole answer there), and resets the splitter even when
        # nothing was queued (the model may be between two chunks).
        (
            bridge.on(Event, source=llm_node_id)
            .interrupt_on(AgentInterrupted)
            .stream(self.handle)
            .broadcast()
        )
        bridge.on(AgentInterrupted).map(self.reset)
        bridge.on(AgentSpeculation).map(self.first_piece_of).broadcast()

    def first_piece_of(self, message: Message) -> SpeculativeSentence | None:
        """The first piece an answer starting with the speculated pieces will be cut into."""
        speculation: AgentSpeculation = message.event
        scratch = SentenceNode(
            first_piece_min_chars=self._first_piece_min_chars,
            first_piece_words=self._first_piece_words,
        )
        responses: list[Event] = [AgentResponse(content=piece) for piece in speculation.pieces]
        if speculation.complete:
            responses.append(AgentGenerationComplete())
        for response in responses:
            for event in scratch.handle(Message(message.source, response)):
                if isinstance(event, AgentSentence):
                    return SpeculativeSentence(content=event.content)
        return None

    def handle(self, message: Message) -> Iterator[Event]:
        event = message.event
        if isinstance(event, AgentResponse):
            for piece in self._splitter.push(event.content):
                yield from self._emit(piece, final=False)
            early = self._early_first_piece()
            if early:
                yield from self._emit(early, final=False)
        elif isinstance(event, AgentGenerationComplete) or (
            isinstance(event, AgentError) and event.source == self._llm_node_id
        ):
            # A model that failed mid-answer sends no more: what it said is the answer
            # (and nothing of it may be left to start the next one).
            rest = self._splitter.flush()
            if rest:
                yield from self._emit(rest, final=True)
            elif self._index:
                yield AgentSentence(content="", index=self._index, final=True)
            self._index = 0

    def _early_first_piece(self) -> str | None:
        """The first words of an answer that has no clause boundary yet.

        Time to first audio grows with the first piece's length (Piper needs
        about 0.15 s per second of speech here), so an answer whose first clause
        runs long starts with its first few words instead.
        """
        if self._index or not self._first_piece_words:
            return None
        words = self._splitter.pending.split(" ")
        # The last word may still be growing; only complete words count.
        if len(words) <= self._first_piece_words:
            return None
        head = " ".join(words[: self._first_piece_words])
        rest = " ".join(words[self._first_piece_words :])
        self._splitter.reset()
        self._splitter.push(rest)
        return head.strip() or None

    def _emit(self, piece: str, *, final: bool) -> Iterator[Event]:
        now = time.monotonic()
        if self._index == 0:
            yield TurnMark(name="first_sentence", at=now)
        yield StageSpan(stage="sentence", start=now, end=now, content=piece)
        yield AgentSentence(content=piece, index=self._index, final=final)
        self._index += 1

    def reset(self, message: Message | None = None) -> None:
        self._splitter.reset()
        self._index = 0


class TtsNode:
    """Synthesizes each sentence piece in a worker thread, chunk by chunk."""

    id = "tts"

    def __init__(self, synthesizer: Synthesizer, *, ahead_on_every_core: bool = True) -> None:
        self._tts = synthesizer
        self._ahead_on_every_core = ahead_on_every_core
        self._first_audio_marked = False
        self._ahead: _Ahead | None = None
        # The first piece of the answer being synthesized, from its first sentence
        # until its last one: the next answer may well start with the same words.
        self._first_piece = ""
        self.turn_id = 0
        self.ahead_used = 0

    def attach(self, bridge: Bridge) -> None:
        (
            bridge.on(AgentSentence)
            .named(self.id)  # its failures are the stage's: AgentError(source="tts")
            .interrupt_on(AgentInterrupted, handler=self._on_interrupt)
            .stream(self.synthesize)
            .broadcast()
        )
        bridge.on(SpeculativeSentence).map(self.synthesize_ahead)

    async def synthesize_ahead(self, message: Message) -> None:
        """Synthesize the first piece of an answer that may be about to start."""
        text = message.event.content
        if text == self._first_piece:
            return  # the answer got there first: it is being synthesized already
        if self._ahead is not None:
            if self._ahead.text == text:
                return
            self._ahead.cancel.set()
        ahead = self._ahead = _Ahead(text)
        try:
            # Made in the end-of-speech wait, after the answer's first words were
            # sampled: nothing else computes, and this piece is what the user waits for.
            async for audio, _start, _end in self._synthesized(
                text, ahead.cancel, every_core=self._ahead_on_every_core
            ):
                ahead.chunks.append(audio)
            ahead.complete = not ahead.cancel.is_set()
        finally:
            ahead.end = time.monotonic()
            ahead.done.set()

    async def _synthesized(
        self, text: str, cancel: threading.Event, *, every_core: bool = False
    ) -> AsyncIterator[tuple[Any, float, float]]:
        """Piper's chunks of ``text``, each computed in a worker thread: (audio, start, end)."""
        chunks = self._tts.synthesize(text, cancel, every_core=every_core)
        while not cancel.is_set():
            start = time.monotonic()
            audio = await asyncio.to_thread(next, chunks, None)
            if audio is None:
                return
            yield audio, start, time.monotonic()

    async def _take_ahead(self, sentence: AgentSentence) -> _Ahead | None:
        """The first piece's audio, if it was synthesized ahead for this very text."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if sentence.index != 0 or ahead.text != sentence.content:
            ahead.cancel.set()
            return None
        try:
            # A few words take Piper well under a second; never wait on it for long.
            await asyncio.wait_for(ahead.done.wait(), timeout=2.0)
        except TimeoutError:
            ahead.cancel.set()
            return None
        return ahead if ahead.complete else None

    def _on_interrupt(self, message: Message) -> None:
        self._first_audio_marked = False
        self._first_piece = ""

    async def synthesize(self, message: Message) -> AsyncIterator[Event]:
        sentence: AgentSentence = message.event
        if sentence.index == 0:
            self._first_audio_marked = False
            self._first_piece = sentence.content
            self.turn_id += 1
        count = 0
        try:
            # aclosing: a cut-off piece stops its synthesis now, not when collected.
            async with contextlib.aclosing(self._synthesize(sentence)) as events:
                async for event in events:
                    if isinstance(event, AgentAudioChunk):
                        count += 1
                    yield event
        except Exception:
            # The piece is lost, not the answer: the player still learns where the
            # piece (and, for the last one, the answer) ended. Then the route reports it.
            if sentence.final:
                self._first_piece = ""
            yield self._chunk(sentence, count, None)
            raise
        if sentence.final:
            self._first_piece = ""
        yield self._chunk(sentence, count, None)

    async def _synthesize(self, sentence: AgentSentence) -> AsyncGenerator[Event, None]:
        ahead = await self._take_ahead(sentence)
        count = 0
        if ahead is not None:
            self.ahead_used += 1
            self._first_audio_marked = True
            yield TurnMark(name="tts_first_audio", at=time.monotonic())
            yield StageSpan(stage="tts", start=ahead.start, end=ahead.end, content=ahead.text)
            for audio in ahead.chunks:
                yield self._chunk(sentence, count, audio)
                count += 1
        elif sentence.content.strip():
            cancel = threading.Event()
            try:
                async for audio, start, end in self._synthesized(sentence.content, cancel):
                    if not self._first_audio_marked:
                        self._first_audio_marked = True
                        yield TurnMark(name="tts_first_audio", at=end)
                    yield StageSpan(stage="tts", start=start, end=end, content=sentence.content)
                    yield self._chunk(sentence, count, audio)
                    count += 1
            finally:
                cancel.set()

    def _chunk(self, sentence: AgentSentence, index: int, audio: Any) -> AgentAudioChunk:
        """Audio number ``index`` of ``sentence``; ``None`` marks the sentence's end."""
        return AgentAudioChunk(
            audio=audio,
            sample_rate=self._tts.sample_rate,
            text=sentence.content if index == 0 and audio is not None else "",
            sentence_index=sentence.index,
            chunk_index=index,
            last_of_sentence=audio is None,
            last_of_answer=audio is None and sentence.final,
        )


@dataclass
class _SentenceSound:
    """How much of one sentence of the answer was handed to the sink and played."""

    text: str = ""
    chunk_s: list[float] = field(default_factory=list)  # each chunk handed to the sink
    played_s: float = 0.0
    pending: int = 0  # chunks handed to the sink that have not finished playing
    synthesized: bool = False  # its end arrived: no more chunks will come

    @property
    def queued_s(self) -> float:
        return sum(self.chunk_s)


@dataclass(eq=False)
class _Ahead:
    """Audio of a piece synthesized before it was asked for."""

    text: str
    chunks: list[Any] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    complete: bool = False
    start: float = field(default_factory=time.monotonic)
    end: float = 0.0


def heard_words(text: str, fraction: float) -> str:
    """The words of ``text`` a listener heard when ``fraction`` of it had played.

    A word counts as heard once playback passed its middle: speech time is roughly
    proportional to characters, so positions are measured in characters.
    """
    if fraction >= 1.0:
        return text
    if fraction <= 0.0 or not text:
        return ""
    limit = fraction * len(text)
    heard: list[str] = []
    position = 0
    for word in text.split(" "):
        middle = position + len(word) / 2
        if middle > limit:
            break
        heard.append(word)
        position += len(word) + 1
    return " ".join(heard).strip()


# A hold is the listener's to end (cut off, or let go); should that word never come,
# the answer plays on after this long rather than stay silent for good.
MAX_HOLD_S = 2.5
_JUST_BEFORE_S = 0.001


class PlayerNode:
    """Plays audio chunks on a sink and reports what was actually heard."""

    id = "player"

    def __init__(self, sink: AudioSink, publisher: Publisher) -> None:
        self._sink = sink
        self._publish = publisher
        self._turn_id = 0
        self._speaking = False
        self._sentences: dict[tuple[int, int], _SentenceSound] = {}
        # The answer speaks until its last piece has played: the sink running dry
        # between two sentences (synthesis fell behind) is a pause, not the end.
        self._answer_complete = False
        self._idle_since: float | None = None
        self._pending_chunks = 0
        self._stopped = False
        self._held_until: float | None = None  # when the held sound ended
        self._hold_expiry: asyncio.TimerHandle | None = None
        sink.on_started = self._on_started
        sink.on_tag_done = self._on_tag_done
        sink.on_idle = self._on_idle
        if isinstance(sink, WakingSink):
            sink.on_woke = self._on_woke

    @property
    def speaking(self) -> bool:
        return self._speaking

    def attach(self, bridge: Bridge, tts_node_id: str) -> None:
        bridge.on(AgentAudioChunk, source=tts_node_id).interrupt_on(AgentInterrupted).map(self.play)
        bridge.on(AgentInterrupted).map(self.stop)
        bridge.on(BargeInSuspected).map(self.hold)
        bridge.on(BargeInDismissed).map(self.release)

    def play(self, message: Message) -> None:
        chunk: AgentAudioChunk = message.event
        if chunk.sentence_index == 0 and chunk.chunk_index == 0:
            self._turn_id += 1
            self._stopped = False
            self._answer_complete = False
        elif self._stopped:
            return  # a chunk of the answer that was cut off, arriving late
        key = (self._turn_id, chunk.sentence_index)
        sentence = self._sentences.setdefault(key, _SentenceSound())
        if chunk.text:
            sentence.text = chunk.text
        if chunk.last_of_answer:
            self._answer_complete = True
        if chunk.audio is None:
            sentence.synthesized = True
            self._publish_if_heard(key)
            if self._answer_complete and self._idle_since is not None:
                self._finish(self._idle_since)  # the sink had already played everything
            return
        self._idle_since = None
        tag = PlaybackTag(
            turn_id=self._turn_id,
            sentence_index=chunk.sentence_index,
            text=chunk.text,
            chunk_index=chunk.chunk_index,
        )
        self._pending_chunks += 1
        duration = len(chunk.audio) / chunk.sample_rate
        sentence.chunk_s.append(duration)
        sentence.pending += 1
        self._sink.enqueue(chunk.audio, chunk.sample_rate, tag)

    def hold(self, message: Message | None = None) -> None:
        """Maybe a barge-in: hold the sound where it is until ``release`` or ``stop``."""
        if self._speaking and self._held_until is None:
            self._held_until = self._sink.pause()
            self._publish(TurnMark(name="playback_held", at=self._held_until))
            with contextlib.suppress(RuntimeError):  # no loop: nothing can expire
                loop = asyncio.get_running_loop()
                self._hold_expiry = loop.call_later(MAX_HOLD_S, self.release)

    def release(self, message: Message | None = None) -> None:
        """Not a barge-in after all: play on from where the sound was held."""
        self._cancel_hold_expiry()
        if self._held_until is not None:
            self._held_until = None
            self._sink.resume()
            self._publish(TurnMark(name="playback_released", at=time.monotonic()))

    def _cancel_hold_expiry(self) -> None:
        if self._hold_expiry is not None:
            self._hold_expiry.cancel()
            self._hold_expiry = None

    def stop(self, message: Message | None = None) -> None:
        """Barge-in: silence the sink now and record the part that was heard."""
        t_end = self._sink.stop_now()
        self._cancel_hold_expiry()
        if self._held_until is not None:
            # Nothing was heard after the hold: that is when the answer stopped.
            t_end, self._held_until = min(t_end, self._held_until), None
        self._stopped = True
        # What the device buffer still played after the call counts as heard. The
        # chunk is looked up just before the end, where the sound still was.
        position = self._sink.position(at=t_end - _JUST_BEFORE_S)
        self._pending_chunks = 0
        # The sink plays in order, so what came before the chunk being heard was
        # heard whole, whether or not its done callback has reached the loop yet.
        for key in sorted(self._sentences):
            sentence = self._sentences[key]
            played_s = sentence.played_s
            if position is not None:
                tag = position.tag
                if key > (tag.turn_id, tag.sentence_index):
                    continue
                if key == (tag.turn_id, tag.sentence_index):
                    played_s = (
                        sum(sentence.chunk_s[: tag.chunk_index]) + position.seconds + _JUST_BEFORE_S
                    )
                else:
                    played_s = sentence.queued_s
            if sentence.queued_s > 0:
                heard = heard_words(sentence.text, min(1.0, played_s / sentence.queued_s))
                if heard:
                    self._publish(AgentSpeechSent(content=heard + " "))
        self._sentences.clear()
        if self._speaking:
            self._speaking = False
            self._publish(TurnMark(name="playback_stopped", at=t_end))
            self._publish(AgentStoppedSpeaking(interrupted=True, last_sample_time=t_end))

    def _on_started(self, tag: PlaybackTag, t_audible: float) -> None:
        if tag.turn_id != self._turn_id:
            return
        self._speaking = True
        self._publish(TurnMark(name="playback_start", at=t_audible))
        self._publish(AgentStartedSpeaking(playback_start=t_audible))

    def _on_tag_done(self, tag: PlaybackTag, t: float) -> None:
        self._pending_chunks = max(0, self._pending_chunks - 1)
        key = (tag.turn_id, tag.sentence_index)
        sentence = self._sentences.get(key)  # gone: the answer was stopped
        duration = sentence.chunk_s[tag.chunk_index] if sentence is not None else 0.0
        self._publish(StageSpan(stage="playback", start=t - duration, end=t, content=tag.text))
        if sentence is not None:
            sentence.played_s += duration
            sentence.pending = max(0, sentence.pending - 1)
            self._publish_if_heard(key)

    def _publish_if_heard(self, key: tuple[int, int]) -> None:
        """A sentence is heard once its last chunk has played, not its first."""
        sentence = self._sentences.get(key)
        if sentence is None or not sentence.synthesized or sentence.pending:
            return
        del self._sentences[key]
        if sentence.text and sentence.played_s > 0:
            self._publish(AgentSpeechSent(content=sentence.text + " "))

    def _on_woke(self, since: float, until: float) -> None:
        waited_ms = round((until - since) * 1000)
        self._publish(
            StageSpan(
                stage="speaker", start=since, end=until, content=f"speaker waking, {waited_ms} ms"
            )
        )

    def _on_idle(self, t: float) -> None:
        if self._pending_chunks:
            return
        self._idle_since = t
        if self._answer_complete:
            self._finish(t)

    def _finish(self, t: float) -> None:
        if self._speaking:
            self._speaking = False
            self._publish(AgentStoppedSpeaking(interrupted=False, last_sample_time=t))
