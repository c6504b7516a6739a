"""The sentence splitter cuts streamed LLM text where a listener hears a sentence end."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest

from voiceterm.patterns.sentences import (
    SentenceSplitter,
    clean_for_speech,
    ends_with_sentence,
    split_sentences,
)


def sentences_only(text: str) -> list[str]:
    return split_sentences(text, first_piece_min_chars=None, max_chars=None)


def stream(splitter: SentenceSplitter, chunks: list[str]) -> list[str]:
    pieces: list[str] = []
    for chunk in chunks:
        pieces.extend(splitter.push(chunk))
    last = splitter.flush()
    if last is not None:
        pieces.append(last)
    return pieces


def random_chunks(text: str, rng: random.Random) -> list[str]:
    chunks: list[str] = []
    i = 0
    while i < len(text):
        size = rng.randint(1, 9)
        chunks.append(text[i : i + size])
        i += size
    return chunks


def token_chunks(text: str) -> list[str]:
    """Roughly how an LLM streams: words with their leading space, punctuation apart."""
    return re.findall(r"\s*\w+|\s*[^\w\s]|\s+", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you? I am fine!", ["Hello there.", "How are you?", "I am fine!"]),
        ("Dr. Smith is here. He said hi.", ["Dr. Smith is here.", "He said hi."]),
        (
            "Mr. and Mrs. Jones came by. Ms. Lee too.",
            ["Mr. and Mrs. Jones came by.", "Ms. Lee too."],
        ),
        ("Pick a fruit, e.g. Apples. Or not.", ["Pick a fruit, e.g. Apples.", "Or not."]),
        ("The best one, i.e. The red one, won.", ["The best one, i.e. The red one, won."]),
        ("We sell pears, etc. and more. Fine.", ["We sell pears, etc. and more.", "Fine."]),
        ("I like pears, plums, etc. Do you?", ["I like pears, plums, etc.", "Do you?"]),
        ("The U.S. economy grew. It was big.", ["The U.S. economy grew.", "It was big."]),
        ("The U.S. Army is large. Yes.", ["The U.S. Army is large.", "Yes."]),
        ("He moved to the U.S. The end.", ["He moved to the U.S.", "The end."]),
        (
            "Pi is 3.14 and it costs $2.50 today. Yes.",
            ["Pi is 3.14 and it costs $2.50 today.", "Yes."],
        ),
        ("Wait... what was that? Hmm.", ["Wait... what was that?", "Hmm."]),
        ("I waited... Then it came.", ["I waited...", "Then it came."]),
        ("Well… okay then. Well… Okay.", ["Well… okay then.", "Well…", "Okay."]),
        (
            "Visit www.example.com or mail bob@example.org today. Thanks.",
            ["Visit www.example.com or mail bob@example.org today.", "Thanks."],
        ),
        ("See https://x.org/a.b?c=d. Then go.", ["See https://x.org/a.b?c=d.", "Then go."]),
        ("J. R. R. Tolkien wrote it. Read it.", ["J. R. R. Tolkien wrote it.", "Read it."]),
        ("George W. Bush spoke. We listened.", ["George W. Bush spoke.", "We listened."]),
        ("Take vitamin C. It helps.", ["Take vitamin C.", "It helps."]),
        ("The answer is 42. That is all.", ["The answer is 42.", "That is all."]),
        ("It was 1999. Then it ended.", ["It was 1999.", "Then it ended."]),
        ("He came 3. in the race. Sad.", ["He came 3. in the race.", "Sad."]),
        (
            "Here are tips: 1. Drink water. 2. Sleep well.",
            ["Here are tips: 1. Drink water.", "2. Sleep well."],
        ),
        ("Steps:\n1. Open it.\n2. Close it.", ["Steps:", "1. Open it.", "2. Close it."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("(It works.) Good.", ["(It works.)", "Good."]),
        ("Really?! Yes.", ["Really?!", "Yes."]),
        ("It was 5 p.m. Then we ate.", ["It was 5 p.m.", "Then we ate."]),
        ("Martin Luther King Jr. was a leader.", ["Martin Luther King Jr. was a leader."]),
        ("See p. 5 for it. See No. 7 now.", ["See p. 5 for it.", "See No. 7 now."]),
        ("We met on Jan. 5 at noon.", ["We met on Jan. 5 at noon."]),
        ("Prof. X vs. Dr. Y at St. Louis.", ["Prof. X vs. Dr. Y at St. Louis."]),
        ("It's 10:30 now. Go.", ["It's 10:30 now.", "Go."]),
        ("No punctuation at all", ["No punctuation at all"]),
        ("First line\nSecond line", ["First line", "Second line"]),
        ("Para one.\n\nPara two.", ["Para one.", "Para two."]),
    ],
)
def test_cuts_only_at_real_sentence_ends(text: str, expected: list[str]) -> None:
    assert sentences_only(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # "Sure," is too short to start speaking; at 20+ characters a comma cuts.
        (
            "Sure, I can help with that, here is how. Then, later on, commas stay put.",
            ["Sure, I can help with that,", "here is how.", "Then, later on, commas stay put."],
        ),
        (
            "The first thing to know; it is easy. Then more.",
            ["The first thing to know;", "it is easy.", "Then more."],
        ),
        (
            "There are two options: red or blue. Pick one.",
            ["There are two options:", "red or blue.", "Pick one."],
        ),
        (
            "Honestly the answer—as always—is yes. Ok.",
            ["Honestly the answer—", "as always—is yes.", "Ok."],
        ),
        ("The answer is simple - say yes. Ok.", ["The answer is simple -", "say yes.", "Ok."]),
        # A short first sentence is still its own piece.
        ("Yes. Well, I think it is fine, really.", ["Yes.", "Well, I think it is fine, really."]),
        # No clause cut inside numbers or times.
        (
            "It costs 1,000,000 dollars at 10:30 today. Ok.",
            ["It costs 1,000,000 dollars at 10:30 today.", "Ok."],
        ),
        # Hyphenated words are not dashes.
        (
            "A well-known, state-of-the-art thing. Ok.",
            ["A well-known, state-of-the-art thing.", "Ok."],
        ),
    ],
)
def test_first_piece_ends_early_at_a_clause(text: str, expected: list[str]) -> None:
    assert split_sentences(text, first_piece_min_chars=20, max_chars=None) == expected


def test_clause_cuts_can_be_turned_off() -> None:
    text = "Sure, I can help with that, here is how."
    assert split_sentences(text, first_piece_min_chars=None) == [text]


def test_run_on_text_is_cut_at_word_boundaries_within_max_chars() -> None:
    words = [f"word{i}" for i in range(300)]
    text = " ".join(words)
    pieces = split_sentences(text, max_chars=80)
    assert all(len(piece) <= 80 for piece in pieces)
    assert " ".join(pieces).split() == words  # nothing lost, no word split


def test_forced_cut_prefers_a_clause_boundary() -> None:
    text = "a" + " bb" * 20 + ", cc" + " dd" * 20
    pieces = split_sentences(text, first_piece_min_chars=None, max_chars=100)
    assert pieces[0].endswith(",")


def test_a_word_longer_than_max_chars_is_cut_hard() -> None:
    text = "x" * 250
    pieces = split_sentences(text, max_chars=100)
    assert "".join(pieces) == text
    assert max(len(p) for p in pieces) == 100


CORPUS = [
    "Sure, I can help with that. Dr. Smith said e.g. apples cost $2.50, i.e. cheap... "
    "Really? Yes! The U.S. Army has 3.5 million people. See www.example.com. Thanks.",
    "Here are three tips:\n1. Drink water.\n2. Sleep well.\n\n**Note:** `code` here. "
    "J. R. R. Tolkien wrote it; George W. Bush read it. The answer is 42. That is all.",
    "It was 5 p.m. Then we ate, drank and talked — a long evening… and then? Nothing. "
    + "Run on text without an end " * 12,
    '"Stop." he said. (It works.) Mr. and Mrs. Jones, etc. and so on. Fine, 10:30 it is!',
]


@pytest.mark.parametrize("text", CORPUS)
@pytest.mark.parametrize("max_chars", [None, 60, 200])
@pytest.mark.parametrize("first_piece_min_chars", [None, 12, 20])
def test_chunking_does_not_change_the_pieces(
    text: str, max_chars: int | None, first_piece_min_chars: int | None
) -> None:
    def make() -> SentenceSplitter:
        return SentenceSplitter(first_piece_min_chars=first_piece_min_chars, max_chars=max_chars)

    whole = stream(make(), [text])
    assert whole
    assert stream(make(), list(text)) == whole
    assert stream(make(), token_chunks(text)) == whole
    for seed in range(10):
        assert stream(make(), random_chunks(text, random.Random(seed))) == whole


FUZZ_TOKENS = [
    "Dr.", "3.14", "...", " ", " ", " ", "\n", "\n\n", "e.g.", "Hello", "it", "It", "I", ",",
    "!", "?", "?!", "U.S.", "J.", "—", "-", "The", "`", "*", '"', "”", "(", ")", "1.", "42",
    ".", "…", ":", ";", "etc.", "p.m.", "No.", "www.x.org", "x" * 30, "\t",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_chunking_invariance_on_random_punctuation_soup(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(10):
        text = "".join(rng.choice(FUZZ_TOKENS) for _ in range(rng.randint(1, 50)))
        for options in ({}, {"first_piece_min_chars": 5, "max_chars": 25}):
            whole = stream(SentenceSplitter(clean=False, **options), [text])
            by_char = stream(SentenceSplitter(clean=False, **options), list(text))
            chunked = stream(
                SentenceSplitter(clean=False, **options),
                random_chunks(text, rng),
            )
            assert whole == by_char == chunked, text
            assert "".join("".join(whole).split()) == "".join(text.split()), text


@pytest.mark.parametrize("text", CORPUS)
def test_no_text_is_lost_or_reordered(text: str) -> None:
    pieces = split_sentences(text, clean=False, max_chars=60)
    assert " ".join(pieces).split() == text.split()


def test_a_final_dot_waits_for_the_next_character() -> None:
    splitter = SentenceSplitter(first_piece_min_chars=None)
    assert splitter.push("Dr.") == []
    assert splitter.push(" Smith arrived.") == []
    assert splitter.push(" ") == []  # "arrived. " could still be "arrived. and"
    assert splitter.push("He") == ["Dr. Smith arrived."]
    assert splitter.flush() == "He"


def test_question_and_exclamation_marks_cut_on_the_next_space() -> None:
    splitter = SentenceSplitter(first_piece_min_chars=None)
    assert splitter.push("Really?") == []  # a quote or "!" may still follow
    assert splitter.push(" ") == ["Really?"]
    assert splitter.push("Yes!") == []
    assert splitter.push(" ") == ["Yes!"]


def test_a_decimal_is_not_cut_while_it_streams() -> None:
    splitter = SentenceSplitter(first_piece_min_chars=None)
    assert splitter.push("It costs 3.") == []
    assert splitter.push("14 now. ") == []
    assert splitter.push("Ok") == ["It costs 3.14 now."]


def test_flush_settles_an_ambiguous_end() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("It costs 3.") == []
    assert splitter.flush() == "It costs 3."


def test_flush_returns_none_when_nothing_is_left() -> None:
    splitter = SentenceSplitter()
    assert splitter.flush() is None
    assert splitter.push("   \n ") == []
    assert splitter.flush() is None
    assert splitter.push("Done. ") == []
    assert splitter.push("```\n") == ["Done."]
    assert splitter.flush() is None  # a code fence alone has nothing to say


def test_flush_starts_a_new_answer() -> None:
    splitter = SentenceSplitter(first_piece_min_chars=10)
    assert splitter.push("Well, you know, it is, ") == ["Well, you know,"]
    assert splitter.push("like, fine. ") == []
    assert splitter.flush() == "it is, like, fine."
    assert splitter.pieces_emitted == 0
    # The next answer gets an early first piece again.
    assert splitter.push("Again, you know, yes. ") == ["Again, you know,"]


def test_reset_discards_an_interrupted_answer() -> None:
    splitter = SentenceSplitter()
    splitter.push("This answer was cut off by the us")
    splitter.reset()
    assert splitter.pending == ""
    assert splitter.flush() is None


def test_pieces_are_cleaned_for_speech() -> None:
    text = "# Title\nSome **bold** and `code` text.\n- item one\n* item two\n```python\nx = 1\n```"
    assert split_sentences(text) == [
        "Title",
        "Some bold and code text.",
        "item one",
        "item two",
        "x = 1",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**Bold** and *it* and __under__ here.", "Bold and it and under here."),
        ("Use `my_var` and snake_case_name.", "Use my_var and snake_case_name."),
        ("## Heading ##", "Heading"),
        ("> quoted text", "quoted text"),
        ("- a bullet", "a bullet"),
        ("1. keeps its number", "1. keeps its number"),
        ("See [the docs](https://x.org/docs) now.", "See the docs now."),
        ("![a cat](cat.png)", "a cat"),
        ("~~gone~~ kept", "gone kept"),
        ("line one\n\n---\nline two", "line one line two"),
        ("C# and F# are languages.", "C# and F# are languages."),
        ("```\ncode\n```", "code"),
        ("   spaced    out   ", "spaced out"),
    ],
)
def test_clean_for_speech(text: str, expected: str) -> None:
    assert clean_for_speech(text) == expected


def test_clean_can_be_turned_off() -> None:
    assert split_sentences("**Hi** there. Ok.", clean=False) == ["**Hi** there.", "Ok."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello.", True),
        ("Hello. ", True),
        ("Really?", True),
        ("Wow!", True),
        ('He said "Stop."', True),
        ("The answer is 42. ", True),
        ("Hello", False),
        ("", False),
        ("Hello,", False),
        ("Ask Dr.", False),
        ("For example, e.g.", False),
        ("It costs 3.", False),  # may become 3.14
        ("Wait...", False),  # may go on in lower case
        ("Well…", False),
        ("Tolkien, J.", False),
        ("In the U.S.", False),
        ("1.", False),
    ],
)
def test_ends_with_sentence(text: str, expected: bool) -> None:
    assert ends_with_sentence(text) is expected


@pytest.mark.parametrize(("first_piece_min_chars", "max_chars"), [(0, 200), (20, 1)])
def test_invalid_options_are_rejected(first_piece_min_chars: int, max_chars: int) -> None:
    with pytest.raises(ValueError):
        SentenceSplitter(first_piece_min_chars=first_piece_min_chars, max_chars=max_chars)


def test_importing_the_splitter_loads_no_heavy_library() -> None:
    code = (
        "import sys, voiceterm.patterns.sentences\n"
        "heavy = {'numpy', 'piper', 'onnxruntime', 'textual'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
