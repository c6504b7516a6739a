"""[listen] settings as a user meets them: a wrong mode or wake word stops before the app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_cli import voiceterm
from voiceterm.config import Config, check_config
from voiceterm.engines.wake import BUNDLED, resolve_wake_model
from voiceterm.errors import ConfigError, ModelError


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--listen", "sometimes"), "listen.mode must be one of always, wake_word, push_to_talk"),
        (("--wake-word", "hey_bob"), "listen.wake_word must be one of hey_jarvis"),
        (("--wake-word", "/nowhere/model.tflite"), "does not exist"),
        (("--listen-wake-cutoff", "1.5"), "listen.wake_cutoff must be between 0 and 1"),
        (
            ("--listen-wake-by-words-above", "0"),
            "listen.wake_by_words_above must be between 0 and 1",
        ),
        (("--listen-wake-fit-above", "2"), "listen.wake_fit_above must be a log-probability"),
        (("--listen-wake-fit-margin", "-1"), "listen.wake_fit_margin must be 0 or more"),
        (
            ("--listen-wake-name-fit-above", "0.5"),
            "listen.wake_name_fit_above must be a log-probability",
        ),
        (("--listen-wake-name-fit-margin", "-1"), "listen.wake_name_fit_margin must be 0 or more"),
    ],
)
def test_a_wrong_listen_setting_exits_2_with_one_sentence(args: tuple[str, ...], said: str) -> None:
    result = voiceterm(*args)
    assert result.returncode == 2
    assert said in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_every_bundled_wake_word_resolves_with_its_phrase_and_cutoff() -> None:
    for name in BUNDLED:
        model = resolve_wake_model(name)
        assert model.manifest.exists() and 0.5 < model.cutoff < 1.0 and model.phrase


def test_a_model_file_without_its_manifest_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "my_word.tflite"
    model.write_bytes(b"\0")
    with pytest.raises(ModelError, match=r"manifest .*my_word\.json does not exist") as missing:
        resolve_wake_model(str(model))
    assert "a .json of the same name" in missing.value.hint
    manifest = {"model": "my_word.tflite", "wake_word": "My Word", "micro": {}}
    (tmp_path / "my_word.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="cannot be read"):
        resolve_wake_model(str(model))


def test_a_negative_follow_up_window_is_refused() -> None:
    config = Config()
    config.listen.follow_up_s = -1
    with pytest.raises(ConfigError, match="follow_up_s"):
        check_config(config)
