"""Is the user done? The end-of-turn decision, from the pause's signals.

- :mod:`.transcript`: what the words say (punctuation, a word that cannot end a sentence);
- :mod:`.policy`: the hand-set rule (``turn.detector = "smart_turn"``): the Smart Turn
  model asked at pauses, with the words;
- :mod:`.learned`: the learned decision (``turn.detector = "learned"``, the default):
  logistic models over the voice, the words and the LLM's P(end of message), with
  a bar for each check.

The listener's :mod:`~voiceterm.pipeline.listening.turn_judge` asks them at each pause.
"""
