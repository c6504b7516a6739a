"""Loading the engines: the STT, LLM, TTS, end-of-turn and wake word models.

:func:`load_engines` loads them in parallel worker threads and reports each stage
(``StageStatus``) as it goes. Engines are typed by what the pipeline needs of them
(the protocols beside each node), never by a library's class, so that tests can
hand in fakes and agents can share one set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from voiceterm import paths
from voiceterm.config import Config, check_config
from voiceterm.errors import VoicetermError
from voiceterm.events import StageStatus
from voiceterm.pipeline.end_of_turn.policy import TurnModel
from voiceterm.pipeline.server_watch import SERVER_RETRY_S
from voiceterm.pipeline.speak import Synthesizer
from voiceterm.pipeline.transcribe import Transcriber
from voiceterm.pipeline.wake import WakeDetector, load_detector

if TYPE_CHECKING:
    from voiceterm.engines.cores import CoreShare
    from voiceterm.engines.llm.protocol import ChatEngine
    from voiceterm.engines.llm.server import ChatServerEngine
    from voiceterm.engines.wake import WakeModel
    from voiceterm.modelstore import ResolvedModel, Stage
    from voiceterm.tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

_E = TypeVar("_E")

Report = Callable[[str, str, str], None]
"""``report(stage, state, detail)``: what a loader says as it goes."""


class WakeModelDetector(WakeDetector, Protocol):
    """A wake word detector that says which model it runs (its phrase, its name)."""

    @property
    def model(self) -> WakeModel: ...


@dataclass(slots=True)
class Engines:
    """The loaded engines; any of them may be shared between agents (tests do)."""

    transcriber: Transcriber
    llm: ChatEngine
    tts: Synthesizer
    tools: ToolRegistry
    descriptions: dict[str, str]
    turn: TurnModel | None = None
    """The end-of-turn model (``None``: a silence ends the turn)."""
    wake: WakeModelDetector | None = None
    """The wake word detector (``None`` until listen.mode = wake_word is used)."""


async def engines_for(
    config: Config, engines: Engines | None, publish: Callable[[StageStatus], None]
) -> Engines:
    """``engines`` (said ready), or the engines loaded in worker threads as they report.

    Raises:
        ModelError: a model is missing or does not load.
    """
    if engines is not None:
        for stage, description in engines.descriptions.items():
            publish(StageStatus(stage=stage, state="ready", detail=description))
        return engines
    loop = asyncio.get_running_loop()

    def on_status(status: StageStatus) -> None:
        loop.call_soon_threadsafe(publish, status)

    return await asyncio.to_thread(load_engines, config, on_status)


def load_engines(config: Config, on_status: Callable[[StageStatus], None] | None = None) -> Engines:
    """Load STT, LLM, TTS and the end-of-turn model in parallel threads (blocking).

    Call it from a thread or at start-up. A missing end-of-turn model is reported
    and leaves ``Engines.turn`` empty (a silence then ends the turn).

    Raises:
        ConfigError: a setting that cannot work (before anything is loaded).
        ModelError: the first other model that is missing or does not load.
    """
    # numpy's first import is not thread-safe, and every loader imports it.
    import numpy  # noqa: F401

    from voiceterm.engines.cores import CoreShare
    from voiceterm.tools import default_registry

    check_config(config)
    cores = CoreShare()  # the engines share the CPU: see voiceterm.engines.cores

    def report(stage: str, state: str, detail: str) -> None:
        if on_status is not None:
            on_status(StageStatus(stage=stage, state=state, detail=detail))

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="load") as pool:
        loading = _Loading(report)
        stt = pool.submit(_load_stt, config, cores, report)
        llm = pool.submit(_load_llm, config, cores, report)
        tts = pool.submit(_load_tts, config, cores, report)
        wake = (
            pool.submit(_load_wake, config, report) if config.listen.mode == "wake_word" else None
        )
        turn = pool.submit(_load_turn, config, cores, report)
        transcriber = loading.get("stt", stt)
        llm_engine = loading.get("llm", llm)
        synthesizer = loading.get("tts", tts)
        detector = loading.get("wake", wake) if wake is not None else None
        loading.raise_first()
        turn_model = _turn_or_none(turn, report)
    assert transcriber is not None and llm_engine is not None and synthesizer is not None
    return Engines(
        transcriber=transcriber[0],
        llm=llm_engine[0],
        tts=synthesizer[0],
        tools=default_registry(),
        descriptions=loading.descriptions | ({"turn": turn_model[1]} if turn_model else {}),
        turn=turn_model[0] if turn_model is not None else None,
        wake=detector[0] if detector is not None else None,
    )


class _Loading:
    """Collects the loaders' engines: every failure is reported, the first raised."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self.descriptions: dict[str, str] = {}
        self._errors: list[VoicetermError] = []

    def get(self, stage: str, future: Future[tuple[_E, str]]) -> tuple[_E, str] | None:
        try:
            engine, description = future.result()
        except VoicetermError as exc:
            self._report(stage, "failed", exc.message)
            self._errors.append(exc)
            return None
        self.descriptions[stage] = description
        return engine, description

    def raise_first(self) -> None:
        if self._errors:
            raise self._errors[0]


