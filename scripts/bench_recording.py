"""The same as ``python -m benchmarks.recording`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.recording", run_name="__main__", alter_sys=True)
