"""The listener's parts, each fed every microphone frame.

:class:`~voiceterm.pipeline.listen.Listener` composes them:

* :mod:`.level` - :class:`LevelMeter`: the microphone level for the meters.
* :mod:`.echo_gate` - :class:`EchoGate`: half duplex (the microphone muted while the
  agent speaks) and whether the utterance in progress may be the agent's own echo.
* :mod:`.barge_in` - :class:`BargeIn`: hold the answer at speech over it, then
  confirm (cut the agent off) or let go (it plays on).
* :mod:`.pauses` - :class:`PauseAnnouncer`: a pause in the user's speech, announced
  once so that Whisper and the LLM can start early.
* :mod:`.turn_judge` - :class:`TurnJudge`: with an end-of-turn model, whether a
  pause ends the turn; and push-to-talk, where the key decides.
* :mod:`.settings` - :class:`ListenerSettings` and :class:`TurnJudging`: what the
  listener is told; :mod:`.activity` - what the agent is doing; :mod:`.seams` - what
  the parts read of the voice detector, and how they publish.
"""
