"""End of turn: has the user finished? Smart Turn v3.2 reads it from the voice.

Silence says a person stopped; it does not say they are done. People pause
mid-sentence to think, and Whisper puts a full stop at such a pause. Smart Turn
(Pipecat's audio model, BSD-2, an 8.7 MB int8 ONNX file shipped inside the
``pipecat-ai`` wheel) hears the prosody of the end of the turn (the pitch and
rhythm of "...at seven tonight." against "...a table, um") and returns the
probability that the turn is complete.

Its input is the last 8 s of the turn (the whole turn, not only the last VAD
segment), zero-padded at the front, as 80 Whisper log-mel bins over 800 frames
of 10 ms, computed after normalising the waveform to zero mean and unit
variance. :func:`log_mel` computes them with numpy alone;
``tests/integration/test_turn.py`` checks them and the probabilities against
Pipecat's own feature code on the same audio.

One check costs a few tens of milliseconds (``scripts/bench_turns.py`` prints
it, idle and beside Whisper). It runs only at a pause, and first: the answer can start
only once it is known, so it holds the cores (:meth:`CoreShare.first`: the LLM's
next step and a new transcript wait for it) and runs on every core that other
programs leave free (a second session), else on one thread.

``onnxruntime`` and ``numpy`` are imported when the model is loaded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceterm.errors import EngineError, ModelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from voiceterm.engines.cores import CoreShare

SAMPLE_RATE = 16000
WINDOW_S = 8
"""Smart Turn hears the last this-many seconds of the turn."""
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_S

_N_FFT = 400  # 25 ms windows ...
_HOP = 160  # ... every 10 ms
_N_MELS = 80
_MEL_FLOOR = 1e-10
_VARIANCE_EPS = 1e-7


def last_window(audio: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """The last :data:`WINDOW_S` seconds of ``audio`` as float32 in [-1, 1], zero-padded in front.

    Args:
        audio: 16 kHz mono samples, int16 or float in [-1, 1].
    """
    import numpy as np

    samples = np.asarray(audio).reshape(-1)
    wave = (
        samples.astype(np.float32) / 32768.0
        if samples.dtype == np.int16
        else samples.astype(np.float32)
    )
    wave = wave[-WINDOW_SAMPLES:]
    if wave.size < WINDOW_SAMPLES:
        wave = np.concatenate([np.zeros(WINDOW_SAMPLES - wave.size, dtype=np.float32), wave])
    return wave


def log_mel(window: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Whisper's log-mel features of an 8 s window: shape (80, 800), roughly in [-1, 1].

    The waveform is normalised to zero mean and unit variance first (as Hugging
    Face's ``WhisperFeatureExtractor(do_normalize=True)``, which Smart Turn was
    trained with), then framed with a periodic Hann window (reflect padding at
    both ends), projected on 80 Slaney mel bands, clipped 8 decades below the
    peak and scaled as Whisper does.
    """
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    if window.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples, got shape {window.shape}")
    wave = (window - window.mean()) / np.sqrt(window.var() + _VARIANCE_EPS)
    padded = np.pad(wave.astype(np.float64), _N_FFT // 2, mode="reflect")
    frames = sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=-1)) ** 2  # (frames, bins)
    mel = np.log10(np.maximum(_MEL_FLOOR, power @ _mel_filters()))[:-1].T  # (mels, frames)
    mel = np.maximum(mel, mel.max() - 8.0)
    scaled: npt.NDArray[np.float32] = ((mel + 4.0) / 4.0).astype(np.float32)
    return scaled


