"""Which utterances are turns: ``listen.mode``, the wake word and the follow-up window.

The listener asks a :class:`ListenGate` three things and nothing else:

* :meth:`ListenGate.hear` every microphone frame, after echo cancellation, with
  the VAD's verdict on it: in ``wake_word`` mode the detector hears it, so the
  agent's own voice reaches the model only as what the canceller left of it. The
  model runs near voice only (the detector catches up on the seconds before), so
  a quiet room costs next to nothing;
* :meth:`ListenGate.so_far` during an utterance: is it a turn yet (and from where)?
  Until it is, nothing of it is transcribed (no pause transcript, no end-of-turn
  model): a person talking beside the terminal is not written down;
* :meth:`ListenGate.decide` when it ends: the turn (its audio may start later, after
  the wake phrase), or ``None``: not a turn.

In ``wake_word`` mode an utterance is a turn when it begins while the window is
open (the agent is thinking or speaking, so a barge-in works as always, or within
``follow_up_s`` after its answer, or after a wake word said alone), or when the
wake word is heard inside it. Then only the audio after the wake phrase is the
turn: "Hey Jarvis, what time is it?" reaches the model as "what time is it?". The
detection comes 50-150 ms after the phrase ends (the model's score is a mean of
its last outputs); the cut is the quietest 10 ms within ``CUT_SEARCH_S``
(:mod:`voiceterm.pipeline.wake_scores`) before it, which on synthetic voices left the
question whole and the name out (``scripts/bench_wake.py`` checks it with Whisper). A wake word said
alone ("Hey Jarvis." and a pause) is not a turn: it opens the window for the
question.

**By its words.** The small model hears some voices poorly (espeak-ng's formant voices
score 0.2-0.4 where flite's and Piper's score 0.99). So an utterance that did not wake
it, but whose best score reached ``by_words_above``, is not dropped at its end: it is
a :class:`WordCheck`, transcribed (that utterance only, by the STT node, with the
Whisper already loaded, told that the wake phrase may come: :attr:`ListenGate.words_hint`)
and a turn when its words begin with the wake phrase
(:meth:`ListenGate.confirm_by_words`, matched by :mod:`voiceterm.pipeline.wake_words`).
What follows the phrase is the turn; the phrase alone opens the window as a detection
does. With ``fit_above`` (``listen.wake_fit_above``) every utterance that begins while
asleep is a check, and Whisper first scores how well its first seconds fit the phrase,
forced on its decoder (:func:`~voiceterm.pipeline.wake_words.read_wake_check`): espeak-ng's
British voices score 0.00 on the model, and tiny.en writes some voices' "Hey Jarvis"
under noise as "K-Jeter Biss". Only an utterance that fits, or a near miss, is
transcribed; the rest is dropped unwritten. With ``name_fit_above`` the phrase's name
alone, in the same forced reading, may fit instead (some voices' "Hey" is what Whisper
loses). Either way this costs nothing while nobody speaks: it runs at the end of speech.

Every detection is published (:class:`WakeWordHeard`), and so is the best score of
an utterance that did not wake when it was above half the cutoff (a near miss),
so the timeline can show why. Window changes are published as
:class:`ListeningChanged` so the app can count the window down. Every time the gate
keeps is a capture time of the microphone's frames, the follow-up window's start
too, so a replayed recording opens and closes it as the room did.

The gate imports nothing heavy; the detector (:mod:`voiceterm.engines.wake`) is
handed in, loaded lazily by the agent when ``wake_word`` mode is first used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from voiceterm.config import LISTEN_MODES, Config
from voiceterm.pipeline.wake_report import WakeReport
from voiceterm.pipeline.wake_scores import (
    NEAR_MISS_AFTER_ONSET_S,
    SCORE_HANGOVER_S,
    WakeDetector,
    WakeScores,
)
from voiceterm.pipeline.wake_words import (
    FitRule,
    PhraseReader,
    WakePhrase,
    WakeRead,
    read_wake_check,
)

if TYPE_CHECKING:
    from voiceterm.engines.vad import SpeechEnded as Utterance
    from voiceterm.engines.wake import WakeWordDetector
    from voiceterm.events import StageSpan

__all__ = [
    "MODES",
    "NEAR_MISS_AFTER_ONSET_S",
    "SCORE_HANGOVER_S",
    "Activity",
    "FollowUpWindow",
    "ListenGate",
    "PendingChecks",
    "WakeDetector",
    "WordCheck",
    "load_detector",
]

MODES = LISTEN_MODES
"""The values of ``listen.mode``."""

SAMPLE_RATE = 16000
MIN_QUESTION_S = 0.25
"""Less voiced audio than this after the wake phrase: the wake word was said alone."""
NEAR_MISS_FRACTION = 0.5
"""A best score above this fraction of the cutoff is shown as a near miss."""
_ONSET_SLACK_S = 0.3  # the VAD's pre-roll: audio an utterance keeps from before its onset
_CHECKS_KEPT = 8  # word checks waiting for their transcript
CHECK_AHEAD_FROM_S = 0.6
"""Less speech than this at a pause is not read ahead: too short for "Hey Jarvis"."""
CHECK_AHEAD_UP_TO_S = 4.0
"""A pause in an utterance longer than this is not read ahead (it is read at its end):
"Hey Jarvis, <question>" in one breath is shorter, and a person talking at length beside
the terminal must not cost a Whisper check at every pause."""


class Activity(Protocol):
    @property
    def busy(self) -> bool: ...

    @property
    def last_sound_end(self) -> float: ...


@dataclass(frozen=True, slots=True)
class WordCheck:
    """A near miss whose words decide: a turn if its transcript begins with the wake phrase."""

    probability: float
    """The model's best score in the utterance (below the cutoff)."""
    at: float
    """When it scored that (capture time)."""
    speech_start: float
    speech_end: float
    audio_start: float = 0.0
    """Capture time of the utterance's first sample (its pre-roll)."""


