"""The conversation pane: one block per turn, drawn from the timeline.

Each :class:`TurnView` renders one :class:`~voiceterm.timeline.Turn` and redraws
only when the turn's ``revision`` moved. The user's words appear as a partial
transcript first (dim, italic), the agent's answer streams in with a cursor, and
the part of an answer cut off by a barge-in is struck through and dimmed.
"""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from voiceterm.timeline import Timeline, Turn, format_tool_call

USER_LABEL = "You"
AGENT_LABEL = "voiceterm"
_CURSOR = "▍"


def render_turn(turn: Turn) -> RenderableType:
    """A two-column grid: who speaks, and what was said (wrapped under itself)."""
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=len(AGENT_LABEL), no_wrap=True)
    grid.add_column(ratio=1)
    if turn.user_text or turn.user_partial:
        words = (
            Text(turn.user_text, style="bold")
            if turn.user_text
            else Text(turn.user_partial + " …", style="dim italic")
        )
        if turn.source == "typed":
            words.append("  (typed)", style="dim")
        grid.add_row(Text(USER_LABEL, style="bold cyan"), words)
    for tool in turn.tools:
        line = Text("⚙ ", style="yellow")
        line.append(format_tool_call(tool), style="yellow")
        if tool.error:
            line.append(f"  ✗ {tool.error}", style="red")
        elif tool.finished:
            line.append(f"  → {tool.result}", style="green")
        else:
            line.append("  …", style="dim")
        grid.add_row(Text(""), line)
    answer = _answer_text(turn)
    if answer is not None:
        grid.add_row(Text(AGENT_LABEL, style="bold magenta"), answer)
    for error in turn.errors:
        grid.add_row(Text(""), Text(f"⚠ {error}", style="red"))
    return grid


def _answer_text(turn: Turn) -> Text | None:
    if not turn.agent_text:
        if turn.user_text and turn.agent_running:
            return Text("…", style="dim")
        return None
    played, cut = turn.cut_off_text()
    text = Text(played.rstrip() if cut else played)
    if cut:
        text.append(" " + cut.strip(), style="dim strike")
        text.append("  (cut off)", style="dim italic")
    elif turn.interrupted:
        text.append("  (stopped)", style="dim italic")
    elif not turn.generation_done and turn.agent_running:
        text.append(_CURSOR, style="magenta")
    return text


class TurnView(Static):
    """One turn of the conversation."""

    def __init__(self, turn: Turn) -> None:
        super().__init__(render_turn(turn), classes="turn")
        self.turn = turn
        self.shown_revision = turn.revision

    def sync(self) -> None:
        """Redraw if the turn changed since the last time."""
        if self.turn.revision != self.shown_revision:
            self.shown_revision = self.turn.revision
            self.update(render_turn(self.turn))


class ConversationView(VerticalScroll):
    """The turns of the conversation, newest at the bottom, following the end."""

    HINT = (
        "Speak, or type below and press Enter.  "
        "F1 help · Esc interrupt · Ctrl+T timeline · Ctrl+P commands"
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._views: dict[int, TurnView] = {}
        self._cleared_through = 0
        self._hint = Static(self.HINT, id="conversation-hint")

    def compose(self) -> ComposeResult:
        yield self._hint

    @property
    def shown_turns(self) -> list[int]:
        """Numbers of the turns on screen, oldest first."""
        return list(self._views)

    def clear_conversation(self, through: int) -> None:
        """Hide every turn up to number ``through`` (the timeline keeps them)."""
        self._cleared_through = through
        for view in self._views.values():
            view.remove()
        self._views.clear()
        self._hint.display = True

    def sync(self, timeline: Timeline) -> None:
        """Mount new turns, redraw changed ones, drop the ones the timeline forgot."""
        if not self.is_mounted:
            return  # not yet, or no longer, on screen
        at_end = self.scroll_offset.y >= self.max_scroll_y - 1
        kept = {
            t.number: t
            for t in timeline.turns
            if t.number > self._cleared_through and not t.is_empty
        }
        for number in [n for n, v in self._views.items() if kept.get(n) is not v.turn]:
            self._views.pop(number).remove()
        new_views: list[TurnView] = []
        for number, turn in kept.items():
            view = self._views.get(number)
            if view is None:
                view = self._views[number] = TurnView(turn)
                new_views.append(view)
            else:
                view.sync()
        if new_views:
            self.mount_all(new_views)
        self._hint.display = not self._views
        if at_end:
            self.call_after_refresh(self.scroll_end, animate=False)
