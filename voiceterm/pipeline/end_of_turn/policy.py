"""End of turn: at each pause, ask a model whether the user has finished.

The VAD says *silence*; it does not say *done*. With ``turn.detector =
"smart_turn"`` the listener keeps an utterance open through pauses, and after
``check_ms`` of silence asks the end-of-turn model (Smart Turn, on the whole
turn's audio) whether the turn is complete:

* complete (probability at or above ``threshold``), and the words so far sound
  finished: the turn ends now;
* the model and the words disagree (Whisper wrote a full stop where the voice
  goes on; the voice sounds done after "and"): ``unsure_ms`` of silence ends it;
* the model says it goes on and the words stop mid-sentence ("... a table and",
  a comma; not a short command that merely ends on "that", which the model and
  Whisper both misjudge on a clip that short): the listener keeps listening, and
  only ``cap_ms`` of silence (the VAD's hangover in this mode) ends it.

Speech that follows a pause joins the same turn, and its next pause is asked
again.

The check runs in a worker thread while frames keep arriving; a verdict about a
pause that speech has since ended is dropped. Every check becomes a span in the
turn's "end of turn" lane, saying what decided: ``model: complete 0.93 at
160 ms``, ``model: incomplete 0.08 at 200 ms``, ``unsure: 800 ms of silence (...)``,
``cap: 1500 ms of silence``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from voiceterm.audio.frames import Int16Array

logger = logging.getLogger(__name__)


class TurnModel(Protocol):
    """What the policy needs of an end-of-turn model (``SmartTurn`` fits)."""

    def probability(self, audio: Int16Array) -> float: ...


class CheckLatency(Protocol):
    """How long after it is asked a pause check's answer may be used, on audio time.

    A source faster than real time has every answer at once, as a machine with no
    compute time would; a replay gives each answer the latency it had live.
    """

    def seconds(self, kind: str, speech_end: float) -> float:
        """``kind``: "turn" or "words" (see ``PauseChecked``)."""
        ...


@dataclass(frozen=True, slots=True)
class TurnPolicy:
    """When to ask, and what the answer must be (the ``[turn]`` settings)."""

    check_ms: int = 200
    threshold: float = 0.7
    unsure_ms: int = 800
    cap_ms: int = 1500


@dataclass(frozen=True, slots=True)
class Verdict:
    """The model's answer about one pause."""

    speech_end: float
    """The pause it judged: the end of the last voiced frame before it."""
    probability: float
    complete: bool
    silence_ms: int
    """Silence heard when it was asked."""
    asked_at: float
    answered_at: float

    def describe(self) -> str:
        word = "complete" if self.complete else "incomplete"
        return f"model: {word} {self.probability:.2f} at {self.silence_ms} ms"


@dataclass(slots=True, eq=False)
class EndOfTurn:
    """Asks the model once per pause and hands a verdict on the current pause back.

    Args:
        model: the end-of-turn model.
        policy: when to ask and the threshold.
        on_verdict: called on the event loop with each verdict still about the
            pause in progress (the caller checks that no speech came since).
        on_answer: called with every verdict as it comes, also one too late to count.
        latency: hold each verdict until this long after it was asked (``release``
            hands it over); ``None``: as soon as it is there.
        clock: the time a verdict is asked and answered at (a replay hands its audio time).
    """

    model: TurnModel
    policy: TurnPolicy
    on_verdict: Callable[[Verdict], None]
    on_answer: Callable[[Verdict], None] | None = field(default=None, kw_only=True)
    latency: CheckLatency | None = field(default=None, kw_only=True)
    clock: Callable[[], float] = field(default=time.monotonic, kw_only=True)
    last_verdict: Verdict | None = field(default=None, init=False)
    """The newest verdict of the utterance in progress (``None`` before one)."""
    _asked_about: float | None = field(default=None, init=False)
    _task: asyncio.Task[Verdict] | None = field(default=None, init=False)
    _held: Verdict | None = field(default=None, init=False)

    def due(self, speech_end: float, silence_ms: int) -> bool:
        """Whether this pause should be asked about now."""
        return silence_ms >= self.policy.check_ms and self._asked_about != speech_end

    def ask(self, audio: Any, speech_end: float, silence_ms: int) -> None:
        """Ask about the pause after ``speech_end``; the verdict arrives via ``on_verdict``."""
        self._asked_about = speech_end
        self._task = asyncio.get_running_loop().create_task(
            self._judge(audio, speech_end, silence_ms), name="end-of-turn check"
        )
        self._task.add_done_callback(self._deliver)

    async def _judge(self, audio: Any, speech_end: float, silence_ms: int) -> Verdict:
        asked_at = self.clock()
        probability = await asyncio.to_thread(self.model.probability, audio)
        return Verdict(
            speech_end=speech_end,
            probability=probability,
            complete=probability >= self.policy.threshold,
            silence_ms=silence_ms,
            asked_at=asked_at,
            answered_at=self.clock(),
        )

    def _deliver(self, task: asyncio.Task[Verdict]) -> None:
        if task is self._task:
            self._task = None
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            # A failing model must not leave the user unanswered: the cap still ends the turn.
            logger.error("end-of-turn check failed: %s", error)
            return
        verdict = task.result()
        if self.on_answer is not None:
            self.on_answer(verdict)
        if self.latency is not None:
            late = self.latency.seconds("turn", verdict.speech_end)
            self._held = dataclasses.replace(verdict, answered_at=verdict.asked_at + late)
            self.release()
            return
        self._hand_over(verdict)

    def release(self) -> None:
        """Hand over a held verdict whose time has come (with a ``latency``)."""
        verdict = self._held
        if verdict is not None and self.clock() >= verdict.answered_at:
            self._held = None
            self._hand_over(verdict)

    def _hand_over(self, verdict: Verdict) -> None:
        if verdict.speech_end != self._asked_about:
            return  # the utterance ended or went on meanwhile
        self.last_verdict = verdict
        logger.info("end of turn? %s", verdict.describe())
        self.on_verdict(verdict)

    async def settle(self) -> None:
        """Wait for a check under way (a source faster than real time waits for it)."""
        task = self._task
        if task is not None:
            await asyncio.wait({task})

    def utterance_over(self) -> None:
        """The utterance ended: forget its pauses; a check under way is moot."""
        self._asked_about = None
        self.last_verdict = None
        self._held = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
