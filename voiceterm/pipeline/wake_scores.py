"""What the wake word model scored, kept for the listen gate's questions.

:class:`WakeScores` feeds the detector, keeps its detections (each with where its phrase
ends: the quietest 10 ms shortly before it), the scores high enough to be near misses,
and the last frames the cut needs. Every time in it is a capture time of the microphone's
frames. It publishes nothing: the gate (:mod:`voiceterm.pipeline.wake`) does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from voiceterm.audio.frames import Int16Array
    from voiceterm.engines.vad import SpeechEnded as Utterance

CUT_SEARCH_S = (0.03, 0.20)
"""The wake phrase is cut at the quietest 10 ms between these many seconds before the detection."""
REFRACTORY_S = 1.0
"""Scores above the cutoff this soon after a detection are the same wake phrase."""
SCORE_HANGOVER_S = 1.0
"""The model runs until this long after the VAD last heard voice: the detection comes up
to ~0.3 s after the phrase ends, and a score is the mean of the model's last 5 runs."""
LATE_DETECTION_S = 0.5
"""A detection this long after an utterance's last voice is still its own."""
NEAR_MISS_AFTER_ONSET_S = 0.3
"""A near miss is an utterance's best score from this long after its onset: the model's score
lags its audio (a mean of its last runs), so a score in the pre-roll or just after the
onset is the previous utterance's (a wake phrase the VAD parted from its question)."""
_FRAMES_KEPT = 64  # 10 ms frames kept for the cut: 640 ms
_SCORES_KEPT = 4096  # near-miss candidates kept (only scores above the lowest shown)


class Scored(Protocol):
    """One run of the wake word model (``engines.wake.WakeScore`` fits)."""

    @property
    def at(self) -> float:
        """Monotonic time of the end of the audio the score has heard."""
        ...

    @property
    def probability(self) -> float: ...


class WakeDetector(Protocol):
    """What the gate needs from a wake word detector (``WakeWordDetector`` fits)."""

    @property
    def cutoff(self) -> float: ...

    def feed(
        self, samples: Int16Array, t_first_sample: float, *, listening: bool = True
    ) -> Sequence[Scored]: ...


@dataclass(frozen=True, slots=True)
class Detection:
    at: float
    phrase_end: float
    probability: float


class WakeScores:
    """The detector's detections and near-miss candidates, on the microphone's clock."""

    def __init__(self) -> None:
        self._detections: deque[Detection] = deque(maxlen=16)
        self._high_scores: deque[tuple[float, float]] = deque(maxlen=_SCORES_KEPT)
        # The last frames (their levels are needed only where a wake phrase ends).
        self._recent: deque[tuple[float, Any]] = deque(maxlen=_FRAMES_KEPT)
        self._refractory_until = float("-inf")
        self._voiced_until = float("-inf")  # the model runs until then

    def clear(self) -> None:
        """Forget the detections and scores (the mode changed)."""
        self._detections.clear()
        self._high_scores.clear()

    def hear(
        self,
        detector: WakeDetector,
        samples: Any,
        t_start: float,
        *,
        voiced: bool,
        cutoff: float,
        kept_from: float,
    ) -> list[Detection]:
        """Feed one frame to ``detector``; returns the detections it made, in order.

        Scores from ``kept_from`` are kept for :meth:`best_score`; a score above
        ``cutoff`` is a detection unless it comes within :data:`REFRACTORY_S` of one.
        """
        self._recent.append((t_start, samples))
        if voiced:
            self._voiced_until = t_start + SCORE_HANGOVER_S
        scores = detector.feed(samples, t_start, listening=t_start <= self._voiced_until)
        detections: list[Detection] = []
        for score in scores:
            probability = float(score.probability)
            if probability >= kept_from:
                self._high_scores.append((score.at, probability))
            if probability > cutoff and score.at >= self._refractory_until:
                detection = Detection(
                    at=score.at, phrase_end=self._phrase_end(score.at), probability=probability
                )
                self._detections.append(detection)
                self._refractory_until = score.at + REFRACTORY_S
                detections.append(detection)
        return detections

    def _phrase_end(self, at: float) -> float:
        """Where the wake phrase ends: the quietest 10 ms shortly before its detection."""
        low, high = at - CUT_SEARCH_S[1], at - CUT_SEARCH_S[0]
        candidates = [(_level(samples), t) for t, samples in self._recent if low <= t <= high]
        if not candidates:
            return at - (CUT_SEARCH_S[0] + CUT_SEARCH_S[1]) / 2
        _level_db, t = min(candidates)
        return t

    def detection_in(self, utterance: Utterance) -> Detection | None:
        return self.detection_between(utterance.audio_start, utterance.speech_end)

    def detection_between(self, begin: float, speech_end: float) -> Detection | None:
        end = speech_end + LATE_DETECTION_S
        found = [d for d in self._detections if begin <= d.at <= end]
        return found[-1] if found else None

    def best_score(self, utterance: Utterance) -> tuple[float, float] | None:
        """The model's best score kept within the utterance, and when: ``None``: none kept."""
        begin = utterance.speech_start + NEAR_MISS_AFTER_ONSET_S
        end = utterance.speech_end + LATE_DETECTION_S
        scores = [(p, t) for t, p in self._high_scores if begin <= t <= end]
        return max(scores) if scores else None


def _level(samples: Any) -> float:
    """Mean square of a frame (relative loudness is all the cut needs)."""
    import numpy as np

    wide = np.asarray(samples, dtype=np.float64).reshape(-1)
    return float(wide @ wide) / max(1, wide.size)
