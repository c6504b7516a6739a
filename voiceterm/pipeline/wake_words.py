"""Whether a transcript begins with the wake phrase, and what follows it.

The wake word's second stage (see :mod:`voiceterm.pipeline.wake`): an utterance the
model nearly woke on is transcribed, and it wakes voiceterm when its words begin
with the wake phrase. Whisper writes a name as it hears it ("Jarvis", "Jervis",
"Jardwis", "Jar vis") and a short greeting as "Hey", "Hi", "A" or "Her", so the
name is compared by a sound-alike spelling, not letter for letter, and the
greeting is any short word. Every form comes from the model's phrase: the same
rule serves "Okay Nabu" and "Hey Mycroft".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

ALIKE_AT_LEAST = 0.7
"""How alike (0-1, :func:`alike`) a word must sound to the phrase's name: "Jervis",
"Jardwis" and "Javis" are (0.83, 0.77, 0.91), "Travis" and "service" are not (0.67, 0.62)."""
GREETING_LETTERS = 5
"""The longest word taken for the greeting before the name. Whisper writes an unstressed
"Hey" as "Hey", "Hi", "A", "Her", "They" or "Okay", or leaves it out, so the greeting
is any short word, or none; the name must be there."""

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?", re.IGNORECASE)
_LEADING = " \t\n,.;:!?-\u2013\u2014\u2026'\"()"
# Spellings that sound the same, applied in order to a lower-case word.
_SOUNDS = (
    (re.compile(r"'s$"), ""),
    (re.compile(r"ph"), "f"),
    (re.compile(r"ck"), "k"),
    (re.compile(r"qu"), "kw"),
    (re.compile(r"x"), "ks"),
    (re.compile(r"c(?=[eiy])"), "s"),
    (re.compile(r"c"), "k"),
    (re.compile(r"g(?=[eiy])"), "j"),
    (re.compile(r"z"), "s"),
    (re.compile(r"y"), "i"),
    (re.compile(r"[^a-z0-9]"), ""),
    (re.compile(r"(.)\1+"), r"\1"),
)


def sounds(word: str) -> str:
    """A word's spelling by its sound, roughly ("Jervis's" -> "jervis", "Nabu" -> "nabu")."""
    spelled = word.lower()
    for pattern, replacement in _SOUNDS:
        spelled = pattern.sub(replacement, spelled)
    return spelled


def alike(heard: str, said: str) -> float:
    """How alike two words sound, 0-1 (the share of their sound-alike spellings that match)."""
    a, b = sounds(heard), sounds(said)
    if not a or not b:
        return 0.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


@dataclass(frozen=True, slots=True)
class WakePhrase:
    """The wake phrase's words, to find it at the start of a transcript.

    Args:
        phrase: as the model's manifest spells it ("Hey Jarvis").
    """

    phrase: str

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(m.group().lower() for m in _WORD.finditer(self.phrase))

    def after(self, transcript: str) -> str | None:
        """What follows the wake phrase when ``transcript`` begins with it, else ``None``.

        ``""``: the phrase alone. The rest keeps Whisper's spelling and punctuation,
        with its first letter raised: "Hey, Jervis. What time is it?" -> "What time is it?".
        The phrase's last word is its name, which must sound alike (Whisper may split it
        in two); the words before it are a greeting ("Hey"), which may be any short word
        each, or missing.
        """
        words = self.words
        if not words:
            return None
        *greeting, name = words
        tokens = list(_WORD.finditer(transcript))
        for skipped in range(len(greeting) + 1):
            before = tokens[:skipped]
            if any(len(token.group()) > GREETING_LETTERS for token in before):
                break
            matched = _match(tokens, skipped, name)
            if matched:
                rest = transcript[tokens[skipped + matched - 1].end() :].lstrip(_LEADING)
                return rest[:1].upper() + rest[1:]
        return None


def _match(tokens: list[re.Match[str]], start: int, word: str) -> int:
    """How many tokens from ``start`` say ``word`` (one, or two that Whisper split): 0 if none."""
    if start >= len(tokens):
        return 0
    first = tokens[start].group().lower()
    if alike(first, word) >= ALIKE_AT_LEAST:
        return 1
    if start + 1 < len(tokens) and len(first) < len(word):
        joined = first + tokens[start + 1].group().lower()
        if alike(joined, word) >= ALIKE_AT_LEAST:
            return 2
    return 0
