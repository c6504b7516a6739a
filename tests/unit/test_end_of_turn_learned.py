"""The learned end-of-turn decision: the shipped weights, what they say, and broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voiceterm.engines.llm.words_end import PROBE_FILE, load_probe
from voiceterm.errors import ModelError
from voiceterm.pipeline.end_of_turn.learned import WEIGHTS_FILE, Signals, load_weights


def test_the_shipped_weights_load_and_say_what_they_were_fitted_on() -> None:
    weights = load_weights()
    assert weights.source == WEIGHTS_FILE
    assert "tuning speakers" in weights.fitted_on
    assert "held-back" in weights.fitted_on
    assert set(weights.models) == {"full", "words", "voice"}
    assert 0 < weights.first_ms < weights.cap_ms


@pytest.mark.parametrize("silence_ms", [120, 300, 600, 1000])
def test_a_finished_question_is_more_likely_over_than_a_sentence_cut_after_of(
    silence_ms: int,
) -> None:
    weights = load_weights()
    finished = weights.judge(Signals(silence_ms, 0.9, "What is the capital of France?", 0.8))
    cut = weights.judge(Signals(silence_ms, 0.3, "What is the capital of", 0.001))
    assert finished.probability > cut.probability
    assert finished.wait_ms <= cut.wait_ms


def test_on_a_short_command_the_voice_decides_more_than_on_a_long_sentence() -> None:
    weights = load_weights()

    def lift(said: str) -> float:
        sure = weights.judge(Signals(400, 0.95, said, 0.01)).probability
        unsure = weights.judge(Signals(400, 0.2, said, 0.01)).probability
        return sure - unsure

    assert lift("Front left.") > lift("The juice of lemons makes fine punch.")


def schedule_file(tmp_path: Path) -> Path:
    """The shipped weights with the older shape of wait: sure and unsure, no bars."""
    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    data["wait"] = {"first_ms": 160, "cap_ms": 1200, "sure": 0.98, "unsure": 0.85}
    for model in data["models"].values():
        model["features"].append("silence_s")
        model["weights"].append(3.0)
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("shape", ["shipped", "schedule"])
def test_the_longer_the_silence_the_less_sure_the_signals_must_be(
    tmp_path: Path, shape: str
) -> None:
    weights = load_weights(None if shape == "shipped" else schedule_file(tmp_path))
    said = "What is the capital of France?"
    silences = range(weights.first_ms, weights.cap_ms + 1, 20)
    done = [weights.judge(Signals(ms, 0.5, said, 0.5)).done(ms) for ms in silences]
    assert done == sorted(done) and not done[0] and done[-1]


@pytest.mark.parametrize("shape", ["shipped", "schedule"])
def test_the_wait_runs_from_the_first_check_to_the_cap(tmp_path: Path, shape: str) -> None:
    weights = load_weights(None if shape == "shipped" else schedule_file(tmp_path))
    shortest = weights.thresholds[0][0] if weights.thresholds else weights.first_ms
    assert weights.first_ms <= shortest == weights.wait_ms(1.0) < weights.cap_ms
    assert weights.wait_ms(0.0) == weights.cap_ms
    middle = [weights.wait_ms(p / 100) for p in range(101)]
    assert middle == sorted(middle, reverse=True)
    assert any(shortest < wait < weights.cap_ms for wait in middle)


LOADERS = {"weights": load_weights, "probe": load_probe}


@pytest.mark.parametrize("kind", LOADERS)
def test_a_missing_weights_file_says_so(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ModelError) as error:
        LOADERS[kind](tmp_path / "nowhere.json")
    assert "not exist" in error.value.message
    assert "turn.detector" in error.value.hint


@pytest.mark.parametrize(
    ("kind", "text", "says"),
    [
        ("weights", "{ not json", "could not be read"),
        ("weights", '{"models": {}}', "not a weights file"),
        ("weights", json.dumps({"models": {}, "wait": {}}), "not a weights file"),
        ("probe", "{ not json", "could not be read"),
        ("probe", '{"tokens": [2]}', "not a probe file"),
        (
            "probe",
            json.dumps(
                {"tokens": [2, 3], "pieces": ["a"], "weights": [1.0], "bias": 0, "floor": -30}
            ),
            "not a probe file",
        ),
    ],
)
def test_a_corrupt_weights_file_says_so(tmp_path: Path, kind: str, text: str, says: str) -> None:
    path = tmp_path / "weights.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModelError) as error:
        LOADERS[kind](path)
    assert says in error.value.message
    assert str(path) in error.value.message


def test_the_shipped_words_probe_loads_and_says_what_it_was_fitted_on() -> None:
    probe = load_probe()
    assert probe.source == PROBE_FILE
    assert "none from the benchmarks' recordings" in probe.fitted_on
    assert probe.pieces[0] == "<|im_end|>"
    assert len(probe.tokens) == len(probe.pieces) == len(probe.weights)


def test_a_probe_for_another_vocabulary_is_refused() -> None:
    probe = load_probe()
    with pytest.raises(ModelError, match="fitted for"):
        probe.check(lambda token: "?", 1 << 20)
    probe.check(dict(zip(probe.tokens, probe.pieces, strict=True)).__getitem__, 1 << 20)


@pytest.mark.parametrize(
    "wait",
    [
        {"first_ms": 160, "cap_ms": 1200, "sure": 0.2, "unsure": 0.8},
        {"first_ms": 160, "cap_ms": 1200, "thresholds": [[700, 0.4], [800, 0.6]]},
        {"first_ms": 160, "cap_ms": 1200, "thresholds": [[800, 0.6], [700, 0.4]]},
        {"first_ms": 160, "cap_ms": 1200, "thresholds": [[700, 1.5]]},
        {"first_ms": 160, "cap_ms": 1200, "thresholds": [[1300, 0.5]]},
    ],
)
def test_weights_with_an_impossible_wait_are_refused(tmp_path: Path, wait: object) -> None:
    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    data["wait"] = wait
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match="impossible wait"):
        load_weights(path)


def test_an_early_decision_ends_a_turn_every_signal_calls_done_at_the_first_check(
    tmp_path: Path,
) -> None:
    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    data["models"]["early"] = {"features": ["voice", "words"], "weights": [1.0, 1.0], "bias": 0.0}
    data["wait"]["early_sure"] = 0.99
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    weights = load_weights(path)
    first = weights.first_ms
    both_sure = weights.judge(Signals(first, 0.99, "Cancel that.", 0.99))
    assert both_sure.model == "early" and both_sure.done(first)
    words_unknown = weights.judge(Signals(first, 0.99))
    assert words_unknown.model == "voice" and not words_unknown.done(first)
    voice_unsure = weights.judge(Signals(first, 0.2, "Cancel that.", 0.99))
    assert voice_unsure.model == "full" and not voice_unsure.done(first)


def test_an_early_decision_that_reads_the_silence_is_refused(tmp_path: Path) -> None:
    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    data["models"]["early"] = {"features": ["silence_s"], "weights": [1.0], "bias": 0.0}
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelError, match="silence"):
        load_weights(path)
