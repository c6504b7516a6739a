"""Playback shared by every sink: the sample-exact engine, its callbacks, a base sink.

- ``PlaybackEngine`` is the sample-exact core. A device callback (the speaker,
  ``voiceterm.audio.speaker.Player``) or a simulated clock (``voiceterm.audio.wavio.WavFileSink``)
  calls ``fill(out, t_dac)`` once per block with the monotonic time at which that
  block's first sample will reach the DAC. The engine copies queued chunks into the
  block and reports, through a ``post`` function, when a turn's first non-silent
  sample will be heard, when each chunk ends, and when the queue runs dry.
  ``stop_now()`` may be called from another thread: it drops the queue and the next
  ``fill`` writes silence.
- ``SinkCallbacks`` delivers those reports to the sink's ``on_started``,
  ``on_tag_done`` and ``on_idle`` on the asyncio loop.
- ``EngineSink`` is the base of the sinks an engine drives: the callbacks and what
  the engine answers (``busy``, ``position``, ``stop_now``, ``pause``, ``resume``).
- ``SilentSink`` stands in for a speaker that could not be opened.

Concurrency: ``fill`` runs on the device's thread and never blocks, takes no lock and
allocates nothing but a few small tuples. The control side (``enqueue``,
``stop_now``) runs on the event loop. They share a ``collections.deque`` (its
``append``/``popleft``/``clear`` are atomic under the GIL) and a stop generation
counter: each chunk remembers the generation it was queued in, and ``fill`` drops
any chunk older than the current generation. So a chunk queued *after* a stop is
never lost to that stop, whatever the interleaving.

Nothing here imports sounddevice: files, replays and the speaker all build on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from voiceterm.audio.frames import (
    SILENCE_THRESHOLD,
    IdleCallback,
    PlaybackPosition,
    PlaybackTag,
    StartedCallback,
    TagDoneCallback,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Array = npt.NDArray[np.int16]

log = logging.getLogger(__name__)

PostFn = Callable[[str, PlaybackTag | None, float], None]
"""``post(kind, tag, t)`` with kind ``"started"``, ``"tag_done"`` or ``"idle"``."""


@dataclass(slots=True, eq=False)
class _Chunk:
    samples: Int16Array
    tag: PlaybackTag
    first_loud: int  # index of the first non-silent sample, -1 if all silent
    generation: int
    pos: int = 0


def first_loud_sample(audio: Int16Array, threshold: int = SILENCE_THRESHOLD) -> int:
    """Index of the first sample louder than ``threshold``, or -1 if there is none."""
    import numpy as np

    # Compare both signs instead of np.abs: abs(-32768) overflows int16.
    loud = np.flatnonzero((audio > threshold) | (audio < -threshold))
    return int(loud[0]) if loud.size else -1


class PlaybackEngine:
    """Queue of tagged chunks at one sample rate, drained block by block by ``fill``.

    Args:
        sample_rate: rate of the samples handed to ``enqueue`` and written by ``fill``.
        post: called (on the filling thread) for every playback event; it must only
            hand the event over, e.g. with ``loop.call_soon_threadsafe``.
        history: how many recently written segments ``position()`` can look back on.
    """

    def __init__(self, sample_rate: int, post: PostFn, history: int = 1024) -> None:
        self.sample_rate = sample_rate
        self._post = post
        self._pending: deque[_Chunk] = deque()
        self._current: _Chunk | None = None
        self._generation = 0  # bumped by stop_now (control side)
        self._paused = False  # set by pause, cleared by resume and stop_now (control side)
        self._seen_generation = 0  # what fill last acted on (filling side)
        self._started_turn: int | None = None
        self._sounding = False
        self._last_sound_end = 0.0
        self._filling = False
        self._block_end = 0.0
        # (t_dac_start, tag, first sample index in the chunk, count, chunk length)
        self._segments: deque[tuple[float, PlaybackTag, int, int, int]] = deque(maxlen=history)
        self._tap: deque[tuple[float, Int16Array]] | None = None
        self.gaps = 0
        """Times a turn's sound resumed after the queue ran dry mid-turn (late TTS)."""
        self._dry_turn: int | None = None
        self._last_turn: int | None = None

    # --- control side (event loop) ---------------------------------------------

    def tap(self, max_blocks: int = 500) -> deque[tuple[float, Int16Array]]:
        """Start copying every block written, with its DAC time, into a bounded deque.

        The echo canceller's reference signal: exactly what the device plays,
        silence included, stamped with when it is heard. ``fill`` appends (the
        oldest block is dropped if nobody reads for ``max_blocks`` blocks);
        the reader pops from the left.
        """
        if self._tap is None:
            self._tap = deque(maxlen=max_blocks)
        return self._tap

    def enqueue(self, samples: Int16Array, tag: PlaybackTag) -> None:
        """Queue int16 mono ``samples`` (already at ``sample_rate``) after the rest."""
        if len(samples) == 0:
            return
        self._pending.append(_Chunk(samples, tag, first_loud_sample(samples), self._generation))

    def stop_now(self) -> float:
        """Drop all queued audio; the next block is silent.

        Returns:
            Monotonic time at which the last sample already handed to the device
            ends. If a block is being filled at this very moment, the end of that
            block (an upper bound, at most one block late).
        """
        self._generation += 1
        self._pending.clear()
        self._paused = False
        return self._sound_end_now()

    def pause(self) -> float:
        """Hold playback where it is: blocks are silent until ``resume`` or ``stop_now``.

        Returns:
            Monotonic time at which the sound ends (as for ``stop_now``).
        """
        self._paused = True
        return self._sound_end_now()

    def resume(self) -> None:
        """Continue a paused chunk from the sample where it was held."""
        self._paused = False

    def _sound_end_now(self) -> float:
        if self._filling:
            return self._block_end
        return self._last_sound_end

    def position(self, at: float | None = None) -> PlaybackPosition | None:
        """The chunk and sample being heard at monotonic time ``at`` (default: now)."""
        now = time.monotonic() if at is None else at
        for t_start, tag, first, count, total in reversed(tuple(self._segments)):
            if t_start <= now:
                offset = int((now - t_start) * self.sample_rate)
                if offset >= count:
                    return None  # the newest segment before `now` has ended: silence
                return PlaybackPosition(tag, first + offset, total, self.sample_rate)
        return None

    @property
    def busy(self) -> bool:
        """True while there is audio queued or being played."""
        return self._current is not None or bool(self._pending)

    @property
    def paused(self) -> bool:
        """True while playback is held (``pause``) and not yet resumed or stopped."""
        return self._paused

    @property
    def mid_sound(self) -> bool:
        """The last block written carried sound and more is queued: a gap now cuts it."""
        return self._sounding and self.busy

    @property
    def last_sound_end(self) -> float:
        """Monotonic time at which the last sample written so far ends."""
        return self._last_sound_end

    # --- filling side (device thread) ------------------------------------------

    def fill(self, out: Int16Array, t_dac: float) -> int:
        """Write the next ``len(out)`` samples into ``out``.

        Args:
            out: the device buffer (1-D int16 view), filled in place, padded with zeros.
            t_dac: monotonic time at which ``out[0]`` will be heard.

        Returns:
            How many samples came from queued audio (the rest is padding).
        """
        n = len(out)
        self._filling = True
        self._block_end = t_dac + n / self.sample_rate
        # Read once: a stop on the loop while this block fills counts from the next one.
        generation = self._generation
        self._forget_stopped(generation)
        if self._paused:
            # Held, not finished: no "idle", and the chunk keeps its position.
            out[:] = 0
            if self._tap is not None:
                self._tap.append((t_dac, out.copy()))
            self._filling = False
            return 0
        filled = self._copy_queued(out, t_dac, generation)
        if filled < n:
            out[filled:] = 0
        if self._tap is not None:
            self._tap.append((t_dac, out.copy()))  # one small block: the AEC's reference
        if filled < n:
            if self._sounding:
                self._sounding = False
                self._dry_turn = self._last_turn  # a later chunk of this turn comes late
                self._post("idle", None, self._last_sound_end)
        self._filling = False
        return filled

    def _forget_stopped(self, generation: int) -> None:
        """After a ``stop_now``: drop the chunk it cut, and the turn it started."""
        if generation != self._seen_generation:
            self._seen_generation = generation
            self._started_turn = None
            self._dry_turn = None
            if self._current is not None and self._current.generation < generation:
                self._current = None

    def _next_chunk(self, generation: int) -> _Chunk | None:
        """The chunk to play on, or None when the queue is dry."""
        chunk = self._current
        while chunk is None:
            try:
                chunk = self._pending.popleft()
            except IndexError:
                return None
            if chunk.generation < generation:
                chunk = None  # queued before a stop: dropped
                continue
            self._current = chunk
            if self._dry_turn == chunk.tag.turn_id:
                self.gaps += 1
            self._dry_turn = None
        return chunk

    def _copy_queued(self, out: Int16Array, t_dac: float, generation: int) -> int:
        """Copy queued chunks into ``out``, posting what starts and ends; how many samples."""
        n = len(out)
        rate = self.sample_rate
        filled = 0
        while filled < n:
            chunk = self._next_chunk(generation)
            if chunk is None:
                break
            count = min(n - filled, len(chunk.samples) - chunk.pos)
            out[filled : filled + count] = chunk.samples[chunk.pos : chunk.pos + count]
            t_segment = t_dac + filled / rate
            self._segments.append((t_segment, chunk.tag, chunk.pos, count, len(chunk.samples)))
            loud = chunk.first_loud
            if chunk.pos <= loud < chunk.pos + count and self._started_turn != chunk.tag.turn_id:
                self._started_turn = chunk.tag.turn_id
                self._post("started", chunk.tag, t_segment + (loud - chunk.pos) / rate)
            chunk.pos += count
            filled += count
            self._sounding = True
            self._last_sound_end = t_dac + filled / rate
            if chunk.pos >= len(chunk.samples):
                self._current = None
                self._last_turn = chunk.tag.turn_id
                self._post("tag_done", chunk.tag, self._last_sound_end)
        return filled


