"""The same as ``python -m benchmarks.tts`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.tts", run_name="__main__", alter_sys=True)
