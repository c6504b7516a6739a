"""Turns of real people, with what every end-of-turn signal said at each of their pauses.

Shared by ``benchmarks.turns`` (which judges rules on them) and
``scripts/fit_turn_end.py`` (which fits the learned decision on the tuning part).

The turns: every recording of real people that installs here
(:func:`benchmarks.corpus.real_recordings`, :func:`benchmarks.corpus.radio_recordings`,
:func:`benchmarks.corpus.more_recordings`, :func:`benchmarks.corpus.conversation_turns`,
:func:`benchmarks.corpus.short_phrases`).
A whole turn is what a person says before yielding: a telephone conversation's
turns end where the other speaker takes over; a long recording of one speaker
is cut only at a sentence end after which the speaker stays silent for at least
:data:`YIELD_MS` (and at its end). A sentence end that the speaker talks straight
on from is a pause inside the turn, not its end. The part is fixed by speaker:
:data:`HELD_BACK` speakers' turns are never used to choose a threshold or fit a
weight, and every benchmark prints them apart.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.corpus import (
    Recording,
    conversation_turns,
    more_recordings,
    radio_recordings,
    real_recordings,
    short_phrases,
    synthetic_recordings,
)
from voiceterm.config import Config
from voiceterm.engines.vad import VadSegmenter, VadSettings

RATE = 16000
FRAME = 320  # 20 ms, the VAD's frame
TAIL_S = 2.0  # silence after every clip, longer than any cap
LONG_S = 7.0  # recordings longer than this are split into sentences
YIELD_MS = 700
"""Silence after a sentence end that makes it the end of a turn.

The pause the goals ask the app to hear through inside a sentence (<= 10% cut at
700 ms): a speaker who goes on sooner than that has left no room for a reply.
Fixed before any result on it was seen; not tuned."""
MAX_TURN_S = 20.0
"""A longer stretch between two yields is judged on its last sentences only (the
app itself cuts an utterance at ``vad.max_utterance_s``; the bench's Whisper reads
the whole turn at every pause)."""

HELD_BACK = frozenset(
    {
        "radio operator VE9QRP",
        "CMU cards speaker",
        "radio operator Kristoff",
        "codec2 cross",
        "codec2 mmt1",
        "TIDIGITS speaker dhd",
        # Added 2026-12-06 with the recordings, before any result on them:
        "telephone speaker Sheila (pyannote.audio's sample)",
        "Linphone's Simon",
        "codec2 speech_orig_16k reader",
        # Added 2026-12-06 (fifth session) with the short phrases, before any result on them:
        "Hedgewars' British voice",
    }
)
"""Speakers kept out of tuning and fitting (about a third of the turns)."""

JUDGED_BY_TESTS = frozenset({"Cancel that."})
"""espeak-ng sentences that tests judge the learned decision on: never fitted on."""


@dataclass(frozen=True, slots=True)
class Turn:
    name: str
    audio: np.ndarray
    speaker: str
    synthetic: bool = False
    ends_turn: bool = True  # False: a sentence that its speaker talks straight on from

    @property
    def part(self) -> str:
        if self.synthetic:
            return "synthetic"
        return "held-back" if self.speaker in HELD_BACK else "tuning"


@dataclass(slots=True)
class Pause:
    """One silence inside a clip, with what every signal said at it."""

    length_ms: int  # to the next voiced frame (the clip's last pause: open-ended)
    final: bool  # the pause after the clip's last word
    probability: dict[int, float] = field(default_factory=dict)  # silence when asked (ms) -> p
    words: str = ""  # Whisper's transcript of the turn up to this pause
    words_end: float = 0.5  # the LLM's P(end of the user's message) after ``words``
    words_ready_ms: float = 0.0  # silence when the words were transcribed
    words_end_ready_ms: float = 0.0  # silence when the LLM had read them


@dataclass(slots=True)
class Clip:
    name: str
    kind: str  # "paused" (a pause put inside a sentence) or "whole"
    speaker: str
    part: str
    pauses: list[Pause]


def room_noise(audio: np.ndarray, seconds: float, seed: int) -> np.ndarray:
    """Noise at the level of the recording's quietest frames (its room)."""
    frames = audio[: len(audio) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    level = max(1.0, float(np.percentile(rms, 5)))
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, level, round(seconds * RATE)), -32768, 32767).astype(np.int16)


