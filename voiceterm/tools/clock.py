"""The time, the date and the weekday, in words ready to be spoken.

Text-to-speech voices read "15:07" or "11/25" inconsistently; spelled-out words
are read the same way every time. ``now`` is injectable so tests (and a user
in another time zone) decide what "now" is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from voiceterm.tools.numbers import number_to_words, ordinal_words, year_to_words

ClockQuery = Literal["time", "date", "weekday", "datetime"]
CLOCK_QUERIES: tuple[ClockQuery, ...] = ("time", "date", "weekday", "datetime")

# English names, not strftime's %A/%B: those follow the process locale.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def _local_now() -> datetime:
    return datetime.now().astimezone()


def time_in_words(moment: datetime) -> str:
    """``15:07`` -> ``"three oh seven in the afternoon"``; ``12:00`` -> ``"twelve noon"``."""
    hour, minute = moment.hour, moment.minute
    if minute == 0 and hour == 0:
        return "midnight"
    if minute == 0 and hour == 12:
        return "twelve noon"
    hour12 = hour % 12 or 12
    if minute == 0:
        clock = f"{number_to_words(hour12)} o'clock"
    elif minute < 10:
        clock = f"{number_to_words(hour12)} oh {number_to_words(minute)}"
    else:
        clock = f"{number_to_words(hour12)} {number_to_words(minute)}"
    if hour < 12:
        part = "in the morning"
    elif hour < 18:
        part = "in the afternoon"
    elif hour < 21:
        part = "in the evening"
    else:
        part = "at night"
    return f"{clock} {part}"


def date_in_words(moment: datetime) -> str:
    """``2025-11-25`` -> ``"Tuesday, November twenty-fifth, twenty twenty-five"``."""
    weekday, month = WEEKDAYS[moment.weekday()], MONTHS[moment.month - 1]
    return f"{weekday}, {month} {ordinal_words(moment.day)}, {year_to_words(moment.year)}"


@dataclass(frozen=True, slots=True)
class Clock:
    """Answers time and date questions from an injectable clock.

    Attributes:
        now: Returns the current local time; defaults to the system clock.
    """

    now: Callable[[], datetime] = field(default=_local_now)

    def answer(self, query: ClockQuery = "time") -> str:
        """One spoken sentence for ``query``.

        Args:
            query: ``"time"``, ``"date"``, ``"weekday"`` or ``"datetime"``.

        Returns:
            For example ``"It's three oh seven in the afternoon."``.

        Raises:
            ValueError: For an unknown query.
        """
        moment = self.now()
        if query == "time":
            return f"It's {time_in_words(moment)}."
        if query == "date":
            return f"Today is {date_in_words(moment)}."
        if query == "weekday":
            return f"Today is {WEEKDAYS[moment.weekday()]}."
        if query == "datetime":
            return f"It's {time_in_words(moment)} on {date_in_words(moment)}."
        raise ValueError(f"unknown clock query {query!r}; use one of {', '.join(CLOCK_QUERIES)}")
