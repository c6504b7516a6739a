"""Whether a transcript begins with the wake phrase, and what follows it.

The wake word's second stage (see :mod:`voiceterm.pipeline.wake`): an utterance the
model nearly woke on is transcribed, and it wakes voiceterm when its words begin
with the wake phrase. Whisper writes a name as it hears it ("Jarvis", "Jervis",
"Jardwis", "Jar vis") and a short greeting as "Hey", "Hi", "A" or "Her", so the
name is compared by a sound-alike spelling, not letter for letter, and the
greeting is any short word. Every form comes from the model's phrase: the same
rule serves "Okay Nabu" and "Hey Mycroft".

Whisper tiny.en writes some voices' "Hey Jarvis" under noise as "K-Jeter Biss" or
"Hey, Jotter, bitch", which no spelling rule should accept. So the check also asks
Whisper how well the sound fits the phrase (:func:`read_wake_check`): the phrase's
log-probability as the first words, forced on the decoder, without any prompt. Speech
without the phrase scores far lower (see BENCHMARKS), and scoring a fixed phrase writes
nothing of what a person beside the terminal said: an utterance is transcribed only
when it fits, or when the wake word model nearly woke on it. "Hey Travis" or "Hey
Charlie" fit nearly as well as a robot's "Hey Jarvis", so a fit alone is not enough:
the phrase must also be nearly as likely as what Whisper itself reads there (its own
first words, scored the same way), which for a clearly said other name it is not.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Protocol, TypeGuard

ALIKE_AT_LEAST = 0.75
"""How alike (0-1, :func:`alike`) a word must sound to the phrase's name: "Jervis",
"Jardwis" and "Javis" are (0.83, 0.77, 0.91), "Davis", "Mavis", "Travis" and "service" are
not (0.73, 0.73, 0.67, 0.62). At 0.7 Whisper's clear "Hey Davis" woke it (see BENCHMARKS);
no reading of the phrase in the bench's trials fell between 0.7 and 0.75."""
GREETING_LETTERS = 5
"""The longest word taken for the greeting before the name. Whisper writes an unstressed
"Hey" as "Hey", "Hi", "A", "Her", "They" or "Okay", or leaves it out, so the greeting
is any short word, or none; the name must be there."""

MIN_QUESTION_S = 0.25
"""Less speech than this after the phrase: the phrase was said alone."""

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


class PhraseReading(Protocol):
    """One utterance as the check reads it (``stt.Reading`` fits): each of these shares
    the encoder's output with the others."""

    def fit(self, phrase: str) -> Any: ...

    def transcribe(self, *, hint: str = "") -> Any: ...

    def transcribe_after(self, phrase: str) -> Any: ...


class PhraseReader(Protocol):
    """What the check needs of the speech recognizer (``WhisperTranscriber`` fits)."""

    def reading(self, audio: Any) -> PhraseReading: ...


def reads_phrases(transcriber: object) -> TypeGuard[PhraseReader]:
    """Whether ``transcriber`` can score a wake phrase (not only transcribe)."""
    return callable(getattr(transcriber, "reading", None))


@dataclass(frozen=True, slots=True)
class WakeRead:
    """What the check made of one utterance."""

    rest: str | None
    """What follows the wake phrase (``""``: the phrase alone); ``None``: not the phrase."""
    transcript: str = ""
    """Whisper's words of the utterance (``""``: not transcribed: it did not fit)."""
    fit: float | None = None
    """The phrase's log-probability as the first words (``None``: not scored)."""
    how: str = ""
    """``"words"``: the transcript begins with the phrase; ``"sound"``: it fits the phrase."""
    compute_s: float = 0.0
    own: float | None = None
    """The log-probability of Whisper's own first words, scored as the phrase is
    (``None``: not needed)."""
    name_fit: float | None = None
    """Of :attr:`fit`, the share of the phrase's name, its last word (``None``: not scored)."""


