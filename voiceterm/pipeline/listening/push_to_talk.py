"""Push-to-talk: while the key is up the microphone is ignored; letting go ends the turn."""

from __future__ import annotations


class PushToTalk:
    """The key's state; ``enabled`` follows ``listen.mode`` (the agent sets it)."""

    def __init__(self) -> None:
        self.enabled = False
        self._pressed = False

    def mutes(self) -> bool:
        """Whether the microphone is ignored now (push-to-talk, the key up)."""
        return self.enabled and not self._pressed

    def press(self, pressed: bool) -> bool:
        """The key went down or up; True when letting go ends the utterance in progress."""
        was_pressed, self._pressed = self._pressed, pressed
        return was_pressed and not pressed and self.enabled
