"""Barge-in: the user talking over the agent, "hold, then confirm".

As soon as the voice detector hears speech (loud enough: ``min_level_db``) while
the agent speaks, ``BargeInSuspected`` is published and the player holds the answer
where it is, so the sound stops within a block of the onset. Holding the sound also
silences the agent's own echo; after ``hold_settle_ms`` (the echo still on its way)
speech counts again. ``hold_confirm_ms`` more of it is the user taking the turn:
``AgentInterrupted`` cuts the LLM, TTS and player off. ``hold_quiet_ms`` of silence
instead (echo that died with the held sound, a cough) publishes ``BargeInDismissed``:
the answer plays on from where it stopped and the sound is not a turn. While the
agent is only thinking there is nothing to hold: ``min_speech_ms`` of speech
interrupts it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from voiceterm.events import AgentInterrupted, BargeInDismissed, BargeInSuspected, TurnMark
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.listening.seams import Clock, Heard, Publish
from voiceterm.pipeline.listening.settings import ListenerSettings

logger = logging.getLogger(__name__)

_ECHO_MARGIN_DB = 3.0  # how much louder than dismissed echo the next hold must be
# Dismissed echo raises the next hold's floor at most this far above min_level_db: a
# person talking over the answer (-18 to -32 dBFS) can always cut it off.
_MAX_FLOOR_RISE_DB = 12.0


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


class BargeIn:
    """Decides, frame by frame, whether speech over the agent interrupts it."""

    def __init__(
        self, activity: AgentActivity, publish: Publish, settings: ListenerSettings, clock: Clock
    ) -> None:
        self._activity = activity
        self._publish = publish
        self._clock = clock
        self._enabled = settings.barge_in
        self._hold_enabled = settings.hold
        self._min_speech_s = settings.min_speech_ms / 1000
        self._min_level_db = settings.min_level_db
        self._start_s = settings.start_ms / 1000
        self._settle_s = settings.hold_settle_ms / 1000
        self._confirm_s = settings.hold_confirm_ms / 1000
        self._quiet_s = settings.hold_quiet_ms / 1000
        self._hold: _Hold | None = None
        # Echo that held the answer and died with it sets how loud the next hold of
        # the same answer must be: echo residue stays at a similar level for a while.
        self._floor_db = settings.min_level_db
        self._floor_for_sound_end = 0.0
        self._voiced_s = 0.0
        self.barged = False
        """The utterance in progress interrupted the agent."""

    @property
    def holding(self) -> bool:
        """Whether the answer is held: whose voice it was is not clear yet."""
        return self._hold is not None

    def speech_started(self) -> None:
        # The start confirmation's voiced frames count toward a barge-in too.
        self._voiced_s = self._start_s
        self.barged = False

    def feed(self, heard: Heard, onset: float | None) -> bool:
        """The frame just heard (``onset``: of the utterance in progress).

        Returns True when a hold was let go: not the user after all, the answer
        plays on, and the sound held is no turn (the caller drops it).
        """
        hold = self._hold
        if hold is not None:
            if heard.t_start >= hold.since + self._settle_s:
                hold.saw(heard.level_db, heard.voiced)
            return self._check_hold(hold, heard)
        if onset is not None and not self.barged and self._enabled:
            self._check_speech(heard, onset)
        return False

    def _counts(self, heard: Heard) -> bool:
        """Whether the frame is speech that may be the user's."""
        # While the agent speaks, only frames above min_level_db count: what echo
        # cancellation leaves of the agent's own voice is mostly quieter (-31 to
        # -42 dBFS on the rig) than a person talking over it (-18 to -32 dBFS).
        return heard.voiced and (
            not self._activity.speaking or heard.level_db >= self._min_level_db
        )

    def _check_speech(self, heard: Heard, onset: float) -> None:
        activity = self._activity
        counts = self._counts(heard)
        if activity.last_sound_end != self._floor_for_sound_end:
            # A new answer (or a new stretch of one) starts from the configured floor.
            self._floor_for_sound_end = activity.last_sound_end
            self._floor_db = self._min_level_db
        if activity.speaking and self._hold_enabled:
            # While it speaks, only a hold can lead to a cut: echo quieter than the
            # floor is no reason to stop, and a person louder than it holds first.
            if counts and heard.level_db >= self._floor_db:
                self._hold = _Hold(onset=onset, since=self._clock(), level_db=heard.level_db)
                logger.info("barge-in? holding the answer (%.0f dBFS)", heard.level_db)
                self._publish(BargeInSuspected(onset_time=onset))
            return
        # Count voiced audio, not the time since the onset: the VAD stays "in speech"
        # through its hangover, so an 80 ms cough would otherwise pass min_speech_ms
        # during the silence after it.
        if counts:
            self._voiced_s += heard.t_end - heard.t_start
        if activity.busy and self._voiced_s >= self._min_speech_s:
            self._cut_off(onset)

    def _check_hold(self, hold: _Hold, heard: Heard) -> bool:
        # The hold outlives the VAD's utterances: "Wait, ... tell me" may be two.
        settled = hold.since + self._settle_s
        if self._counts(heard) and heard.t_start >= settled:
            hold.confirmed_s += heard.t_end - heard.t_start
            hold.last_speech = heard.t_end
        if hold.confirmed_s >= self._confirm_s:
            logger.info(
                "barge-in confirmed %.0f ms after the hold", 1000 * (self._clock() - hold.since)
            )
            self._cut_off(hold.onset)
        elif heard.t_end >= max(settled, hold.last_speech) + self._quiet_s:
            self._let_go(hold)
            return True
        return False

    def _cut_off(self, onset: float) -> None:
        """The user is taking the turn: stop the agent."""
        self.barged = True
        self._hold = None
        self._publish(TurnMark(name="barge_in_onset", at=onset))
        self._publish(AgentInterrupted(reason="user_speech"))

    def _let_go(self, hold: _Hold) -> None:
        """Not the user after all: the held answer plays on."""
        self._hold = None
        logger.info(
            "not a barge-in: playing on after %.0f ms (%s)",
            1000 * (self._clock() - hold.since),
            hold.summary(),
        )
        self._floor_db = max(
            self._floor_db,
            min(hold.level_db + _ECHO_MARGIN_DB, self._min_level_db + _MAX_FLOOR_RISE_DB),
        )
        self._publish(BargeInDismissed(onset_time=hold.onset))
