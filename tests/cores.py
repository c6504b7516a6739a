"""A CoreShare that remembers which engines said they were computing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from voiceterm.engines.cores import CoreShare


class WatchedCores(CoreShare):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    @contextlib.contextmanager
    def computing(self, engine: str) -> Iterator[None]:
        with super().computing(engine):
            self.seen.append(engine)
            yield
