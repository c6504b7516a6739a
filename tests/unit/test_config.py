from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA
from voiceterm.cli import build_parser, config_from_args
from voiceterm.config import Config, load_config
from voiceterm.errors import ConfigError


def test_defaults_when_no_file_exists(tmp_path: Path) -> None:
    assert load_config(tmp_path / "absent.toml") == Config()


def test_file_values_override_defaults() -> None:
    config = load_config(DATA / "config" / "good.toml", explicit=True)
    assert config.vad.hangover_ms == 250
    assert config.llm.max_tokens == 40
    assert config.barge_in.enabled is False
    assert config.stt.pad_to_30s is False  # untouched settings keep their default


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("not_toml.toml", "not valid TOML"),
        ("bad_type.toml", "must be a whole number"),
        ("unknown_key.toml", "unknown setting vad.hangvoer_ms"),
        ("unknown_section.toml", "unknown section [speech]"),
    ],
)
def test_bad_config_says_what_is_wrong(name: str, says: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        load_config(DATA / "config" / name, explicit=True)
    assert says in str(caught.value)
    assert name in str(caught.value)


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", explicit=True)


def test_flag_wins_over_file_only_when_given() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["--config", str(DATA / "config" / "good.toml"), "--vad-hangover-ms", "400"]
    )
    config = config_from_args(args)
    assert config.vad.hangover_ms == 400
    assert config.llm.max_tokens == 40  # from the file, no flag given


def test_aliases_reach_the_same_setting() -> None:
    args = build_parser().parse_args(["--stt-model", "/m/whisper", "--input-device", "USB"])
    config = config_from_args(args)
    assert config.stt.model == "/m/whisper"
    assert config.audio.input_device == "USB"