class PlaybackListeners(Protocol):
    """The callbacks a sink's users set (an ``AudioSink``'s), read as each report lands."""

    on_started: StartedCallback | None
    on_tag_done: TagDoneCallback | None
    on_idle: IdleCallback | None


class SinkCallbacks:
    """The delivery of a sink's playback reports to its callbacks on an asyncio loop.

    Shared by ``Player`` and ``WavFileSink``: the engine's ``post`` lands in
    ``post_threadsafe`` (or ``post_soon``), which schedules ``dispatch`` on the loop,
    which calls whatever callback ``sink`` has at that moment.
    """

    def __init__(self, sink: PlaybackListeners) -> None:
        self._sink = sink
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        return self._loop

    def post_threadsafe(self, kind: str, tag: PlaybackTag | None, t: float) -> None:
        loop = self._loop
        if loop is None:
            return
        # The loop may be closing while the device still calls back: drop the event.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self.dispatch, kind, tag, t)

    def post_soon(self, kind: str, tag: PlaybackTag | None, t: float) -> None:
        if self._loop is not None:
            self._loop.call_soon(self.dispatch, kind, tag, t)

    def dispatch(self, kind: str, tag: PlaybackTag | None, t: float) -> None:
        sink = self._sink
        try:
            if kind == "started" and sink.on_started is not None and tag is not None:
                sink.on_started(tag, t)
            elif kind == "tag_done" and sink.on_tag_done is not None and tag is not None:
                sink.on_tag_done(tag, t)
            elif kind == "idle" and sink.on_idle is not None:
                sink.on_idle(t)
        except Exception:  # a listener's bug must not kill playback
            log.exception("playback %s callback failed", kind)


