"""The same as ``python -m benchmarks.turn_kernels``."""

import runpy

runpy.run_module("benchmarks.turn_kernels", run_name="__main__", alter_sys=True)
