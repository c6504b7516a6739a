"""The same as ``python -m benchmarks.chat_server`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.chat_server", run_name="__main__", alter_sys=True)
