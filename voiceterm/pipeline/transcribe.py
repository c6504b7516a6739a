"""The STT node: each finished utterance becomes a transcript, in a worker thread.

An utterance that the wake word model did not wake on (``UserStoppedSpeaking.wake_near_miss``)
is a turn only if it begins with the wake phrase (``read_wake`` and ``confirm_wake``,
the listen gate's :meth:`~voiceterm.pipeline.wake.ListenGate.read_check` and
:meth:`~voiceterm.pipeline.wake.ListenGate.confirm_read`): then what follows the
phrase is the turn. Otherwise nothing of it is kept or answered.

A transcript that sounds unfinished (see :mod:`voiceterm.pipeline.end_of_turn.transcript`) is held
for ``incomplete_wait_s``: if the user goes on talking, the next utterance's words
join it; if not, it is sent as it is. A transcript of the agent's own voice (see
:mod:`voiceterm.pipeline.own_voice`) is dropped, not answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.events import (
    Event,
    PauseChecked,
    StageSpan,
    TurnMark,
    UserSpeechPaused,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
)
from voiceterm.pipeline.end_of_turn.transcript import sounds_finished
from voiceterm.pipeline.own_voice import OwnVoice
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.wake_words import WakeRead

if TYPE_CHECKING:
    from voiceterm.audio.frames import Int16Array

logger = logging.getLogger(__name__)


class Transcribed(Protocol):
    """What the STT node reads of a transcription (``stt.Transcript`` fits)."""

    @property
    def text(self) -> str: ...

    @property
    def compute_s(self) -> float:
        """The recognizer's own time for it (the rest of the wall time is waiting)."""
        ...

    @property
    def attempts(self) -> int:
        """How many windows were tried (more than one: a repetition loop was retried)."""
        ...


class Transcriber(Protocol):
    """What the STT node needs (``WhisperTranscriber`` fits; a test fake may say a str)."""

    def transcribe(self, audio: Int16Array) -> Transcribed | str: ...


def _words(result: Transcribed | str) -> str:
    return (result if isinstance(result, str) else result.text).strip()


