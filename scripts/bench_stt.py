"""The same as ``python -m benchmarks.stt`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.stt", run_name="__main__", alter_sys=True)
