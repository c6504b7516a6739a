"""The same as ``python -m benchmarks.wake`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.wake", run_name="__main__", alter_sys=True)
