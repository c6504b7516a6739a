"""The same as ``python -m benchmarks.words_end`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.words_end", run_name="__main__", alter_sys=True)
