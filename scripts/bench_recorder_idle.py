"""The same as ``python -m benchmarks.recorder_idle`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.recorder_idle", run_name="__main__", alter_sys=True)
