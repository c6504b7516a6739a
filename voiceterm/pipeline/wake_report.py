"""What the listen gate tells the bus: wake words heard, near misses, the listening state.

The timeline shows why an utterance was or was not a turn from these events, and the app
counts the follow-up window down from :class:`ListeningChanged`. :class:`WakeReport`
only publishes (and logs); the gate (:mod:`voiceterm.pipeline.wake`) decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voiceterm.events import ListeningChanged, StageSpan, TurnMark, WakeWordHeard

if TYPE_CHECKING:
    from voiceterm.pipeline.wake import WordCheck
    from voiceterm.pipeline.wake_scores import Detection

logger = logging.getLogger(__name__)


class WakeReport:
    """Publishes the gate's findings for the wake phrase ``phrase`` (``cutoff``: what wakes it)."""

    def __init__(self, publish: Callable[[Any], None]) -> None:
        self._publish = publish
        self._shown: tuple[str, str, float | None] | None = None

    def detected(self, phrase: str, cutoff: float, detection: Detection) -> None:
        """The model woke on the phrase."""
        at, probability = detection.at, detection.probability
        logger.info(
            "wake word %r at %.2f (phrase ends %.0f ms before)",
            phrase,
            probability,
            1000 * (at - detection.phrase_end),
        )
        self._heard(phrase, cutoff, probability, at, detection.phrase_end)
        self._publish(TurnMark(name="wake_word", at=at, detail=f"{probability:.2f}"))

    def near_miss(
        self,
        phrase: str,
        cutoff: float,
        probability: float,
        at: float,
        span: tuple[float, float],
        *,
        note: str = "",
    ) -> None:
        """The model's best score in the utterance spoken over ``span`` nearly woke it."""
        self._heard(phrase, cutoff, probability, at, at, near_miss=True)
        self._publish(
            StageSpan(
                stage="wake",
                start=span[0],
                end=span[1],
                content=f"near miss: {phrase} {probability:.2f} (wakes above {cutoff:.2f}{note})",
            )
        )

    def woke_by_words(
        self, phrase: str, cutoff: float, check: WordCheck, *, now: float, rest: str, how: str
    ) -> None:
        """A :class:`WordCheck` began with the phrase (``rest``: what follows it)."""
        logger.info(
            "wake word %r by its %s (the model's best %.2f), %.0f ms after the speech ended",
            phrase,
            how,
            check.probability,
            1000 * (now - check.speech_end),
        )
        phrase_end = check.speech_end if not rest else check.at
        self._heard(phrase, cutoff, check.probability, now, phrase_end, how=how)
        self._publish(
            TurnMark(name="wake_word", at=now, detail=f"(by {how}) {check.probability:.2f}")
        )
        self._publish(
            StageSpan(
                stage="wake",
                start=check.speech_start,
                end=check.speech_end,
                content=(
                    f"{phrase} (by {how}) {check.probability:.2f}: "
                    + ("the turn is what follows it" if rest else "said alone, listening")
                ),
            )
        )

    def _heard(
        self,
        phrase: str,
        cutoff: float,
        probability: float,
        at: float,
        phrase_end: float,
        *,
        near_miss: bool = False,
        how: str | None = None,
    ) -> None:
        """Publish :class:`WakeWordHeard`; ``how`` for a wake by Whisper's check."""
        self._publish(
            WakeWordHeard(
                phrase=phrase,
                probability=probability,
                cutoff=cutoff,
                at=at,
                phrase_end=phrase_end,
                near_miss=near_miss,
                by_words=how is not None,
                how=how or "words",
            )
        )

    def turn_span(self, phrase: str, speech_start: float, detection: Detection) -> StageSpan:
        """The timeline's "wake" lane for a turn whose audio starts after the wake phrase."""
        return StageSpan(
            stage="wake",
            start=speech_start,
            end=detection.phrase_end,
            content=f"{phrase} {detection.probability:.2f}: the turn starts after it",
        )

    def listening(self, mode: str, state: str, until: float | None, phrase: str) -> None:
        """The listening state, published only when it changed."""
        shown = (mode, state, until)
        if shown != self._shown:
            self._shown = shown
            self._publish(ListeningChanged(mode=mode, state=state, until=until, phrase=phrase))
