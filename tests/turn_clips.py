"""Turns of real people, with what every end-of-turn signal said at each of their pauses.

Shared by ``scripts/bench_turns.py`` (which judges rules on them) and
``scripts/fit_turn_end.py`` (which fits the learned decision on the tuning part).

The turns: every recording of real people that installs here
(:func:`tests.speech.real_recordings`, :func:`tests.speech.radio_recordings`),
the long free talk split into sentences at Whisper's sentence ends. The part
is fixed by speaker: :data:`HELD_BACK` speakers' turns are never used to choose
a threshold or fit a weight, and every benchmark prints them apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tests.speech import Recording, radio_recordings, real_recordings, synthetic_recordings
from voiceterm.config import Config
from voiceterm.engines.vad import VadSegmenter, VadSettings

RATE = 16000
FRAME = 320  # 20 ms, the VAD's frame
TAIL_S = 2.0  # silence after every clip, longer than any cap
LONG_S = 7.0  # recordings longer than this are split into sentences

HELD_BACK = frozenset(
    {
        "radio operator VE9QRP",
        "CMU cards speaker",
        "radio operator Kristoff",
        "codec2 cross",
        "codec2 mmt1",
        "TIDIGITS speaker dhd",
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


def all_turns(whisper: Any) -> list[Turn]:
    """Every real turn: short recordings whole, long ones cut at sentence ends."""
    turns = []
    recordings: list[Recording] = [*real_recordings(), *radio_recordings()]
    for recording in recordings:
        audio = recording.audio
        if len(audio) <= LONG_S * RATE:
            turns.append(Turn(recording.name, audio, recording.speaker))
            continue
        words = words_of(whisper, audio)
        start = 0
        for index, word in enumerate(words[:-1]):
            if not word.word.strip().endswith((".", "?", "!")):
                continue
            cut = round((word.end + words[index + 1].start) / 2 * RATE)
            if cut - start >= RATE:
                turns.append(
                    Turn(
                        f"{recording.name}@{start / RATE:.1f}s", audio[start:cut], recording.speaker
                    )
                )
                start = cut
        if len(audio) - start >= RATE:
            turns.append(
                Turn(f"{recording.name}@{start / RATE:.1f}s", audio[start:], recording.speaker)
            )
    return turns


def synthetic_turns() -> list[Turn]:
    """espeak-ng's questions and short commands (tests/speech.py), a part of their own.

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
    """Copies of the turns of five words or more with a pause put between two words."""
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
                clips.append((Turn(name, audio, turn.speaker, turn.synthetic), pause))
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


START_MS = 60  # the VAD's start confirmation: speech that resumes is seen this late


def learned_end(weights: Any, pause: Pause, step_ms: int = 20) -> int | None:
    """When (ms of silence) the learned decision ends the turn at ``pause``, or ``None``.

    Smart Turn is asked at the weights' first check; the words and the LLM's
    probability join the decision at the silence their compute time reached.
    """
    from voiceterm.pipeline.turn_fusion import Signals

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
