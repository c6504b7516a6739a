"""How the agent listens, switched while it runs: always, wake_word or push_to_talk."""

from __future__ import annotations

from voiceterm.config import LISTEN_MODES, Config
from voiceterm.errors import ConfigError
from voiceterm.pipeline.listen import Listener
from voiceterm.pipeline.loading import Engines
from voiceterm.pipeline.wake import ListenGate, load_detector


class ListenModes:
    """Steers the listener and the wake word gate; ``listen.mode`` follows the choice.

    Push-to-talk is held apart from ``listen.mode``: turned off, the agent listens
    as it did before (``always`` if it started in push-to-talk).
    """

    def __init__(self, config: Config) -> None:
        self._config = config
        self._engines: Engines | None = None
        self._listener: Listener | None = None
        self._gate: ListenGate | None = None

    def attach(self, engines: Engines, listener: Listener, gate: ListenGate) -> None:
        """Steer these from now on (the agent has wired its nodes)."""
        self._engines, self._listener, self._gate = engines, listener, gate

    def set_mode(self, mode: str) -> None:
        """Switch ``listen.mode``.

        Raises:
            ConfigError: not a mode.
            ModelError: wake_word, and the wake word model does not load.
        """
        if mode not in LISTEN_MODES:
            modes = ", ".join(LISTEN_MODES)
            raise ConfigError(f"listen.mode must be one of {modes}, not {mode!r}.")
        listener, gate = self._listener, self._gate
        if mode == "wake_word" and gate is not None and not gate.has_detector:
            detector = load_detector(self._config)  # a few milliseconds: a 50 KB model
            if self._engines is not None:
                self._engines.wake = detector
            gate.set_detector(detector, detector.model.phrase)
        if mode != "push_to_talk":
            self._config.listen.mode = mode
        if listener is not None:
            if listener.push_to_talk and mode != "push_to_talk":
                listener.set_talk_pressed(False)
            listener.push_to_talk = mode == "push_to_talk"
        if gate is not None:
            gate.set_mode(mode)

    def set_push_to_talk(self, enabled: bool) -> None:
        if self._listener is not None:
            self._listener.push_to_talk = enabled
        if self._gate is not None:
            mode = self._config.listen.mode
            before = "always" if mode == "push_to_talk" else mode
            self._gate.set_mode("push_to_talk" if enabled else before)

    def press(self, pressed: bool) -> None:
        """The push-to-talk key went down (``True``) or up."""
        if self._listener is not None:
            self._listener.set_talk_pressed(pressed)