@dataclass(frozen=True, slots=True)
class FitRule:
    """When an utterance's sound fits the wake phrase well enough to wake it, by Whisper's
    log-probability of the phrase as its first words (``listen.wake_fit_*``)."""

    above: float | None = None
    """The log-probability from which the sound fits the phrase (``None``: the sound is
    not scored, only near misses are read)."""
    margin: float | None = None
    """How much less likely the phrase may be than Whisper's own reading of as many first
    words (``None``: any, for benches that apply it afterwards)."""
    name_above: float | None = None
    """The log-probability from which the phrase's name alone (its last word, in the same
    forced reading) fits, however its greeting fits (``None``: off)."""
    name_margin: float | None = None
    """``margin`` for an utterance that fits by its name."""


def read_wake_check(
    reader: PhraseReader,
    audio: Any,
    phrase: str,
    *,
    near_miss: bool,
    rule: FitRule,
    hint: str,
    speech_s: float,
) -> WakeRead:
    """Whether an utterance that did not wake the model begins with the wake phrase.

    Args:
        reader: the loaded Whisper.
        audio: the utterance (16 kHz, its pre-roll included).
        phrase: the wake phrase ("Hey Jarvis").
        near_miss: the wake word model nearly woke on it: its words are read even when
            the sound does not fit.
        rule: when the sound fits the phrase (or its name alone).
        hint: Whisper's previous text for the transcript (the phrase, see BENCHMARKS).
        speech_s: where the speech ends in ``audio`` (seconds from its start).

    A near miss, or an utterance that fits (the phrase, or its name alone), is transcribed
    (told the phrase may come): when the words begin with the phrase, what follows is the
    turn. When they do not but the sound fits, :func:`_rest_by_sound` decides.
    """
    started = time.perf_counter()
    # One reading: the fit, the transcripts and the words after the phrase share the
    # encoder's output (the same window and padding), so Whisper encodes the audio once.
    reading = reader.reading(audio)
    fit_above, name_above = rule.above, rule.name_above
    fit = reading.fit(phrase) if fit_above is not None else None
    fits = fit is not None and fit_above is not None and fit.logprob >= fit_above
    fit_logprob = None if fit is None else float(fit.logprob)
    name = None if fit is None else float(fit.last_word_logprob)
    name_fits = name is not None and name_above is not None and name >= name_above
    if not (near_miss or fits or name_fits):
        return WakeRead(
            None, fit=fit_logprob, compute_s=time.perf_counter() - started, name_fit=name
        )
    transcript = str(reading.transcribe(hint=hint).text).strip()
    rest = WakePhrase(phrase).after(transcript)
    if rest is not None or not (fits or name_fits) or fit is None:
        how = "words" if rest is not None else ""
        return WakeRead(
            rest, transcript, fit_logprob, how, time.perf_counter() - started, name_fit=name
        )
    margins = [m for m, on in ((rule.margin, fits), (rule.name_margin, name_fits)) if on]
    rest, own = _rest_by_sound(reading, phrase, fit, speech_s=speech_s, margins=margins)
    how = "sound" if rest is not None else ""
    return WakeRead(rest, transcript, fit_logprob, how, time.perf_counter() - started, own, name)


def _rest_by_sound(
    reading: PhraseReading,
    phrase: str,
    fit: Any,
    *,
    speech_s: float,
    margins: list[float | None],
) -> tuple[str | None, float]:
    """The turn in an utterance whose sound fits the phrase but whose words do not begin
    with it, and the log-probability of Whisper's own first words.

    The phrase must be within the largest of ``margins`` (``None`` among them: any) of
    Whisper's own first words (read without the hint); then the turn is what Whisper reads
    on from the phrase forced as the transcript's beginning (``""``: nothing, or too little
    speech after the phrase's aligned end: the phrase said alone). ``None``: not the phrase.
    """
    count = len(WakePhrase(phrase).words)
    own_words = " ".join(_WORD.findall(str(reading.transcribe().text))[:count])
    own = float(reading.fit(own_words).logprob) if own_words else float("-inf")
    allowed = None if None in margins else max(m for m in margins if m is not None)
    if allowed is not None and fit.logprob - own < -allowed:
        return None, own
    rest = ""
    if speech_s - float(fit.end_s) >= MIN_QUESTION_S:
        after = str(reading.transcribe_after(str(fit.spelling)).text).lstrip(_LEADING).strip()
        rest = after[:1].upper() + after[1:]
    return rest, own
