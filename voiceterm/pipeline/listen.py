"""The listener: microphone frames -> VAD -> user speech events, and barge-in.

Runs as one task that pulls ``AudioFrame``\\ s from an ``AudioSource``. Frames are
fed to the VAD on the event loop: webrtcvad costs microseconds per frame, far less
than a thread hop. Each frame then goes to the listener's parts, in this order
(:mod:`voiceterm.pipeline.listening`): the pause announcer and the end-of-turn judge
(is the pause in progress the end of the turn?), the echo gate (may this utterance
be the agent's own voice?), barge-in (does it interrupt the agent?) and the level
meter. The listener itself turns the VAD's events into the user's speech events: a
turn, or speech that is not one (echo, a held answer, no wake word).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from voiceterm.audio.abilities import is_realtime, relaxes
from voiceterm.engines.vad import SpeechEnded, SpeechStarted, VadEvent
from voiceterm.events import StageSpan, TurnMark, UserStartedSpeaking, UserStoppedSpeaking
from voiceterm.pipeline.end_of_turn.policy import Verdict
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.listening.barge_in import BargeIn
from voiceterm.pipeline.listening.echo_gate import EchoGate
from voiceterm.pipeline.listening.level import LevelMeter
from voiceterm.pipeline.listening.pauses import PauseAnnouncer
from voiceterm.pipeline.listening.push_to_talk import PushToTalk
from voiceterm.pipeline.listening.seams import Clock, Frames, Heard, Publish, Segmenter
from voiceterm.pipeline.listening.settings import ListenerSettings, TurnJudging
from voiceterm.pipeline.listening.turn_judge import TurnJudge
from voiceterm.pipeline.wake import ListenGate, WordCheck

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)


class Listener:
    """Turns captured audio into ``UserStartedSpeaking``/``UserStoppedSpeaking``.

    Args:
        source: the microphone (or a file read as one): ``frames()`` of ``AudioFrame``.
        segmenter: the voice detector.
        publisher: where the listener's events go.
        activity: what the agent is doing (the agent keeps it up to date).
        settings: barge-in, echo, pauses.
        turn: with an end-of-turn model, how a pause is judged (``None``: silence ends it).
        gate: ``listen.mode``: which utterances are turns (the wake word, its follow-up).
        on_active: called at each frame while the user talks or the agent is busy (the
            speaker keeps its stream running).
        clock: the time its decisions read (a replay hands its audio time).
    """

    id = "listener"

    def __init__(
        self,
        source: Frames,
        segmenter: Segmenter,
        publisher: Publish,
        activity: AgentActivity,
        settings: ListenerSettings,
        *,
        turn: TurnJudging | None = None,
        gate: ListenGate | None = None,
        on_active: Callable[[], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._source = source
        # A source faster than real time waits for each check, so that a file run
        # decides as a live one would.
        self._realtime = is_realtime(source)
        self._relaxed = False
        self._vad = segmenter
        self._publish = publisher
        self._activity = activity
        self._gate = gate
        self._on_active = on_active
        self._clock = clock
        self.meter = LevelMeter(publisher)
        self.echo = EchoGate(activity, settings)
        self.barge_in = BargeIn(activity, publisher, settings, clock)
        self.pauses = PauseAnnouncer(
            segmenter, publisher, clock, pause_ms=settings.pause_ms, gate=gate
        )
        self.talk = PushToTalk()
        self.judge = (
            TurnJudge(
                turn,
                segmenter,
                publisher,
                self,
                self.pauses,
                clock,
                quick_end_ms=settings.quick_end_ms,
                gate=gate,
            )
            if turn is not None
            else None
        )
        self._onset: float | None = None
        # Why the listener itself ends the utterance in progress ("": the verdict said
        # it, already drawn); None while the VAD's own hangover (the cap) would.
        self._ending_reason: str | None = None
        self._input_ended = False
        self.finished = asyncio.Event()
        self.utterances = 0

    @property
    def frame_phase(self) -> int:
        """Samples the voice detector holds towards its next frame (a recording notes it:
        its replay frames the sound as the live session did)."""
        return int(self._vad.pending_samples)

    @property
    def push_to_talk(self) -> bool:
        """Push-to-talk: while the key is up the microphone is ignored."""
        return self.talk.enabled

    @push_to_talk.setter
    def push_to_talk(self, enabled: bool) -> None:
        self.talk.enabled = enabled

    @property
    def onset(self) -> float | None:
        """The onset of the utterance in progress (``None``: none)."""
        return self._onset

    async def run(self) -> None:
        """Read frames until the source ends; then flush the last utterance."""
        try:
            async for frame in self._source.frames():
                self.hear(frame.samples, frame.t_start, frame.t_end)
                if self.judge is not None and not self._realtime:
                    await self.judge.settle()
            self._flush(self._clock())
        finally:
            self.finished.set()

    def set_talk_pressed(self, pressed: bool) -> None:
        """Push-to-talk: while released, the microphone is ignored; release ends the utterance."""
        if self.talk.press(pressed):
            self._flush(self._clock())

    def _flush(self, now: float) -> None:
        """The input ended (or push-to-talk let go): the utterance in progress ends."""
        self._input_ended = True
        try:
            for event in self._vad.flush(now):
                self.on_vad_event(event, now)
        finally:
            self._input_ended = False

    def end_now(self, reason: str) -> None:
        """End the utterance in progress; ``reason`` goes in the timeline's turn lane."""
        now = self._clock()
        self._ending_reason = reason
        try:
            for event in self._vad.end_utterance():
                self.on_vad_event(event, now)
        finally:
            self._ending_reason = None

    def in_doubt(self) -> bool:
        """Whether the utterance in progress is not a turn to judge: held, or maybe echo."""
        return self.barge_in.holding or self._echo_so_far()

    def _echo_so_far(self) -> bool:
        """Whether the utterance in progress is, so far, what echo cancellation left."""
        return self.echo.suspects() and not self.barge_in.barged

    def hear(self, samples: npt.NDArray[np.int16], t_start: float, t_end: float) -> None:
        """One frame of the microphone, captured from ``t_start`` to ``t_end``."""
        judge, vad = self.judge, self._vad
        if judge is not None:
            # A verdict due by the end of this frame came, live, before the frame did.
            judge.end_of_turn.release()
        if self.talk.mutes() or self.echo.mutes(t_start):
            samples = samples * 0
        events = vad.feed(samples, t_start)
        if self._gate is not None:
            self._gate.hear(samples, t_start, voiced=vad.voiced)
        for event in events:
            self.on_vad_event(event, self._clock())
        if not self.barge_in.holding and not self._echo_so_far():
            # No speculative transcript of what may be echo or a cough.
            self.pauses.feed(self._onset)
        if judge is not None and not self.barge_in.holding and not self.talk.enabled:
            judge.feed(echo=self._echo_so_far())  # else the hold decides, or the key does
        heard = Heard(t_start, t_end, vad.voiced, vad.level_db)
        self.echo.feed(heard, in_utterance=self._onset is not None)
        if self.barge_in.feed(heard, self._onset):
            self._drop_held(t_end)
        self._relax(self._onset is None and not self.barge_in.holding and not self._activity.busy)
        self.meter.feed(heard.level_db, heard.voiced, self._clock())

    def _relax(self, idle: bool) -> None:
        """Let a live microphone wake the loop less often while nothing goes on.

        Only where nobody speaks and the agent neither thinks nor speaks: speech
        then starts up to a few tens of ms later on screen, and nothing waits
        for it; barge-in, the end of a turn and the hold see every block.
        Otherwise ``on_active`` is called (the speaker keeps its stream running).
        """
        if not idle and self._on_active is not None:
            self._on_active()
        # Let a live microphone wake the loop less often (where it can).
        if idle != self._relaxed and relaxes(self._source):
            self._relaxed = idle
            self._source.relaxed = idle

    def _drop_held(self, t: float) -> None:
        """A hold was let go: the sound held is no turn, and its utterance is dropped."""
        self.pauses.silence_broken()
        if self.judge is not None:
            self.judge.end_of_turn.utterance_over()
        if self._onset is not None:
            self._vad.discard_utterance()
            self._onset = None
            self._publish(UserStoppedSpeaking(speech_end=t, discarded=True))

    def on_vad_event(self, event: VadEvent, t_now: float) -> None:
        """A start or end of speech from the voice detector."""
        match event:
            case SpeechStarted():
                self._onset = event.onset_time
                self.echo.speech_started(event.onset_time)
                self.barge_in.speech_started()
                self._publish(UserStartedSpeaking(onset_time=event.onset_time))
            case SpeechEnded():
                self._speech_ended(event, t_now)

    def _speech_ended(self, event: SpeechEnded, t_now: float) -> None:
        self._onset = None
        last_verdict = None
        if self.judge is not None:
            last_verdict = self.judge.end_of_turn.last_verdict
            self.judge.end_of_turn.utterance_over()
        # Not a turn while it is unclear whose voice it was (the hold decides), nor
        # too short, nor what echo cancellation left.
        not_a_turn = self.barge_in.holding or event.too_short or self._echo_so_far()
        turn, near_miss = (None, None) if not_a_turn else self._gated(event)
        if turn is None:
            # Say it ended, with nothing to transcribe (nor answer: no wake word).
            self._publish(UserStoppedSpeaking(speech_end=event.speech_end, discarded=True))
            return
        if self.echo.over_agent or self._activity.speaking:
            logger.info(
                "speech %s the agent's voice taken as a turn (%.0f ms loud after its echo)",
                "begun over" if self.echo.over_agent else "ending over",
                1000 * self.echo.loud_s,
            )
        self.utterances += 1
        self._publish_turn(turn, t_now, last_verdict, near_miss)

    def _publish_turn(
        self, turn: SpeechEnded, t_now: float, last_verdict: Verdict | None, near_miss: float | None
    ) -> None:
        if self.judge is not None and self._ending_reason is None:
            self._publish(
                self.judge.cap_span(turn, t_now, last_verdict, input_ended=self._input_ended)
            )
        elif self._ending_reason:
            self._publish(
                StageSpan(
                    stage="turn", start=turn.speech_end, end=t_now, content=self._ending_reason
                )
            )
        self._publish(TurnMark(name="speech_end", at=turn.speech_end))
        self._publish(TurnMark(name="vad_stop", at=t_now))
        self._publish(
            StageSpan(stage="vad", start=turn.speech_start, end=turn.speech_end, content="")
        )
        self._publish(
            UserStoppedSpeaking(
                audio=turn.audio,
                sample_rate=16000,
                speech_start=turn.speech_start,
                speech_end=turn.speech_end,
                barge_in=self.barge_in.barged,
                wake_near_miss=near_miss,
            )
        )

    def _gated(self, event: SpeechEnded) -> tuple[SpeechEnded | None, float | None]:
        """The turn in an ended utterance (after a wake phrase), or ``None``: not a turn.

        Second: the wake word model's best score when the utterance is a near miss whose
        words decide (the STT node reads them); ``None`` otherwise.
        """
        if self._gate is None:
            return event, None
        turn = self._gate.decide(event)
        if isinstance(turn, WordCheck):
            return event, turn.probability
        if turn is None and self.barge_in.barged:
            turn = event  # a barge-in is a turn in every mode
        if turn is not None:
            span = self._gate.turn_span(event, turn)
            if span is not None:
                self._publish(span)
        return turn, None
