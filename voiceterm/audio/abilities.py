"""Optional abilities of audio sources and sinks, found by their members.

:class:`~voiceterm.audio.frames.AudioSource` and
:class:`~voiceterm.audio.frames.AudioSink` are what every source and sink does.
A live device does more: it says when it is lost and back, counts the audio it
dropped, sleeps while nobody talks. The pipeline asks for these with the
TypeGuards below, so that a file or a test fake need not pretend to have them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeGuard

from voiceterm.audio.frames import AudioSource
from voiceterm.errors import AudioDeviceError

if TYPE_CHECKING:
    from voiceterm.audio.echo import RenderTapped


class ReportsLoss(Protocol):
    """A device that says when it stops mid-session, and when it is back."""

    on_error: Callable[[AudioDeviceError], None] | None
    on_restored: Callable[[], None] | None


class CancelsEcho(Protocol):
    """A source that removes the speaker's echo itself (nothing else need gate it)."""

    @property
    def source(self) -> AudioSource:
        """The microphone it cleans."""
        ...


class Relaxes(Protocol):
    """A source that may wake its reader less often while nobody talks."""

    relaxed: bool


def reports_loss(device: object) -> TypeGuard[ReportsLoss]:
    return hasattr(device, "on_error") and hasattr(device, "on_restored")


def cancels_echo(source: object) -> TypeGuard[CancelsEcho]:
    return hasattr(source, "canceller") and hasattr(source, "source")


def relaxes(source: object) -> TypeGuard[Relaxes]:
    return hasattr(source, "relaxed")


def taps_render(sink: object) -> TypeGuard[RenderTapped]:
    """Whether ``sink`` shares what it plays (the echo canceller's reference)."""
    return callable(getattr(sink, "render_tap", None)) and hasattr(sink, "sample_rate")


def is_realtime(source: object) -> bool:
    """Whether frames come as fast as they are spoken (a file read at full speed: not)."""
    return bool(getattr(source, "realtime", True))


def glitch_counts(sink: object, source: object) -> tuple[int, int]:
    """Blocks the speaker played late (underflows) and the microphone dropped (overflows)."""
    return int(getattr(sink, "underflows", 0)), int(getattr(source, "overflows", 0))
