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
"""

from __future__ import annotations

import re

# Words after which an English sentence cannot end.
_CONTINUATIONS = frozenset(
    """a an the and but or nor so because if than that which who whose whom to of
    in on at by for from with about into over under between like as is are was
    were be been am my your his her its our their this these those um uh er erm
    very really just not no and then""".split()
)
_WORD = re.compile(r"[a-z0-9']+")
SHORT_PHRASE_WORDS = 3


def sounds_finished(transcript: str) -> bool:
    """Whether ``transcript`` reads like a complete turn."""
    text = transcript.strip()
    if not text or text.endswith(("...", "…", ",", ";", ":", "-")):
        return False
    words = _WORD.findall(text.lower())
    if not text.endswith((".", "?", "!")) and len(words) > SHORT_PHRASE_WORDS:
        return False
    return bool(words) and words[-1] not in _CONTINUATIONS