class PendingChecks:
    """The word checks waiting for their transcript, by ``speech_end``, and the last read."""

    def __init__(self) -> None:
        self._checks: dict[float, WordCheck] = {}
        # (speech_end, near miss, what it read): the last check read, for its end.
        self._last_read: tuple[float, bool, WakeRead] | None = None

    def add(self, check: WordCheck) -> None:
        while len(self._checks) >= _CHECKS_KEPT:
            del self._checks[next(iter(self._checks))]
        self._checks.pop(check.speech_end, None)
        self._checks[check.speech_end] = check

    def get(self, speech_end: float) -> WordCheck | None:
        return self._checks.get(speech_end)

    def pop(self, speech_end: float) -> WordCheck | None:
        return self._checks.pop(speech_end, None)

    def clear(self) -> None:
        self._checks.clear()

    def read_before(self, speech_end: float, near_miss: bool) -> WakeRead | None:
        """What the same check read at a pause before its end, with nothing said since."""
        kept = self._last_read
        return kept[2] if kept is not None and kept[:2] == (speech_end, near_miss) else None

    def remember(self, speech_end: float, near_miss: bool, read: WakeRead) -> None:
        self._last_read = (speech_end, near_miss, read)


class FollowUpWindow:
    """Until when speech is a turn without the wake word: ``follow_up_s`` after an answer
    was heard to its end, or after a wake word. Times are capture times of the microphone's
    frames: the window starts at the first frame heard after an answer ended, not at the
    player's estimate on its own clock."""

    def __init__(self, follow_up_s: float, last_sound_end: float) -> None:
        self.follow_up_s = follow_up_s
        self._opened_until = float("-inf")  # by a wake word
        self._sound_end_seen = last_sound_end
        self._answer_end = float("-inf")  # capture time when the last answer was over

    def hear(self, t_start: float, last_sound_end: float) -> None:
        """A frame captured at ``t_start``, the player's end of its last sound then."""
        if last_sound_end != self._sound_end_seen:
            # An answer has just been heard to its end: the window counts from now.
            self._sound_end_seen = last_sound_end
            self._answer_end = t_start

    def open_from(self, t: float) -> None:
        """A wake word at ``t``: open (or keep open) the window for ``follow_up_s``."""
        self._opened_until = max(self._opened_until, t + self.follow_up_s)

    def close(self) -> None:
        """Forget the wake words' openings (the answer's still counts)."""
        self._opened_until = float("-inf")

    @property
    def until(self) -> float:
        return max(self._opened_until, self._answer_end + self.follow_up_s)

    def state(self, now: float, activity: Activity) -> tuple[str, float | None]:
        """The listening state in wake_word mode at ``now``, and until when it is open."""
        if activity.busy:
            return "answering", None
        until = self.until
        return ("open", until) if now <= until else ("asleep", None)


