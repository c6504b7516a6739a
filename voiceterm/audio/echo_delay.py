"""Where the speaker's sound really reaches the microphone, found in the sound itself.

The echo canceller is handed the speaker's sound on the device's own time stamps
(``RenderReference``), and it can only find an echo that comes *after* its
reference. Sound servers do not always report their latency truly: on PulseAudio
and PipeWire desktops the echo was measured arriving 150-470 ms *before* the
stamps said the sound was played, and the canceller then removed next to
nothing (docs/BENCHMARKS.md, "Echo on desktop sound servers").

``EchoDelayEstimator`` is given the microphone and the reference laid out on the
same time stamps, frame by frame, and now and then cross-correlates the two while
the speaker plays. One clear estimate, or two in a row that agree, give the echo's
lag: negative when the echo comes before its stamps.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Array = npt.NDArray[np.int16]
    FloatArray = npt.NDArray[np.float64]

_DECIMATE = 4  # correlate at 4 kHz: speech below 2 kHz places the echo to 0.25 ms


class EchoDelayEstimator:
    """Finds the lag of the echo behind its reference (seconds, negative: earlier).

    Args:
        rate: sample rate of both inputs.
        window_s: length of reference sound compared each time.
        earliest_s: the earliest lag looked for (the echo that far before its stamps).
        latest_s: the latest lag looked for.
        every_s: how often, in audio, an estimate is made while the speaker plays.
        min_correlation: normalised correlation an estimate needs to count.
        sure_correlation: from here one estimate is enough.
        agree_s: how close two estimates in a row must be to confirm the lag.
    """

    def __init__(
        self,
        rate: int,
        *,
        window_s: float = 0.4,
        earliest_s: float = -1.0,
        latest_s: float = 0.2,
        every_s: float = 0.2,
        min_correlation: float = 0.5,
        sure_correlation: float = 0.8,
        agree_s: float = 0.01,
    ) -> None:
        if earliest_s > latest_s:
            raise ValueError("earliest_s must not be later than latest_s")
        self._rate = rate // _DECIMATE
        self._window = round(window_s * self._rate)
        self._earliest = round(earliest_s * self._rate)
        self._latest = round(latest_s * self._rate)
        self._keep = self._window + self._latest - self._earliest
        self._every = round(every_s * self._rate)
        self._min_correlation = min_correlation
        self._sure_correlation = sure_correlation
        self._agree = agree_s
        self._mic: deque[FloatArray] = deque()
        self._reference: deque[FloatArray] = deque()
        self._kept = 0
        self._since_estimate = 0
        self._candidate: float | None = None
        self.correlation = 0.0
        """The normalised correlation of the last estimate."""

    def push(self, mic: Int16Array, reference: Int16Array) -> float | None:
        """Add one frame of each (the same length, the same stamps); a confirmed lag or None."""
        mic_low = _decimated(mic)
        self._mic.append(mic_low)
        self._reference.append(_decimated(reference))
        self._kept += len(mic_low)
        while self._kept - len(self._mic[0]) >= self._keep:
            self._kept -= len(self._mic.popleft())
            self._reference.popleft()
        self._since_estimate += len(mic_low)
        if self._since_estimate < self._every or self._kept < self._keep:
            return None
        self._since_estimate = 0
        lag = self._estimate()
        if lag is None:
            self._candidate = None
            return None
        confirmed = self.correlation >= self._sure_correlation or (
            self._candidate is not None and abs(lag - self._candidate) <= self._agree
        )
        self._candidate = lag
        return lag if confirmed else None

    def _estimate(self) -> float | None:
        import numpy as np

        mic = np.concatenate(self._mic)[-self._keep :]
        reference = np.concatenate(self._reference)[-self._keep :]
        # The reference window ends where the latest lag still has its echo in ``mic``.
        start = len(reference) - self._latest - self._window
        window = reference[start : start + self._window]
        window_energy = float(np.dot(window, window))
        if window_energy < self._window * _QUIET_POWER:
            return None  # the speaker is (nearly) silent: nothing to find
        searched = mic[start + self._earliest : start + self._latest + self._window]
        lags = len(searched) - self._window + 1
        size = 1 << int(np.ceil(np.log2(len(searched) + self._window)))
        spectrum = np.fft.rfft(searched, size) * np.conj(np.fft.rfft(window, size))
        products = np.fft.irfft(spectrum, size)[:lags]
        energy = np.concatenate(([0.0], np.cumsum(searched * searched)))
        mic_energy = energy[self._window : self._window + lags] - energy[:lags]
        correlation = np.abs(products) / np.sqrt(window_energy * np.maximum(mic_energy, 1e-9))
        best = int(np.argmax(correlation))
        self.correlation = float(correlation[best])
        if self.correlation < self._min_correlation:
            return None
        return (best + self._earliest) / self._rate


_QUIET_POWER = 200.0**2
"""Mean power below which the speaker counts as silent: about -44 dBFS."""


def _decimated(samples: Int16Array) -> FloatArray:
    import numpy as np

    usable = len(samples) - len(samples) % _DECIMATE
    blocks = np.asarray(samples[:usable], dtype=np.float64).reshape(-1, _DECIMATE)
    means: FloatArray = blocks.mean(axis=1)
    return means
