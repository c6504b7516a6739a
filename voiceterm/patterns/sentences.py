"""Cut streamed LLM text into pieces a TTS can speak as soon as they are complete.

The LLM sends text a few characters at a time; the TTS wants whole sentences
(Piper's prosody is per sentence) but the user wants to hear sound early. The
:class:`SentenceSplitter` sits between them:

- it cuts at ``.``, ``!``, ``?``, ``…`` / ``...`` when that really ends a sentence
  and not at "Dr.", "e.g.", "etc. and", "U.S. economy", "3.14", "$2.50",
  "example.com", list numbers ("1. Open it") or initials ("J. R. R. Tolkien");
- a ``.`` at the end of what has arrived so far is ambiguous ("3." may become
  "3.14", "Dr." may be followed by "Smith"), so the splitter waits for the next
  letter before it decides; :meth:`SentenceSplitter.flush` settles it at the end
  of the stream;
- the *first* piece of an answer may end early at a clause boundary (comma,
  semicolon, colon, dash) once it is a few words long, so sound starts early;
- ``max_chars`` forces a cut in run-on text, at a clause or word boundary;
- a newline always ends a piece (lists and headings have no full stops);
- markdown a TTS should not read (``*``, ``#``, backticks, link targets) is
  removed from each piece by :func:`clean_for_speech`.

The result never depends on how the text was chunked: streaming it one
character at a time gives the same pieces as pushing it whole.

Pure Python, no dependencies: this module is part of the streaming core.
"""

from __future__ import annotations

import re

__all__ = [
    "SENTENCE_STARTERS",
    "SentenceSplitter",
    "clean_for_speech",
    "ends_with_sentence",
    "split_sentences",
]

_TERMINATORS = ".!?…"
# Characters that may trail a terminator and still belong to its sentence:
# closing quotes and brackets, and markdown emphasis ("**Done.**").
_CLOSERS = "\"'”’)]}»*_`"
# Characters that may precede the first letter of a word or sentence.
_OPENERS = "\"'“‘([{«*_`"
_CLAUSE_PUNCT = ",;:"
_DASHES = "—–"  # em and en dash: a clause boundary even without spaces around

