"""The same as ``python -m benchmarks.llm`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.llm", run_name="__main__", alter_sys=True)
