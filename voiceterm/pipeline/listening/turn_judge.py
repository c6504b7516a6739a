"""Whether a pause in the user's speech ends the turn, with an end-of-turn model.

A silence no longer ends the user's turn by itself: the voice detector's hangover is
the silence cap, and at each pause the model is asked whether the turn is complete
(see :mod:`voiceterm.pipeline.end_of_turn.policy`), and the words transcribed at the pause
(``words_so_far``) are read: "and", a comma or no final punctuation sound
unfinished. Both done: the turn ends. They disagree: it ends after ``unsure_ms`` of
silence. Both surely not done (the words cut off, not merely a short command ending
on "that"): the cap ends it. With learned weights (``weights``, see
:mod:`voiceterm.pipeline.end_of_turn.learned`) one learned decision replaces those three
cases: the voice, the words, the LLM's probability that the message ends there
(``words_end``) and the silence so far set how long to wait, re-judged as each
signal arrives. Speech that may be echo, or that holds the answer, is not a turn to
judge: it ends after ``quick_end_ms`` of silence, as without the model.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from voiceterm.engines.vad import SpeechEnded
from voiceterm.events import PauseChecked, StageSpan
from voiceterm.pipeline.end_of_turn.learned import Signals, TurnWeights
from voiceterm.pipeline.end_of_turn.policy import EndOfTurn, Verdict
from voiceterm.pipeline.end_of_turn.transcript import sounds_cut_off, sounds_finished
from voiceterm.pipeline.listening.pauses import PauseAnnouncer, as_turn
from voiceterm.pipeline.listening.seams import Clock, Publish, Segmenter
from voiceterm.pipeline.listening.settings import TurnJudging
from voiceterm.pipeline.wake import ListenGate

SETTLE_S = 3.0
"""Faster than real time, the longest wait for a pause's words and the LLM's read of them."""


class Utterance(Protocol):
    """What the judge asks of the listener about the utterance in progress."""

    @property
    def onset(self) -> float | None:
        """Its onset (``None``: no utterance in progress)."""
        ...

    def in_doubt(self) -> bool:
        """Whether it is not a turn to judge now: it holds the answer, or may be echo."""
        ...

    def end_now(self, reason: str) -> None:
        """End it now; ``reason`` goes in the timeline's turn lane ("": already drawn)."""
        ...


