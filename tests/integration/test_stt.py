"""Whisper STT on the real embedded tiny.en model: fast path, padded path, hallucinations."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.corpus import (
    RATE,
    clip,
    concat,
    espeak,
    normalize_words,
    require_real_recordings,
    silence,
    white_noise,
    word_error_rate,
)
from tests.cores import WatchedCores, machine
from voiceterm.audio.resample import int16_to_float32
from voiceterm.engines.cores import CoreShare
from voiceterm.engines.stt import WhisperTranscriber, collapse_repeats
from voiceterm.engines.vad import segment_file
from voiceterm.errors import ModelError
from voiceterm.modelstore import resolve_model


@pytest.fixture(scope="module")
def model_path() -> Path:
    return resolve_model("stt").path


@pytest.fixture(scope="module")
def fast(model_path: Path) -> Iterator[WhisperTranscriber]:
    yield WhisperTranscriber(model_path)


@pytest.fixture(scope="module")
def padded(model_path: Path) -> Iterator[WhisperTranscriber]:
    yield WhisperTranscriber(model_path, pad_to_30s=True)


def words(text: str) -> list[str]:
    return normalize_words(text)


# --- pure helpers (no model) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "changed"),
    [
        ("10 of clubs 10 of clubs 10 of clubs 10 of", "10 of clubs 10 of", True),
        ("Go forward 10 meters. Go forward 10 meters.", "Go forward 10 meters.", True),
        ("five five", "five five", False),
        ("no, no, no, no", "no,", True),
        ("I think I think so.", "I think I think so.", False),
        ("", "", False),
    ],
)
def test_collapse_repeats(text: str, expected: str, changed: bool) -> None:
    assert collapse_repeats(text) == (expected, changed)


def test_missing_model_directory_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        WhisperTranscriber(tmp_path / "nowhere")


def test_incomplete_model_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="incomplete") as info:
        WhisperTranscriber(tmp_path)
    assert "tokenizer.json" in str(info.value)
    assert info.value.hint


@pytest.mark.models
def test_corrupt_model_is_a_model_error(tmp_path: Path, model_path: Path) -> None:
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if (model_path / name).exists():
            shutil.copy(model_path / name, tmp_path / name)
    (tmp_path / "model.bin").write_bytes(b"this is not a CTranslate2 model" * 100)
    with pytest.raises(ModelError, match="could not be loaded") as info:
        WhisperTranscriber(tmp_path)
    assert "\n" not in info.value.message  # one sentence, no traceback text


# --- transcription -----------------------------------------------------------------------------


@pytest.mark.models
def test_synthetic_speech_gives_the_words(fast: WhisperTranscriber) -> None:
    audio = concat(
        silence(0.3), espeak("Please set a timer for ten minutes.", "en-gb"), silence(0.3)
    )
    result = fast.transcribe(audio)
    assert words(result.text) == ["please", "set", "a", "timer", "for", "ten", "minutes"]
    assert result.duration_s == pytest.approx(len(audio) / RATE)
    assert result.compute_s > 0 and not result.hallucination_dropped


@pytest.mark.models
def test_fast_path_is_as_accurate_as_padding_on_real_people(
    fast: WhisperTranscriber, padded: WhisperTranscriber
) -> None:
    """The issue's bar: unpadded WER no more than 1 point worse, on recordings of real people."""
    recordings = require_real_recordings()
    fast_pairs = [(r.transcript, fast.transcribe(r.audio).text) for r in recordings]
    padded_pairs = [(r.transcript, padded.transcribe(r.audio).text) for r in recordings]
    assert word_error_rate(fast_pairs) <= word_error_rate(padded_pairs) + 1.0
    assert word_error_rate(fast_pairs) < 15.0


@pytest.mark.models
def test_fast_and_padded_paths_agree_on_an_utterance(
    fast: WhisperTranscriber, padded: WhisperTranscriber
) -> None:
    text = "Remind me to call my mother tomorrow."
    audio = concat(silence(0.3), espeak(text, "en-us"), silence(0.3))
    quick, reference = fast.transcribe(audio), padded.transcribe(audio)
    assert words(quick.text) == words(reference.text) == words(text)
    assert quick.window_s < reference.window_s == 30.0
    real = next(r for r in require_real_recordings() if r.name == "librivox-0930")
    assert words(fast.transcribe(real.audio).text) == words(padded.transcribe(real.audio).text)


