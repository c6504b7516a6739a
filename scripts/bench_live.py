"""The same as ``python -m benchmarks.live`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.live", run_name="__main__", alter_sys=True)
