"""The same as ``python -m benchmarks.replay`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.replay", run_name="__main__", alter_sys=True)
