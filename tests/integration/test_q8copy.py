"""The LLM's 8-bit copy (voiceterm.engines.q8copy) on the real embedded model."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from voiceterm.engines.llm import LlamaEngine
from voiceterm.engines.q8copy import Q8_0_FILE_TYPE, copy_path, worth_copying
from voiceterm.modelstore import resolve_model

TEXT = (
    "The quick brown fox jumps over the lazy dog. Paris is the capital of France, "
    "and the moon is about three hundred and eighty thousand kilometres away."
)


@pytest.fixture(scope="module")
def model_path() -> Path:
    return resolve_model("llm").path


def test_the_embedded_model_runs_from_an_8_bit_copy_that_knows_as_much(
    model_path: Path, tmp_path: Path
) -> None:
    with LlamaEngine(model_path) as original:
        assert original.weights_path == model_path
        original_logprob = original.mean_log_probability(TEXT)
    with LlamaEngine(model_path, eight_bit_copy_dir=tmp_path) as copied:
        assert copied.weights_path == copy_path(model_path, tmp_path)
        assert copied._llm.metadata["general.file_type"] == str(Q8_0_FILE_TYPE)
        copy_logprob = copied.mean_log_probability(TEXT)
    assert -6.0 < original_logprob < -0.5  # plain English: far likelier than chance (-10.8)
    # Not less likely by more than 2% (measured: the copy is a little likelier).
    assert copy_logprob > original_logprob - 0.02 * abs(original_logprob)
    assert [p.name for p in tmp_path.iterdir()] == [copy_path(model_path, tmp_path).name]


def test_the_copy_is_made_once_and_reused(model_path: Path, tmp_path: Path) -> None:
    with LlamaEngine(model_path, eight_bit_copy_dir=tmp_path) as first:
        made = first.weights_path.stat().st_mtime_ns
    with LlamaEngine(model_path, eight_bit_copy_dir=tmp_path) as second:
        assert second.weights_path.stat().st_mtime_ns == made


def test_a_reinstalled_model_file_leaves_one_copy_behind(model_path: Path, tmp_path: Path) -> None:
    # pip gives the file a new modification time on every install: each install
    # needs its own copy, and the ones before it are stale.
    source = tmp_path / model_path.name
    shutil.copyfile(model_path, source)
    cache = tmp_path / "cache"
    other_model = cache / "another-model-1234-5678.q8_0.gguf"
    cache.mkdir()
    other_model.write_bytes(b"GGUF")
    with LlamaEngine(source, eight_bit_copy_dir=cache) as first:
        assert first.weights_path != source
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    with LlamaEngine(source, eight_bit_copy_dir=cache) as reinstalled:
        assert reinstalled.weights_path != first.weights_path
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [reinstalled.weights_path.name, other_model.name]
    )


def test_a_damaged_copy_is_made_again(model_path: Path, tmp_path: Path) -> None:
    damaged = copy_path(model_path, tmp_path)
    damaged.write_bytes(b"GGUF" + b"\0" * 100)  # what a full disk may leave
    with LlamaEngine(model_path, eight_bit_copy_dir=tmp_path) as engine:
        assert engine.weights_path == damaged
        assert damaged.stat().st_size > 50_000_000
        assert "".join(
            engine.generate([{"role": "user", "content": "Hi!"}], threading.Event(), max_tokens=4)
        )


def test_without_a_writable_cache_the_model_runs_as_it_is(model_path: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache directory should be")
    with LlamaEngine(model_path, eight_bit_copy_dir=blocked) as engine:
        assert engine.weights_path == model_path
        assert "".join(
            engine.generate([{"role": "user", "content": "Hi!"}], threading.Event(), max_tokens=4)
        )


def test_a_model_in_another_format_is_not_copied(model_path: Path, tmp_path: Path) -> None:
    with LlamaEngine(model_path, eight_bit_copy_dir=tmp_path / "first") as engine:
        eight_bit = engine.weights_path
    source = tmp_path / "already-8-bit.gguf"
    shutil.copyfile(eight_bit, source)
    with LlamaEngine(source, eight_bit_copy_dir=tmp_path / "second") as engine:
        assert engine.weights_path == source
    assert not (tmp_path / "second").exists()


def test_only_small_models_in_4_bit_block_formats_are_worth_a_copy(tmp_path: Path) -> None:
    small = tmp_path / "small.gguf"
    small.write_bytes(b"GGUF")
    assert worth_copying(small, {"general.file_type": "3"})  # Q4_1
    assert worth_copying(small, {"general.file_type": "2"})  # Q4_0
    assert not worth_copying(small, {"general.file_type": "7"})  # Q8_0 already
    assert not worth_copying(small, {"general.file_type": "15"})  # Q4_K_M: fast kernels
    assert not worth_copying(small, {})
    assert not worth_copying(small, {"general.file_type": "odd"})


def test_a_changed_model_file_gets_a_new_copy_name(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF one")
    before = copy_path(model, tmp_path / "cache")
    model.write_bytes(b"GGUF other version")
    assert copy_path(model, tmp_path / "cache") != before