def words_of(whisper: Any, audio: np.ndarray) -> list[Any]:
    segments, _ = whisper.transcribe(
        audio.astype(np.float32) / 32768, language="en", word_timestamps=True, beam_size=1
    )
    return [w for s in segments for w in (s.words or [])]


def silences(audio: np.ndarray) -> list[tuple[int, int]]:
    """(first sample, length in samples) of every silence between voiced stretches (the VAD's)."""
    settings = VadSettings(hangover_ms=10**6, max_utterance_s=10**6)
    vad = VadSegmenter(settings)
    found: list[tuple[int, int]] = []
    quiet_since: int | None = None
    for offset in range(0, len(audio) - FRAME + 1, FRAME):
        vad.feed(audio[offset : offset + FRAME], offset / RATE)
        if not vad.in_speech:
            continue
        if vad.trailing_silence_ms > 0:
            if quiet_since is None:
                quiet_since = offset
        elif quiet_since is not None:
            found.append((quiet_since, offset - quiet_since))
            quiet_since = None
    return found


def silence_after(
    gaps: list[tuple[int, int]], word_end: float, next_start: float
) -> tuple[int, int]:
    """The VAD's silence between two words (first sample, length): the longest that overlaps.

    Whisper's word times are off by up to ~0.2 s, so the gap is widened by that much.
    """
    low, high = round((word_end - 0.2) * RATE), round((next_start + 0.2) * RATE)
    found = [(start, length) for start, length in gaps if start < high and start + length > low]
    return max(found, key=lambda gap: gap[1], default=(round(word_end * RATE), 0))


CLICK_S = 0.25
"""Sound this short after the last yield at a recording's end is a click, not a word."""
TAIL = 300 * RATE // 1000
"""A turn cut at a yield keeps this much of the speaker's silence (the VAD's ``tail_ms``):
not Whisper's word times (they may put the cut into the next word), and not deeper into
the silence, where a radio's squelch may have closed (the room noise put after every
clip is then louder than the recording's own silence, and the VAD hears it start)."""


def turns_and_sentences(whisper: Any) -> tuple[list[Turn], list[Turn]]:
    """Every real whole turn, and every real sentence (the paused copies are made of these)."""
    turns: list[Turn] = []
    sentences: list[Turn] = []
    recordings: list[Recording] = [
        *real_recordings(),
        *radio_recordings(),
        *more_recordings(),
        *conversation_turns(),
        *short_phrases(),
    ]
    for recording in recordings:
        whole, said = cut_recording(recording, whisper)
        turns += whole
        sentences += said
    return turns, sentences


