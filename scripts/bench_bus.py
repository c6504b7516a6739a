"""The same as ``python -m benchmarks.bus`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.bus", run_name="__main__", alter_sys=True)