class ListenGate:
    """Decides which utterances are turns in the current ``listen.mode``.

    Args:
        publish: puts events on the bus.
        activity: what the agent is doing (busy: the window stays open).
        mode: ``always``, ``wake_word`` or ``push_to_talk``.
        follow_up_s: how long after an answer (or a wake word said alone) turns are
            heard without the wake word.
        detector: the wake word detector (``None`` until wake_word mode is used).
        phrase: the wake phrase, for people ("Hey Jarvis").
        cutoff: the probability that wakes it (``None``: the model's own).
        by_words_above: an utterance whose best score reaches this but not the cutoff is
            checked by its words (see :meth:`decide`); ``None``: never.
        fit_above: with ``by_words_above``, every utterance that does not wake the model
            is checked, and wakes it when Whisper's log-probability of the phrase as its
            first words reaches this (or its words begin with the phrase, for a near
            miss); ``None``: near misses only.
        fit_margin: and when the phrase is at most this much less likely than Whisper's
            own reading of the first words (``None``: whatever it reads).
        name_fit_above: with ``fit_above``, also when the phrase's name alone fits from
            this (``None``: off), with ``name_fit_margin`` as its margin.
    """

    def __init__(
        self,
        publish: Callable[[Any], None],
        activity: Activity,
        *,
        mode: str = "always",
        follow_up_s: float = 8.0,
        detector: WakeDetector | None = None,
        phrase: str = "",
        cutoff: float | None = None,
        by_words_above: float | None = None,
        fit: FitRule | None = None,
    ) -> None:
        self._activity = activity
        self._detector = detector
        self.phrase = phrase
        self._cutoff = cutoff
        self.by_words_above = by_words_above
        self.fit = fit or FitRule()
        self._report = WakeReport(publish)
        self._window = FollowUpWindow(follow_up_s, activity.last_sound_end)
        self._scores = WakeScores()
        self._checks = PendingChecks()
        self._heard_at: float | None = None  # capture time of the last frame heard
        self.mode = "always"
        self.set_mode(mode)

    # --- settings ---------------------------------------------------------------------

    @property
    def follow_up_s(self) -> float:
        return self._window.follow_up_s

    @property
    def cutoff(self) -> float:
        if self._cutoff is not None:
            return self._cutoff
        return self._detector.cutoff if self._detector is not None else 1.0

    @property
    def has_detector(self) -> bool:
        return self._detector is not None

    def set_detector(self, detector: WakeDetector, phrase: str) -> None:
        self._detector = detector
        self.phrase = phrase

    def set_mode(self, mode: str, now: float | None = None) -> None:
        """Switch ``listen.mode``; wake_word starts asleep (the window closed)."""
        if mode not in MODES:
            raise ValueError(f"listen.mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode == "wake_word" and self._detector is None:
            raise ValueError("wake_word mode needs a detector")
        if mode != self.mode:
            self.mode = mode
            self._window.close()
            self._scores.clear()
            self._checks.clear()
        self._show(now)

    @property
    def gating(self) -> bool:
        return self.mode == "wake_word"

    # --- what the listener asks ---------------------------------------------------------

    def hear(self, samples: Any, t_start: float, *, voiced: bool = True) -> None:
        """Hear one frame of (echo-cancelled) microphone audio; publish what changed.

        Args:
            samples: the frame, 16 kHz int16.
            t_start: its capture time: the gate's clock (see :meth:`is_open`).
            voiced: the VAD hears voice in it. The model runs only within
                :data:`SCORE_HANGOVER_S` of voice, on what it missed too (the
                detector keeps the features), so a quiet room costs only the front end.
        """
        self._heard_at = t_start
        self._window.hear(t_start, self._activity.last_sound_end)
        if not self.gating or self._detector is None:
            return
        cutoff = self.cutoff
        kept_from = NEAR_MISS_FRACTION * cutoff
        if self.by_words_above is not None:
            kept_from = min(kept_from, self.by_words_above)
        detections = self._scores.hear(
            self._detector, samples, t_start, voiced=voiced, cutoff=cutoff, kept_from=kept_from
        )
        for detection in detections:
            self._window.open_from(detection.at)
            self._report.detected(self.phrase, cutoff, detection)
        self._show(t_start)

    def is_open(self, t: float) -> bool:
        """Whether speech beginning at ``t`` is a turn without the wake word.

        ``t`` is a capture time, like every time the gate keeps: the follow-up window
        starts at the first frame heard after an answer ended, so a replayed recording
        (its frames on the recording's clock) opens and closes it as live.
        """
        if not self.gating:
            return True
        if self._activity.busy:
            return True
        return t <= self._window.until

    def so_far(self, utterance: Utterance) -> Utterance | None:
        """The utterance in progress as a turn so far (trimmed after a wake phrase), or ``None``."""
        if not self.gating:
            return utterance
        detection = self._scores.detection_in(utterance)
        if detection is not None:
            if utterance.speech_end - detection.phrase_end < MIN_QUESTION_S:
                return None  # the wake phrase so far, no question yet
            return _after(utterance, detection.phrase_end)
        return utterance if self.is_open(utterance.speech_start) else None

    def turn_so_far(self, onset: float, speech_end: float) -> bool:
        """:meth:`so_far` from times alone (cheap enough for every frame of a pause)."""
        if not self.gating:
            return True
        detection = self._scores.detection_between(onset - _ONSET_SLACK_S, speech_end)
        if detection is not None:
            return speech_end - detection.phrase_end >= MIN_QUESTION_S
        return self.is_open(onset)

    def decide(self, utterance: Utterance) -> Utterance | WordCheck | None:
        """At the end of an utterance: the turn it holds, or ``None`` (not a turn).

        A :class:`WordCheck`: the model nearly woke on it (its best score reached
        ``by_words_above``), so its words decide: transcribe it and ask
        :meth:`confirm_by_words`.
        """
        if not self.gating:
            return utterance
        turn = self.so_far(utterance)
        if turn is None:
            if self._scores.detection_in(utterance) is None:
                check = self._word_check(utterance)
                if check is not None:
                    return check
                best = self._scores.best_score(utterance)
                if best is not None and best[0] >= NEAR_MISS_FRACTION * self.cutoff:
                    span = (utterance.speech_start, utterance.speech_end)
                    self._report.near_miss(self.phrase, self.cutoff, best[0], best[1], span)
            return None
        # The window is not extended here: the answer keeps it open, and a turn that is
        # not answered (its own echo, nothing heard) must not keep the microphone open.
        return turn

    def check_so_far(self, utterance: Utterance) -> WordCheck | None:
        """At a pause in an utterance that is not a turn (yet): the check its end would
        get if nothing more were said, so that Whisper reads it while the pause lasts.

        :meth:`read_check` keeps what it read: at the end, with nothing said since the
        pause, the check is not read twice.
        """
        if not self.gating or self.so_far(utterance) is not None:
            return None
        speech_s = utterance.speech_end - utterance.speech_start
        if not CHECK_AHEAD_FROM_S <= speech_s <= CHECK_AHEAD_UP_TO_S:
            return None
        if self._scores.detection_in(utterance) is not None:
            return None
        return self._word_check(utterance)

    def _word_check(self, utterance: Utterance) -> WordCheck | None:
        """The utterance's check by Whisper (``None``: not checked), registered for
        :meth:`read_check` by its ``speech_end``."""
        best = self._scores.best_score(utterance)
        near = best is not None and best[0] >= (self.by_words_above or 0.0)
        if self.by_words_above is None or not (near or self.fit.above is not None):
            return None
        probability, at = best if best is not None else (0.0, utterance.speech_end)
        check = WordCheck(
            probability, at, utterance.speech_start, utterance.speech_end, utterance.audio_start
        )
        self._checks.add(check)
        return check

    @property
    def words_hint(self) -> str:
        """What Whisper is told came before a near miss: the wake phrase ("Hey Jarvis,")."""
        return f"{self.phrase}," if self.phrase else ""

    def read_check(self, reader: PhraseReader, audio: Any, speech_end: float) -> WakeRead:
        """Read the :class:`WordCheck` that ended at ``speech_end`` (in a worker thread).

        Whisper (``reader``) scores and, when it may be the phrase, transcribes it; pass
        the result to :meth:`confirm_read`.
        """
        check = self._checks.get(speech_end)
        if check is None:
            return WakeRead(None)
        near_miss = self.by_words_above is not None and check.probability >= self.by_words_above
        kept = self._checks.read_before(speech_end, near_miss)
        if kept is not None:
            return kept
        read = read_wake_check(
            reader,
            audio,
            self.phrase,
            near_miss=near_miss,
            rule=self.fit,
            hint=self.words_hint,
            speech_s=check.speech_end - check.audio_start,
        )
        self._checks.remember(speech_end, near_miss, read)
        return read

    def confirm_read(self, speech_end: float, read: WakeRead) -> str | None:
        """What :meth:`read_check` found: the turn after the phrase, or ``None`` (see
        :meth:`confirm_by_words`)."""
        return self._confirm(speech_end, read.rest, how=read.how or "words")

    def confirm_by_words(self, speech_end: float, transcript: str) -> str | None:
        """The words of a :class:`WordCheck` (the utterance that ended at ``speech_end``).

        Returns what follows the wake phrase when the transcript begins with it (the
        turn; ``""``: the phrase alone, which opens the window as a detection does), or
        ``None``: not the wake phrase, not a turn. Either way the timeline hears of it.
        """
        return self._confirm(speech_end, WakePhrase(self.phrase).after(transcript))

    def _confirm(self, speech_end: float, rest: str | None, *, how: str = "words") -> str | None:
        check = self._checks.pop(speech_end)
        if check is None:
            return None
        if rest is None:
            if self.by_words_above is None or check.probability < self.by_words_above:
                return None  # checked only for its sound, not near: nothing to show
            self._report.near_miss(
                self.phrase,
                self.cutoff,
                check.probability,
                check.at,
                (check.speech_start, check.speech_end),
                note="; its words are not the phrase",
            )
            return None
        now = self._heard_at if self._heard_at is not None else check.speech_end
        self._window.open_from(check.speech_end)
        self._report.woke_by_words(self.phrase, self.cutoff, check, now=now, rest=rest, how=how)
        self._show(now)
        return rest

    # --- inside -------------------------------------------------------------------------

    def _show(self, now: float | None) -> None:
        if now is None:
            now = self._heard_at
            if now is None:
                import time

                now = time.monotonic()  # nothing heard yet: the frames' clock is live
        state, until = ("on", None) if not self.gating else self._window.state(now, self._activity)
        self._report.listening(self.mode, state, until, self.phrase)

    def turn_span(self, utterance: Utterance, turn: Utterance) -> StageSpan | None:
        """The timeline's "wake" lane for a turn whose audio starts after the wake phrase."""
        detection = self._scores.detection_in(utterance)
        if detection is None:
            return None
        return self._report.turn_span(self.phrase, utterance.speech_start, detection)


def _after(utterance: Utterance, t: float) -> Utterance:
    """``utterance`` without its audio before ``t`` (its speech starts at ``t`` at the earliest)."""
    skip = max(0, round((t - utterance.audio_start) * SAMPLE_RATE))
    return replace(
        utterance,
        audio=utterance.audio[skip:],
        audio_start=utterance.audio_start + skip / SAMPLE_RATE,
        speech_start=max(utterance.speech_start, t),
    )


def load_detector(config: Config) -> WakeWordDetector:
    """The wake word detector that ``listen.wake_word`` names (loads the model)."""
    from voiceterm.engines.wake import WakeWordDetector, resolve_wake_model

    return WakeWordDetector(resolve_wake_model(config.listen.wake_word))
