"""The live tests' own ear (``benchmarks.rig.RigIO``): when it misses audio, it says so.

The live tests judge the app by what the rig recorded. A recorder stream that dies
(an xrun the pulse plugin does not survive, on a loaded machine) must come back at
once, and the silence put in its gap must never pass for the app's silence.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from benchmarks.rig import LostAudio, RigIO
from tests.audio.conftest import Rig

pytestmark = pytest.mark.audio


def tone(seconds: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_a_recorder_stream_that_dies_comes_back_and_its_gap_is_never_heard(rig: Rig) -> None:
    with RigIO(rig.env, sink="vt_mic", source="vt_mic.monitor") as io:
        died = time.monotonic()
        io._in.abort()  # what an xrun the pulse plugin does not survive leaves
        time.sleep(0.5)  # no call into the recorder: only its keeper can bring it back
        assert io.restarts == 1, "the dead recording stream was not reopened"

        playback = io.play(tone(0.4), 16000)
        started = io.started_at(playback)
        playback.done.wait(5)
        after = io.heard(started, started + 0.3)
        assert after.loud_seconds() > 0.25, "the reopened stream does not record"

        with pytest.raises(LostAudio, match="lost audio"):
            io.heard(died - 0.05, died + 0.2)
