"""The microphone level for the meters, published no more often than they redraw."""

from __future__ import annotations

from voiceterm.events import AudioLevel
from voiceterm.pipeline.listening.seams import Publish

_LEVEL_INTERVAL_S = 0.05  # meters redraw at 20 Hz; faster only costs CPU
# A level within this of the last one published is not sent again (a meter cell
# is 5 dB), except every _LEVEL_REFRESH_S: a quiet room costs no bus traffic.
_LEVEL_STEP_DB = 1.0
_LEVEL_REFRESH_S = 1.0


class LevelMeter:
    """Publishes ``AudioLevel`` when the level or voicing changes (on the loop's clock)."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._last = 0.0
        self._shown = (float("inf"), False)

    def feed(self, level_db: float, voiced: bool, now: float) -> None:
        """The level of the frame just heard; ``now``: the loop's monotonic time."""
        if now - self._last < _LEVEL_INTERVAL_S:
            return
        shown_db, shown_voiced = self._shown
        if (
            voiced != shown_voiced
            or abs(level_db - shown_db) >= _LEVEL_STEP_DB
            or now - self._last >= _LEVEL_REFRESH_S
        ):
            self._last, self._shown = now, (level_db, voiced)
            self._publish(AudioLevel(level_db=level_db, voiced=voiced))
