"""The app's entries in the command palette (Ctrl+P): every key's action, by name."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand

if TYPE_CHECKING:
    from voiceterm.tui.app import VoicetermApp


def voiceterm_commands(app: VoicetermApp) -> Iterator[SystemCommand]:
    """The palette's voiceterm commands, as the app's state offers them now."""
    yield SystemCommand("Mute / unmute microphone", "F2", app.action_toggle_mute)
    yield SystemCommand("Push-to-talk / always listening", "F3", app.action_toggle_push_to_talk)
    phrase = app.listening.phrase or "the wake word"
    for mode, title, help_text in (
        ("always", "Listen: always", "every sentence heard is a turn"),
        ("wake_word", "Listen: wake word", f'only after "{phrase}", and just after answers'),
        ("push_to_talk", "Listen: push-to-talk", "only while F4 is down"),
    ):
        yield SystemCommand(title, help_text, partial(app.action_listen, mode))
    if app.push_to_talk:
        yield SystemCommand("Talk (push-to-talk)", "F4", app.action_talk)
    yield SystemCommand("Interrupt the agent", "Esc", app.action_interrupt)
    yield SystemCommand("Clear the conversation", "Ctrl+L", app.action_clear_conversation)
    yield SystemCommand("Open the timeline", "Ctrl+T", app.action_open_timeline)
    yield SystemCommand("Start / stop recording the session", "Ctrl+R", app.action_toggle_recording)
    yield SystemCommand(
        "Export timeline as Chrome trace", "JSON for Perfetto", app.action_export_trace
    )
    yield SystemCommand(
        "Export conversation as Markdown", "with timings", app.action_export_markdown
    )
    yield SystemCommand("Help", "F1: keys and what they do", app.action_help)
