"""Is the user done? A transcript that sounds unfinished earns a longer wait.

The VAD ends an utterance after a short silence (``vad.hangover_ms``), because
that wait adds straight to voice-to-voice latency. People also pause mid-sentence
("I'd like to go to the ... station"), and a short wait cuts those sentences.
Whisper's own punctuation says which is which: a finished sentence ends with
``.``, ``?`` or ``!``; a cut one ends with a comma, an ellipsis, no punctuation,
or a word that cannot end a sentence. Only those wait longer
(``vad.incomplete_wait_ms``) for the rest, so the common case stays fast.

Except short phrases: Whisper leaves a command of a few words or a number
unpunctuated even when it is all there ("10 of clubs", "5 5", "29340" from the
CMU recordings in the tests), so up to ``SHORT_PHRASE_WORDS`` words without
punctuation count as finished unless they end on a word that cannot end one.

"Sounds unfinished" is a cue, not a proof: a short command may end on a word that
usually leads on ("Cancel that.", which Whisper may also hear as "cancelled
that"; "turn it on"). :func:`sounds_cut_off` is the stricter reading, for where
the words alone may keep a turn open for long (the end-of-turn cap).
"""

from __future__ import annotations

import re

# Words no sentence ends on: articles, conjunctions, possessive determiners, fillers.
_NEVER_LAST = frozenset("a an the and but or nor than my your its our their um uh er erm".split())
# Words after which an English sentence usually goes on (a short command may still
# end on one: "Cancel that.", "turn it on").
_CONTINUATIONS = _NEVER_LAST | frozenset(
    """so because if that which who whose whom to of in on at by for from with about
    into over under between like as is are was were be been am his her this these
    those very really just not no then""".split()
)
_TRAILING_OFF = ("...", "…", ",", ";", ":", "-")
_WORD = re.compile(r"[a-z0-9']+")
SHORT_PHRASE_WORDS = 3


def sounds_finished(transcript: str) -> bool:
    """Whether ``transcript`` reads like a complete turn."""
    text = transcript.strip()
    if not text or text.endswith(_TRAILING_OFF):
        return False
    words = _WORD.findall(text.lower())
    if not text.endswith((".", "?", "!")) and len(words) > SHORT_PHRASE_WORDS:
        return False
    return bool(words) and words[-1] not in _CONTINUATIONS


def sounds_cut_off(transcript: str) -> bool:
    """Whether ``transcript`` surely stops mid-sentence (stricter than ``not sounds_finished``).

    Cut off: it trails off ("...", a comma), stops on a word no sentence ends on
    ("the", "and", "um"), or is longer than ``SHORT_PHRASE_WORDS`` words and sounds
    unfinished. A short phrase that merely ends on a word that usually leads on
    ("cancelled that", "Cancel that.", "tell me about") is not: Whisper's reading of a
    clip that short says too little, and the command may be all there. No words is
    not cut off either: nothing was read.
    """
    text = transcript.strip()
    if text.endswith(_TRAILING_OFF):
        return True
    words = _WORD.findall(text.lower())
    if not words:
        return False
    if words[-1] in _NEVER_LAST:
        return True
    return len(words) > SHORT_PHRASE_WORDS and not sounds_finished(text)
