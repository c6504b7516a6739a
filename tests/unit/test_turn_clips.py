"""How the end-of-turn benchmarks cut recordings into whole turns (benchmarks/turn_clips.py)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmarks.corpus import (
    RATE,
    Recording,
    require_real_recordings,
    require_short_phrases,
    silence,
)
from benchmarks.turn_clips import YIELD_MS, Clip, Pause, Turn, cut_recording, judged, read_clips


@dataclass
class Word:
    word: str
    start: float
    end: float


@dataclass
class Segment:
    words: list[Word]


class Transcriber:
    """Stands in for Whisper: one two-word sentence per recorded phrase, at known times."""

    def __init__(self, phrases: list[tuple[float, float]]) -> None:
        self.phrases = phrases

    def transcribe(self, audio: object, **options: object) -> tuple[list[Segment], None]:
        words = []
        for start, end in self.phrases:
            middle = (start + end) / 2
            words += [Word(" Seven", start, middle), Word(" clubs.", middle, end)]
        return [Segment(words)], None


def monologue(gaps_s: list[float]) -> tuple[Recording, list[tuple[float, float]]]:
    """Real card phrases one after another, with these silences between them."""
    phrases = [r.audio for r in require_real_recordings() if r.name.startswith("cards-")]
    pieces, times, at = [], [], 0.0
    for index, gap in enumerate([*gaps_s, 0.0]):
        phrase = phrases[index % len(phrases)]
        pieces += [phrase, silence(gap)]
        times.append((at, at + len(phrase) / RATE))
        at += (len(phrase) + len(silence(gap))) / RATE
    audio = np.concatenate(pieces)
    return Recording("talk", audio, "", "someone", True), times


def test_a_long_recording_is_a_new_turn_only_where_the_speaker_stayed_silent() -> None:
    # Five sentences; after the second and the fourth the speaker stops for longer
    # than YIELD_MS, after the others he goes straight on (the recordings' own
    # edges hold 0.3-0.45 s of silence between two phrases).
    gaps = [0.0, YIELD_MS / 1000 + 0.2, 0.0, YIELD_MS / 1000 + 0.3]
    recording, times = monologue(gaps)
    assert len(recording.audio) > 7 * RATE  # long enough to be cut
    turns, sentences = cut_recording(recording, Transcriber(times))
    assert len(sentences) == 5
    assert [s.ends_turn for s in sentences] == [False, True, False, True, True]
    assert len(turns) == 3
    ends = np.cumsum([len(t.audio) for t in turns])
    # The last one ends with the recording, or 300 ms into its last long silence when
    # only a click follows (cards-005 ends so).
    assert times[4][0] * RATE + 2.5 * RATE < ends[-1] <= len(recording.audio)
    # The first two turns end in the long silences (each phrase keeps ~0.3 s of its own).
    assert (times[1][1] - 0.5) * RATE < ends[0] < (times[2][0] + 0.5) * RATE
    assert (times[3][1] - 0.5) * RATE < ends[1] < (times[4][0] + 0.5) * RATE


def test_a_short_recording_is_one_turn_and_one_sentence() -> None:
    recording = next(r for r in require_real_recordings() if r.name == "cards-003")
    turns, sentences = cut_recording(recording, Transcriber([]))
    assert [t.name for t in turns] == [t.name for t in sentences] == ["cards-003"]
    assert turns[0].ends_turn


@pytest.mark.parametrize("ends_turn", [True, False])
def test_the_end_of_a_sentence_the_speaker_talked_on_from_is_not_judged(ends_turn: bool) -> None:
    pauses = [Pause(length_ms=700, final=False), Pause(length_ms=10**9, final=True)]
    clip = Clip("talk@0.0s@1.00s+700ms", "paused", "someone", "tuning", pauses)
    turn = Turn(clip.name, np.zeros(RATE, np.int16), "someone", ends_turn=ends_turn)
    kept = judged(clip, turn)
    assert [p.final for p in kept.pauses] == ([False, True] if ends_turn else [False])
    assert judged(kept, turn).pauses == kept.pauses  # idempotent: a cached clip stays right


def test_each_short_phrase_is_one_whole_turn_and_the_british_voice_is_held_back() -> None:
    phrases = require_short_phrases()
    assert len({p.speaker for p in phrases}) == 3
    for phrase in phrases:
        assert 0.9 < phrase.duration_s < 3.0, phrase.name
        assert np.abs(phrase.audio.astype(np.int32)).max() > 3000, f"{phrase.name} is silent"
        turns, sentences = cut_recording(phrase, Transcriber([]))
        assert [t.name for t in turns] == [phrase.name] == [s.name for s in sentences]
        expected = "held-back" if phrase.speaker == "Hedgewars' British voice" else "tuning"
        assert turns[0].part == expected


def test_a_cache_that_names_the_clips_under_tests_still_reads(tmp_path: Path) -> None:
    clip = Clip("a", "whole", "someone", "tuning", [Pause(300, True, {200: 0.9}, "hi")])
    # Protocol 2 names each class as text ("c<module>\n<name>\n"), so it can be renamed.
    written = pickle.dumps([clip], protocol=2)
    assert b"benchmarks.turn_clips" in written
    cache = tmp_path / "clips.pkl"
    cache.write_bytes(written.replace(b"benchmarks.turn_clips", b"tests.turn_clips"))
    assert read_clips(cache) == [clip]
