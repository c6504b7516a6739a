"""A pause in the user's speech, announced once so that STT and the LLM can start early."""

from __future__ import annotations

from voiceterm.engines.vad import SpeechEnded
from voiceterm.events import UserSpeechPaused
from voiceterm.pipeline.listening.seams import Clock, Publish, Segmenter
from voiceterm.pipeline.wake import ListenGate

_WAKE_CHECK_PAUSE_MS = 100
"""The pause at which an utterance that is not a turn yet is read for the wake phrase:
longer than a turn's (``pause_ms``), as a person talking beside the terminal pauses
often within an utterance, and each read is a Whisper check; it still leaves ~200 ms
of the 300 ms that end such an utterance for the check to run in."""


def as_turn(gate: ListenGate | None, utterance: SpeechEnded | None) -> SpeechEnded | None:
    """The utterance in progress as far as it is a turn (``None``: not one yet)."""
    if utterance is None or gate is None:
        return utterance
    return gate.so_far(utterance)


class PauseAnnouncer:
    """Publishes ``UserSpeechPaused`` once per silence of ``pause_ms`` (0: never)."""

    def __init__(
        self,
        segmenter: Segmenter,
        publish: Publish,
        clock: Clock,
        *,
        pause_ms: int,
        gate: ListenGate | None,
    ) -> None:
        self._vad, self._publish, self._clock = segmenter, publish, clock
        self._pause_ms, self._gate = pause_ms, gate
        self._sent = False
        # The pause last announced (its speech end) and when: its words count from then.
        self._announced: tuple[float, float] | None = None

    def read_asked_at(self, speech_end: float) -> float | None:
        """When the words up to the pause at ``speech_end`` were sent to be read (``None``:
        that pause was not announced as a turn's, so nothing reads its words)."""
        announced = self._announced
        return announced[1] if announced is not None and announced[0] == speech_end else None

    def silence_broken(self) -> None:
        """The sound heard since the last announcement was not a pause of this utterance."""
        self._sent = False

    def feed(self, onset: float | None) -> None:
        """After each frame of sound that may be the user's (not held, not echo)."""
        if not self._pause_ms:
            return
        silence = self._vad.trailing_silence_ms
        if silence == 0:
            self._sent = False
            return
        if self._sent or silence < self._pause_ms:
            return
        gate = self._gate
        if silence < _WAKE_CHECK_PAUSE_MS and gate is not None and onset is not None:
            speech_end = self._vad.last_voiced_end
            if speech_end is not None and not gate.turn_so_far(onset, speech_end):
                return  # not a turn: a longer pause before Whisper reads it for the phrase
        self._sent = True
        heard = self._vad.current_utterance()
        utterance = as_turn(gate, heard)
        if utterance is None:
            # Not a turn yet (no wake word): nothing of it is transcribed, but when it
            # would be checked for the wake phrase at its end, Whisper reads it now, while
            # the silence that ends it runs, as a turn's words are read ahead.
            if heard is not None and gate is not None and gate.check_so_far(heard) is not None:
                self._publish(
                    UserSpeechPaused(
                        audio=heard.audio,
                        speech_start=heard.speech_start,
                        speech_end=heard.speech_end,
                        wake_check=True,
                    )
                )
            return
        self._announced = (utterance.speech_end, self._clock())
        self._publish(
            UserSpeechPaused(
                audio=utterance.audio,
                speech_start=utterance.speech_start,
                speech_end=utterance.speech_end,
            )
        )
