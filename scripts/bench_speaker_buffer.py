"""The same as ``python -m benchmarks.speaker_buffer`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.speaker_buffer", run_name="__main__", alter_sys=True)