class TurnJudge:
    """Asks the model at each pause and ends the turn when the signals say it is over."""

    def __init__(
        self,
        judging: TurnJudging,
        segmenter: Segmenter,
        publish: Publish,
        utterance: Utterance,
        pauses: PauseAnnouncer,
        clock: Clock,
        *,
        quick_end_ms: int,
        gate: ListenGate | None,
    ) -> None:
        self._vad, self._publish, self._clock = segmenter, publish, clock
        self._utterance, self._pauses = utterance, pauses
        self._quick_end_ms, self._gate = quick_end_ms, gate
        self._weights = judging.weights
        self._words_so_far = judging.words_so_far
        self._words_end = judging.words_end
        self._latency = judging.latency
        self.end_of_turn = EndOfTurn(
            judging.model,
            judging.policy,
            self._on_verdict,
            on_answer=self._told_verdict,
            latency=judging.latency,
            clock=clock,
        )
        # The pause and the model that the timeline last heard the learned decision about.
        self._judged: tuple[float, str] | None = None
        self._settled_for: float | None = None

    def feed(self, *, echo: bool) -> None:
        """At a pause in the user's speech, ask whether the turn is over.

        Not called while a hold or the push-to-talk key decides; ``echo``: the
        utterance in progress may be the agent's own voice.
        """
        vad, onset = self._vad, self._utterance.onset
        speech_end = vad.last_voiced_end
        silence = vad.trailing_silence_ms
        if speech_end is None or onset is None or silence == 0:
            return
        gate = self._gate
        if echo or (gate is not None and not gate.turn_so_far(onset, speech_end)):
            # Not a turn (yet): no model, no transcript, and a short pause ends it, so that
            # it does not run on into speech that begins after the window closed.
            if silence >= self._quick_end_ms:
                self._utterance.end_now("")
            return
        end_of_turn = self.end_of_turn
        if end_of_turn.due(speech_end, silence):
            utterance = as_turn(gate, vad.current_utterance(pad_tail=False))
            if utterance is not None:
                end_of_turn.ask(utterance.audio, speech_end, silence)
        verdict = end_of_turn.last_verdict
        if verdict is None or verdict.speech_end != speech_end:
            return
        if self._weights is not None:
            self._judge(self._weights, verdict, silence)
        elif silence >= end_of_turn.policy.unsure_ms:
            self._end_if_unsure(verdict, silence)

    def _end_if_unsure(self, verdict: Verdict, silence: int) -> None:
        words = self._words_at(verdict.speech_end)
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
            self._utterance.end_now(
                f"unsure: {silence} ms of silence ({verdict.describe()}, {reading})"
            )

    async def settle(self) -> None:
        """Faster than real time: wait for the check under way and, for the learned
        decision, the words (and the LLM's read) of the pause it judged.

        Live, Whisper and the LLM work while the silence goes on; a file read at full
        speed would reach the cap before they are done.
        """
        await self.end_of_turn.settle()
        if self._weights is not None and self._latency is None:
            await self._words_settled(self._weights)

    async def _words_settled(self, weights: TurnWeights) -> None:
        """Once per pause, at most ``SETTLE_S``; then the learned decision judges again
        with what is known. No wait for words nobody was asked to read."""
        verdict = self.end_of_turn.last_verdict
        if verdict is None or verdict.speech_end == self._settled_for:
            return
        if verdict.speech_end != self._vad.last_voiced_end or self._utterance.onset is None:
            return
        self._settled_for = verdict.speech_end
        if self._reading_asked(verdict.speech_end):
            deadline = self._clock() + SETTLE_S
            while self._clock() < deadline:
                if self._words_read(verdict.speech_end):
                    break
                await asyncio.sleep(0.005)  # the STT node and the LLM give no signal to await
        if self._utterance.onset is not None:
            self._judge(weights, verdict, self._vad.trailing_silence_ms)

    def _reading_asked(self, speech_end: float) -> bool:
        """Whether the words up to this pause were sent to be read (the probe is optional)."""
        return self._words_so_far is not None and self._pauses.read_asked_at(speech_end) is not None

    def _words_read(self, speech_end: float) -> bool:
        words = self._words_at(speech_end)
        return words is not None and (
            not words or self._words_end is None or self._words_end(words) is not None
        )

    def _on_verdict(self, verdict: Verdict) -> None:
        if self._vad.last_voiced_end != verdict.speech_end or self._utterance.in_doubt():
            return  # the user went on, or it is not a turn to judge any more
        if self._weights is not None:
            self._judge(self._weights, verdict, self._vad.trailing_silence_ms)
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
            self._utterance.end_now("")

    def _judge(self, weights: TurnWeights, verdict: Verdict, silence: int) -> None:
        """The learned decision about the pause in progress, with what is known now."""
        words = self._words_at(verdict.speech_end)
        words_end = self._words_end(words) if words and self._words_end else None
        judgement = weights.judge(Signals(silence, verdict.probability, words, words_end))
        if judgement.done(silence):
            self._utterance.end_now(judgement.describe(silence))
            return
        if self._judged != (verdict.speech_end, judgement.model):
            # Once per signal that joins the decision, not at every frame.
            self._judged = (verdict.speech_end, judgement.model)
            now = self._clock()
            self._publish(
                StageSpan(stage="turn", start=now, end=now, content=judgement.describe(silence))
            )

    def _words_at(self, speech_end: float) -> str | None:
        """The words transcribed up to the pause at ``speech_end`` (None: none read)."""
        if self._words_so_far is None:
            return None
        asked_at, latency = self._pauses.read_asked_at(speech_end), self._latency
        if latency is not None and asked_at is not None:
            if self._clock() < asked_at + latency.seconds("words", speech_end):
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

    def cap_span(
        self, ended: SpeechEnded, t_now: float, last_verdict: Verdict | None, *, input_ended: bool
    ) -> StageSpan:
        """The timeline's note of a turn that the model did not end."""
        if input_ended:
            reason = "end of input"
        elif ended.forced:
            reason = "cap: the longest utterance"
        else:
            reason = f"cap: {self._vad.settings.hangover_ms} ms of silence"
        if last_verdict is not None:
            reason += f" ({last_verdict.describe()})"
        return StageSpan(stage="turn", start=ended.speech_end, end=t_now, content=reason)