def _turn_or_none(
    future: Future[tuple[TurnModel, str] | None], report: Report
) -> tuple[TurnModel, str] | None:
    try:
        return future.result()
    except VoicetermError as exc:
        # Answering a little early now and then beats not answering at all.
        logger.error("end-of-turn model: %s", exc)
        report("turn", "failed", f"{exc.message} A silence ends your turn instead.")
        return None


def _load_model(
    stage: Stage,
    spec: str | None,
    report: Report,
    make: Callable[[ResolvedModel], tuple[_E, str]],
) -> tuple[_E, str]:
    """Find the model ``spec`` names for ``stage``, say so, make its engine, say it is ready."""
    from voiceterm.modelstore import resolve_model

    model = resolve_model(stage, spec)
    report(stage, "loading", model.description)
    engine, description = make(model)
    report(stage, "ready", description)
    return engine, description


def _load_stt(config: Config, cores: CoreShare, report: Report) -> tuple[Transcriber, str]:
    from voiceterm.engines.stt import WhisperTranscriber

    def make(model: ResolvedModel) -> tuple[Transcriber, str]:
        engine = WhisperTranscriber(model.path, pad_to_30s=config.stt.pad_to_30s, cores=cores)
        return engine, model.description

    return _load_model("stt", config.stt.model, report, make)


def _load_llm(config: Config, cores: CoreShare, report: Report) -> tuple[ChatEngine, str]:
    if config.llm.backend == "openai":
        return load_llm_server(config, report)
    from voiceterm.engines.llm import LlamaEngine, SamplingSettings

    def make(model: ResolvedModel) -> tuple[ChatEngine, str]:
        llm = config.llm
        engine = LlamaEngine(
            model.path,
            n_ctx=llm.context_tokens,
            max_tokens=llm.max_tokens,
            sampling=SamplingSettings(temperature=llm.temperature),
            cores=cores,
            eight_bit_copy_dir=paths.cache_dir() / "llm" if llm.eight_bit_copy else None,
        )
        # The system prompt is the same every turn: evaluating it now puts it in the
        # KV cache, so the first answer only reads the user's words.
        engine.warm_up([{"role": "system", "content": llm.system_prompt}])
        copied = engine.weights_path != engine.model_path
        return engine, model.description + (" (8-bit copy)" if copied else "")

    return _load_model("llm", config.llm.model, report, make)


def _load_tts(config: Config, cores: CoreShare, report: Report) -> tuple[Synthesizer, str]:
    from voiceterm.engines.tts import PiperSynthesizer

    def make(model: ResolvedModel) -> tuple[Synthesizer, str]:
        tts = config.tts
        engine = PiperSynthesizer(
            model.path, length_scale=tts.length_scale, num_threads=tts.threads, cores=cores
        )
        return engine, model.description

    return _load_model("tts", config.tts.model, report, make)


def _load_turn(config: Config, cores: CoreShare, report: Report) -> tuple[TurnModel, str] | None:
    if config.turn.detector == "silence":
        return None
    from voiceterm.engines.smart_turn import SmartTurn

    def make(model: ResolvedModel) -> tuple[TurnModel, str]:
        return SmartTurn(model.path, cores=cores), model.description

    return _load_model("turn", config.turn.model, report, make)


def _load_wake(config: Config, report: Report) -> tuple[WakeModelDetector, str]:
    detector = load_detector(config)
    report("wake", "ready", detector.model.description)
    return detector, detector.model.description


def load_llm_server(config: Config, report: Report) -> tuple[ChatServerEngine, str]:
    """The LLM stage on an OpenAI-compatible server, and its description.

    A server that does not answer (or refuses the key, or lacks the model) is
    reported, not raised: the app opens anyway, says what is wrong, and the agent
    keeps checking until the server works.
    """
    from voiceterm.engines.llm.server import ChatServerEngine

    llm = config.llm
    engine = ChatServerEngine(
        llm.url,
        model=llm.model,
        api_key_env=llm.api_key_env,
        n_ctx=llm.context_tokens,
        max_tokens=llm.max_tokens,
        temperature=llm.temperature,
        connect_timeout_s=llm.connect_timeout_s,
        timeout_s=llm.timeout_s,
    )
    report("llm", "loading", f"connecting to {llm.url}")
    try:
        engine.check()
    except VoicetermError as error:
        report("llm", "failed", f"{error} (retrying every {SERVER_RETRY_S:.0f} s)")
        return engine, engine.description
    report("llm", "ready", engine.description)
    return engine, engine.description
