"""The same as ``python -m benchmarks.tui_idle`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.tui_idle", run_name="__main__", alter_sys=True)