class EngineSink:
    """The base of the sinks a ``PlaybackEngine`` drives: callbacks and the engine's answers.

    A subclass sets ``_engine`` (when it is made, or on ``start`` once the device's
    rate is known) and drives its ``fill``; its events reach ``on_started``,
    ``on_tag_done`` and ``on_idle`` through ``_callbacks``. Before there is an
    engine, nothing is queued and nothing plays.
    """

    def __init__(self) -> None:
        self.on_started: StartedCallback | None = None
        self.on_tag_done: TagDoneCallback | None = None
        self.on_idle: IdleCallback | None = None
        self._callbacks = SinkCallbacks(self)
        self._engine: PlaybackEngine | None = None

    @property
    def sample_rate(self) -> int:
        """The rate every chunk is resampled to and played at (0 before there is one)."""
        return self._engine.sample_rate if self._engine is not None else 0

    @property
    def busy(self) -> bool:
        """True while audio is queued or playing."""
        return self._engine is not None and self._engine.busy

    def stop_now(self) -> float:
        """Drop everything queued; silent within one block.

        Returns:
            Monotonic time at which the last sample already handed to the device ends
            (what is in the device's and the sound server's buffers still plays).
        """
        if self._engine is None:
            return time.monotonic()
        return self._engine.stop_now()

    def pause(self) -> float:
        """Hold playback (silent within one block); returns when the sound ends."""
        if self._engine is None:
            return time.monotonic()
        return self._engine.pause()

    def resume(self) -> None:
        """Continue paused playback from where it was held."""
        if self._engine is not None:
            self._engine.resume()

    def position(self, at: float | None = None) -> PlaybackPosition | None:
        """The chunk and sample heard at monotonic time ``at`` (default: now)."""
        return self._engine.position(at) if self._engine is not None else None

    def _require_engine(self) -> PlaybackEngine:
        if self._engine is None:
            raise RuntimeError(f"{type(self).__name__}.start() must be called first")
        return self._engine


class SilentSink:
    """Stands in for a speaker that could not be opened: every chunk "plays" at once.

    It reports playback like a real sink, so the conversation moves on exactly as
    it would with sound (the answer counts as delivered: it is on the screen).
    """

    def __init__(self) -> None:
        self.on_started: StartedCallback | None = None
        self.on_tag_done: TagDoneCallback | None = None
        self.on_idle: IdleCallback | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_turns: set[int] = set()

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()

    def enqueue(self, audio: Int16Array, sample_rate: int, tag: PlaybackTag) -> None:
        if self._loop is None:
            return
        now = time.monotonic()
        if tag.turn_id not in self._started_turns:
            self._started_turns.add(tag.turn_id)
            self._loop.call_soon(self._call, "on_started", tag, now)
        self._loop.call_soon(self._call, "on_tag_done", tag, now)
        self._loop.call_soon(self._call, "on_idle", None, now)

    def _call(self, name: str, tag: PlaybackTag | None, t: float) -> None:
        # The callback set when the event is delivered, as a device's sink does.
        if name == "on_idle":
            if self.on_idle is not None:
                self.on_idle(t)
            return
        callback = self.on_started if name == "on_started" else self.on_tag_done
        if callback is not None and tag is not None:
            callback(tag, t)

    def stop_now(self) -> float:
        return time.monotonic()

    def pause(self) -> float:
        return time.monotonic()

    def resume(self) -> None:
        pass

    def position(self, at: float | None = None) -> PlaybackPosition | None:
        return None

    def close(self) -> None:
        self._loop = None
