"""Is a transcript the agent's own voice coming back through the microphone?

Echo cancellation and the barge-in hold keep most of the agent's voice out of the
turns, but on a loaded machine or a loud speaker a stretch of echo can still pass
as speech: the VAD ends it like an utterance and Whisper transcribes it, and the
agent would answer its own words. The words give it away: echo transcribes to
what the agent just said, in the same order, and a person talking over it rarely
repeats several of its words in a row.

``OwnVoice`` remembers the sentences of recent answers and when the agent's sound
played; ``heard_in`` says whether a transcript of an utterance that overlapped
that sound (or its echo's tail) repeats them.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from difflib import SequenceMatcher

_WORD = re.compile(r"[a-z0-9']+")
# A run of this many words in the agent's order (not all of them little words like
# "of the") is its voice, not a coincidence.
_MIN_RUN = 2
# Share of the transcript's words that must lie in such runs. Echo comes back garbled
# ("So was the brain heart full of love and the spirit ..."), so a third is enough.
_ECHO_SHARE = 0.3
_LITTLE_WORDS = frozenset(
    """a an the and but or so if of in on at by for from with to as is are was were be
    it its it's this that i you he she we they me my your do did not no yes""".split()
)


def words_of(text: str) -> list[str]:
    """Lower-case words and numbers, without punctuation."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


@dataclass(slots=True)
class _Sound:
    start: float
    end: float | None = None  # None while it plays


class OwnVoice:
    """What the agent said lately, and when it was audible.

    Args:
        tail_s: how long after the agent's last sample its echo may still arrive
            (the echo path, the room, the canceller's convergence).
        keep_s: how far back sentences and sounds are remembered.
    """

    def __init__(self, *, tail_s: float = 1.0, keep_s: float = 60.0) -> None:
        self._tail_s = tail_s
        self._keep_s = keep_s
        self._sentences: deque[tuple[float, list[str]]] = deque()
        self._sounds: deque[_Sound] = deque()

    def said(self, sentence: str, at: float) -> None:
        """The agent is about to speak ``sentence`` (made at ``at``)."""
        words = words_of(sentence)
        if words:
            self._sentences.append((at, words))
        self._forget(at)

    def started(self, at: float) -> None:
        """The agent's sound started at ``at``."""
        if self._sounds and self._sounds[-1].end is None:
            return
        self._sounds.append(_Sound(start=at))

    def stopped(self, at: float) -> None:
        """The agent's last sample played at ``at``."""
        if self._sounds and self._sounds[-1].end is None:
            self._sounds[-1].end = at

    def audible(self, start: float, end: float, *, tail_s: float | None = None) -> bool:
        """Whether the agent's sound (or its echo's tail) overlapped ``start``..``end``."""
        tail = self._tail_s if tail_s is None else tail_s
        for sound in self._sounds:
            if sound.start <= end and (sound.end is None or start <= sound.end + tail):
                return True
        return False

    def heard_in(self, transcript: str, start: float | None, end: float | None) -> bool:
        """Whether ``transcript``, heard from ``start`` to ``end``, is the agent's own voice."""
        if start is None or end is None or not self.audible(start, end):
            return False
        heard = words_of(transcript)
        if not heard:
            return False
        spoken = [word for _at, words in self._sentences for word in words]
        blocks = SequenceMatcher(None, heard, spoken, autojunk=False).get_matching_blocks()
        if len(heard) < _MIN_RUN:
            # One word may well be the user's answer ("Paris.") right after the
            # agent's question: only a word said while the agent was still talking.
            return self.audible(start, start, tail_s=0.0) and any(b.size for b in blocks)
        in_runs = sum(
            block.size
            for block in blocks
            if block.size >= _MIN_RUN
            and not _LITTLE_WORDS.issuperset(heard[block.a : block.a + block.size])
        )
        return in_runs >= max(_MIN_RUN, _ECHO_SHARE * len(heard))

    def _forget(self, now: float) -> None:
        horizon = now - self._keep_s
        while self._sentences and self._sentences[0][0] < horizon:
            self._sentences.popleft()
        while self._sounds and self._sounds[0].end is not None and self._sounds[0].end < horizon:
            self._sounds.popleft()
