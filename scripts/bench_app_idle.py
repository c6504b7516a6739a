"""The same as ``python -m benchmarks.app_idle`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.app_idle", run_name="__main__", alter_sys=True)