@pytest.mark.models
def test_short_clips_that_make_whisper_loop_still_transcribe(fast: WhisperTranscriber) -> None:
    # On short windows Whisper tends to repeat a short command forever; the result
    # must be the command once.
    for text in ("Next song.", "Stop.", "Good morning."):
        result = fast.transcribe(concat(silence(0.3), espeak(text, "en-us+f3", 175), silence(0.3)))
        assert words(result.text) == words(text), result


@pytest.mark.models
@pytest.mark.parametrize(
    "noise",
    [
        pytest.param(silence(3), id="silence"),
        pytest.param(white_noise(3, -70), id="near-silence"),
        pytest.param(white_noise(3, -40), id="white-40dBFS"),
        pytest.param(white_noise(3, -20), id="white-20dBFS"),
        pytest.param(
            (np.sin(2 * np.pi * 50 * np.arange(3 * RATE) / RATE) * 3000).astype(np.int16),
            id="hum",
        ),
    ],
)
def test_silence_and_noise_give_no_text(
    noise: np.ndarray, fast: WhisperTranscriber, padded: WhisperTranscriber
) -> None:
    for transcriber in (fast, padded):
        result = transcriber.transcribe(noise)
        assert result.text == "", result


@pytest.mark.models
def test_silence_does_not_run_the_model(fast: WhisperTranscriber) -> None:
    result = fast.transcribe(silence(2))
    assert result.text == "" and result.attempts == 0 and result.no_speech_prob == 1.0
    assert fast.transcribe(np.zeros(0, dtype=np.int16)).text == ""


@pytest.mark.models
def test_whisper_tells_the_other_engines_while_it_computes(model_path: Path) -> None:
    # The LLM reads prompts on every core only while Whisper and Piper rest.
    cores = WatchedCores()
    stt = WhisperTranscriber(model_path, cores=cores)
    assert stt.transcribe(silence(2)).text == ""
    assert cores.seen == []  # silence never reaches the model
    assert stt.transcribe(concat(silence(0.3), espeak("Turn off the lights."), silence(0.3))).text
    assert cores.seen == ["stt"]
    assert not cores.others_computing("llm")


@pytest.mark.models
def test_with_one_core_taken_by_another_program_whisper_runs_on_one_thread(
    model_path: Path,
) -> None:
    stt = WhisperTranscriber(model_path, cpu_threads=2, cores=CoreShare(machine(2)))
    said = concat(silence(0.3), espeak("Turn off the lights."), silence(0.3))
    alone = stt.transcribe(said).text
    assert stt.last_threads == 2
    stt.cores = CoreShare(machine(2, others=1.0))
    beside_a_program = stt.transcribe(said).text
    assert stt.last_threads == 1
    assert beside_a_program == alone and "lights" in alone.lower()


@pytest.mark.models
def test_a_real_thank_you_is_kept(fast: WhisperTranscriber) -> None:
    # "Thank you." is Whisper's favourite hallucination, but people say it too.
    result = fast.transcribe(concat(silence(0.3), espeak("Thank you.", "en-us"), silence(0.3)))
    assert words(result.text) == ["thank", "you"]


@pytest.mark.models
def test_clipped_recording_still_transcribes(fast: WhisperTranscriber) -> None:
    recording = next(r for r in require_real_recordings() if r.name == "an4-goforward")
    overdriven = clip(recording.audio, gain=20.0)
    assert np.count_nonzero(np.abs(overdriven) >= 32767) > 1000  # really clipped
    assert words(fast.transcribe(overdriven).text) == ["go", "forward", "ten", "meters"]


@pytest.mark.models
def test_float_input_and_int_input_agree(fast: WhisperTranscriber) -> None:
    audio = concat(silence(0.3), espeak("What is the weather like?"), silence(0.3))
    as_int = fast.transcribe(audio).text
    as_float = fast.transcribe(int16_to_float32(audio)).text
    assert as_int == as_float


@pytest.mark.models
def test_cancel_flag_stops_the_work(fast: WhisperTranscriber) -> None:
    cancel = threading.Event()
    cancel.set()
    result = fast.transcribe(
        concat(silence(0.3), espeak("Never mind."), silence(0.3)), cancel=cancel
    )
    assert result.cancelled and result.text == ""


