"""``python -m benchmarks.live``: see the package's docstring."""

import sys

from benchmarks.live.cli import main

sys.exit(main())
