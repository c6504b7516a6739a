"""Redrawing the conversation from the agent's timeline, at a bounded rate.

Tokens arrive faster than a person reads them: the conversation pane (and an open
timeline screen) is brought up to the timeline at most ``REDRAW_HZ`` times a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import App
from textual.timer import Timer

from voiceterm.tui.protocol import AgentLike
from voiceterm.tui.screens.timeline_screen import TimelineScreen
from voiceterm.tui.widgets.conversation import ConversationView

REDRAW_HZ = 20.0
"""The most conversation redraws per second (tokens arrive faster)."""

SetTimer = Callable[[float, Callable[[], None]], Timer]
"""``App.set_timer``: call back once after so many seconds."""


class RedrawThrottle:
    """Runs ``draw`` at most ``hz`` times a second; the last request is never lost.

    A request while a redraw waits is merged into it; one after a quiet spell
    draws at once.
    """

    def __init__(self, hz: float, draw: Callable[[], None], set_timer: SetTimer) -> None:
        self._period = 1.0 / hz
        self._draw = draw
        self._set_timer = set_timer
        self._last = 0.0
        self._timer: Timer | None = None

    def request(self) -> None:
        if self._timer is not None:
            return
        wait = self._last + self._period - time.monotonic()
        if wait <= 0:
            self._run()
        else:
            self._timer = self._set_timer(wait, self._run)

    def _run(self) -> None:
        self._timer = None
        self._last = time.monotonic()
        self._draw()


class ConversationRedraw:
    """Shows the agent's timeline in ``conversation`` and on every open timeline screen.

    Args:
        app: the app the widgets are in (its timers, its screens).
        agent: whose timeline is shown.
        conversation: the conversation pane.
    """

    def __init__(
        self,
        app: App[None],
        agent: AgentLike,
        conversation: ConversationView,
        *,
        hz: float = REDRAW_HZ,
    ) -> None:
        self._app = app
        self._agent = agent
        self._conversation = conversation
        self.shown_version = -1
        """The timeline's version the widgets show."""
        self._throttle = RedrawThrottle(
            hz, self._redraw, lambda wait, redraw: app.set_timer(wait, redraw, name="redraw")
        )

    def request(self) -> None:
        """The timeline changed: redraw now, or as soon as the rate allows."""
        self._throttle.request()

    def poll(self) -> None:
        """Redraw if the timeline changed since the last redraw (a change message may
        have been merged away)."""
        if self._agent.timeline.version != self.shown_version:
            self.request()

    def _redraw(self) -> None:
        if not self._app.is_running:
            return  # shutting down: the widgets are going away
        timeline = self._agent.timeline
        self.shown_version = timeline.version
        self._conversation.sync(timeline)
        for screen in self._app.screen_stack:
            if not isinstance(screen, TimelineScreen):
                continue
            if screen.is_mounted:
                screen.refresh_data()
            else:  # just pushed, no widgets yet: the next poll redraws it too
                self.shown_version = -1
