"""The same as ``python -m benchmarks.round_trip`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.round_trip", run_name="__main__", alter_sys=True)
