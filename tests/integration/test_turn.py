"""The end-of-turn model (Smart Turn v3.2) for real: features, probabilities, errors.

The reference is Pipecat's own numpy feature code, shipped in the same wheel as the
model; it is loaded from its file (not imported as ``pipecat``, whose package
needs libraries voiceterm does not install).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from benchmarks.corpus import require_real_recordings, silence
from voiceterm.engines.smart_turn import SmartTurn, last_window, log_mel
from voiceterm.errors import ModelError
from voiceterm.modelstore import bundled_path, resolve_model

pytestmark = [pytest.mark.models]


def reference_features() -> ModuleType:
    model = bundled_path("turn")
    assert model is not None, "pip install --no-deps pipecat-ai (scripts/setup.sh does)"
    source = model.parent.parent / "_whisper_features.py"
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smart_turn() -> SmartTurn:
    return SmartTurn(resolve_model("turn").path)


def reference_probability(model: SmartTurn, audio: np.ndarray) -> float:
    """Pipecat's LocalSmartTurnAnalyzerV3 steps: float audio, last 8 s, its features."""
    wave = audio.astype(np.float32) / 32768.0
    wave = wave[-128000:]
    wave = np.pad(wave, (128000 - len(wave), 0))
    features = reference_features().compute_whisper_log_mel_features(wave, do_normalize=True)
    outputs = model._session.run(None, {"input_features": features[None, :, :]})
    return float(outputs[0][0].item())


def test_features_match_pipecats_reference_on_real_speech() -> None:
    reference = reference_features()
    for recording in require_real_recordings()[:6]:
        window = last_window(recording.audio)
        ours = log_mel(window)
        theirs = reference.compute_whisper_log_mel_features(window, do_normalize=True)
        assert ours.shape == theirs.shape == (80, 800)
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=recording.name)


def test_probabilities_match_pipecats_on_the_same_audio(smart_turn: SmartTurn) -> None:
    recordings = require_real_recordings()
    long_turn = np.concatenate([r.audio for r in recordings[:4]])  # over 8 s: the end counts
    for audio in [r.audio for r in recordings[:5]] + [long_turn]:
        ours = smart_turn.probability(audio)
        assert 0.0 <= ours <= 1.0
        assert ours == pytest.approx(reference_probability(smart_turn, audio), abs=1e-4)


def test_a_finished_sentence_sounds_complete_and_a_cut_one_does_not(
    smart_turn: SmartTurn,
) -> None:
    # "... the family of Dashwood had been long settled in Sussex." read by a person,
    # whole and cut after its first words (where no sentence ends).
    recording = next(r for r in require_real_recordings() if r.name.startswith("librivox"))
    whole = np.concatenate([recording.audio, silence(0.2)])
    cut = np.concatenate([recording.audio[: len(recording.audio) * 2 // 5], silence(0.2)])
    assert smart_turn.probability(whole) > smart_turn.probability(cut)


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "smart-turn.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="corrupt or not an ONNX model") as error:
        SmartTurn(broken)
    assert "turn.detector" in error.value.hint


def test_a_missing_model_names_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        SmartTurn(tmp_path / "nothing.onnx")
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model("turn", tmp_path / "nothing.onnx")


def test_models_dir_is_looked_up_before_the_package(tmp_path: Path) -> None:
    package_model = bundled_path("turn")
    assert package_model is not None
    (tmp_path / "turn").mkdir()
    mine = tmp_path / "turn" / "my-turn.onnx"
    mine.write_bytes(package_model.read_bytes())
    found = resolve_model("turn", models_dirs=[tmp_path])
    assert (found.path, found.origin) == (mine, "models/")
    assert resolve_model("turn", models_dirs=[]).origin == "package"
