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
from collections.abc import Callable, Iterable
from functools import partial
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
from voiceterm.events import (
    AgentError,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    AudioGlitches,
    BargeInDismissed,
    ListeningChanged,
    StageStatus,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionDropped,
    UserTranscriptionReceived,
)
from voiceterm.timeline import Timeline
from voiceterm.timeline_export import export_markdown, export_timeline
from voiceterm.tui.feed import BusEvent, BusFeed, MicLevel, TimelineChanged
from voiceterm.tui.logs import LogRedirect
from voiceterm.tui.protocol import AgentLike
from voiceterm.tui.screens.help_screen import HelpScreen
from voiceterm.tui.screens.timeline_screen import TimelineScreen
from voiceterm.tui.widgets.conversation import ConversationView
from voiceterm.tui.widgets.recording import RecordingBadge
from voiceterm.tui.widgets.status import ActivityIndicator, MicMeter, ModeIndicator, StageBadges

logger = logging.getLogger(__name__)

REDRAW_HZ = 20.0
"""The most conversation redraws per second (tokens arrive faster)."""
_SAFETY_POLL_S = 0.5  # catches a timeline change whose message was merged away

STAGE_HINTS: dict[str, str] = {
    "mic": "Check that a microphone is connected (`voiceterm devices` lists them); "
    "you can still type.",
    "speaker": "Check the output device (`voiceterm devices`); answers still appear here.",
    "stt": "Run `voiceterm models` to see which speech model is missing; you can still type.",
    "llm": "Run `voiceterm models` to see which language model is missing.",
    "tts": "Run `voiceterm models` to see which voice is missing; answers still appear here.",
    "vad": "Voice detection is off; you can still type.",
    "turn": "Run `voiceterm models`; until it loads, a silence ends your turn.",
}


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
        self._last_redraw = 0.0
        self._redraw_timer: Timer | None = None
        self._shown_version = -1
        self._stopped = False
        self._failures_shown: set[str] = set()
        self._agent_speaking = False
        self._listening = ListeningChanged()
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
        self.set_interval(_SAFETY_POLL_S, self._poll_timeline, name="timeline poll")
        recording = getattr(self.agent, "recording", None)
        if recording is not None:
            recording.on_change = self._recording_changed
            self.recording_badge.recording = recording.active
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
        if isinstance(error, VoicetermError):
            message = f"{error.message}\n{error.hint}" if error.hint else error.message
            self._notify_failure(error.message, message, error.title)
        else:
            self.notify(
                f"{type(error).__name__}: {error}\nvoiceterm keeps running; the log has details.",
                title="Something went wrong",
                severity="error",
                timeout=12,
            )
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
        self._schedule_redraw()

    def on_bus_event(self, message: BusEvent) -> None:
        if not self.is_running:
            return
        event = message.event
        if isinstance(event, StageStatus):
            self._stage_status(event)
        elif isinstance(event, AgentError):
            self.notify(
                f"{event.error}\nvoiceterm keeps running; the log has details.",
                title=f"The {event.stage} failed",
                severity="error",
                timeout=10,
            )
            if self.activity == "thinking":
                self.activity = "listening"
        elif isinstance(event, AudioGlitches):
            self.notify(
                f"{event.describe()}\n{event.HINT}",
                title="Audio dropouts",
                severity="warning",
                timeout=8,
            )
        elif isinstance(event, UserStartedSpeaking):
            self.activity = "hearing"
        elif (isinstance(event, UserStoppedSpeaking) and event.discarded) or isinstance(
            event, UserTranscriptionDropped
        ):
            # A cough, a click, or the agent's own echo: nothing to answer.
            self.activity = "speaking" if self._agent_speaking else "listening"
        elif isinstance(event, BargeInDismissed):
            self.activity = "speaking" if self._agent_speaking else self.activity
        elif isinstance(event, UserStoppedSpeaking | UserTranscriptionReceived):
            self.activity = "thinking"
        elif isinstance(event, AgentStartedSpeaking):
            self._agent_speaking = True
            self.activity = "speaking"
        elif isinstance(event, AgentStoppedSpeaking | AgentInterrupted):
            self._agent_speaking = False
            if self.activity != "hearing":
                self.activity = "listening"
        elif isinstance(event, AgentGenerationComplete) and event.total_length == 0:
            if self.activity == "thinking":
                self.activity = "listening"
        elif isinstance(event, ListeningChanged):
            self._listening_changed(event)

    def _listening_changed(self, event: ListeningChanged) -> None:
        """The mode or the follow-up window changed; while it is open, count it down."""
        self._listening = event
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

    def _stage_status(self, status: StageStatus) -> None:
        self.stage_badges.set_stage(status.stage, status.state, status.detail)
        if status.state == "failed":
            hint = STAGE_HINTS.get(status.stage, "Check the log for details.")
            detail = status.detail or f"The {status.stage} stage failed."
            self._notify_failure(
                detail, f"{detail}\n{hint}", f"{status.stage.upper()} not available"
            )

    def _notify_failure(self, key: str, message: str, title: str) -> None:
        # A stage that fails reports it (StageStatus) and start() may raise the same
        # error: whichever reaches the app first is shown, once.
        if key in self._failures_shown:
            return
        self._failures_shown.add(key)
        self.notify(message, title=title, severity="error", timeout=15)

    def _schedule_redraw(self) -> None:
        # At most REDRAW_HZ redraws a second; the last change is never lost.
        if self._redraw_timer is not None:
            return
        wait = self._last_redraw + 1.0 / REDRAW_HZ - time.monotonic()
        if wait <= 0:
            self._redraw()
        else:
            self._redraw_timer = self.set_timer(wait, self._redraw, name="redraw")

    def _poll_timeline(self) -> None:
        if self.agent.timeline.version != self._shown_version:
            self._schedule_redraw()

    def _redraw(self) -> None:
        self._redraw_timer = None
        if not self.is_running:
            return  # shutting down: the widgets are going away
        self._last_redraw = time.monotonic()
        timeline = self.agent.timeline
        self._shown_version = timeline.version
        self.conversation.sync(timeline)
        for screen in self.screen_stack:
            if isinstance(screen, TimelineScreen):
                screen.refresh_data()

    # --- state shown in the status line -------------------------------------------------------

    def watch_activity(self, activity: str) -> None:
        self.activity_indicator.activity = "muted" if self.muted else activity

    def watch_muted(self, muted: bool) -> None:
        self.mic_meter.set_muted(muted)
        self.activity_indicator.activity = "muted" if muted else self.activity

    def _show_mode(self) -> None:
        listening = self._listening
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
            self.notify(f"{error.message}\n{error.hint}", title=error.title, severity="error")
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
        recording = getattr(self.agent, "recording", None)
        if recording is None:
            self.notify("This session cannot be recorded.", severity="warning")
            return
        try:
            folder = recording.toggle()
        except VoicetermError as error:
            self.notify(f"{error.message}\n{error.hint}", title=error.title, severity="error")
            return
        if recording.active:
            self.notify(f"{folder}", title="Recording the session")
        else:
            self.notify(f"{folder}\n(voiceterm view / replay it)", title="Recording saved")

    def _recording_changed(self, active: bool) -> None:
        self.recording_badge.recording = active

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_export_trace(self) -> None:
        self._export(export_timeline, "Chrome trace")

    def action_export_markdown(self) -> None:
        self._export(export_markdown, "Conversation")

    def _export(self, write: Callable[[Timeline, Path], Path], what: str) -> None:
        try:
            path = write(self.agent.timeline, self.export_dir)
        except VoicetermError as error:
            self.notify(f"{error.message}\n{error.hint}", title=error.title, severity="error")
            return
        self.notify(str(path), title=f"{what} written")

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Mute / unmute microphone", "F2", self.action_toggle_mute)
        yield SystemCommand(
            "Push-to-talk / always listening", "F3", self.action_toggle_push_to_talk
        )
        phrase = self._listening.phrase or "the wake word"
        for mode, title, help_text in (
            ("always", "Listen: always", "every sentence heard is a turn"),
            ("wake_word", "Listen: wake word", f'only after "{phrase}", and just after answers'),
            ("push_to_talk", "Listen: push-to-talk", "only while F4 is down"),
        ):
            yield SystemCommand(title, help_text, partial(self.action_listen, mode))
        if self.push_to_talk:
            yield SystemCommand("Talk (push-to-talk)", "F4", self.action_talk)
        yield SystemCommand("Interrupt the agent", "Esc", self.action_interrupt)
        yield SystemCommand("Clear the conversation", "Ctrl+L", self.action_clear_conversation)
        yield SystemCommand("Open the timeline", "Ctrl+T", self.action_open_timeline)
        yield SystemCommand(
            "Start / stop recording the session", "Ctrl+R", self.action_toggle_recording
        )
        yield SystemCommand(
            "Export timeline as Chrome trace", "JSON for Perfetto", self.action_export_trace
        )
        yield SystemCommand(
            "Export conversation as Markdown", "with timings", self.action_export_markdown
        )
        yield SystemCommand("Help", "F1: keys and what they do", self.action_help)
