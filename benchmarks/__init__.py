"""voiceterm's benchmarks: scripts that measure and print a report, run as modules.

Run one from the repo root, e.g. ``.venv/bin/python -m benchmarks.voice --help``
(``scripts/bench_<name>.py`` runs the same). Besides one module per benchmark:

- :mod:`benchmarks.stats`: the one percentile every report uses;
- :mod:`benchmarks.corpus`: the speech corpus (real recordings, espeak-ng voices);
- :mod:`benchmarks.rig`: the real app and PortAudio I/O on the PulseAudio rig;
- :mod:`benchmarks.load`: busy cores beside a measurement;
- :mod:`benchmarks.turn_clips`, :mod:`benchmarks.wake_speech`, :mod:`benchmarks.conversation`,
  :mod:`benchmarks.llm_server`, :mod:`benchmarks.memory`, :mod:`benchmarks.fitting`: what
  benchmarks, fitting scripts and tests share.

The tests import these helpers too; nothing here imports from ``tests``.
"""
