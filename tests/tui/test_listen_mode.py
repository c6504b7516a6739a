"""listen.mode in the app: the palette switches it, the status bar shows it and counts
the follow-up window down (with the scripted agent; the real one is tested in
tests/integration/test_wake_word.py)."""

from __future__ import annotations

import time

from tests.tui.conftest import SIZE, FakeAgent, screen_text, wait_for
from voiceterm.events import ListeningChanged
from voiceterm.tui.app import VoicetermApp


async def test_the_palette_switches_to_the_wake_word_and_back(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Listen: always", "Listen: wake word", "Listen: push-to-talk"} <= set(titles)
        app.action_listen("wake_word")
        await pilot.pause()
        assert agent.calls[-1] == "set_listen_mode:wake_word"
        assert "wake word" in screen_text(app)
        app.action_listen("always")
        await pilot.pause()
        assert "always listening" in screen_text(app)


async def test_the_status_bar_says_what_to_say_then_counts_the_window_down(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await agent.publish(ListeningChanged(mode="wake_word", state="asleep", phrase="Hey Jarvis"))
        await wait_for(pilot, lambda: 'say "Hey Jarvis"' in screen_text(app))
        until = time.monotonic() + 8.4
        await agent.publish(
            ListeningChanged(mode="wake_word", state="open", until=until, phrase="Hey Jarvis")
        )
        await wait_for(pilot, lambda: "listening 8 s" in screen_text(app))
        await wait_for(pilot, lambda: "listening 7 s" in screen_text(app), limit_s=6.0)
        await agent.publish(ListeningChanged(mode="wake_word", state="asleep", phrase="Hey Jarvis"))
        await wait_for(pilot, lambda: 'say "Hey Jarvis"' in screen_text(app))
