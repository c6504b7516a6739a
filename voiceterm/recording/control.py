"""Recording a running agent: taps on its microphone, speaker reference and bus.

The taps are put in once, when the agent is made, and cost next to nothing while
no recording runs; ``start`` and ``stop`` may be called any number of times (the
TUI's record command). The microphone is tapped *before* echo cancellation: for
an ``EchoCancelledSource`` the tap sits on the microphone inside it, and on the
render reference it feeds the canceller, so both are taken exactly as the
canceller got them, block by block.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceterm import paths
from voiceterm.audio.abilities import taps_render
from voiceterm.audio.echo import REFERENCE_HELD_SAMPLES, StampAligned
from voiceterm.bus import Message
from voiceterm.events import AgentStoppedSpeaking
from voiceterm.recording.writer import SessionWriter

if TYPE_CHECKING:
    from voiceterm.pipeline.agent import VoiceAgent
    from voiceterm.pipeline.starting import StartingAgent

logger = logging.getLogger(__name__)


def new_session_folder(parent: Path | None = None) -> Path:
    """A new folder for this session's recording (under the state directory by default)."""
    if parent is None:
        parent = paths.sessions_dir()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = parent / stamp
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = parent / f"{stamp}-{suffix}"
    return folder


TALK_MAX_TURNS = 1_000_000
"""Turns the recording's Markdown talk keeps: all of them."""


class RecordingControl:
    """Start and stop recording an agent's session.

    Args:
        agent: the agent, before it starts (its source is tapped here).
    """

    def __init__(self, agent: VoiceAgent | StartingAgent) -> None:
        from voiceterm.timeline import Timeline

        self._agent = agent
        self.writer: SessionWriter | None = None
        self.on_change: Callable[[bool], None] | None = None
        """Called with the new state when recording starts or stops (the TUI's badge)."""
        self._timeline_cls = Timeline
        self._talk: Timeline | None = None
        self._echo_source: Any = None
        self._own_reference: Any = None
        self._reference = StampAligned(max_lead=REFERENCE_HELD_SAMPLES)
        self._silence: Any = ()
        self._tap_source(agent.source)
        agent.bus.tap(self._observe)

    @property
    def active(self) -> bool:
        return self.writer is not None

    @property
    def folder(self) -> Path | None:
        return self.writer.folder if self.writer is not None else None

    def start(self, folder: Path | None = None) -> Path:
        """Record from now on, into ``folder`` (a new one under the state dir by default).

        Raises:
            RecordingError: the folder cannot be made or is not empty.
        """
        if self.writer is not None:
            return self.writer.folder
        from voiceterm.recording.identity import models_of, settings_of, versions

        config = self._agent.config
        folder = folder if folder is not None else new_session_folder()
        meta = {
            "settings": settings_of(config),
            "models": models_of(config),
            "versions": versions(),
            "engines": self._agent.describe(),
            # Whether the microphone went through an echo canceller (file mode: none),
            # so that a replay does the same.
            "echo_canceller": (
                type(self._echo_source.canceller).__name__ if self._echo_source else None
            ),
            # Started mid-stream, the first block recorded may fall mid-way through a
            # voice-detector frame; a replay that frames differently hears other words.
            "vad_phase_samples": (
                self._agent.nodes.listener.frame_phase if self._agent.wired else 0
            ),
        }
        self.writer = SessionWriter(folder, meta)
        # Every turn of the session: the app's own timeline keeps only the newest.
        self._talk = self._timeline_cls(max_turns=TALK_MAX_TURNS)
        self._reference = StampAligned(max_lead=REFERENCE_HELD_SAMPLES)
        logger.info("recording the session into %s", folder)
        if self.on_change is not None:
            self.on_change(True)
        return folder

    def stop(self) -> Path | None:
        """Stop recording; returns the recording's folder (``None``: none was running)."""
        writer, self.writer = self.writer, None
        if writer is None:
            return None
        from voiceterm.timeline_export import to_markdown

        talk = self._talk
        self._talk = None
        markdown = to_markdown(talk.turns, clock_offset=talk.clock_offset) if talk else None
        writer.close(markdown)
        if self.on_change is not None:
            self.on_change(False)
        return writer.folder

    def toggle(self) -> Path | None:
        """Start when stopped, stop when started; returns the folder."""
        return self.stop() if self.active else self.start()

    # --- taps ------------------------------------------------------------------------------

    def _observe(self, message: Message) -> None:
        writer = self.writer
        if writer is None:
            return
        current = self._agent.timeline.current
        writer.event(message, current.number if current is not None else 0)
        talk = self._talk
        if talk is not None:
            talk.record(message)
            if isinstance(message.event, AgentStoppedSpeaking):
                from voiceterm.timeline_export import to_markdown

                writer.talk(to_markdown(talk.turns, clock_offset=talk.clock_offset))

    def _tap_source(self, source: Any) -> None:
        # The taps replace ``frames`` on the instance (and ``until`` on the echo
        # canceller's reference, once it exists) rather than wrapping the objects:
        # everything else the agent reads from its source stays exactly as it was.
        microphone = source
        if hasattr(source, "canceller") and hasattr(source, "source"):
            self._echo_source = source
            microphone = source.source
        frames = microphone.frames

        async def tapped() -> AsyncIterator[Any]:
            pending: Any = None
            try:
                async for frame in frames():
                    if self.writer is not None:
                        self._tap_reference()
                        pending = frame
                    yield frame
                    # Back here the canceller has taken this block's reference.
                    if pending is not None:
                        self._record_block(pending)
                        pending = None
            finally:
                if pending is not None:
                    self._record_block(pending)

        try:
            microphone.frames = tapped
        except AttributeError:  # a source with __slots__ (a test's): its sound is not recorded
            logger.info("recording: %s cannot be tapped", type(microphone).__name__)

    def _tap_reference(self) -> None:
        echo = self._echo_source
        if echo is not None:
            reference = echo.reference
            if reference is None or getattr(reference, "recorded_by", None) is self:
                return
            until = reference.until

            def tapped_until(t: float) -> list[Any]:
                blocks = until(t)
                if self.writer is not None:
                    self._add_reference(blocks)
                return list(blocks)

            reference.until = tapped_until
            reference.recorded_by = self
        elif self._own_reference is None:
            # No canceller (echo off): read the speaker's render tap ourselves.
            sink = self._agent.sink
            if not taps_render(sink):
                return
            from voiceterm.audio.echo import RenderReference

            try:
                self._own_reference = RenderReference(sink.render_tap(), sink.sample_rate)
            except RuntimeError:
                return

    def _add_reference(self, blocks: list[Any]) -> None:
        self._reference.add(blocks)

    def _record_block(self, frame: Any) -> None:
        import numpy as np

        writer = self.writer
        if writer is None:
            return
        if self._own_reference is not None:
            self._add_reference(self._own_reference.until(frame.t_end))
        n = len(frame.samples)
        if self._reference.empty:  # the speaker is silent (or asleep): one shared block
            if len(self._silence) != n:
                self._silence = np.zeros(n, dtype=np.int16)
            # A copy: the writer keeps blocks for half a second, a source may reuse its own.
            writer.audio(frame.samples.copy(), self._silence, frame.t_start)
            return
        writer.audio(frame.samples.copy(), self._reference.take(n), frame.t_start)
