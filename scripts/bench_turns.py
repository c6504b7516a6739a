"""The same as ``python -m benchmarks.turns`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.turns", run_name="__main__", alter_sys=True)