def _hann() -> npt.NDArray[np.float64]:
    import numpy as np

    return np.hanning(_N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The Slaney mel scale: linear below 1 kHz, logarithmic above."""
    import numpy as np

    log_step = 27.0 / math.log(6.4)
    above = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * log_step
    return np.where(hz < 1000.0, 3.0 * hz / 200.0, above)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    import numpy as np

    log_step = math.log(6.4) / 27.0
    return np.where(mel < 15.0, 200.0 * mel / 3.0, 1000.0 * np.exp(log_step * (mel - 15.0)))


def _mel_filters() -> npt.NDArray[np.float64]:
    """Slaney-normalised triangular filters, shape (201 FFT bins, 80 mel bands)."""
    import numpy as np

    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(np.array(SAMPLE_RATE / 2))), _N_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE // 2, _N_FFT // 2 + 1)
    widths = np.diff(edges)
    slopes = edges[None, :] - bins[:, None]
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


class SmartTurn:
    """The Smart Turn v3 model: audio of a turn in, probability that it is complete out.

    Args:
        model_path: the ``.onnx`` file (see :func:`voiceterm.modelstore.resolve_model`).
        cores: the engines' core share; a check counts as computing in it.
        threads: ONNX Runtime intra-op threads of the session for every core
            (default: the machine's cores); a one-thread session serves when
            other programs take cores.

    Raises:
        ModelError: the file is missing, not an ONNX model, or not Smart Turn.
        EngineError: onnxruntime is not installed.
    """

    def __init__(
        self, model_path: str | Path, *, cores: CoreShare | None = None, threads: int | None = None
    ) -> None:
        import os

        import numpy as np

        self.model_path = Path(model_path)
        self._cores = cores
        self._threads = threads or os.cpu_count() or 1
        self._session = load_session(self.model_path, 1)
        self._every_core = (
            load_session(self.model_path, self._threads) if self._threads > 1 else self._session
        )
        inputs = self._session.get_inputs()
        if [i.name for i in inputs] != ["input_features"]:
            raise ModelError(
                f"{self.model_path.name} is not a Smart Turn model "
                f"(inputs: {[i.name for i in inputs]}, expected input_features).",
                hint="point turn.model at smart-turn-v3.2-cpu.onnx "
                "(pip install --no-deps pipecat-ai ships it)",
            )
        self.last_compute_s = 0.0
        """How long the last :meth:`probability` computed (features and model)."""
        # The first run allocates ONNX Runtime's buffers (~10x a later one): not in a turn.
        silence = np.zeros((1, _N_MELS, WINDOW_SAMPLES // _HOP), dtype=np.float32)
        for session in {id(s): s for s in (self._session, self._every_core)}.values():
            self._run(silence, session)

    def probability(self, audio: npt.NDArray[Any]) -> float:
        """Probability (0 to 1) that the turn in ``audio`` (16 kHz mono) is complete."""
        import contextlib
        import time

        cores = self._cores
        with cores.first("turn") if cores else contextlib.nullcontext():
            threads = cores.threads(self._threads) if cores else self._threads
            start = time.perf_counter()
            features = log_mel(last_window(audio))[None, :, :]
            session = self._every_core if threads > 1 else self._session
            result = self._run(features, session)
            self.last_compute_s = time.perf_counter() - start
        return result

    def _run(self, features: npt.NDArray[np.float32], session: Any = None) -> float:
        try:
            outputs = (session or self._session).run(None, {"input_features": features})
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError(f"The end-of-turn model failed: {exc}") from exc
        return float(outputs[0].reshape(-1)[0])


def load_session(path: Path, threads: int, *, exact_int8: bool = True) -> Any:
    """The model's session on ``threads`` (``exact_int8=False``: ONNX Runtime's default
    int8 kernels, which ``benchmarks/turn_kernels.py`` compares)."""
    from voiceterm.engines.offline import onnxruntime_offline

    try:
        onnxruntime = onnxruntime_offline()
    except ImportError as exc:
        raise EngineError(
            "The end-of-turn model needs onnxruntime, which is not installed.",
            hint="pip install onnxruntime (or set turn.detector = 'silence')",
        ) from exc
    if not path.is_file():
        raise ModelError(
            f"The end-of-turn model {path} does not exist.",
            hint="check turn.model, or pip install --no-deps pipecat-ai",
        )
    from voiceterm.engines.freecores import no_spinning
    from voiceterm.engines.onnx_session import open_session

    options = no_spinning(onnxruntime.SessionOptions())
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    # The model is int8. On an x86 CPU without VNNI (AVX2 only), ONNX Runtime's
    # default int8 kernels saturate and the scores move (a pause scored 0.67 there
    # scores 0.89 here); this keeps them as on every other CPU, where the bars were set.
    if exact_int8:
        options.add_session_config_entry("session.x64quantprecision", "1")
    return open_session(
        onnxruntime,
        path,
        options,
        ["CPUExecutionProvider"],
        model="The end-of-turn model",
        hint="pip install --force-reinstall --no-deps pipecat-ai, or set turn.detector = 'silence'",
    )
