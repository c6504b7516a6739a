"""Piper speaks with the embedded voice: real library, real model."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest

from benchmarks.memory import malloc_in_use_mb
from tests.cores import WatchedCores, machine
from voiceterm.engines.cores import CoreShare
from voiceterm.engines.tts import PiperSynthesizer, expand_for_speech
from voiceterm.errors import ModelError
from voiceterm.modelstore import resolve_model

if TYPE_CHECKING:
    from voiceterm.engines.stt import WhisperTranscriber

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.models

FULL_SCALE = 32767


@pytest.fixture(scope="module")
def tts() -> Iterator[PiperSynthesizer]:
    yield PiperSynthesizer.from_model_store()


@pytest.fixture(scope="module")
def voice_path() -> Path:
    return resolve_model("tts").path


def rms_dbfs(audio: npt.NDArray[np.int16]) -> float:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    return 20 * float(np.log10(max(rms, 1e-9) / FULL_SCALE))


def test_the_embedded_voice_speaks_at_22050_hz(tts: PiperSynthesizer) -> None:
    assert tts.sample_rate == 22050
    assert tts.warm_up_seconds > 0  # the warm-up ran at load


def test_a_sentence_becomes_audible_speech_of_plausible_length(tts: PiperSynthesizer) -> None:
    text = "The weather today is sunny with a light breeze from the west."
    words = len(text.split())
    audio = tts.synthesize_all(text)
    assert audio.dtype == np.int16
    assert audio.ndim == 1
    seconds = len(audio) / tts.sample_rate
    assert 0.15 * words < seconds < 0.8 * words
    assert rms_dbfs(audio) > -30  # clearly audible, not a whisper or silence
    assert np.abs(audio.astype(np.int32)).max() <= 0.95 * FULL_SCALE  # headroom (volume 0.9)


def test_piper_tells_the_other_engines_while_it_computes(tts: PiperSynthesizer) -> None:
    # The LLM reads prompts on every core only while Whisper and Piper rest.
    watched, shared = WatchedCores(), tts.cores
    tts.cores = watched
    try:
        chunks = list(tts.synthesize("Hello there. How are you?"))
    finally:
        tts.cores = shared
    assert len(chunks) == 2
    # One step per sentence (plus the one that finds there is no more).
    assert watched.seen.count("tts") >= 2 and set(watched.seen) == {"tts"}
    assert not watched.others_computing("llm")


def test_each_sentence_is_its_own_chunk(tts: PiperSynthesizer) -> None:
    chunks = list(tts.synthesize("Hello there. How are you today? I am fine, thanks."))
    assert len(chunks) == 3
    assert all(chunk.dtype == np.int16 and chunk.size > 0 for chunk in chunks)


def test_speech_starts_at_the_beginning_of_each_chunk(tts: PiperSynthesizer) -> None:
    threshold = 0.005 * FULL_SCALE
    for chunk in tts.synthesize("Fine. Hello there. Right."):
        first_audible = int(np.argmax(np.abs(chunk.astype(np.int32)) > threshold))
        assert first_audible / tts.sample_rate <= 0.011  # at most the 10 ms kept


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_gives_empty_audio(tts: PiperSynthesizer, text: str) -> None:
    assert list(tts.synthesize(text)) == []
    audio = tts.synthesize_all(text)
    assert audio.dtype == np.int16
    assert audio.size == 0


@pytest.mark.parametrize(
    "text",
    ["1234567.89", "It costs $2.50, or 3.14 euros, on 12/05/2024 at 10:30."],
)
def test_numbers_are_spoken(tts: PiperSynthesizer, text: str) -> None:
    audio = tts.synthesize_all(text)
    assert len(audio) / tts.sample_rate > 1.0
    assert rms_dbfs(audio) > -30


@pytest.mark.parametrize(
    "text",
    ["?!...", "---", "***", "...", "[[ not phonemes ]]", "a\x00b", "emoji 😀 here", "Привет"],
)
def test_odd_text_does_not_crash(tts: PiperSynthesizer, text: str) -> None:
    audio = tts.synthesize_all(text)
    assert audio.dtype == np.int16


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith and Mrs. Jones met Mr. Lee.", "Doctor Smith and Missus Jones met Mister Lee."),
        ("Ms. Lee vs. Prof. X at St. Louis.", "Miz Lee versus Professor X at Saint Louis."),
        ("See No. 5 on Jan. 12, p. 7.", "See number 5 on January 12, page 7."),
        ("J. R. R. Tolkien met George W. Bush.", "J R R Tolkien met George W Bush."),
        ("Take vitamin C. It helps.", "Take vitamin C. It helps."),
        ("Wait... what? Well… ok.", "Wait, what? Well, ok."),
        ("I waited...", "I waited."),
        ("Ask your Dr. about it, e.g. today.", "Ask your Dr. about it, e.g. today."),
        ("3.14 and $2.50 at 5 p.m.", "3.14 and $2.50 at 5 p.m."),
    ],
)
def test_text_is_expanded_where_espeak_would_stumble(text: str, expected: str) -> None:
    assert expand_for_speech(text) == expected


@pytest.mark.parametrize(
    "text",
    ["Dr. Smith is here.", "J. R. R. Tolkien wrote it.", "See No. 5 now.", "Mr. Lee came."],
)
def test_an_abbreviation_does_not_break_the_sentence(tts: PiperSynthesizer, text: str) -> None:
    # Without the expansion Piper speaks "Doctor." and "Smith is here." as two
    # sentences, with a full stop's pause in the middle of a name.
    assert len(list(tts.synthesize(text))) == 1


def test_cancel_stops_before_the_next_sentence(tts: PiperSynthesizer) -> None:
    cancel = threading.Event()
    received = []
    for chunk in tts.synthesize("One sentence. Two sentences. Three sentences.", cancel):
        received.append(chunk)
        cancel.set()
    assert len(received) == 1


def test_cancel_set_before_the_start_gives_nothing(tts: PiperSynthesizer) -> None:
    cancel = threading.Event()
    cancel.set()
    assert list(tts.synthesize("This is never spoken.", cancel)) == []
    assert tts.synthesize_all("This is never spoken.", cancel).size == 0


def test_cancel_from_another_thread(tts: PiperSynthesizer) -> None:
    cancel = threading.Event()
    text = " ".join(f"This is sentence number {i}." for i in range(30))
    received = []
    for chunk in tts.synthesize(text, cancel):
        received.append(chunk)
        if len(received) == 2:
            threading.Thread(target=cancel.set).start()
            cancel.wait()
    assert len(received) in (2, 3)  # the one in flight when the flag was set may finish


def test_two_threads_can_share_one_voice(tts: PiperSynthesizer) -> None:
    results: dict[str, int] = {}

    def speak(text: str) -> None:
        results[text] = tts.synthesize_all(text).size

    threads = [threading.Thread(target=speak, args=(t,)) for t in ("Left side.", "Right side.")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["Left side."] > 0
    assert results["Right side."] > 0


def test_a_long_sentence_leaves_no_memory_held_behind(voice_path: Path) -> None:
    # A 60-word sentence needs hundreds of MB while it is computed; a long
    # conversation must not keep that for the rest of the session (ONNX Runtime's
    # arena, which grows by doubling, did: ~500 MB).
    tts = PiperSynthesizer(voice_path)
    tts.synthesize_all("A short sentence to start with.")
    before_mb = malloc_in_use_mb()
    words = "the quick brown fox jumps over a lazy dog near the river bank".split()
    long_sentence = " ".join(words[i % len(words)] for i in range(60)) + "."
    assert tts.synthesize_all(long_sentence).size > 0
    tts.synthesize_all("And a short one after it.")
    held_mb = malloc_in_use_mb() - before_mb
    assert held_mb < 50, f"one long sentence left {held_mb:.0f} MB held"


def test_length_scale_changes_the_speaking_rate(voice_path: Path) -> None:
    text = "Speaking slowly or quickly changes the length."
    fast = PiperSynthesizer(voice_path, length_scale=0.7, warm_up=False).synthesize_all(text)
    slow = PiperSynthesizer(voice_path, length_scale=1.5, warm_up=False).synthesize_all(text)
    assert len(slow) > 1.5 * len(fast)


def copy_voice(voice_path: Path, directory: Path) -> Path:
    target = directory / voice_path.name
    shutil.copy(voice_path, target)
    shutil.copy(Path(f"{voice_path}.json"), Path(f"{target}.json"))
    return target


def assert_one_sentence(error: ModelError) -> None:
    assert error.message.count(". ") == 0 and "\n" not in error.message
    assert error.hint


def test_a_corrupt_onnx_file_is_a_model_error(voice_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"this is not an onnx model" * 100)
    shutil.copy(Path(f"{voice_path}.json"), Path(f"{model}.json"))
    with pytest.raises(ModelError, match="corrupt") as caught:
        PiperSynthesizer(model)
    assert_one_sentence(caught.value)


def test_a_truncated_onnx_file_is_a_model_error(voice_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "truncated.onnx"
    with voice_path.open("rb") as source:
        model.write_bytes(source.read(1_000_000))
    shutil.copy(Path(f"{voice_path}.json"), Path(f"{model}.json"))
    with pytest.raises(ModelError):
        PiperSynthesizer(model)


def test_a_missing_config_is_a_model_error(voice_path: Path, tmp_path: Path) -> None:
    model = copy_voice(voice_path, tmp_path)
    Path(f"{model}.json").unlink()
    with pytest.raises(ModelError, match=r"config .*\.onnx\.json does not exist") as caught:
        PiperSynthesizer(model)
    assert_one_sentence(caught.value)
    assert "next to the .onnx file" in caught.value.hint


@pytest.mark.parametrize(
    ("config_text", "says"),
    [
        ("{not json", "could not be read"),
        ('{"audio": {}}', "not a valid Piper config"),
        ("[]", "not a JSON object"),
    ],
)
def test_a_corrupt_config_is_a_model_error(
    voice_path: Path, tmp_path: Path, config_text: str, says: str
) -> None:
    model = copy_voice(voice_path, tmp_path)
    Path(f"{model}.json").write_text(config_text)
    with pytest.raises(ModelError, match=says) as caught:
        PiperSynthesizer(model)
    assert_one_sentence(caught.value)


def test_a_missing_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        PiperSynthesizer(tmp_path / "nothing.onnx")


def test_importing_the_engine_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, voiceterm.engines.tts\n"
        "print(sorted({'numpy', 'piper', 'onnxruntime'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def whisper() -> WhisperTranscriber:
    # Imported here: the STT engine is another stage; only the round trip needs it.
    from voiceterm.engines.stt import WhisperTranscriber

    return WhisperTranscriber(resolve_model("stt").path)


def word_error_rate(reference: str, hypothesis: str) -> float:
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z']+", text.lower().replace("doctor", "dr"))

    ref, hyp = words(reference), words(hypothesis)
    distance = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        previous, distance[0] = distance[0], i
        for j, hyp_word in enumerate(hyp, start=1):
            previous, distance[j] = (
                distance[j],
                min(distance[j] + 1, distance[j - 1] + 1, previous + (ref_word != hyp_word)),
            )
    return distance[-1] / max(len(ref), 1)


@pytest.mark.parametrize(
    "text",
    [
        "The weather today is sunny with a light breeze from the west.",
        "Please remind me to buy bread and milk on the way home.",
        "Dr. Smith said the meeting has moved to Thursday morning.",
    ],
)
def test_whisper_understands_what_piper_says(
    tts: PiperSynthesizer, whisper: WhisperTranscriber, text: str
) -> None:
    from voiceterm.audio.resample import resample

    # Piper samples its voice's noise anew each time: one reading in a few sounds
    # "what are" for "weather". The median of three is what a listener mostly hears.
    heard = [
        whisper.transcribe(resample(tts.synthesize_all(text), tts.sample_rate, 16000)).text
        for _reading in range(3)
    ]
    errors = sorted(word_error_rate(text, words) for words in heard)
    assert errors[1] <= 0.2, heard


def test_a_piece_made_while_nothing_else_computes_takes_every_core() -> None:
    # The first words of an answer made ahead, in the end-of-speech wait.
    voice = PiperSynthesizer.from_model_store(num_threads=1)
    voice.cores = CoreShare(machine(2))  # nothing else runs on the machine
    text = "That is a great question."
    one_core = voice.synthesize_all(text)
    assert not voice.last_step_on_every_core
    every_core = np.concatenate(list(voice.synthesize(text, every_core=True)))
    assert voice.last_step_on_every_core
    assert abs(len(every_core) - len(one_core)) < 0.2 * len(one_core)
    assert rms_dbfs(every_core) > -30
    with voice.cores.computing("llm"):  # the answer goes on beside it: one core
        list(voice.synthesize(text, every_core=True))
        assert not voice.last_step_on_every_core
    voice.cores = CoreShare(machine(2, others=1.0))  # another program holds a core
    beside_a_program = np.concatenate(list(voice.synthesize(text, every_core=True)))
    assert not voice.last_step_on_every_core
    assert rms_dbfs(beside_a_program) > -30
