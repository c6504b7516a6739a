"""The listener: microphone frames -> VAD -> user speech events, and barge-in.

Runs as one task that pulls ``AudioFrame``\\ s from an ``AudioSource``. Frames are
fed to the VAD on the event loop: webrtcvad costs microseconds per frame, far less
than a thread hop.

Barge-in while the agent speaks is "hold, then confirm": as soon as the VAD hears
speech (loud enough: ``min_level_db``) it publishes ``BargeInSuspected`` and the
player holds the answer where it is, so the sound stops within a block of the
onset. Holding the sound also silences the agent's own echo; after
``hold_settle_ms`` (the echo still on its way) the listener counts speech again.
``hold_confirm_ms`` more of it is the user taking the turn: ``AgentInterrupted``
cuts the LLM, TTS and player off. ``hold_quiet_ms`` of silence instead (echo that
died with the held sound, a cough) publishes ``BargeInDismissed``: the answer plays
on from where it stopped and the sound is not a turn. While the agent is only thinking there is
nothing to hold: ``min_speech_ms`` of speech interrupts it. With
``echo="half_duplex"`` the microphone is ignored while the agent speaks (and for a
short tail after), for rooms where the speaker would otherwise be heard as the user.

With an end-of-turn model (``turn_model``), a silence no longer ends the user's turn
by itself: the VAD's hangover is the silence cap, and at each pause the model is
asked whether the turn is complete (see :mod:`voiceterm.pipeline.turn_end`), and
the words transcribed at the pause (``words_so_far``) are read: "and", a comma or
no final punctuation sound unfinished. Both done: the turn ends. They disagree:
it ends after ``unsure_ms`` of silence. Both surely not done (the words cut off,
not merely a short command ending on "that"): the cap ends it. With learned
weights (``turn_weights``, see :mod:`voiceterm.pipeline.turn_fusion`) one
learned decision replaces those three cases: the voice, the words, the LLM's
probability that the message ends there (``words_end``) and the silence so far
set how long to wait, re-judged as each signal arrives. Speech
that may be echo, or that holds the answer, is not a turn to judge: it ends after
``quick_end_ms`` of silence, as without the model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voiceterm.events import (
    AgentInterrupted,
    AudioLevel,
    BargeInDismissed,
    BargeInSuspected,
    PauseChecked,
    StageSpan,
    TurnMark,
    UserSpeechPaused,
    UserStartedSpeaking,
    UserStoppedSpeaking,
)
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.turn_end import CheckLatency, EndOfTurn, TurnModel, TurnPolicy, Verdict
from voiceterm.pipeline.turn_fusion import Signals, TurnWeights
from voiceterm.pipeline.turns import sounds_cut_off, sounds_finished
from voiceterm.pipeline.wake import ListenGate, WordCheck

logger = logging.getLogger(__name__)

_LEVEL_INTERVAL_S = 0.05  # meters redraw at 20 Hz; faster only costs CPU
# A level within this of the last one published is not sent again (a meter cell
# is 5 dB), except every _LEVEL_REFRESH_S: a quiet room costs no bus traffic.
_LEVEL_STEP_DB = 1.0
_LEVEL_REFRESH_S = 1.0
_HALF_DUPLEX_TAIL_S = 0.3  # room reverb after the last played sample
# Speech that starts this soon after the agent's last sample may still be its echo
# (the echo path's delay, the canceller's tail): it must be loud to be a turn.
_ECHO_TAIL_S = 0.6
_ECHO_MARGIN_DB = 3.0  # how much louder than dismissed echo the next hold must be
# Dismissed echo raises the next hold's floor at most this far above min_level_db: a
# person talking over the answer (-18 to -32 dBFS) can always cut it off.
_MAX_FLOOR_RISE_DB = 12.0

# Faster than real time, the longest wait for a pause's words and the LLM's read of them.
_SETTLE_S = 3.0


@dataclass(slots=True)
class AgentActivity:
    """What the agent is doing, as far as barge-in cares."""

    thinking: bool = False
    speaking: bool = False
    last_sound_end: float = 0.0

    @property
    def busy(self) -> bool:
        return self.thinking or self.speaking


@dataclass(slots=True)
class _Hold:
    """A suspected barge-in: the answer is held since ``since`` (monotonic)."""

    onset: float
    since: float
    confirmed_s: float = 0.0
    last_speech: float = 0.0  # end of the last counted frame (capture time)
    level_db: float = -90.0  # the level that started it
    # What the frames after the settle were, for the log line that lets go of a hold.
    frames: int = 0
    voiced: int = 0
    loudest_db: float = -90.0

    def saw(self, level_db: float, voiced: bool) -> None:
        self.frames += 1
        self.voiced += voiced
        self.loudest_db = max(self.loudest_db, level_db)

    def summary(self) -> str:
        return (
            f"{self.frames} frames after the settle: {self.voiced} voiced, "
            f"the loudest at {self.loudest_db:.0f} dBFS"
        )


_WAKE_CHECK_PAUSE_MS = 100
"""The pause at which an utterance that is not a turn yet is read for the wake phrase:
longer than a turn's (``pause_ms``), as a person talking beside the terminal pauses
often within an utterance, and each read is a Whisper check; it still leaves ~200 ms
of the 300 ms that end such an utterance for the check to run in."""


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
        pause_ms: int = 40,
        min_level_db: float = -32.0,
        start_ms: int = 60,
        hold: bool = True,
        hold_settle_ms: int = 200,
        hold_confirm_ms: int = 150,
        hold_quiet_ms: int = 400,
        turn_model: TurnModel | None = None,
        turn_policy: TurnPolicy | None = None,
        quick_end_ms: int = 300,
        words_so_far: Callable[[float], str | None] | None = None,
        on_active: Callable[[], None] | None = None,
        turn_weights: TurnWeights | None = None,
        words_end: Callable[[str], float | None] | None = None,
        gate: ListenGate | None = None,
        check_latency: CheckLatency | None = None,
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
        self._hold_enabled = hold
        self._hold_settle_s = hold_settle_ms / 1000
        self._hold_confirm_s = hold_confirm_ms / 1000
        self._hold_quiet_s = hold_quiet_ms / 1000
        self._hold: _Hold | None = None
        # Echo that held the answer and died with it sets how loud the next hold of
        # the same answer must be: echo residue stays at a similar level for a while.
        self._hold_floor_db = min_level_db
        self._floor_for_sound_end = 0.0
        self._over_agent = False  # the utterance in progress began while the agent spoke
        self._loud_s = 0.0  # voiced audio above min_level_db in the utterance in progress
        self._barge_voiced_s = 0.0
        self._pause_sent = False
        self._onset: float | None = None
        self._barged = False
        self._last_level = 0.0
        self._level_shown = (float("inf"), False)
        self._relaxed = False
        self._on_active = on_active
        # listen.mode: which utterances are turns (the wake word, its follow-up window).
        self.gate = gate
        self._end_of_turn = (
            EndOfTurn(
                turn_model,
                turn_policy or TurnPolicy(),
                self._on_turn_verdict,
                on_answer=self._told_verdict,
                latency=check_latency,
            )
            if turn_model is not None
            else None
        )
        self._check_latency = check_latency
        # The pause last announced (its speech end) and when: its words count from then.
        self._paused_at: tuple[float, float] | None = None
        self._quick_end_ms = quick_end_ms
        self._words_so_far = words_so_far
        self._turn_weights = turn_weights
        self._words_end = words_end
        # The pause and the model that the timeline last heard the learned decision about.
        self._judged: tuple[float, str] | None = None
        self._settled_for: float | None = None
        # Why the listener itself ends the utterance in progress ("": the verdict said
        # it, already drawn); None while the VAD's own hangover (the cap) would.
        self._ending_reason: str | None = None
        self._input_ended = False
        # A source faster than real time waits for each check, so that a file run
        # decides as a live one would.
        self._realtime = bool(getattr(source, "realtime", True))
        self.push_to_talk = False
        self._talk_pressed = False
        self.finished = asyncio.Event()
        self.utterances = 0

    @property
    def frame_phase(self) -> int:
        """Samples the voice detector holds towards its next frame (a recording notes it:
        its replay frames the sound as the live session did)."""
        return int(self._vad.pending_samples)

    async def run(self) -> None:
        """Read frames until the source ends; then flush the last utterance."""
        try:
            async for frame in self._source.frames():
                self._on_frame(frame.samples, frame.t_start, frame.t_end)
                if self._end_of_turn is not None and not self._realtime:
                    await self._end_of_turn.settle()
                    if self._turn_weights is not None and self._check_latency is None:
                        await self._words_settled(self._end_of_turn)
            self._flush(time.monotonic())
        finally:
            self.finished.set()

    async def _words_settled(self, end_of_turn: EndOfTurn) -> None:
        """Faster than real time: wait for the words (and the LLM's read) of a judged pause.

        Live, Whisper and the LLM work while the silence goes on; a file read at full
        speed would reach the cap before they are done. Once per pause, at most
        ``_SETTLE_S``; then the learned decision judges again with what is known.
        """
        verdict = end_of_turn.last_verdict
        if verdict is None or verdict.speech_end == self._settled_for:
            return
        if verdict.speech_end != self._vad.last_voiced_end or self._onset is None:
            return
        self._settled_for = verdict.speech_end
        deadline = time.monotonic() + _SETTLE_S
        while time.monotonic() < deadline:
            words = self._words_at(verdict.speech_end)
            if words is not None and (
                not words or self._words_end is None or self._words_end(words) is not None
            ):
                break
            await asyncio.sleep(0.005)
        if self._onset is not None and self._turn_weights is not None:
            self._judge(self._turn_weights, verdict, self._vad.trailing_silence_ms)

    def set_talk_pressed(self, pressed: bool) -> None:
        """Push-to-talk: while released, the microphone is ignored; release ends the utterance."""
        was_pressed, self._talk_pressed = self._talk_pressed, pressed
        if was_pressed and not pressed and self.push_to_talk:
            self._flush(time.monotonic())

    def _flush(self, now: float) -> None:
        """The input ended (or push-to-talk let go): the utterance in progress ends."""
        self._input_ended = True
        try:
            for event in self._vad.flush(now):
                self._on_vad_event(event, now)
        finally:
            self._input_ended = False

    def _ignoring_mic(self, t: float) -> bool:
        if self.push_to_talk and not self._talk_pressed:
            return True
        if self._echo != "half_duplex":
            return False
        activity = self._activity
        return activity.speaking or t < activity.last_sound_end + _HALF_DUPLEX_TAIL_S

    def _on_frame(self, samples: Any, t_start: float, t_end: float) -> None:
        if self._end_of_turn is not None:
            # A verdict due by the end of this frame came, live, before the frame did.
            self._end_of_turn.release()
        if self._aec is not None:
            samples = self._aec.process_capture(samples)
        if self._ignoring_mic(t_start):
            samples = samples * 0
        events = self._vad.feed(samples, t_start)
        if self.gate is not None:
            self.gate.hear(samples, t_start, voiced=self._vad.voiced)
        for event in events:
            self._on_vad_event(event, time.monotonic())
        if self._hold is None and not self._echo_so_far():
            # No speculative transcript of what may be echo or a cough.
            self._check_pause()
        if self._end_of_turn is not None:
            self._check_turn_end(self._end_of_turn)
        activity = self._activity
        if (
            self._onset is not None
            and self._vad.voiced
            and self._vad.level_db >= self._min_level_db
            and not activity.speaking
            and t_start >= activity.last_sound_end + self._hold_settle_s
        ):
            # Loud speech clear of the agent's voice and of its echo's way back.
            self._loud_s += t_end - t_start
        if self._hold is not None:
            if t_start >= self._hold.since + self._hold_settle_s:
                self._hold.saw(self._vad.level_db, self._vad.voiced)
            self._check_hold(self._hold, t_start, t_end)
        elif self._onset is not None and not self._barged and self._barge_in:
            self._check_barge_in(t_start, t_end)
        self._relax(self._onset is None and self._hold is None and not activity.busy)
        now = time.monotonic()
        if now - self._last_level >= _LEVEL_INTERVAL_S:
            level = (self._vad.level_db, self._vad.voiced)
            if (
                level[1] != self._level_shown[1]
                or abs(level[0] - self._level_shown[0]) >= _LEVEL_STEP_DB
                or now - self._last_level >= _LEVEL_REFRESH_S
            ):
                self._last_level, self._level_shown = now, level
                self._publish(AudioLevel(level_db=level[0], voiced=level[1]))

    def _relax(self, idle: bool) -> None:
        """Let a live microphone wake the loop less often while nothing goes on.

        Only where nobody speaks and the agent neither thinks nor speaks: speech
        then starts up to a few tens of ms later on screen, and nothing waits
        for it; barge-in, the end of a turn and the hold see every block.
        Otherwise ``on_active`` is called (the speaker keeps its stream running).
        """
        if not idle and self._on_active is not None:
            self._on_active()
        if idle != self._relaxed and hasattr(self._source, "relaxed"):
            self._relaxed = idle
            self._source.relaxed = idle

    def _counts(self) -> bool:
        """Whether the frame just fed is speech that may be the user's."""
        # While the agent speaks, only frames above min_level_db count: what echo
        # cancellation leaves of the agent's own voice is mostly quieter (-31 to
        # -42 dBFS on the rig) than a person talking over it (-18 to -32 dBFS).
        return self._vad.voiced and (
            not self._activity.speaking or self._vad.level_db >= self._min_level_db
        )

    def _check_barge_in(self, t_start: float, t_end: float) -> None:
        activity = self._activity
        counts = self._counts()
        if activity.last_sound_end != self._floor_for_sound_end:
            # A new answer (or a new stretch of one) starts from the configured floor.
            self._floor_for_sound_end = activity.last_sound_end
            self._hold_floor_db = self._min_level_db
        if activity.speaking and self._hold_enabled:
            # While it speaks, only a hold can lead to a cut: echo quieter than the
            # floor is no reason to stop, and a person louder than it holds first.
            if counts and self._vad.level_db >= self._hold_floor_db:
                assert self._onset is not None
                self._hold = _Hold(
                    onset=self._onset, since=time.monotonic(), level_db=self._vad.level_db
                )
                logger.info("barge-in? holding the answer (%.0f dBFS)", self._vad.level_db)
                self._publish(BargeInSuspected(onset_time=self._onset))
            return
        # Count voiced audio, not the time since the onset: the VAD stays "in speech"
        # through its hangover, so an 80 ms cough would otherwise pass min_speech_ms
        # during the silence after it.
        if counts:
            self._barge_voiced_s += t_end - t_start
        if activity.busy and self._barge_voiced_s >= self._min_speech_s:
            assert self._onset is not None
            self._cut_off(self._onset)

    def _check_hold(self, hold: _Hold, t_start: float, t_end: float) -> None:
        # The hold outlives the VAD's utterances: "Wait, ... tell me" may be two.
        settled = hold.since + self._hold_settle_s
        if self._counts() and t_start >= settled:
            hold.confirmed_s += t_end - t_start
            hold.last_speech = t_end
        if hold.confirmed_s >= self._hold_confirm_s:
            logger.info("barge-in confirmed %.0f ms after the hold", self._held_ms())
            self._cut_off(hold.onset)
        elif t_end >= max(settled, hold.last_speech) + self._hold_quiet_s:
            self._let_go(t_end)

    def _cut_off(self, onset: float) -> None:
        """The user is taking the turn: stop the agent."""
        self._barged = True
        self._hold = None
        self._publish(TurnMark(name="barge_in_onset", at=onset))
        self._publish(AgentInterrupted(reason="user_speech"))

    def _let_go(self, t: float) -> None:
        """Not the user after all: the held answer plays on; the sound is not a turn."""
        hold, self._hold = self._hold, None
        assert hold is not None
        logger.info(
            "not a barge-in: playing on after %.0f ms (%s)",
            1000 * (time.monotonic() - hold.since),
            hold.summary(),
        )
        self._hold_floor_db = max(
            self._hold_floor_db,
            min(hold.level_db + _ECHO_MARGIN_DB, self._min_level_db + _MAX_FLOOR_RISE_DB),
        )
        self._pause_sent = False
        self._publish(BargeInDismissed(onset_time=hold.onset))
        if self._end_of_turn is not None:
            self._end_of_turn.utterance_over()
        if self._onset is not None:
            self._vad.discard_utterance()
            self._onset = None
            self._publish(UserStoppedSpeaking(speech_end=t, discarded=True))

    def _echo_so_far(self) -> bool:
        """Whether the utterance in progress is, so far, what echo cancellation left.

        That is: begun over the agent's voice (or its echo's tail), not confirmed as
        a barge-in, and with too little loud speech since the echo died down.
        """
        return self._over_agent and not self._barged and self._loud_s < self._min_speech_s

    def _held_ms(self) -> float:
        return 1000 * (time.monotonic() - self._hold.since) if self._hold else 0.0

    def _check_turn_end(self, end_of_turn: EndOfTurn) -> None:
        """At a pause in the user's speech, ask whether the turn is over."""
        vad = self._vad
        speech_end = vad.last_voiced_end
        silence = vad.trailing_silence_ms
        if speech_end is None or self._onset is None or silence == 0:
            return
        if self._hold is not None or self.push_to_talk:
            return  # the hold decides, or the key does
        if self._echo_so_far():
            if silence >= self._quick_end_ms:
                self._end_utterance_now()
            return
        if self.gate is not None and not self.gate.turn_so_far(self._onset, speech_end):
            # Not a turn (yet): no model, no transcript, and a short pause ends it, so that
            # it does not run on into speech that begins after the window closed.
            if silence >= self._quick_end_ms:
                self._end_utterance_now()
            return
        if end_of_turn.due(speech_end, silence):
            utterance = self._as_turn(vad.current_utterance(pad_tail=False))
            if utterance is not None:
                end_of_turn.ask(utterance.audio, speech_end, silence)
        verdict = end_of_turn.last_verdict
        if verdict is not None and verdict.speech_end == speech_end and self._turn_weights:
            self._judge(self._turn_weights, verdict, silence)
            return
        if (
            verdict is not None
            and verdict.speech_end == speech_end
            and silence >= end_of_turn.policy.unsure_ms
        ):
            words = self._words_at(speech_end)
            cut_off = words is not None and sounds_cut_off(words)
            if verdict.complete or not cut_off:
                # Not both sure that it goes on: a shorter wait than the cap. A short
                # command that only sounds unfinished ("cancelled that") is not sure.
                if cut_off:
                    reading = "the words sound unfinished"
                elif words is None or sounds_finished(words):
                    reading = "the words sound finished"
                else:
                    reading = "the words may end there"
                self._end_utterance_now(
                    f"unsure: {silence} ms of silence ({verdict.describe()}, {reading})"
                )

    def _on_turn_verdict(self, verdict: Verdict) -> None:
        if (
            self._vad.last_voiced_end != verdict.speech_end
            or self._hold is not None
            or self._echo_so_far()
        ):
            return  # the user went on, or it is not a turn to judge any more
        if self._turn_weights is not None:
            self._judge(self._turn_weights, verdict, self._vad.trailing_silence_ms)
            return
        self._publish(
            StageSpan(
                stage="turn",
                start=verdict.asked_at,
                end=verdict.answered_at,
                content=verdict.describe(),
            )
        )
        if verdict.complete and self._sounds_unfinished(verdict.speech_end):
            # "... and", "... the", a comma: the voice may sound done, the words do not.
            self._publish(
                StageSpan(
                    stage="turn",
                    start=verdict.answered_at,
                    end=verdict.answered_at,
                    content="the words sound unfinished: waiting",
                )
            )
            return
        if verdict.complete:
            self._end_utterance_now("")

    def _judge(self, weights: TurnWeights, verdict: Verdict, silence: int) -> None:
        """The learned decision about the pause in progress, with what is known now."""
        words = self._words_at(verdict.speech_end)
        words_end = self._words_end(words) if words and self._words_end else None
        judgement = weights.judge(Signals(silence, verdict.probability, words, words_end))
        if judgement.done(silence):
            self._end_utterance_now(judgement.describe(silence))
            return
        if self._judged != (verdict.speech_end, judgement.model):
            # Once per signal that joins the decision, not at every frame.
            self._judged = (verdict.speech_end, judgement.model)
            now = time.monotonic()
            self._publish(
                StageSpan(stage="turn", start=now, end=now, content=judgement.describe(silence))
            )

    def _words_at(self, speech_end: float) -> str | None:
        """The words transcribed up to the pause at ``speech_end`` (None: none read)."""
        if self._words_so_far is None:
            return None
        paused, latency = self._paused_at, self._check_latency
        if latency is not None and paused is not None and paused[0] == speech_end:
            if time.monotonic() < paused[1] + latency.seconds("words", speech_end):
                return None  # not read yet, on the clock of the session replayed
        return self._words_so_far(speech_end)

    def _told_verdict(self, verdict: Verdict) -> None:
        self._publish(
            PauseChecked(
                kind="turn",
                speech_end=verdict.speech_end,
                asked_at=verdict.asked_at,
                answered_at=verdict.answered_at,
            )
        )

    def _sounds_unfinished(self, speech_end: float) -> bool:
        words = self._words_at(speech_end)
        return words is not None and not sounds_finished(words)

    def _end_utterance_now(self, reason: str = "") -> None:
        """End the utterance in progress; ``reason`` goes in the timeline's turn lane."""
        now = time.monotonic()
        self._ending_reason = reason
        try:
            for event in self._vad.end_utterance():
                self._on_vad_event(event, now)
        finally:
            self._ending_reason = None

    def _silence_ended(self, event: Any, t_now: float, last_verdict: Verdict | None) -> StageSpan:
        """The timeline's note of a turn that the model did not end."""
        if self._input_ended:
            reason = "end of input"
        elif event.forced:
            reason = "cap: the longest utterance"
        else:
            reason = f"cap: {self._vad.settings.hangover_ms} ms of silence"
        if last_verdict is not None:
            reason += f" ({last_verdict.describe()})"
        return StageSpan(stage="turn", start=event.speech_end, end=t_now, content=reason)

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
        if silence < _WAKE_CHECK_PAUSE_MS and self.gate is not None and self._onset is not None:
            speech_end = self._vad.last_voiced_end
            if speech_end is not None and not self.gate.turn_so_far(self._onset, speech_end):
                return  # not a turn: a longer pause before Whisper reads it for the phrase
        self._pause_sent = True
        heard = self._vad.current_utterance()
        utterance = self._as_turn(heard)
        if utterance is None:
            # Not a turn yet (no wake word): nothing of it is transcribed, but when it
            # would be checked for the wake phrase at its end, Whisper reads it now, while
            # the silence that ends it runs, as a turn's words are read ahead.
            if (
                heard is not None
                and self.gate is not None
                and not self._echo_so_far()
                and self.gate.check_so_far(heard) is not None
            ):
                self._publish(
                    UserSpeechPaused(
                        audio=heard.audio,
                        speech_start=heard.speech_start,
                        speech_end=heard.speech_end,
                        wake_check=True,
                    )
                )
            return
        self._paused_at = (utterance.speech_end, time.monotonic())
        self._publish(
            UserSpeechPaused(
                audio=utterance.audio,
                speech_start=utterance.speech_start,
                speech_end=utterance.speech_end,
            )
        )

    def _as_turn(self, utterance: Any) -> Any:
        """The utterance in progress as far as it is a turn (``None``: not one yet)."""
        if utterance is None or self.gate is None:
            return utterance
        return self.gate.so_far(utterance)

    def _gated(self, event: Any) -> tuple[Any, float | None]:
        """The turn in an ended utterance (after a wake phrase), or ``None``: not a turn.

        Second: the wake word model's best score when the utterance is a near miss whose
        words decide (the STT node reads them); ``None`` otherwise.
        """
        if self.gate is None:
            return event, None
        turn = self.gate.decide(event)
        if isinstance(turn, WordCheck):
            return event, turn.probability
        if turn is None and self._barged:
            turn = event  # a barge-in is a turn in every mode
        if turn is not None:
            span = self.gate.turn_span(event, turn)
            if span is not None:
                self._publish(span)
        return turn, None

    def _on_vad_event(self, event: Any, t_now: float) -> None:
        kind = type(event).__name__
        if kind == "SpeechStarted":
            self._onset = event.onset_time
            activity = self._activity
            self._over_agent = activity.speaking or (
                self._echo != "half_duplex"
                and event.onset_time < activity.last_sound_end + _ECHO_TAIL_S
            )
            self._loud_s = 0.0
            # The start confirmation's voiced frames count toward a barge-in too.
            self._barge_voiced_s = self._start_s
            self._barged = False
            self._publish(UserStartedSpeaking(onset_time=event.onset_time))
        elif kind == "SpeechEnded":
            self._onset = None
            end_of_turn = self._end_of_turn
            last_verdict = None
            if end_of_turn is not None:
                last_verdict = end_of_turn.last_verdict
                end_of_turn.utterance_over()
            if self._hold is not None:
                # Not a turn while it is unclear whose voice it was; the hold decides.
                self._publish(UserStoppedSpeaking(speech_end=event.speech_end, discarded=True))
                return
            if event.too_short or self._echo_so_far():
                # Not a turn. Say it ended, with nothing to transcribe.
                self._publish(UserStoppedSpeaking(speech_end=event.speech_end, discarded=True))
                return
            turn, near_miss = self._gated(event)
            if turn is None:
                # Not addressed to the agent (no wake word): not transcribed, not answered.
                self._publish(UserStoppedSpeaking(speech_end=event.speech_end, discarded=True))
                return
            event = turn
            if self._over_agent or self._activity.speaking:
                logger.info(
                    "speech %s the agent's voice taken as a turn (%.0f ms loud after its echo)",
                    "begun over" if self._over_agent else "ending over",
                    1000 * self._loud_s,
                )
            self.utterances += 1
            if end_of_turn is not None and self._ending_reason is None:
                self._publish(self._silence_ended(event, t_now, last_verdict))
            elif self._ending_reason:
                self._publish(
                    StageSpan(
                        stage="turn", start=event.speech_end, end=t_now, content=self._ending_reason
                    )
                )
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
                    barge_in=self._barged,
                    wake_near_miss=near_miss,
                )
            )
