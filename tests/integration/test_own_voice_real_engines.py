"""The own-voice check on what the real engines make of echo: Piper's voice, faint and
noisy as echo cancellation leaves it, transcribed by the real Whisper model."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks.corpus import RATE, require_real_recordings, white_noise
from voiceterm.audio.resample import resample
from voiceterm.engines.stt import WhisperTranscriber
from voiceterm.engines.tts import PiperSynthesizer
from voiceterm.modelstore import resolve_model
from voiceterm.pipeline.own_voice import OwnVoice

pytestmark = pytest.mark.models

ANSWER = (
    "One day, a brave little fox named Max had just finished his morning run. "
    "He was looking after a litter of kittens near the old barn."
)


@pytest.fixture(scope="module")
def stt() -> Iterator[WhisperTranscriber]:
    yield WhisperTranscriber(resolve_model("stt").path)


@pytest.fixture(scope="module")
def tts() -> Iterator[PiperSynthesizer]:
    yield PiperSynthesizer.from_model_store()


def as_echo(tts: PiperSynthesizer, text: str, level_dbfs: float) -> np.ndarray:
    """``text`` in the agent's voice at 16 kHz, scaled to ``level_dbfs``, over room noise."""
    voice = resample(tts.synthesize_all(text), tts.sample_rate, RATE).astype(np.float64)
    voice *= 32768 * 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(voice**2)) + 1e-9)
    noise = white_noise(len(voice) / RATE, level_dbfs=-55.0).astype(np.float64)
    return np.clip(voice + noise[: len(voice)], -32768, 32767).astype(np.int16)


def agent_speaking(text: str) -> OwnVoice:
    own_voice = OwnVoice()
    own_voice.said(text, 99.0)
    own_voice.started(100.0)
    return own_voice


@pytest.mark.parametrize("level_dbfs", [-20.0, -35.0])
def test_a_stretch_of_the_answer_heard_back_is_recognized_as_its_own(
    stt: WhisperTranscriber, tts: PiperSynthesizer, level_dbfs: float
) -> None:
    stretch = "had just finished his morning run. He was looking after a litter"
    heard = stt.transcribe(as_echo(tts, stretch, level_dbfs)).text
    assert heard.strip(), "Whisper heard nothing: the test says nothing"
    assert agent_speaking(ANSWER).heard_in(heard, 103.0, 106.0), heard


def test_real_people_talking_over_it_are_not_its_voice(stt: WhisperTranscriber) -> None:
    own_voice = agent_speaking(ANSWER)
    for recording in require_real_recordings():
        heard = stt.transcribe(recording.audio).text
        assert not own_voice.heard_in(heard, 103.0, 106.0), (recording.name, heard)
