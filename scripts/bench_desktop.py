"""The same as ``python -m benchmarks.desktop`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.desktop", run_name="__main__", alter_sys=True)
