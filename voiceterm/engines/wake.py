"""Wake word: a microWakeWord model scores every 30 ms of the microphone.

The models come inside the ``pymicro-wakeword`` wheel (Apache-2.0, with a
TensorFlow Lite C library): ``okay_nabu``, ``hey_jarvis``, ``hey_mycroft`` and
``alexa``, 50-80 KB each, trained by Kevin Ahrendt for ESPHome's
``micro_wake_word`` (the model collection is Apache-2.0 too). Any other
microWakeWord model works: a ``.tflite`` with its ``.json`` manifest beside it.

Features come from ``pymicro-features`` (TFLite Micro's audio front end: 40
channels every 10 ms over 30 ms windows of 16 kHz audio). The model takes three
feature frames at a time, so it runs once per 30 ms; its probability is the mean
of its last few outputs (``sliding_window_size`` in the manifest, 5 for the
bundled ones), which is what the manifest's ``probability_cutoff`` is compared
with. This module only scores; what a score means for the conversation (a
detection, a near miss, where the wake phrase ends) is
:class:`voiceterm.pipeline.wake.WakeGate`'s business.

The front end and the model keep state across calls (the front end's noise
estimate, the model's streaming layers), so one detector must hear one stream,
in order. ``pymicro_wakeword`` and ``numpy`` are imported when a model is loaded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceterm.errors import ModelError
from voiceterm.model_json import read_model_json

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SAMPLE_RATE = 16000
FEATURE_STEP_S = 0.01
"""The front end makes one feature frame per 10 ms of audio."""
CATCH_UP_S = 6.0
"""Audio kept while the detector does not run, heard when it runs again (see
:class:`WakeWordDetector`): more than the front end and the bundled models remember."""
BUNDLED: tuple[str, ...] = ("hey_jarvis", "okay_nabu", "hey_mycroft", "alexa")
"""The models inside the ``pymicro-wakeword`` wheel, by the name ``listen.wake_word`` takes."""

_CHUNK_SAMPLES = 160  # what the front end reads per call: one 10 ms step
_INSTALL_HINT = "pip install 'pymicro-wakeword>=2.5' (scripts/setup.sh installs it)"


@dataclass(frozen=True, slots=True)
class WakeModel:
    """A microWakeWord model on disk and what its manifest says about it."""

    name: str
    """Short name (the bundled name, or the file's stem)."""
    phrase: str
    """What to say, as the manifest spells it ("Hey Jarvis")."""
    manifest: Path
    """The ``.json`` beside the ``.tflite``."""
    cutoff: float
    """The probability above which the model's authors count a detection."""

    @property
    def description(self) -> str:
        return f"{self.phrase} (microWakeWord {self.name})"


def bundled_models_dir() -> Path | None:
    """Where ``pymicro-wakeword`` keeps its models, or ``None`` when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("pymicro_wakeword")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "models"


def resolve_wake_model(spec: str) -> WakeModel:
    """The model that ``listen.wake_word`` names: a bundled name, or a ``.tflite``/``.json`` path.

    Raises:
        ModelError: no such bundled model or file, or a manifest that cannot be read.
    """
    spec = spec.strip()
    if spec in BUNDLED:
        models = bundled_models_dir()
        if models is None:
            raise ModelError(
                f"The wake word model {spec!r} comes with pymicro-wakeword: it is not installed.",
                hint=_INSTALL_HINT,
            )
        manifest = models / f"{spec}.json"
    else:
        path = Path(spec).expanduser()
        if path.suffix not in (".tflite", ".json"):
            raise ModelError(
                f"listen.wake_word must be one of {', '.join(BUNDLED)}, or a microWakeWord "
                f".tflite file (with its .json beside it), not {spec!r}.",
                hint="e.g. --listen-wake-word hey_jarvis",
            )
        manifest = path.with_suffix(".json")
        if not path.exists():
            raise ModelError(f"The wake word model {path} does not exist.")
    hint = "it must be a microWakeWord manifest (model, wake_word, micro.probability_cutoff)"
    data = read_model_json(
        manifest,
        what="The wake word manifest",
        hint=hint,
        missing_hint="microWakeWord models come as a .tflite with a .json of the same name",
    )
    try:
        micro = data["micro"]
        model_file = manifest.parent / str(data["model"])
        cutoff = float(micro["probability_cutoff"])
        phrase = str(data.get("wake_word", manifest.stem))
    except (ValueError, KeyError, TypeError) as error:
        raise ModelError(
            f"The wake word manifest {manifest} cannot be read: {error}.", hint=hint
        ) from error
    if not model_file.exists():
        raise ModelError(f"The wake word model {model_file} (named in {manifest}) does not exist.")
    return WakeModel(name=manifest.stem, phrase=phrase, manifest=manifest, cutoff=cutoff)


@dataclass(frozen=True, slots=True)
class WakeScore:
    """The model's (window-averaged) probability for the audio up to ``at``."""

    at: float
    """Monotonic time of the end of the last 10 ms of audio the score has heard."""
    probability: float


class WakeWordDetector:
    """Scores a 16 kHz stream with one microWakeWord model.

    On a live stream each 10 ms finds the processor's caches cold, so the front end
    and the model cost several times what a tight loop measures, and most of the
    time nobody speaks. So they run only when the caller says someone may be
    speaking (``listening``); meanwhile the last :data:`CATCH_UP_S` of audio wait,
    and are heard first when it is asked again. Both forget: the bundled models'
    outputs after a catch-up of 1.8 s match an uninterrupted run exactly, and the
    front end's features (its noise estimate adapts over a few seconds) after 5 s.
    So the scores around speech are those of a detector that never paused, a few
    milliseconds of work later.

    The model is run through TensorFlow Lite's C library as ``pymicro-wakeword``
    loads it, with its buffers kept between runs (the library's own per-run path
    allocates arrays and averages with :func:`statistics.mean`, which is slower than
    the model itself).

    Args:
        model: the model (see :func:`resolve_wake_model`).

    Raises:
        ModelError: the library is missing or the model does not load.
    """

    def __init__(self, model: WakeModel) -> None:
        try:
            from pymicro_features import MicroFrontend
            from pymicro_wakeword import MicroWakeWord
        except ImportError as error:
            raise ModelError(
                "The wake word library pymicro-wakeword is not installed.", hint=_INSTALL_HINT
            ) from error
        self.model = model
        try:
            self._model: Any = MicroWakeWord.from_config(model.manifest)
        except (OSError, ValueError, RuntimeError) as error:
            raise ModelError(
                f"The wake word model {model.manifest} does not load: {error}."
            ) from error
        self._frontend_class = MicroFrontend
        self._frontend: Any = MicroFrontend()
        self._stride = int(self._model.stride)
        self._invoke = _Invoker(self._model)
        self._window: deque[float] = deque(maxlen=int(self._model.sliding_window_size))
        # Audio not yet heard by the front end (its first sample's time is computed from
        # the newest chunk's), and features not yet scored: the model takes whole strides.
        self._unheard = bytearray()
        self._features: list[float] = []
        self._features_made = 0
        # Whole strides of audio are dropped, so that the model's grouping never shifts.
        step = 2 * _CHUNK_SAMPLES * self._stride
        self._drop_step = step
        self._kept_bytes = round(CATCH_UP_S * SAMPLE_RATE * 2) // step * step

    @property
    def cutoff(self) -> float:
        return self.model.cutoff

    def feed(
        self, samples: npt.NDArray[np.int16], t_first_sample: float, *, listening: bool = True
    ) -> list[WakeScore]:
        """Hear a chunk of int16 samples of any length; returns a score per model run.

        Args:
            samples: mono int16 at 16 kHz.
            t_first_sample: monotonic time of ``samples[0]`` (the newest chunk's clock
                wins, as in the VAD: samples still waiting are placed just before it).
            listening: run the front end and the model, on what waited too; ``False``
                only keeps the audio (the last :data:`CATCH_UP_S`), for when nobody speaks.
        """
        import numpy as np

        data = np.asarray(samples, dtype=np.int16).reshape(-1).tobytes()
        unheard = self._unheard
        unheard += data
        if not listening:
            excess = len(unheard) - self._kept_bytes
            if excess > 0:
                step = self._drop_step
                del unheard[: (excess + step - 1) // step * step]
            return []
        start = t_first_sample - (len(unheard) - len(data)) / 2 / SAMPLE_RATE
        scores: list[WakeScore] = []
        frontend, stride, features = self._frontend, self._stride, self._features
        chunk_bytes = 2 * _CHUNK_SAMPLES
        offset = 0  # in bytes
        while offset + chunk_bytes <= len(unheard):
            result = frontend.process_samples(bytes(unheard[offset : offset + chunk_bytes]))
            offset += 2 * max(1, int(result.samples_read))
            if not result.features:
                continue
            features += result.features
            self._features_made += 1
            if self._features_made % stride == 0:
                at = start + offset / 2 / SAMPLE_RATE
                scores.append(WakeScore(at=at, probability=self._score(features)))
                features.clear()
        del unheard[:offset]
        return scores

    def _score(self, features: list[float]) -> float:
        window = self._window
        window.append(self._invoke(features))
        # As the model's authors average: nothing until the window is full.
        return sum(window) / len(window) if len(window) == window.maxlen else 0.0

    def reset(self) -> None:
        """Forget the stream heard so far (a new, unrelated stream follows)."""
        self._model.reset()  # reloads the model: its streaming state starts again
        self._invoke = _Invoker(self._model)
        self._frontend = self._frontend_class()
        self._window.clear()
        self._unheard.clear()
        self._features.clear()
        self._features_made = 0

    def close(self) -> None:
        self._model.close()


class _Invoker:
    """One run of a loaded ``MicroWakeWord`` model on one stride of features.

    The same arithmetic as ``MicroWakeWord.process_streaming_prob`` (quantize,
    copy in, invoke, copy out, dequantize), on buffers made once.
    """

    def __init__(self, model: Any) -> None:
        import ctypes

        import numpy as np

        self._lib = model.lib
        self._interpreter = model.interpreter
        self._input_tensor = model.input_tensor
        self._output_tensor = model.output_tensor
        size = int(self._lib.TfLiteTensorByteSize(model.input_tensor))
        self._input = np.zeros(size // np.dtype(model.input_dtype).itemsize, model.input_dtype)
        self._scratch = np.zeros(self._input.size, np.float32)
        self._output = np.zeros(
            int(self._lib.TfLiteTensorByteSize(model.output_tensor))
            // np.dtype(model.output_dtype).itemsize,
            model.output_dtype,
        )
        self._input_pointer = ctypes.c_void_p(self._input.ctypes.data)
        self._output_pointer = ctypes.c_void_p(self._output.ctypes.data)
        self._input_scale = float(model.input_scale)
        self._input_zero_point = float(model.input_zero_point)
        self._output_scale = float(model.output_scale)
        self._output_zero_point = int(model.output_zero_point)
        self._rint = np.rint

    def __call__(self, features: list[float]) -> float:
        scratch = self._scratch
        scratch[:] = features
        scratch /= self._input_scale
        scratch += self._input_zero_point
        self._rint(scratch, out=scratch)
        self._input[:] = scratch
        lib = self._lib
        lib.TfLiteTensorCopyFromBuffer(self._input_tensor, self._input_pointer, self._input.nbytes)
        lib.TfLiteInterpreterInvoke(self._interpreter)
        lib.TfLiteTensorCopyToBuffer(self._output_tensor, self._output_pointer, self._output.nbytes)
        return (int(self._output[0]) - self._output_zero_point) * self._output_scale


def score_audio(
    detector: WakeWordDetector, audio: npt.NDArray[np.int16], t0: float = 0.0, block: int = 160
) -> list[WakeScore]:
    """Every score of a whole recording fed in ``block``-sample pieces, times from ``t0``."""
    scores: list[WakeScore] = []
    for offset in range(0, len(audio), block):
        scores += detector.feed(audio[offset : offset + block], t0 + offset / SAMPLE_RATE)
    return scores
