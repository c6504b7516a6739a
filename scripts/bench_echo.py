"""The same as ``python -m benchmarks.echo`` (kept: the docs and CI name this path)."""

import runpy

runpy.run_module("benchmarks.echo", run_name="__main__", alter_sys=True)
