"""The listener: microphone frames -> VAD -> user speech events, and barge-in.

Runs as one task that pulls ``AudioFrame``\\ s from an ``AudioSource``. Frames are
fed to the VAD on the event loop: webrtcvad costs microseconds per frame, far less
than a thread hop. While the agent is busy (thinking or speaking), confirmed user
speech — at least ``min_speech_ms`` of it, so a cough does not count — publishes
``AgentInterrupted``: the LLM, TTS and player stop. With ``echo="half_duplex"``
the microphone is ignored while the agent speaks (and for a short tail after), for
rooms where the speaker would otherwise be heard as the user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from voiceterm.events import (
    AgentInterrupted,
    AudioLevel,
    StageSpan,
    TurnMark,
    UserSpeechPaused,
    UserStartedSpeaking,
    UserStoppedSpeaking,
)
from voiceterm.pipeline.publish import Publisher

logger = logging.getLogger(__name__)

_LEVEL_INTERVAL_S = 0.05  # meters redraw at 20 Hz; faster only costs CPU
_HALF_DUPLEX_TAIL_S = 0.3  # room reverb after the last played sample


@dataclass(slots=True)
class AgentActivity:
    """What the agent is doing, as far as barge-in cares."""

    thinking: bool = False
    speaking: bool = False
    last_sound_end: float = 0.0

    @property
    def busy(self) -> bool:
        return self.thinking or self.speaking


class Listener:
    """Turns captured audio into ``UserStartedSpeaking``/``UserStoppedSpeaking``."""

    id = "listener"

    def __init__(
        self,
        source: Any,
        segmenter: Any,
        publisher: Publisher,
        activity: AgentActivity,
        *,
        barge_in: bool = True,
        min_speech_ms: int = 150,
        echo: str = "off",
        echo_canceller: Any = None,
        pause_ms: int = 60,
        min_level_db: float = -32.0,
        start_ms: int = 60,
    ) -> None:
        self._source = source
        self._vad = segmenter
        self._publish = publisher
        self._activity = activity
        self._barge_in = barge_in
        self._min_speech_s = min_speech_ms / 1000
        self._echo = echo
        self._aec = echo_canceller
        self._pause_ms = pause_ms
        self._min_level_db = min_level_db
        self._start_s = start_ms / 1000
        self._barge_voiced_s = 0.0
        self._pause_sent = False
        self._onset: float | None = None
        self._barged = False
        self._last_level = 0.0
        self.push_to_talk = False
        self._talk_pressed = False
        self.finished = asyncio.Event()
        self.utterances = 0

    async def run(self) -> None:
        """Read frames until the source ends; then flush the last utterance."""
        try:
            async for frame in self._source.frames():
                self._on_frame(frame.samples, frame.t_start, frame.t_end)
            end = time.monotonic()
            for event in self._vad.flush(end):
                self._on_vad_event(event, end)
        finally:
            self.finished.set()

    def set_talk_pressed(self, pressed: bool) -> None:
        """Push-to-talk: while released, the microphone is ignored; release ends the utterance."""
        was_pressed, self._talk_pressed = self._talk_pressed, pressed
        if was_pressed and not pressed and self.push_to_talk:
            now = time.monotonic()
            for event in self._vad.flush(now):
                self._on_vad_event(event, now)

    def _ignoring_mic(self, t: float) -> bool:
        if self.push_to_talk and not self._talk_pressed:
            return True
        if self._echo != "half_duplex":
            return False
        activity = self._activity
        return activity.speaking or t < activity.last_sound_end + _HALF_DUPLEX_TAIL_S

    def _on_frame(self, samples: Any, t_start: float, t_end: float) -> None:
        if self._aec is not None:
            samples = self._aec.process_capture(samples)
        if self._ignoring_mic(t_start):
            samples = samples * 0
        events = self._vad.feed(samples, t_start)
        for event in events:
            self._on_vad_event(event, time.monotonic())
        self._check_pause()
        if self._onset is not None and not self._barged and self._barge_in:
            # Count voiced audio, not the time since the onset: the VAD stays "in
            # speech" through its hangover, so an 80 ms cough would otherwise pass
            # min_speech_ms during the silence after it. While the agent speaks, only
            # frames above min_level_db count: what echo cancellation leaves of the
            # agent's own voice comes in short, quiet bursts (-31 to -42 dBFS on the
            # rig), a person talking over it is louder (-18 to -32 dBFS).
            if self._vad.voiced and (
                not self._activity.speaking or self._vad.level_db >= self._min_level_db
            ):
                self._barge_voiced_s += t_end - t_start
            if self._activity.busy and self._barge_voiced_s >= self._min_speech_s:
                self._barged = True
                self._publish(TurnMark(name="barge_in_onset", at=self._onset))
                self._publish(AgentInterrupted(reason="user_speech"))
        now = time.monotonic()
        if now - self._last_level >= _LEVEL_INTERVAL_S:
            self._last_level = now
            self._publish(AudioLevel(level_db=self._vad.level_db, voiced=self._vad.voiced))

    def _check_pause(self) -> None:
        """Announce a pause once per silence, so STT and the LLM can start early."""
        if not self._pause_ms:
            return
        silence = self._vad.trailing_silence_ms
        if silence == 0:
            self._pause_sent = False
            return
        if self._pause_sent or silence < self._pause_ms:
            return
        utterance = self._vad.current_utterance()
        if utterance is None:
            return
        self._pause_sent = True
        self._publish(
            UserSpeechPaused(
                audio=utterance.audio,
                speech_start=utterance.speech_start,
                speech_end=utterance.speech_end,
            )
        )

    def _on_vad_event(self, event: Any, t_now: float) -> None:
        kind = type(event).__name__
        if kind == "SpeechStarted":
            self._onset = event.onset_time
            # The start confirmation's voiced frames count toward a barge-in too.
            self._barge_voiced_s = self._start_s
            self._barged = False
            self._publish(UserStartedSpeaking(onset_time=event.onset_time))
        elif kind == "SpeechEnded":
            self._onset = None
            if event.too_short:
                # A click or a cough: not a turn. Say it ended, with nothing to transcribe.
                self._publish(UserStoppedSpeaking(audio=None, speech_end=event.speech_end))
                return
            self.utterances += 1
            self._publish(TurnMark(name="speech_end", at=event.speech_end))
            self._publish(TurnMark(name="vad_stop", at=t_now))
            self._publish(
                StageSpan(stage="vad", start=event.speech_start, end=event.speech_end, content="")
            )
            self._publish(
                UserStoppedSpeaking(
                    audio=event.audio,
                    sample_rate=16000,
                    speech_start=event.speech_start,
                    speech_end=event.speech_end,
                )
            )
