"""Import contracts: the core loads no audio/ML/UI library; only the TUI imports textual.

Checked in a fresh interpreter (``sys.modules`` of this test process is full of
whatever other tests imported) and, for textual, also by reading the source, so
that a lazy ``import textual`` inside a function outside ``voiceterm/tui`` is
caught too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "voiceterm"

CORE_MODULES = [
    "voiceterm",
    "voiceterm.events",
    "voiceterm.bus",
    "voiceterm.bridge",
    "voiceterm.nodes",
    "voiceterm.patterns",
    "voiceterm.testing",
]
HEAVY_LIBRARIES = [
    "numpy",
    "sounddevice",
    "soxr",
    "webrtcvad",
    "faster_whisper",
    "ctranslate2",
    "piper",
    "llama_cpp",
    "textual",
]


def loaded_after_importing(modules: list[str], watched: list[str]) -> list[str]:
    """Import ``modules`` in a new interpreter; return which ``watched`` got loaded."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"watched = {watched!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(watched))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=PACKAGE.parent,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_the_core_imports_no_audio_ml_or_ui_library() -> None:
    assert loaded_after_importing(CORE_MODULES, HEAVY_LIBRARIES) == []


@pytest.mark.parametrize("module", CORE_MODULES[1:])
def test_each_core_module_alone_is_light(module: str) -> None:
    assert loaded_after_importing([module], HEAVY_LIBRARIES) == []


def _imports_textual(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name == "textual" or name.startswith("textual.") for name in names):
            lines.append(node.lineno)
    return lines


def test_nothing_outside_the_tui_imports_textual() -> None:
    offenders = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if "tui" not in path.relative_to(PACKAGE).parts[:1] and (lines := _imports_textual(path))
    }
    assert offenders == {}


def test_importing_every_module_outside_the_tui_loads_no_textual() -> None:
    modules = sorted(
        ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in PACKAGE.rglob("*.py")
        if "tui" not in path.relative_to(PACKAGE).parts[:1] and path.name != "__main__.py"
    )
    assert "voiceterm.bridge" in modules
    assert loaded_after_importing(modules, ["textual"]) == []
