"""The same as ``python -m benchmarks.speaker_wake`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.speaker_wake", run_name="__main__", alter_sys=True)
