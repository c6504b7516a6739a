"""The voiceterm app: the conversation, the live state, and the chunk timeline.

The app never blocks the pipeline: it hears the bus through one bridge that
drops the oldest data when the UI falls behind, and every bus message reaches
widgets only as a Textual message posted by :class:`~voiceterm.tui.feed.BusFeed`.
Conversation text is read from the agent's :class:`~voiceterm.timeline.Timeline`
at most ``REDRAW_HZ`` times a second.

Calls into the agent run as workers (``exit_on_error=False``); a failure becomes a
notification with a hint, never a traceback over the screen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from voiceterm import paths
from voiceterm.errors import VoicetermError
from voiceterm.events import AgentError, AudioGlitches, ListeningChanged, StageStatus
from voiceterm.tui.activity import ActivityTracker
from voiceterm.tui.commands import voiceterm_commands
from voiceterm.tui.feed import BusEvent, BusFeed, MicLevel, TimelineChanged
from voiceterm.tui.logs import LogRedirect
from voiceterm.tui.notices import Notices
from voiceterm.tui.protocol import AgentLike
from voiceterm.tui.redraw import REDRAW_HZ, ConversationRedraw
from voiceterm.tui.screens.help_screen import HelpScreen
from voiceterm.tui.screens.timeline_screen import TimelineScreen
from voiceterm.tui.session_files import SessionFiles
from voiceterm.tui.widgets.conversation import ConversationView
from voiceterm.tui.widgets.recording import RecordingBadge
from voiceterm.tui.widgets.status import ActivityIndicator, MicMeter, ModeIndicator, StageBadges

logger = logging.getLogger(__name__)

_SAFETY_POLL_S = 0.5  # catches a timeline change whose message was merged away


class VoicetermApp(App[None]):
    """The terminal UI around a voice agent.

    Args:
        agent: the pipeline facade (see :class:`~voiceterm.tui.protocol.AgentLike`).
        export_dir: where the timeline exports are written (default: the current folder).
        log_path: where log records go while the app owns the terminal (default:
            ``voiceterm.log`` in the user's log folder).
        start_agent: start the agent when the app starts (tests may start it themselves).
    """

    CSS_PATH = "app.tcss"
    TITLE = "voiceterm"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("f2", "toggle_mute", "Mute"),
        Binding("f3", "toggle_push_to_talk", "Push-to-talk"),
        Binding("f4", "talk", "Talk"),
        Binding("escape", "interrupt", "Interrupt"),
        Binding("ctrl+l", "clear_conversation", "Clear"),
        Binding("ctrl+t", "open_timeline", "Timeline"),
        Binding("ctrl+r", "toggle_recording", "Record", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    activity: reactive[str] = reactive("starting")
    muted: reactive[bool] = reactive(False)
    push_to_talk: reactive[bool] = reactive(False)
    talking: reactive[bool] = reactive(False)
    listen_mode: reactive[str] = reactive("always")
    """``listen.mode`` as the agent last said (push-to-talk is ``push_to_talk`` above)."""

    def __init__(
        self,
        agent: AgentLike,
        *,
        export_dir: Path | None = None,
        log_path: Path | None = None,
        start_agent: bool = True,
    ) -> None:
        super().__init__()
        self.agent = agent
        self.export_dir = export_dir or Path.cwd()
        self._start_agent = start_agent
        self.log_path = log_path or paths.log_file()
        self._log_redirect = LogRedirect(self.log_path)
        self.feed = BusFeed(self)
        self._stopped = False
        self._notices = Notices(self.notify)
        self.files = SessionFiles(agent, self.export_dir, self.notify, self._notices)
        self._activity = ActivityTracker()
        self.listening = ListeningChanged()
        """What the microphone listens for, as the agent last said."""
        self._countdown: Timer | None = None
        # Kept as attributes: bus messages may still arrive while the app closes,
        # when querying the DOM would find nothing.
        self.conversation = ConversationView(id="conversation")
        self.activity_indicator = ActivityIndicator(id="activity")
        self.mic_meter = MicMeter(id="mic-meter")
        self.mode_indicator = ModeIndicator("always listening", id="mode")
        self.recording_badge = RecordingBadge(id="recording")
        self.stage_badges = StageBadges(id="stages")
        self.prompt = Input(
            placeholder="Type a message and press Enter, or just speak", id="prompt"
        )
        # A blinking cursor redraws the screen twice a second for ever, a tenth of the
        # idle app's main thread; a steady one shows the same place for nothing.
        self.prompt.cursor_blink = False
        self._redraws = ConversationRedraw(self, agent, self.conversation, hz=REDRAW_HZ)

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self.conversation
        with Horizontal(id="status"):
            yield self.activity_indicator
            yield self.mic_meter
            yield self.recording_badge
            yield self.mode_indicator
        yield self.stage_badges
        yield self.prompt
        yield Footer()

    def on_load(self) -> None:
        self._log_redirect.install()

    def on_mount(self) -> None:
        self.feed.attach(self.agent.bus)
        self.prompt.focus()
        self.set_interval(_SAFETY_POLL_S, self._redraws.poll, name="timeline poll")
        self.files.show_recording_on(self.recording_badge)
        if self._start_agent:
            self.start_agent()

    # --- the agent, in workers ---------------------------------------------------------------

    @work(exclusive=True, group="agent-start", exit_on_error=False)
    async def start_agent(self) -> None:
        """Load models and open devices; the app stays usable meanwhile."""
        await self.agent.start()
        self.stage_badges.set_descriptions(self.agent.describe())
        if self.activity == "starting":
            self.activity = "listening"

    @work(group="agent-submit", exit_on_error=False)
    async def submit(self, text: str) -> None:
        await self.agent.submit_text(text)

    @work(exclusive=True, group="agent-interrupt", exit_on_error=False)
    async def interrupt_agent(self) -> None:
        await self.agent.interrupt()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        logger.error("%s failed", event.worker.name, exc_info=error)
        self._notices.worker_failed(error)
        if event.worker.group == "agent-start" and self.activity == "starting":
            self.activity = "listening"

    async def action_quit(self) -> None:
        await self._stop_agent()
        self.exit()

    async def on_unmount(self) -> None:
        await self._stop_agent()

    async def _stop_agent(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            await self.agent.stop()
        except Exception:  # shutting down: log, never show a traceback
            logger.exception("agent did not stop cleanly")
        await self.feed.detach()
        self._log_redirect.uninstall()

    # --- what the bus says ---------------------------------------------------------------------

    def on_mic_level(self, message: MicLevel) -> None:
        if not self.is_running:
            return
        self.mic_meter.set_level(message.level_db, message.voiced)

    def on_timeline_changed(self, message: TimelineChanged) -> None:
        self.feed.change_handled()
        self._redraws.request()

    def on_bus_event(self, message: BusEvent) -> None:
        if not self.is_running:
            return
        event = message.event
        if isinstance(event, StageStatus):
            self.stage_badges.set_stage(event.stage, event.state, event.detail)
            if event.state == "failed":
                self._notices.stage_failed(event)
        elif isinstance(event, AgentError):
            self._notices.agent_error(event)
        elif isinstance(event, AudioGlitches):
            self._notices.glitches(event)
        elif isinstance(event, ListeningChanged):
            self._listening_changed(event)
        self.activity = self._activity.after(event, self.activity)

    def _listening_changed(self, event: ListeningChanged) -> None:
        """The mode or the follow-up window changed; while it is open, count it down."""
        self.listening = event
        if event.mode != "push_to_talk":
            self.listen_mode = event.mode
        if self.talking and event.mode != "push_to_talk":
            self.action_talk()
        self.push_to_talk = event.mode == "push_to_talk"
        counting = event.state == "open" and event.until is not None
        if counting and self._countdown is None:
            self._countdown = self.set_interval(1.0, self._show_mode, name="follow-up countdown")
        elif not counting and self._countdown is not None:
            # Nothing ticks while asleep: the idle app stays idle.
            self._countdown.stop()
            self._countdown = None
        self._show_mode()

    # --- state shown in the status line -------------------------------------------------------

    def watch_activity(self, activity: str) -> None:
        self.activity_indicator.activity = "muted" if self.muted else activity

    def watch_muted(self, muted: bool) -> None:
        self.mic_meter.set_muted(muted)
        self.activity_indicator.activity = "muted" if muted else self.activity

    def _show_mode(self) -> None:
        listening = self.listening
        seconds_left = listening.until - time.monotonic() if listening.until is not None else None
        self.mode_indicator.show(
            push_to_talk=self.push_to_talk,
            talking=self.talking,
            mode=self.listen_mode,
            state=listening.state if listening.mode == self.listen_mode else "asleep",
            seconds_left=seconds_left,
            phrase=listening.phrase,
        )
        self.refresh_bindings()

    def watch_listen_mode(self) -> None:
        self._show_mode()

    def watch_push_to_talk(self) -> None:
        self._show_mode()

    def watch_talking(self) -> None:
        self._show_mode()

    # --- what a person does ------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    def _typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.clear()
        if text:
            self.submit(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "talk":
            return self.push_to_talk
        return True

    def action_toggle_mute(self) -> None:
        """Mute or unmute the microphone."""
        self.muted = not self.muted
        self.agent.set_muted(self.muted)

    def action_toggle_push_to_talk(self) -> None:
        """Switch between push-to-talk and always listening."""
        if self.talking:
            self.action_talk()
        self.push_to_talk = not self.push_to_talk
        self.agent.set_push_to_talk(self.push_to_talk)

    def action_listen(self, mode: str) -> None:
        """Switch listen.mode: always, wake_word or push_to_talk."""
        if self.talking:
            self.action_talk()
        try:
            self.agent.set_listen_mode(mode)
        except VoicetermError as error:
            self._notices.error(error)
            return
        self.push_to_talk = mode == "push_to_talk"
        if mode != "push_to_talk":
            self.listen_mode = mode

    def action_talk(self) -> None:
        """In push-to-talk: press to talk, press again when done (terminals see no key-up)."""
        if not self.push_to_talk:
            return
        self.talking = not self.talking
        self.agent.push_to_talk(self.talking)

    def action_interrupt(self) -> None:
        """Cut the agent off."""
        self.interrupt_agent()

    def action_clear_conversation(self) -> None:
        """Forget the conversation and empty the pane (the timeline keeps the turns)."""
        self.agent.clear_conversation()
        current = self.agent.timeline.current
        self.conversation.clear_conversation(current.number if current else 0)

    def action_open_timeline(self) -> None:
        """Show every chunk of every turn on a time axis."""
        if not isinstance(self.screen, TimelineScreen):
            self.push_screen(TimelineScreen(self.agent.timeline, self.export_dir))

    def action_toggle_recording(self) -> None:
        """Start or stop recording the session (see `voiceterm replay` and `view`)."""
        self.files.toggle_recording()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_export_trace(self) -> None:
        self.files.export_trace()

    def action_export_markdown(self) -> None:
        self.files.export_markdown()

    @property
    def _shown_version(self) -> int:
        """The timeline's version the conversation shows (screenshots wait for it)."""
        return self._redraws.shown_version

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from voiceterm_commands(self)