@dataclass(eq=False)
class SttNode:
    """Transcribes utterances one after another; drops empty results.

    ``before_turn`` is awaited before a transcript starts a new turn (the agent cuts
    off an answer still in flight there). ``read_wake(audio, speech_end)`` reads an
    utterance the wake word model did not wake on (in a worker thread: Whisper scores
    it, and transcribes it when it may be the phrase), and ``confirm_wake(speech_end,
    read)`` says what follows the wake phrase, or ``None``.
    """

    id = "stt"

    transcriber: Transcriber
    publisher: Publisher
    incomplete_wait_s: float = field(default=0.4, kw_only=True)
    own_voice: OwnVoice | None = field(default=None, kw_only=True)
    before_turn: Callable[[], Awaitable[None]] | None = field(default=None, kw_only=True)
    read_wake: Callable[[Any, float], WakeRead] | None = field(default=None, kw_only=True)
    confirm_wake: Callable[[float, WakeRead], str | None] | None = field(default=None, kw_only=True)
    _held: str = field(default="", init=False)
    _release: asyncio.TimerHandle | None = field(default=None, init=False)
    _speculation: tuple[float | None, str, float, float] | None = field(default=None, init=False)
    """(speech_end, text, start, end) of the last pause's transcript."""
    _words_at_pauses: tuple[float | None, str] | None = field(default=None, init=False)
    """(speech_start, text) of the utterance's last pause that heard words."""
    _utterances_started: int = field(default=0, init=False)
    """Counted apart from the ends because starts are control events and overtake ends."""
    _utterances_ended: int = field(default=0, init=False)

    @property
    def holding(self) -> bool:
        """Whether an unfinished-sounding transcript is waiting for more speech."""
        return bool(self._held)

    def words_at_pause(self, speech_end: float) -> str | None:
        """The words heard up to the pause after ``speech_end``, if they are transcribed yet."""
        speculation = self._speculation
        if speculation is None or speculation[0] != speech_end:
            return None
        return f"{self._held} {speculation[1]}".strip()

    def attach(self, bridge: Bridge) -> None:
        # One route for pauses and ends keeps them in order: an end can reuse the
        # transcript of the pause before it.
        (
            bridge.on(Event, filter_fn=_is_utterance)
            .named(self.id)  # its failures are the stage's: AgentError(source="stt")
            .stream(self.handle)
            .broadcast()
        )
        bridge.on(UserStartedSpeaking).map(self._user_went_on)

    def _user_went_on(self, message: Message) -> None:
        self._utterances_started += 1
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def _send_held(self) -> None:
        self._release = None
        text, self._held = self._held, ""
        if text:
            self.publisher(UserTranscriptionReceived(content=text))

    async def handle(self, message: Message) -> AsyncIterator[Event]:
        event = message.event
        if isinstance(event, UserSpeechPaused):
            async for item in self._speculate(event):
                yield item
        elif isinstance(event, UserStoppedSpeaking):
            self._utterances_ended += 1
            if event.wake_near_miss is not None:
                async for item in self._check_wake(event):
                    yield item
                return
            async for item in self.transcribe(event):
                yield item

    async def _check_wake(self, utterance: UserStoppedSpeaking) -> AsyncIterator[Event]:
        """Not woken by the model: a turn if it begins with the wake phrase."""
        self._speculation = None
        read = WakeRead(None)
        start = end = time.monotonic()
        if (
            utterance.audio is not None
            and len(utterance.audio)
            and utterance.speech_end is not None
            and self.read_wake is not None
        ):
            read = await asyncio.to_thread(self.read_wake, utterance.audio, utterance.speech_end)
            end = time.monotonic()
        rest = None
        if self.confirm_wake is not None and utterance.speech_end is not None:
            rest = self.confirm_wake(utterance.speech_end, read)
        if rest is None:
            # Not addressed to the agent: its words (if any were read) are neither shown nor kept.
            logger.info("not woken: it does not begin with the wake phrase (fit %s)", read.fit)
            yield TurnMark(name="stt_done", at=time.monotonic(), detail="")
            yield UserTranscriptionDropped(reason="not_wake_phrase")
            return
        text = read.transcript
        logger.info(
            "wake check (%s, fit %s): %r in %.0f ms", read.how, read.fit, text, 1000 * (end - start)
        )
        yield TurnMark(name="stt_done", at=end, detail=rest)
        yield StageSpan(stage="stt", start=start, end=end, content=text)
        async for item in self._answer(rest, utterance, nothing="wake_phrase_alone"):
            yield item

    async def _speculate(self, pause: UserSpeechPaused) -> AsyncIterator[Event]:
        """Transcribe the utterance so far while the end-of-speech wait runs."""
        if pause.audio is None or not len(pause.audio):
            return
        if pause.wake_check:
            async for item in self._check_wake_ahead(pause):
                yield item
            return
        text, start, end = await self._transcribed(pause.audio, "pause")
        self._speculation = (pause.speech_end, text, start, end)
        if text:
            self._words_at_pauses = (pause.speech_start, text)
        yield PauseChecked(
            kind="words", speech_end=pause.speech_end, asked_at=pause.timestamp, answered_at=end
        )
        if text and not self._is_own_voice(text, pause.speech_start, pause.speech_end):
            yield UserTranscriptionPartial(content=f"{self._held} {text}".strip())

    async def _transcribed(self, audio: Int16Array, kind: str) -> tuple[str, float, float]:
        """The words in ``audio``, and when Whisper started and finished on it."""
        start = time.monotonic()
        result = await asyncio.to_thread(self.transcriber.transcribe, audio)
        end = time.monotonic()
        _log_transcript(kind, result, start, end)
        return _words(result), start, end

    async def _check_wake_ahead(self, pause: UserSpeechPaused) -> AsyncIterator[Event]:
        """Read an utterance that is not a turn yet for the wake phrase, at its pause.

        The read is kept (the listen gate's ``read_check``): when the utterance ends with
        nothing said since, its end uses it, and the check's Whisper time is spent during
        the silence that ends the utterance instead of after it. When it would wake with
        a question, the question is announced as a partial transcript, so that the answer
        is prepared as a turn's is in always mode; nothing else of it is shown.
        """
        if self.read_wake is None or pause.speech_end is None:
            return
        read = await asyncio.to_thread(self.read_wake, pause.audio, pause.speech_end)
        if read.rest:
            yield UserTranscriptionPartial(content=f"{self._held} {read.rest}".strip())

    async def transcribe(self, utterance: UserStoppedSpeaking) -> AsyncIterator[Event]:
        text = ""
        speculation, self._speculation = self._speculation, None
        words_at_pauses, self._words_at_pauses = self._words_at_pauses, None
        if utterance.discarded:
            # Not a turn (echo, a cough): what its pause transcribed is not one either.
            speculation = words_at_pauses = None
        if speculation is not None and speculation[0] == utterance.speech_end:
            # Nothing was said after the pause: its transcript is this utterance's.
            _speech_end, text, start, end = speculation
            yield TurnMark(name="stt_done", at=time.monotonic(), detail=text)
            yield StageSpan(stage="stt", start=start, end=end, content=text or "(nothing heard)")
        elif utterance.audio is not None and len(utterance.audio):
            text, start, end = await self._transcribed(utterance.audio, "final")
            yield TurnMark(name="stt_done", at=end, detail=text)
            yield StageSpan(stage="stt", start=start, end=end, content=text or "(nothing heard)")
        else:
            # Too short to transcribe (a cough): the timeline still closes the utterance.
            yield TurnMark(name="stt_done", at=time.monotonic(), detail="")
        if (
            not text
            and words_at_pauses is not None
            and words_at_pauses[0] == utterance.speech_start
        ):
            # Whisper can read a whole utterance as nothing (loud echo under it) after
            # reading words in its first part: the words the user saw stand.
            logger.info("stt: the whole utterance read as nothing; its words at a pause stand")
            text = words_at_pauses[1]
        async for item in self._answer(text, utterance, nothing="nothing_heard"):
            yield item

    async def _answer(
        self, text: str, utterance: UserStoppedSpeaking, *, nothing: str
    ) -> AsyncIterator[Event]:
        """An utterance's transcript: answered (with any held words), held, or dropped: as
        echo, or with no words (``nothing``: the reason then)."""
        if not text:
            yield UserTranscriptionDropped(reason=nothing)
            return
        if not utterance.barge_in and self._is_own_voice(
            text, utterance.speech_start, utterance.speech_end
        ):
            # A barge-in is confirmed after the held answer fell silent: not echo.
            logger.info("heard its own voice, not answering: %r", text)
            yield UserTranscriptionDropped(content=text, reason="own_voice")
            if self._held and self._release is None:
                # What the user said before it still waits for the rest, as before.
                self._schedule_release()
            return
        if self._release is not None:
            self._release.cancel()
            self._release = None
        combined = f"{self._held} {text}".strip()
        self._held = ""
        if not combined:
            return
        if self.incomplete_wait_s <= 0 or sounds_finished(combined):
            if self.before_turn is not None:
                await self.before_turn()
            yield UserTranscriptionReceived(content=combined)
            return
        self._held = combined
        if self._utterances_started > self._utterances_ended:
            # The user is already talking again: the next utterance joins this one.
            return
        self._schedule_release()

    def _schedule_release(self) -> None:
        self._release = asyncio.get_running_loop().call_later(
            self.incomplete_wait_s, self._send_held
        )

    def _is_own_voice(self, text: str, start: float | None, end: float | None) -> bool:
        return self.own_voice is not None and self.own_voice.heard_in(text, start, end)

    def close(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None


def _log_transcript(kind: str, result: Transcribed | str, start: float, end: float) -> None:
    # Whisper's own figures tell a slow model (retries on longer windows) from a
    # slow machine (the wall time far above the compute time) in a -v log.
    if isinstance(result, str):
        logger.info("stt %s: %.0f ms %r", kind, 1000 * (end - start), result)
        return
    logger.info(
        "stt %s: %.0f ms (Whisper %.0f ms, %s attempts) %r",
        kind,
        1000 * (end - start),
        1000 * result.compute_s,
        result.attempts,
        result.text,
    )


def _is_utterance(message: Message) -> bool:
    return isinstance(message.event, (UserSpeechPaused, UserStoppedSpeaking))
