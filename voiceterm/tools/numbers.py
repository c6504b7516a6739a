"""Numbers to English words and back, for speech in and speech out.

Speech recognisers write "twelve" as often as "12", and text-to-speech reads
"3:07" less reliably than "three oh seven". Both directions live here so the
calculator and the clock share one vocabulary.
"""

from __future__ import annotations

ONES: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
TENS: tuple[str, ...] = (
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
)  # fmt: skip
SCALES: tuple[tuple[int, str], ...] = (
    (1_000_000_000_000, "trillion"),
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
    (1_000, "thousand"),
)

_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip

# Word -> value for the words a number can be read with.
UNIT_WORDS: dict[str, int] = {word: value for value, word in enumerate(ONES)} | {
    "oh": 0,
    "nought": 0,
    "a": 1,  # "a hundred", only honoured before a multiplier (see words_to_number)
}
TENS_WORDS: dict[str, int] = {word: 10 * value for value, word in enumerate(TENS) if word}
MULTIPLIER_WORDS: dict[str, int] = {"hundred": 100} | {word: value for value, word in SCALES}
NUMBER_WORDS: frozenset[str] = frozenset(UNIT_WORDS) | set(TENS_WORDS) | set(MULTIPLIER_WORDS)


def _below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    parts: list[str] = []
    if hundreds:
        parts.append(f"{ONES[hundreds]} hundred")
    if rest or not parts:
        if rest < 20:
            parts.append(ONES[rest])
        else:
            tens, ones = divmod(rest, 10)
            parts.append(TENS[tens] + (f"-{ONES[ones]}" if ones else ""))
    return " ".join(parts)


def number_to_words(n: int) -> str:
    """Spell a whole number in English: ``1205`` -> ``"one thousand two hundred five"``.

    Args:
        n: Any integer whose magnitude is below 10**15.

    Returns:
        The number in words, with ``"minus"`` in front of negatives.

    Raises:
        ValueError: If the number is too large to spell.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 1000 * SCALES[0][0]:
        raise ValueError(f"{n} is too large to spell out")
    parts: list[str] = []
    for scale, name in SCALES:
        count, n = divmod(n, scale)
        if count:
            parts.append(f"{_below_thousand(count)} {name}")
    if n or not parts:
        parts.append(_below_thousand(n))
    return " ".join(parts)


def ordinal_words(n: int) -> str:
    """Spell an ordinal: ``25`` -> ``"twenty-fifth"``."""
    words = number_to_words(n)
    cut = max(words.rfind(" "), words.rfind("-"))
    head, last = words[: cut + 1], words[cut + 1 :]
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + last


def year_to_words(year: int) -> str:
    """Read a year the way people say it: ``2025`` -> ``"twenty twenty-five"``."""
    if 2000 <= year <= 2009 or year % 1000 == 0 or not 1000 <= year <= 9999:
        return number_to_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    low_words = number_to_words(low) if low >= 10 else f"oh {ONES[low]}"
    return f"{number_to_words(high)} {low_words}"


def words_to_number(words: list[str]) -> int | None:
    """Read a sequence of number words as one whole number.

    ``["one", "hundred", "and", "five"]`` -> ``105``; ``["a", "million"]`` ->
    ``1000000``. ``"and"`` is accepted only after ``hundred`` or a scale word.

    Args:
        words: Lower-case words, already split.

    Returns:
        The value, or ``None`` if the words are not a well-formed number.
    """
    if not words:
        return None
    total = 0  # finished scale groups (thousands, millions, ...)
    group = 0  # the group being built, below one thousand
    last_kind = ""  # "unit", "tens", "hundred", "scale", "and"
    last_scale = 0  # scales must fall: "two million three thousand", never the reverse
    for index, word in enumerate(words):
        if word == "and":
            if last_kind not in ("hundred", "scale"):
                return None
            last_kind = "and"
        elif word in TENS_WORDS:
            if last_kind in ("unit", "tens") or group % 100:
                return None
            group += TENS_WORDS[word]
            last_kind = "tens"
        elif word in UNIT_WORDS:
            if word == "a" and not (
                index + 1 < len(words) and words[index + 1] in MULTIPLIER_WORDS
            ):
                return None
            if last_kind == "unit" or (last_kind == "tens" and group % 10):
                return None
            if word in ("oh", "nought") and index > 0:
                return None
            group += UNIT_WORDS[word]
            last_kind = "unit"
        elif word == "hundred":
            if last_kind not in ("unit", "tens", "") or group >= 100:
                return None
            group = (group or 1) * 100
            last_kind = "hundred"
        elif word in MULTIPLIER_WORDS:
            scale = MULTIPLIER_WORDS[word]
            if last_kind in ("scale", "and") or (last_scale and scale >= last_scale):
                return None
            total += (group or 1) * scale
            last_scale = scale
            group = 0
            last_kind = "scale"
        else:
            return None
    if last_kind == "and":
        return None
    return total + group