# Abbreviations after which a "." never ends a sentence (compared lower-cased,
# without the final dot).
_NEVER_FINAL = frozenset(
    {
        "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "st", "mt", "rev", "gen", "col",
        "capt", "lt", "sgt", "gov", "sen", "rep", "hon", "pres", "vs", "v", "e.g",
        "i.e", "cf", "approx", "ca", "viz", "fig", "figs", "eq", "eqs", "resp", "dept",
        "univ", "assn", "bros", "ave", "blvd",
    }
)  # fmt: skip
# Abbreviations that announce a number ("No. 5", "Jan. 12", "p. 7"): no cut
# when a digit follows.
_BEFORE_NUMBER = frozenset(
    {
        "no", "nos", "nr", "p", "pp", "vol", "ch", "sec", "art", "op", "ex", "jan", "feb",
        "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip
# After an initial or a dotted acronym ("W.", "U.S."), a capitalised word is
# usually part of a name ("George W. Bush", "U.S. Army"); only these words are
# taken as the start of a new sentence.
SENTENCE_STARTERS = frozenset(
    {
        "The", "This", "That", "These", "Those", "It", "It's", "Its", "I", "I'm", "He",
        "She", "We", "They", "You", "There", "Then", "But", "And", "So", "However", "If",
        "When", "What", "Why", "How", "Yes", "No", "Also", "My", "Our", "Your", "His",
        "Her", "Their", "In", "On", "At", "After", "Before", "Now", "Today", "Here",
    }
)  # fmt: skip
_ACRONYM = re.compile(r"(?:[A-Z]\.)+[A-Z]")
_NEXT_WORD = re.compile(r"[A-Za-z'’]+")

# --- markdown a TTS should not read -----------------------------------------
_CODE_FENCE = re.compile(r"^[ \t]*(```|~~~).*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+", re.MULTILINE)
_HEADING_TAIL = re.compile(r"[ \t]+#+[ \t]*$", re.MULTILINE)
_BLOCKQUOTE = re.compile(r"^[ \t]*>[ \t]?", re.MULTILINE)
_BULLET = re.compile(r"^[ \t]*[-*+•][ \t]+", re.MULTILINE)
_RULE = re.compile(r"^[ \t]*([-*_=])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)
# "_" emphasis only at word edges, so snake_case names survive.
_UNDERSCORE_EMPHASIS = re.compile(r"(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])")
_WHITESPACE = re.compile(r"\s+")


def clean_for_speech(text: str) -> str:
    """Remove markdown a TTS would read aloud and collapse whitespace.

    Strips code fences, emphasis (``*``, ``_``, ``~~``), backticks, heading and
    blockquote markers, bullets, horizontal rules, and link targets (keeping
    the link text). Words, numbers and sentence punctuation stay.

    Args:
        text: Raw text, possibly markdown.

    Returns:
        The text on one line, stripped; empty if nothing speakable was left.
    """
    text = _CODE_FENCE.sub("", text)
    text = _RULE.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _HEADING.sub("", text)
    text = _HEADING_TAIL.sub("", text)
    text = _BLOCKQUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = text.replace("*", "").replace("`", "").replace("~~", "")
    text = _UNDERSCORE_EMPHASIS.sub("", text)
    return _WHITESPACE.sub(" ", text).strip()


def _is_speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _token_start(text: str, end: int) -> int:
    """Index where the whitespace-delimited token ending at ``end`` starts."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return start


def _is_initial_or_acronym(word: str) -> bool:
    if len(word) == 1:
        return word.isupper() and word != "I"
    return _ACRONYM.fullmatch(word) is not None


def _is_list_marker(text: str, token_start: int, word: str) -> bool:
    """ "1." at the start of a line or after a colon/sentence: a list number."""
    if not (word.isdigit() and len(word) <= 2):
        return False
    before = text[:token_start].rstrip(" \t")
    return not before or before[-1] in "\n:.!?"


def _judge_terminator(text: str, start: int, end: int, final: bool) -> bool | None:
    """Does the terminator run ``text[start:end]`` (followed by whitespace) end a sentence?

    Returns ``None`` when that cannot be known until more text arrives.
    """
    run = text[start:end]
    if "!" in run or "?" in run:
        return True
    # Look at the first significant character after the whitespace.
    n = len(text)
    k = end
    while k < n and (text[k].isspace() or text[k] in _OPENERS):
        if text[k] == "\n":
            return True  # a line break ends a piece whatever came before it
        k += 1
    if k >= n:
        return True if final else None
    following = text[k]
    if following.islower():
        return False  # "etc. and", "approx. five", "... and then"
    if "…" in run or ".." in run:
        return True
    token_start = _token_start(text, start)
    word = text[token_start:start].lstrip(_OPENERS)
    lowered = word.lower()
    if lowered in _NEVER_FINAL:
        return False
    if following.isdigit() and (lowered in _BEFORE_NUMBER or (len(word) == 1 and word.islower())):
        return False
    if _is_list_marker(text, token_start, word):
        return False
    if _is_initial_or_acronym(word):
        match = _NEXT_WORD.match(text, k)
        if match is None:
            return False
        if match.end() >= n and not final:
            return None  # the next word may not be complete yet
        next_word = match.group().replace("’", "'")
        if len(next_word) == 1 and text[match.end() : match.end() + 1] == ".":
            return False  # another initial: "J. R. R. Tolkien"
        return next_word in SENTENCE_STARTERS
    return True


def ends_with_sentence(text: str) -> bool:
    """Whether ``text`` ends with a complete sentence, judged without lookahead.

    For buffers that are flushed at sentence ends (the seed's
    ``BufferedStreamingNode``). Without the next characters it must guess, so it
    says no when in doubt: after abbreviations ("Dr.", "e.g."), initials, an
    ellipsis (the sentence may go on in lower case) and a number directly before
    the end ("3." may become "3.14"; "3. " with a trailing space is final).

    Args:
        text: The text seen so far.

    Returns:
        True if a TTS could speak ``text`` now as a finished sentence.
    """
    stripped = text.rstrip()
    trailing_space = len(stripped) < len(text)
    end = len(stripped)
    while end > 0 and stripped[end - 1] in _CLOSERS:
        end -= 1
    start = end
    while start > 0 and stripped[start - 1] in _TERMINATORS:
        start -= 1
    if start == end:
        return False
    run = stripped[start:end]
    if "!" in run or "?" in run:
        return True
    if "…" in run or ".." in run:
        return False
    token_start = _token_start(stripped, start)
    word = stripped[token_start:start].lstrip(_OPENERS)
    if not word:
        return False
    if word[-1].isdigit() and not trailing_space:
        return False
    lowered = word.lower()
    if lowered in _NEVER_FINAL:
        return False
    if _is_list_marker(stripped, token_start, word):
        return False
    return not _is_initial_or_acronym(word)


class SentenceSplitter:
    """Turns a stream of text chunks into speakable pieces, as early as they are known.

    One splitter serves one answer at a time: :meth:`push` each chunk as it
    arrives, then :meth:`flush` at the end of the answer (which also readies the
    splitter for the next one). :meth:`reset` throws the buffer away, for an
    interrupted answer.

    Example:
        >>> splitter = SentenceSplitter()
        >>> splitter.push("Dr. Smith arrived. He")
        ['Dr. Smith arrived.']
        >>> splitter.flush()
        'He'
    """

    def __init__(
        self,
        *,
        first_piece_min_chars: int | None = 20,
        max_chars: int | None = 200,
        clean: bool = True,
    ) -> None:
        """Create a splitter.

        Args:
            first_piece_min_chars: The first piece of an answer may end at a
                clause boundary (``,`` ``;`` ``:`` or a dash) once it is at least
                this long, so the TTS can start early. ``None``: sentences only.
            max_chars: Force a cut in text that runs this long without a
                sentence end: at the last clause boundary in its second half, else
                at the last space. ``None``: never force.
            clean: Pass each piece through :func:`clean_for_speech` and drop
                pieces with nothing speakable left.
        """
        if first_piece_min_chars is not None and first_piece_min_chars < 1:
            raise ValueError("first_piece_min_chars must be positive or None")
        if max_chars is not None and max_chars < 2:
            raise ValueError("max_chars must be at least 2 or None")
        self.first_piece_min_chars = first_piece_min_chars
        self.max_chars = max_chars
        self.clean = clean
        self._buffer = ""
        self._pieces_emitted = 0

    @property
    def pending(self) -> str:
        """Text received but not yet returned as a piece."""
        return self._buffer

    @property
    def pieces_emitted(self) -> int:
        """How many pieces this answer has produced so far."""
        return self._pieces_emitted

    def push(self, chunk: str) -> list[str]:
        """Add a chunk of streamed text.

        Args:
            chunk: The next characters of the answer (any length, may be empty).

        Returns:
            The pieces completed by this chunk, in order (often none).
        """
        # Leading whitespace is dropped at once so that positions (and so the
        # max_chars cut) do not depend on how the text was chunked.
        self._buffer = (self._buffer + chunk).lstrip()
        return self._drain(final=False)

    def flush(self) -> str | None:
        """End the answer: return what is left as the last piece.

        Returns:
            The last piece, or ``None`` if nothing speakable was left. The
            splitter is then ready for a new answer.
        """
        pieces = self._drain(final=True)
        remainder = self._finish(self._buffer)
        if remainder is not None:
            pieces.append(remainder)
        self.reset()
        # Everything decidable was cut by push(), so at most one piece is left;
        # join defensively rather than lose text.
        return " ".join(pieces) if pieces else None

    def reset(self) -> None:
        """Forget the buffered text and start a new answer."""
        self._buffer = ""
        self._pieces_emitted = 0

    def _drain(self, *, final: bool) -> list[str]:
        pieces: list[str] = []
        while self._buffer:
            cut = self._find_cut(self._buffer, final=final)
            if cut is None or (final and cut >= len(self._buffer.rstrip())):
                break
            piece = self._finish(self._buffer[:cut])
            self._buffer = self._buffer[cut:].lstrip()
            if piece is not None:
                pieces.append(piece)
        return pieces

    def _finish(self, raw: str) -> str | None:
        piece = clean_for_speech(raw) if self.clean else raw.strip()
        if not piece or (self.clean and not _is_speakable(piece)):
            return None
        self._pieces_emitted += 1
        return piece

    def _find_cut(self, text: str, *, final: bool) -> int | None:
        """Where the first piece of ``text`` ends, or ``None`` if not known yet.

        A pure function of ``text`` (and ``final``): each decision looks only
        at characters up to the next significant one, and waits (returns
        ``None``) when those have not arrived. That is what makes the output
        independent of chunking.
        """
        n = len(text)
        min_clause = self.first_piece_min_chars if self._pieces_emitted == 0 else None
        last_clause_end = 0
        last_space = 0
        i = 0
        while i < n:
            if self.max_chars is not None and i >= self.max_chars:
                if last_clause_end >= self.max_chars // 2:
                    return last_clause_end
                return last_space if last_space > 0 else i
            ch = text[i]
            if ch.isspace():
                if ch == "\n" and text[:i].strip():
                    return i
                last_space = i
                i += 1
                continue
            if ch in _TERMINATORS:
                end = i + 1
                while end < n and text[end] in _TERMINATORS:
                    end += 1
                while end < n and text[end] in _CLOSERS:
                    end += 1
                if end >= n:
                    return end if final else None
                if text[end].isspace():
                    verdict = _judge_terminator(text, i, end, final)
                    if verdict is None:
                        return None
                    if verdict:
                        return end
                i = end
                continue
            if ch in _CLAUSE_PUNCT or ch in _DASHES or ch == "-":
                end = i + 1
                while end < n and text[end] in _CLOSERS:
                    end += 1
                if end >= n and not final:
                    return None  # closing quotes may still follow; wait for them
                followed_by_space = end < n and text[end].isspace()
                if ch in _DASHES or (
                    followed_by_space and (ch != "-" or (i > 0 and text[i - 1] == " "))
                ):
                    last_clause_end = end
                    if min_clause is not None and len(text[:end].strip()) >= min_clause:
                        return end
                i = end
                continue
            i += 1
        return None


def split_sentences(
    text: str,
    *,
    first_piece_min_chars: int | None = 20,
    max_chars: int | None = 200,
    clean: bool = True,
) -> list[str]:
    """Split a whole text as :class:`SentenceSplitter` would split it streamed.

    Args:
        text: The complete text.
        first_piece_min_chars: See :class:`SentenceSplitter`.
        max_chars: See :class:`SentenceSplitter`.
        clean: See :class:`SentenceSplitter`.

    Returns:
        The pieces, in order.
    """
    splitter = SentenceSplitter(
        first_piece_min_chars=first_piece_min_chars, max_chars=max_chars, clean=clean
    )
    pieces = splitter.push(text)
    last = splitter.flush()
    if last is not None:
        pieces.append(last)
    return pieces
