"""The same as ``python -m benchmarks.voice`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.voice", run_name="__main__", alter_sys=True)