def cut_recording(recording: Recording, whisper: Any) -> tuple[list[Turn], list[Turn]]:
    """A recording's whole turns and its sentences.

    A short recording is one turn and one sentence. A long one is cut into
    sentences at Whisper's sentence ends, and into turns only where the speaker
    yields (:data:`YIELD_MS` of silence, or the recording's end).
    """
    audio = recording.audio
    if len(audio) <= LONG_S * RATE:
        turn = Turn(recording.name, audio, recording.speaker)
        return [turn], [turn]
    words = words_of(whisper, audio)
    gaps = silences(audio)
    sentences: list[Turn] = []
    start = 0
    cuts: list[int] = []  # sentence starts
    yields: list[int] = []
    for index, word in enumerate(words[:-1]):
        if not word.word.strip().endswith((".", "?", "!")):
            continue
        cut = round((word.end + words[index + 1].start) / 2 * RATE)
        if cut - start >= RATE:
            quiet, quiet_for = silence_after(gaps, word.end, words[index + 1].start)
            yielded = quiet_for * 1000 >= YIELD_MS * RATE
            name = f"{recording.name}@{start / RATE:.1f}s"
            sentences.append(Turn(name, audio[start:cut], recording.speaker, False, yielded))
            cuts.append(start)
            start = cut
            if yielded:
                yields.append(quiet + min(quiet_for // 2, TAIL))
    if len(audio) - start >= RATE:
        name = f"{recording.name}@{start / RATE:.1f}s"
        sentences.append(Turn(name, audio[start:], recording.speaker))
        cuts.append(start)
    last = len(audio)
    if gaps and gaps[-1][1] * 1000 >= YIELD_MS * RATE and sum(gaps[-1]) > last - CLICK_S * RATE:
        last = gaps[-1][0] + min(gaps[-1][1] // 2, TAIL)  # the recording ends on a click
    turns: list[Turn] = []
    begin = 0
    for end in [*yields, last]:
        # The turn's last MAX_TURN_S at most, from a sentence start.
        first = min(
            (c for c in cuts if begin <= c < end and end - c <= MAX_TURN_S * RATE),
            default=begin,
        )
        if end - first >= RATE:
            name = f"{recording.name}@{first / RATE:.1f}-{end / RATE:.1f}s"
            turns.append(Turn(name, audio[first:end], recording.speaker))
        begin = end
    return turns, sentences


def all_turns(whisper: Any) -> list[Turn]:
    """Every real whole turn (see :func:`turns_and_sentences`)."""
    return turns_and_sentences(whisper)[0]


def synthetic_turns() -> list[Turn]:
    """espeak-ng's questions and short commands (benchmarks/corpus.py), a part of their own.

    The real tuning part has no short commands; these give the fit some
    (``scripts/fit_turn_end.py --synthetic``). Never held back, never in the
    held-back figures; the sentences the tests judge are left out.
    """
    return [
        Turn(r.name, r.audio, r.speaker, synthetic=True)
        for r in synthetic_recordings()
        if r.transcript not in JUDGED_BY_TESTS
    ]


def word_cuts(whisper: Any, audio: np.ndarray) -> tuple[list[int], int]:
    """Sample positions between words where a pause may go (>= 3 words before, >= 2 after)."""
    words = words_of(whisper, audio)
    cuts = []
    for index in range(3, len(words) - 1):
        start, end = round(words[index - 1].end * RATE), round(words[index].start * RATE)
        end = max(end, start + FRAME)
        gap = audio[start:end].astype(np.float64)
        if len(gap) < FRAME:
            cuts.append(start)
            continue
        energy = [np.mean(gap[i : i + FRAME] ** 2) for i in range(0, len(gap) - FRAME + 1, 80)]
        cuts.append(start + 80 * int(np.argmin(energy)) + FRAME // 2)
    return cuts, len(words)


def paused_copies(
    turns: list[Turn], whisper: Any, pauses_s: list[float], per_turn: int
) -> list[tuple[Turn, float]]:
    """Copies of the turns of five words or more with a pause put between two words.

    A copy of a sentence that does not end its speaker's turn (``ends_turn``
    False) is judged on its inner pauses only: :func:`judged` drops its last one.
    """
    clips = []
    for turn in turns:
        cuts, count = word_cuts(whisper, turn.audio)
        if count < 5 or not cuts:
            continue
        chosen = [
            cuts[round(i * (len(cuts) - 1) / max(1, per_turn - 1))]
            for i in range(min(per_turn, len(cuts)))
        ]
        for cut in sorted(set(chosen)):
            for pause in pauses_s:
                audio = np.concatenate(
                    [turn.audio[:cut], room_noise(turn.audio, pause, seed=cut), turn.audio[cut:]]
                )
                name = f"{turn.name}@{cut / RATE:.2f}s+{pause * 1000:.0f}ms"
                copy = Turn(name, audio, turn.speaker, turn.synthetic, turn.ends_turn)
                clips.append((copy, pause))
    return clips


def analyse(
    turn: Turn, kind: str, smart_turn: Any, stt: Any, llm: Any, checks: list[int], config: Config
) -> Clip:
    """Feed the clip to the VAD; at each pause ask Smart Turn (at every check), Whisper, the LLM.

    The words are taken at ``vad.pause_ms`` of silence, as the app takes them, and
    the silence at which the words and the LLM's probability would be known is
    their measured compute time after that.
    """
    settings = VadSettings(
        aggressiveness=config.vad.aggressiveness,
        start_voiced_ms=config.vad.start_ms,
        hangover_ms=int(TAIL_S * 1000) - 100,  # keep the turn open through every pause
        preroll_ms=config.vad.preroll_ms,
        max_utterance_s=60.0,
    )
    vad = VadSegmenter(settings)
    audio = turn.audio
    audio = np.concatenate([room_noise(audio, 0.3, 1), audio, room_noise(audio, TAIL_S, 2)])
    system = {"role": "system", "content": config.llm.system_prompt}
    pauses: list[Pause] = []
    current: Pause | None = None
    for offset in range(0, len(audio) - FRAME + 1, FRAME):
        vad.feed(audio[offset : offset + FRAME], offset / RATE)
        silence = vad.trailing_silence_ms
        if not vad.in_speech:
            continue
        if silence == 0:
            if current is not None:
                pauses.append(current)
                current = None
            continue
        if current is None:
            current = Pause(length_ms=0, final=False)
            utterance = vad.current_utterance()
            assert utterance is not None
            started = time.perf_counter()
            current.words = str(stt.transcribe(utterance.audio).text).strip()
            transcribed = time.perf_counter()
            current.words_ready_ms = config.vad.pause_ms + 1000 * (transcribed - started)
            if current.words:
                llm.warm_up([system, {"role": "user", "content": current.words}])
                current.words_end = llm.words_end_probability(current.words) or 0.0
            current.words_end_ready_ms = current.words_ready_ms + 1000 * (
                time.perf_counter() - transcribed
            )
        current.length_ms = silence
        for check in checks:
            if silence >= check and check not in current.probability:
                utterance = vad.current_utterance(pad_tail=False)
                assert utterance is not None
                current.probability[check] = smart_turn.probability(utterance.audio)
    if current is not None:
        current.final = True
        current.length_ms = 10**9
        pauses.append(current)
    return Clip(turn.name, kind, turn.speaker, turn.part, pauses)


def judged(clip: Clip, turn: Turn) -> Clip:
    """``clip`` without its last pause when that is not where the speaker yielded.

    The last pause of a clip is labelled a true end (``final``); after a sentence
    that the speaker talked straight on from, it is neither an end nor a pause
    that the bench can time (the recording goes on after a real gap of 0-700 ms,
    the clip after 2 s of room noise), so it is not judged at all. Idempotent.
    """
    if not turn.ends_turn and clip.pauses and clip.pauses[-1].final:
        return Clip(clip.name, clip.kind, clip.speaker, clip.part, clip.pauses[:-1])
    return clip


START_MS = 60  # the VAD's start confirmation: speech that resumes is seen this late


def learned_end(weights: Any, pause: Pause, step_ms: int = 20) -> int | None:
    """When (ms of silence) the learned decision ends the turn at ``pause``, or ``None``.

    Smart Turn is asked at the weights' first check; the words and the LLM's
    probability join the decision at the silence their compute time reached.
    """
    from voiceterm.pipeline.end_of_turn.learned import Signals

    first = weights.first_ms
    voice = pause.probability.get(first)
    if voice is None:
        return None
    for silence in range(first, weights.cap_ms + 1, step_ms):
        if pause.length_ms + START_MS < silence:
            return None  # the user went on first
        words = pause.words if silence >= pause.words_ready_ms else None
        words_end = pause.words_end if silence >= pause.words_end_ready_ms else None
        judgement = weights.judge(Signals(silence, voice, words, words_end if words else None))
        if judgement.done(silence):
            return silence if pause.length_ms >= silence else None
    return weights.cap_ms if pause.length_ms >= weights.cap_ms else None


def ends_at(decide: Any, clip: Clip) -> tuple[bool, float | None]:
    """(cut off before the end, end-of-turn latency in ms if it ended at the end)."""
    for pause in clip.pauses:
        ends = decide(pause)
        if ends is not None:
            return (not pause.final, ends if pause.final else None)
    return False, None


def roc_auc(scores: list[float], labels: list[bool]) -> float:
    """The probability that a true end scores above a pause that goes on (ties: half)."""
    ends = [s for s, label in zip(scores, labels, strict=True) if label]
    goes_on = [s for s, label in zip(scores, labels, strict=True) if not label]
    if not ends or not goes_on:
        return float("nan")
    wins = sum((e > g) + 0.5 * (e == g) for e in ends for g in goes_on)
    return wins / (len(ends) * len(goes_on))


def pause_points(clips: list[Clip], part: str) -> list[Pause]:
    """The whole turns' pauses and the 700 ms copies' (Smart Turn asked at 200 ms)."""
    return [
        p
        for c in clips
        if c.part == part and (c.kind == "whole" or c.name.endswith("+700ms"))
        for p in c.pauses
        if 200 in p.probability
    ]


_MOVED = {"tests.turn_clips": "benchmarks.turn_clips", "tests.speech": "benchmarks.corpus"}
"""Where the clips' classes live now, for caches written when they lived under tests/."""


class _ClipUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED.get(module, module), name)


def read_clips(cache: Path) -> list[Clip]:
    """The clips ``benchmarks.turns --cache`` saved (older caches name tests/ modules)."""
    with cache.open("rb") as handle:
        clips: list[Clip] = _ClipUnpickler(handle).load()
    return clips
