"""Reusable streaming patterns (pure Python; part of the streaming core).

Each module has one job:

- :mod:`~voiceterm.patterns.streams`: close abandoned streams, merge streams.
- :mod:`~voiceterm.patterns.sentences`: cut streamed text at sentence boundaries.
"""
