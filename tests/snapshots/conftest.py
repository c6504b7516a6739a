"""Snapshots show wall-clock times: draw them in UTC whatever the machine's zone."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def utc(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    # The app logs to the user's log folder: keep that in a temporary one.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
