"""The same as ``python -m benchmarks.soak`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.soak", run_name="__main__", alter_sys=True)