@pytest.mark.models
def test_vad_pieces_of_a_conversation_transcribe_with_their_first_words(
    fast: WhisperTranscriber,
) -> None:
    """VAD + STT: each utterance keeps its first syllable thanks to the pre-roll."""
    first = espeak("Seven people are coming for dinner.", "en-us")
    second = espeak("Should I buy more bread?", "en-gb")
    audio = concat(silence(1.0), first, silence(1.2), second, silence(1.0))
    pieces = segment_file(audio, RATE)
    assert len(pieces) == 2
    texts = [words(fast.transcribe(p.audio).text) for p in pieces]
    assert texts[0][:2] == ["seven", "people"]
    assert texts[1][:3] == ["should", "i", "buy"]


@pytest.mark.models
def test_whispers_idle_threads_sleep_and_llama_cpp_keeps_its_short_spin(model_path: Path) -> None:
    # GNU OpenMP prints its settings as each copy loads: CTranslate2's, then llama.cpp's.
    code = (
        "import sys; from voiceterm.engines.stt import WhisperTranscriber;"
        "from voiceterm.engines.llm.loading import import_llama_cpp;"
        "WhisperTranscriber(__import__('pathlib').Path(sys.argv[1]), cpu_threads=2);"
        "import_llama_cpp()"
    )
    out = _run_python(code, model_path, unset="OMP_WAIT_POLICY", OMP_DISPLAY_ENV="verbose")
    spin_counts = re.findall(r"GOMP_SPINCOUNT = '(\d+)'", out.stderr)
    assert len(spin_counts) == 2, out.stderr[-2000:]
    assert spin_counts[0] == "0" and spin_counts[1] != "0"


_EVERY_LENGTH = """
import sys
import numpy as np
from pathlib import Path
from benchmarks.memory import malloc_in_use_mb
from benchmarks.corpus import speech_corpus
from voiceterm.engines.stt import WhisperTranscriber

stt = WhisperTranscriber(Path(sys.argv[1]))
clips = [clip.audio for clip in speech_corpus()]
rng = np.random.default_rng(0)
def transcribe_some(count):
    for i in range(count):
        audio = clips[i % len(clips)]
        stt.transcribe(audio[: int(rng.integers(len(audio) // 3, len(audio)))])
transcribe_some(20)
before = malloc_in_use_mb()
transcribe_some(80)
print(malloc_in_use_mb() - before)
"""


def _memory_growth_over_many_lengths(model_path: Path, **env_changes: str) -> float:
    out = _run_python(
        _EVERY_LENGTH, model_path, unset="ONEDNN_PRIMITIVE_CACHE_CAPACITY", **env_changes
    )
    return float(out.stdout.strip().splitlines()[-1])


def _run_python(
    code: str, model_path: Path, *, unset: str, **env_changes: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (native libraries read their settings once)."""
    env = {k: v for k, v in os.environ.items() if k != unset}
    env.update(env_changes)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code, str(model_path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )


@pytest.mark.models
def test_memory_stays_flat_over_utterances_of_every_length(model_path: Path) -> None:
    # Each utterance has a length of its own; a long conversation must not keep
    # something for every one of them (oneDNN's kernel cache did: ~0.5 MB each).
    grown_mb = _memory_growth_over_many_lengths(model_path)
    unbounded_mb = _memory_growth_over_many_lengths(
        model_path, ONEDNN_PRIMITIVE_CACHE_CAPACITY="1024"
    )
    assert grown_mb < 10, f"80 transcriptions kept {grown_mb:.0f} MB"
    assert unbounded_mb > 20, "the check must see the growth the cache's default allows"


def test_a_phrase_fits_the_speech_that_begins_with_it(fast: WhisperTranscriber) -> None:
    """The wake phrase forced on the decoder: likely where it is said, unlikely elsewhere."""
    from voiceterm.config import Config

    fit_above = Config().listen.wake_fit_above
    said = fast.phrase_fit(espeak("Hey Jarvis, what time is it?", "en-gb", 175), "Hey Jarvis")
    others = [
        fast.phrase_fit(audio, "Hey Jarvis")
        for audio in (
            espeak("Hey there, what time is it?", "en-gb", 175),
            espeak("The weather is nice today.", "en-us", 160),
            *(r.audio for r in require_real_recordings()[:3]),
        )
    ]
    assert said.logprob > fit_above > max(o.logprob for o in others)
    # It ends where "Jarvis" does: after the phrase's first half, before the question.
    phrase_s = len(espeak("Hey Jarvis,", "en-gb", 175)) / RATE
    assert 0.5 * phrase_s < said.end_s < phrase_s + 0.2
