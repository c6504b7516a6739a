"""A turn as a waterfall: one lane per stage on one time axis, each chunk a bar.

Time zero is the end of the user's speech (``Turn.anchor``). Neighbouring chunks
of a lane alternate two shades so their edges show even when they touch. A
chunk is selected with the arrow keys or the mouse; the widget then posts
:class:`Waterfall.ChunkSelected`. ``+``/``-`` zoom around the selection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from voiceterm.timeline import LANE_TITLES, Turn

LABEL_WIDTH = 12
MARKS_LANE = "marks"
_AXIS_ROWS = 2

LANE_COLORS: dict[str, tuple[str, str]] = {
    "vad": ("cyan", "dark_cyan"),
    "stt": ("bright_blue", "blue"),
    "llm": ("bright_magenta", "magenta"),
    "sentence": ("bright_yellow", "yellow"),
    "tts": ("bright_green", "green"),
    "playback": ("deep_sky_blue1", "dodger_blue3"),
    "ahead": ("orchid", "dark_magenta"),
    "wake": ("gold1", "gold3"),
    MARKS_LANE: ("bright_white", "grey70"),
}
_OTHER_COLORS = ("orange1", "dark_orange3")
_SELECTED = Style(color="black", bgcolor="bright_white", bold=True)
_BARGE_IN_MARKS = frozenset({"barge_in_onset", "playback_stopped"})
_NICE_STEPS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(slots=True, frozen=True)
class Chunk:
    """One selectable item of the waterfall: a span, or a mark (start == end)."""

    lane: str
    start: float
    end: float
    content: str
    is_mark: bool = False
    derived: bool = False

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def chunk_rows(turn: Turn) -> list[tuple[str, list[Chunk]]]:
    """The waterfall's rows: each lane's chunks in start order, then the marks."""
    rows: list[tuple[str, list[Chunk]]] = []
    for lane in turn.lanes():
        spans = turn.lane_spans(lane)
        rows.append(
            (lane, [Chunk(lane, s.start, s.end, s.content, derived=s.derived) for s in spans])
        )
    marks = sorted(turn.marks.items(), key=lambda item: item[1])
    rows.append(
        (
            MARKS_LANE,
            [Chunk(MARKS_LANE, at, at, _mark_text(turn, name), True) for name, at in marks],
        )
    )
    return rows


def _mark_text(turn: Turn, name: str) -> str:
    # The wake word's mark says how sure the model was.
    return f"{name}: {turn.wake}" if name == "wake_word" and turn.wake else name


def is_near_miss(chunk: Chunk) -> bool:
    """A wake word score that did not wake: drawn faintly."""
    return chunk.lane == "wake" and chunk.content.startswith("near miss")


def _tick_label(seconds: float) -> str:
    if abs(seconds) < 1e-9:
        return "0"
    if abs(seconds) < 1:
        return f"{seconds * 1000:+.0f}ms"
    return f"{seconds:+g}s"


class Waterfall(Widget, can_focus=True):
    """The chunk waterfall of one turn."""

    BINDINGS = [
        Binding("left", "move(0, -1)", "Prev chunk", show=False),
        Binding("right", "move(0, 1)", "Next chunk", show=False),
        Binding("up", "move(-1, 0)", "Lane up", show=False),
        Binding("down", "move(1, 0)", "Lane down", show=False),
        Binding("home", "edge(0)", "First chunk", show=False),
        Binding("end", "edge(-1)", "Last chunk", show=False),
        Binding("plus,equals_sign", "zoom(2)", "Zoom in"),
        Binding("minus", "zoom(0.5)", "Zoom out"),
    ]

    class ChunkSelected(Message):
        """A chunk (or mark) was selected."""

        def __init__(self, waterfall: Waterfall, turn: Turn, chunk: Chunk) -> None:
            super().__init__()
            self.waterfall = waterfall
            self.turn = turn
            self.chunk = chunk

        @property
        def control(self) -> Waterfall:
            return self.waterfall

    zoom: reactive[float] = reactive(1.0)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.turn: Turn | None = None
        self.rows: list[tuple[str, list[Chunk]]] = []
        self.selection: tuple[int, int] | None = None
        self._revision = -1

    # --- data ----------------------------------------------------------------------

    def show_turn(self, turn: Turn | None) -> None:
        """Draw ``turn`` (keeping the selection if it is the same turn, grown)."""
        same = turn is not None and turn is self.turn
        if same and turn is not None and turn.revision == self._revision:
            return
        self.turn = turn
        self._revision = turn.revision if turn is not None else -1
        self.rows = chunk_rows(turn) if turn is not None else []
        if not same:
            self.zoom = 1.0
            self.selection = None
            first = next((i for i, (_, chunks) in enumerate(self.rows) if chunks), None)
            if first is not None:
                self._select(first, 0)
        elif self.selection is not None:
            row, index = self.selection
            chunks = self.rows[row][1] if row < len(self.rows) else []
            self.selection = (row, min(index, len(chunks) - 1)) if chunks else None
        self.refresh(layout=True)

    @property
    def selected(self) -> Chunk | None:
        if self.selection is None:
            return None
        row, index = self.selection
        return self.rows[row][1][index]

    def _select(self, row: int, index: int) -> None:
        self.selection = (row, index)
        self.refresh()
        if self.turn is not None:
            self.post_message(self.ChunkSelected(self, self.turn, self.rows[row][1][index]))

    # --- keys and mouse --------------------------------------------------------------

    def action_move(self, rows: int, chunks: int) -> None:
        if not any(c for _, c in self.rows):
            return
        if self.selection is None:
            first = next(i for i, (_, c) in enumerate(self.rows) if c)
            self._select(first, 0)
            return
        row, index = self.selection
        if chunks:
            count = len(self.rows[row][1])
            self._select(row, max(0, min(count - 1, index + chunks)))
            return
        time_at = self.rows[row][1][index].start
        candidate = row + rows
        while 0 <= candidate < len(self.rows):
            lane_chunks = self.rows[candidate][1]
            if lane_chunks:
                nearest = min(
                    range(len(lane_chunks)), key=lambda i: abs(lane_chunks[i].start - time_at)
                )
                self._select(candidate, nearest)
                return
            candidate += rows

    def action_edge(self, which: int) -> None:
        if self.selection is None:
            self.action_move(0, 0)
            return
        row, _ = self.selection
        count = len(self.rows[row][1])
        self._select(row, 0 if which == 0 else count - 1)

    def watch_zoom(self) -> None:
        self.refresh()

    async def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self.turn is None:
            return
        row = offset.y - _AXIS_ROWS
        if not 0 <= row < len(self.rows):
            return
        chunks = self.rows[row][1]
        if not chunks:
            return
        low, per_col, _ = self._window(self.size.width)
        t = low + (offset.x - LABEL_WIDTH + 0.5) * per_col
        inside = [i for i, c in enumerate(chunks) if c.start - per_col <= t <= c.end + per_col]
        pool = inside or range(len(chunks))
        nearest = min(pool, key=lambda i: abs((chunks[i].start + chunks[i].end) / 2 - t))
        self.focus()
        self._select(row, nearest)

    # --- drawing -------------------------------------------------------------------------

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return _AXIS_ROWS + max(len(self.rows), 1)

    def _window(self, width: int) -> tuple[float, float, int]:
        """(first time shown, seconds per column, columns) for the current zoom.

        Zoom 1 frames the part that decides latency: from the first chunk to the
        end of the first played piece (or of the last non-playback chunk, if that
        is later). A long answer's playback would otherwise squash the tokens
        into a few columns. Zooming out shows the whole turn.
        """
        columns = max(10, width - LABEL_WIDTH - 1)
        spans = [c for _, chunks in self.rows for c in chunks]
        if self.turn is None or not spans:
            return 0.0, 0.1, columns
        low = self._low(spans)
        full = max(max(c.end for c in spans) - low, 0.1) * 1.02
        visible = min(full, self._focus_length(spans, low) * 1.05) / self.zoom
        visible = min(visible, full)
        selected = self.selected
        centre = (selected.start + selected.end) / 2 if selected else low + visible / 2
        start = min(max(low, centre - visible / 2), low + full - visible)
        return start, visible / columns, columns

    def _low(self, spans: list[Chunk]) -> float:
        """The earliest time drawn: the first chunk, or time zero if that is earlier."""
        low = min(c.start for c in spans)
        return min(low, self.turn.anchor) if self.turn is not None else low

    @staticmethod
    def _focus_length(spans: list[Chunk], low: float) -> float:
        playback = sorted((c for c in spans if c.lane == "playback"), key=lambda c: c.start)
        if not playback:
            return max(max(c.end for c in spans) - low, 0.1)
        ends = [c.end for c in spans if c.lane not in ("playback", MARKS_LANE)]
        ends.append(playback[0].end)
        # A barge-in is part of the story, however late in the answer it came.
        ends += [c.end for c in spans if c.is_mark and c.content in _BARGE_IN_MARKS]
        return max(max(ends) - low, 0.1)

    def action_zoom(self, factor: float) -> None:
        # Zooming out stops once the whole turn is on screen.
        spans = [c for _, chunks in self.rows for c in chunks]
        smallest = 1.0
        if spans:
            low = self._low(spans)
            full = max(max(c.end for c in spans) - low, 0.1) * 1.02
            smallest = min(1.0, self._focus_length(spans, low) * 1.05 / full)
        self.zoom = max(smallest, min(64.0, self.zoom * factor))

    def render(self) -> Text:
        turn = self.turn
        if turn is None:
            return Text("No turn yet: speak or type a message first.", style="dim")
        low, per_col, columns = self._window(self.size.width)
        lines = self._axis(turn.anchor, low, per_col, columns)
        selected = self.selection
        for row_index, (lane, chunks) in enumerate(self.rows):
            line = Text(LANE_TITLES.get(lane, lane)[: LABEL_WIDTH - 1].ljust(LABEL_WIDTH), "dim")
            cells: list[tuple[str, Style | str]] = [(" ", "")] * columns
            bright, dark = LANE_COLORS.get(lane, _OTHER_COLORS)
            for index, chunk in enumerate(chunks):
                first = math.floor((chunk.start - low) / per_col)
                last = max(first + 1, math.ceil((chunk.end - low) / per_col))
                if last <= 0 or first >= columns:
                    continue
                style: Style | str = bright if index % 2 == 0 else dark
                if selected == (row_index, index):
                    style = _SELECTED
                glyph = "▼" if chunk.is_mark else "█"
                if chunk.derived:
                    glyph = "▒"
                if is_near_miss(chunk):
                    glyph, style = "░", "grey42" if style != _SELECTED else style
                for col in range(max(first, 0), min(last, columns)):
                    if selected == (row_index, index) or cells[col][0] == " ":
                        cells[col] = (glyph, style)
                    elif chunk.is_mark:
                        cells[col] = ("◆", style)  # two marks share a column
            for glyph, style in cells:
                line.append(glyph, style)
            lines.append(line)
        return Text("\n").join(lines)

    @staticmethod
    def _axis(anchor: float, low: float, per_col: float, columns: int) -> list[Text]:
        span = per_col * columns
        step = next((s for s in _NICE_STEPS if s / per_col >= 10), _NICE_STEPS[-1])
        if span / step > 12:
            step = next((s for s in _NICE_STEPS if span / s <= 12), _NICE_STEPS[-1])
        labels = [" "] * columns
        ruler = ["─"] * columns
        k = math.ceil((low - anchor) / step)
        while True:
            t = anchor + k * step
            col = round((t - low) / per_col)
            if col >= columns:
                break
            if col >= 0:
                ruler[col] = "┼" if k else "╋"
                label = _tick_label(k * step)
                begin = max(0, min(col - len(label) // 2, columns - len(label)))
                if all(c == " " for c in labels[max(0, begin - 1) : begin + len(label) + 1]):
                    labels[begin : begin + len(label)] = list(label)
            k += 1
        head = Text(" " * LABEL_WIDTH + "".join(labels), "dim")
        ruler_line = Text("time".ljust(LABEL_WIDTH), "dim")
        ruler_line.append("".join(ruler), "dim")
        return [head, ruler_line]
