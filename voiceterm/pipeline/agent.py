"""The voice agent: engines, nodes and bridges joined on one bus, behind one facade.

Data flow (see DESIGN.md)::

    AudioSource -> Listener (VAD) -> SttNode -> LlamaNode -> SentenceNode
                                                              -> TtsNode -> PlayerNode -> AudioSink

Everything a person or a UI does goes through :class:`VoiceAgent`: ``start`` loads
the three models in parallel worker threads (``StageStatus`` events report each),
``submit_text`` answers a typed message, ``interrupt`` cuts the agent off, and the
``timeline`` records every chunk of every turn.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voiceterm.audio.frames import WakingSink
from voiceterm.audio.playback import SilentSink
from voiceterm.bridge import Bridge
from voiceterm.bus import Bus, Message
from voiceterm.config import Config, default_cache_path
from voiceterm.errors import ConfigError, VoicetermError
from voiceterm.events import (
    AgentError,
    AgentGenerationComplete,
    AgentInterrupted,
    AgentSentence,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    AudioGlitches,
    AudioLevel,
    StageStatus,
    UserTranscriptionReceived,
)
from voiceterm.pipeline.glitches import GlitchWatch
from voiceterm.pipeline.heap import FreedMemory
from voiceterm.pipeline.listen import AgentActivity, Listener
from voiceterm.pipeline.own_voice import OwnVoice
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.respond import LlamaNode
from voiceterm.pipeline.speak import PlayerNode, SentenceNode, TtsNode
from voiceterm.pipeline.transcribe import SttNode
from voiceterm.pipeline.turn_end import CheckLatency, TurnPolicy
from voiceterm.pipeline.turn_fusion import TurnWeights
from voiceterm.pipeline.wake import ListenGate, check_listen_settings, load_detector
from voiceterm.recording.control import RecordingControl
from voiceterm.timeline import Timeline

logger = logging.getLogger(__name__)

_QUIET_FOR_S = 0.4  # how long nothing may happen before a file run counts as done
# How many loop turns ``interrupt`` waits for the nodes to act on it: each needs one
# or two, so this only bounds the wait should one of them be stuck.
_INTERRUPT_HANDLED_TURNS = 100
_GIVE_BACK_AFTER_QUIET_S = 0.5  # rest after an answer before freed memory is trimmed


@dataclass(slots=True)
class Engines:
    """The loaded engines; any of them may be shared between agents (tests do)."""

    transcriber: Any
    llm: Any
    tts: Any
    tools: Any
    descriptions: dict[str, str]
    turn: Any = None
    """The end-of-turn model (``None``: a silence ends the turn)."""
    wake: Any = None
    """The wake word detector (``None`` until listen.mode = wake_word is used)."""


def load_engines(config: Config, on_status: Callable[[StageStatus], None] | None = None) -> Engines:
    """Load STT, LLM, TTS and the end-of-turn model in parallel threads (blocking).

    Call it from a thread or at start-up. A missing end-of-turn model is reported
    and leaves ``Engines.turn`` empty (a silence then ends the turn).

    Raises:
        ModelError: the first other model that is missing or does not load.
    """
    from concurrent.futures import ThreadPoolExecutor

    # Every loader imports numpy: once here, so that they do not race to initialise
    # it (a loader then saw a half-imported numpy and failed on the rig).
    import numpy  # noqa: F401

    from voiceterm.engines.cores import CoreShare
    from voiceterm.modelstore import resolve_model

    check_turn_settings(config)
    check_llm_settings(config)
    check_listen_settings(config)
    cores = CoreShare()  # the engines share the CPU: see voiceterm.engines.cores

    def report(stage: str, state: str, detail: str) -> None:
        if on_status is not None:
            on_status(StageStatus(stage=stage, state=state, detail=detail))

    def load_stt() -> Any:
        from voiceterm.engines.stt import WhisperTranscriber

        model = resolve_model("stt", config.stt.model)
        report("stt", "loading", model.description)
        engine = WhisperTranscriber(model.path, pad_to_30s=config.stt.pad_to_30s, cores=cores)
        report("stt", "ready", model.description)
        return engine, model.description

    def load_llm() -> Any:
        if config.llm.backend == "openai":
            return load_llm_server(config, report)
        from voiceterm.engines.llm import LlamaEngine

        model = resolve_model("llm", config.llm.model)
        report("llm", "loading", model.description)
        engine = LlamaEngine(
            model.path,
            n_ctx=config.llm.context_tokens,
            temperature=config.llm.temperature,
            max_tokens=config.llm.max_tokens,
            cores=cores,
            eight_bit_copy_dir=default_cache_path() / "llm" if config.llm.eight_bit_copy else None,
        )
        # The system prompt is the same every turn: evaluating it now puts it in the
        # KV cache, so the first answer only reads the user's words.
        engine.warm_up([{"role": "system", "content": config.llm.system_prompt}])
        description = model.description
        if engine.weights_path != engine.model_path:
            description += " (8-bit copy)"
        report("llm", "ready", description)
        return engine, description

    def load_tts() -> Any:
        from voiceterm.engines.tts import PiperSynthesizer

        model = resolve_model("tts", config.tts.model)
        report("tts", "loading", model.description)
        engine = PiperSynthesizer(
            model.path,
            length_scale=config.tts.length_scale,
            num_threads=config.tts.threads,
            cores=cores,
        )
        report("tts", "ready", model.description)
        return engine, model.description

    def load_turn() -> Any:
        from voiceterm.engines.turn import SmartTurn

        model = resolve_model("turn", config.turn.model)
        report("turn", "loading", model.description)
        engine = SmartTurn(model.path, cores=cores)
        report("turn", "ready", model.description)
        return engine, model.description

    def load_wake() -> Any:
        detector = load_detector(config)
        report("wake", "ready", detector.model.description)
        return detector, detector.model.description

    loaders = {"stt": load_stt, "llm": load_llm, "tts": load_tts}
    if config.listen.mode == "wake_word":
        loaders["wake"] = load_wake
    results: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="load") as pool:
        futures = {stage: pool.submit(loader) for stage, loader in loaders.items()}
        turn = pool.submit(load_turn) if config.turn.detector != "silence" else None
        errors: list[VoicetermError] = []
        for stage, future in futures.items():
            try:
                results[stage] = future.result()
            except VoicetermError as exc:
                report(stage, "failed", exc.message)
                errors.append(exc)
        if errors:
            raise errors[0]
        turn_model: Any = None
        if turn is not None:
            try:
                results["turn"] = turn.result()
                turn_model = results["turn"][0]
            except VoicetermError as exc:
                # Answering a little early now and then beats not answering at all.
                logger.error("end-of-turn model: %s", exc)
                report("turn", "failed", f"{exc.message} A silence ends your turn instead.")
    from voiceterm.tools import default_registry

    return Engines(
        transcriber=results["stt"][0],
        llm=results["llm"][0],
        tts=results["tts"][0],
        tools=default_registry(),
        descriptions={stage: results[stage][1] for stage in (*loaders, "turn") if stage in results},
        turn=turn_model,
        wake=results["wake"][0] if "wake" in results else None,
    )


def load_llm_server(config: Config, report: Callable[[str, str, str], None]) -> Any:
    """The LLM stage on an OpenAI-compatible server, and its description.

    A server that does not answer (or refuses the key, or lacks the model) is
    reported, not raised: the app opens anyway, says what is wrong, and
    :meth:`VoiceAgent.start` keeps checking until the server works.
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


SERVER_RETRY_S = 2.0
"""How often an LLM server that did not answer is asked again."""


def check_llm_settings(config: Config) -> None:
    """Raise :class:`ConfigError` for ``[llm]`` settings that cannot work."""
    llm = config.llm
    if llm.backend not in ("llama_cpp", "openai"):
        raise ConfigError(
            f"llm.backend must be llama_cpp or openai, not {llm.backend!r}.",
            hint="llama_cpp runs a GGUF file inside voiceterm; openai talks to a server at llm.url",
        )
    if llm.backend == "openai" and not llm.url.startswith(("http://", "https://")):
        raise ConfigError(
            f"llm.url must be an http:// or https:// address, not {llm.url!r}.",
            hint="e.g. http://127.0.0.1:8080/v1 for llama-server",
        )


def check_turn_settings(config: Config) -> None:
    """Raise :class:`ConfigError` for ``[turn]`` settings that cannot work together."""
    turn = config.turn
    if turn.detector not in ("learned", "smart_turn", "silence"):
        raise ConfigError(
            f"turn.detector must be learned, smart_turn or silence, not {turn.detector!r}.",
            hint="set turn.detector = 'learned' (or 'smart_turn', or 'silence')",
        )
    if not 0.0 < turn.threshold < 1.0:
        raise ConfigError(f"turn.threshold must be between 0 and 1, not {turn.threshold}.")
    if not 0 < turn.check_ms < turn.unsure_ms <= turn.cap_ms:
        raise ConfigError(
            f"turn.check_ms ({turn.check_ms}), turn.unsure_ms ({turn.unsure_ms}) and "
            f"turn.cap_ms ({turn.cap_ms}) must grow in that order: the model is asked "
            "before the silences that end a turn without it."
        )


def _route_busy(route: Any) -> bool:
    # TODO(core): use a public Route.pending once the core exposes one.
    return (
        bool(getattr(route, "_data", ()))
        or bool(getattr(route, "_control", ()))
        or (getattr(route, "_run", None) is not None)
    )


class VoiceAgent:
    """The whole assistant on one bus.

    Args:
        config: settings.
        source: where the user's audio comes from (microphone or WAV file).
        sink: where the answer is played (speaker or WAV file).
        engines: already loaded engines; ``None`` loads them in ``start()``.
        check_latency: when the answers of pause checks may be used (a replay's:
            as late as they came live); ``None``: as they come.
    """

    def __init__(
        self,
        config: Config,
        *,
        source: Any,
        sink: Any,
        engines: Engines | None = None,
        source_name: str = "",
        sink_name: str = "",
        check_latency: CheckLatency | None = None,
    ) -> None:
        self.config = config
        self._check_latency = check_latency
        self.bus = Bus()
        self.timeline = Timeline()
        self.engines = engines
        self.source = source
        self.sink = sink
        self.activity = AgentActivity()
        self.own_voice = OwnVoice()
        self._names = {"mic": source_name, "speaker": sink_name}
        self._publish = Publisher(self.bus, "agent")
        self.llm_node: LlamaNode | None = None
        self.player: PlayerNode | None = None
        self.listener: Listener | None = None
        self.gate: ListenGate | None = None
        self._stt: SttNode | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._glitch_task: asyncio.Task[None] | None = None
        self._llm_watch: asyncio.Task[None] | None = None
        self.freed_memory = FreedMemory()
        self._giving_back: asyncio.Task[None] | None = None
        self.glitches: GlitchWatch | None = None
        self._last_activity = time.monotonic()
        # A tap, not a route: the timeline must see messages in broadcast order
        # (routes let control events overtake queued data).
        self.bus.tap(self._observe)
        # Off until started (--record, [session] record, the TUI's command).
        self.recording = RecordingControl(self)
        self._wired = asyncio.Event()
        self._load_error: VoicetermError | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load models (in parallel), open the devices, wire the nodes, start listening.

        A device that cannot be opened is reported (``StageStatus`` "failed") and the
        rest keeps working: without a speaker answers are text only, without a
        microphone typing still works. The first such error is raised at the end,
        after everything else is running, so a caller can show it.

        Raises:
            ModelError: a model is missing or does not load (nothing is started).
            AudioDeviceError: the microphone or the speaker could not be opened.
        """
        await self.bus.start()
        if self.engines is None:
            loop = asyncio.get_running_loop()

            def on_status(status: StageStatus) -> None:
                loop.call_soon_threadsafe(self._publish, status)

            try:
                self.engines = await asyncio.to_thread(load_engines, self.config, on_status)
            except VoicetermError as error:
                self._load_error = error
                self._wired.set()  # nothing will be wired: let waiting messages fail
                raise
        else:
            for stage, description in self.engines.descriptions.items():
                self._publish(StageStatus(stage=stage, state="ready", detail=description))
        device_error: VoicetermError | None = None
        try:
            self.sink.start(asyncio.get_running_loop())
            self._publish(
                StageStatus(stage="speaker", state="ready", detail=self._names["speaker"])
            )
            if hasattr(self.sink, "on_error"):
                self.sink.on_error = self._speaker_lost
                self.sink.on_restored = lambda: self._back("speaker")
        except VoicetermError as error:
            device_error = error
            self._publish(StageStatus(stage="speaker", state="failed", detail=error.message))
            self.sink = SilentSink()
            self.sink.start(asyncio.get_running_loop())
        self._wire(self.engines)
        self._wired.set()
        self._watch_llm_server(check_first=False)
        try:
            self.source.start()
        except VoicetermError as error:
            device_error = device_error or error
            self._publish(StageStatus(stage="mic", state="failed", detail=error.message))
        else:
            self._publish(StageStatus(stage="mic", state="ready", detail=self._names["mic"]))
            microphone = getattr(self.source, "source", self.source)  # under echo cancelling
            if hasattr(microphone, "on_error"):
                microphone.on_error = self._mic_lost
                microphone.on_restored = lambda: self._back("mic")
            assert self.listener is not None
            self._listen_task = asyncio.get_running_loop().create_task(
                self.listener.run(), name="listener"
            )
        self.glitches = GlitchWatch(self.sink, self.source, self._publish)
        self._glitch_task = asyncio.get_running_loop().create_task(
            self.glitches.run(), name="audio-glitches"
        )
        session = self.config.session
        if session.record and not self.recording.active:
            self.recording.start(Path(session.record_dir) if session.record_dir else None)
        if device_error is not None:
            raise device_error

    async def _end_answer_for_new_turn(self) -> None:
        """A transcript is about to start a new turn: an answer still in flight ends here.

        The model drops it for the new one anyway; without the interrupt the sentence
        and speech stages would go on with it, and its unfinished words would begin
        the next answer. (A barge-in has cut it off already: then nothing is busy.)
        """
        if self.activity.busy:
            await self.interrupt("new_turn")

    def _speaker_lost(self, error: VoicetermError) -> None:
        """The speaker stopped mid-session (the player reopens it when it returns).

        An answer being spoken is cut off where the sound stopped, as if the user had
        interrupted it: the conversation then holds what was heard, and the next turn
        is answered (on the speaker, once it is back).
        """
        self._publish(AgentError(error=error.message, source="speaker"))
        if self.activity.busy:
            self._publish(AgentInterrupted(reason="speaker_lost"))

    def _watch_llm_server(self, *, check_first: bool) -> None:
        """Keep asking an LLM server that does not answer until it does (then say so).

        The status line shows why it failed meanwhile; a question asked in between
        gets the same explanation and stays in the conversation.
        """
        engine = self.engines.llm if self.engines is not None else None
        if getattr(engine, "ready", True) or not hasattr(engine, "check"):
            return
        if self._llm_watch is not None and not self._llm_watch.done():
            return
        self._llm_watch = asyncio.get_running_loop().create_task(
            self._until_server_answers(engine, check_first), name="llm-server-watch"
        )

    async def _until_server_answers(self, engine: Any, check_first: bool) -> None:
        # At start-up the loader has said why already; after a failed answer, say it.
        shown = "" if check_first else str(getattr(engine, "last_error", ""))
        while True:
            if not check_first:
                await asyncio.sleep(SERVER_RETRY_S)
            check_first = False
            try:
                await asyncio.to_thread(engine.check)
            except VoicetermError as error:
                if str(error) != shown:
                    shown = str(error)
                    detail = f"{error} (retrying every {SERVER_RETRY_S:.0f} s)"
                    self._publish(StageStatus(stage="llm", state="failed", detail=detail))
                continue
            self._publish(StageStatus(stage="llm", state="ready", detail=engine.description))
            return

    def _mic_lost(self, error: VoicetermError) -> None:
        self._publish(AgentError(error=error.message, source="mic"))

    def _back(self, device: str) -> None:
        """A lost device was reopened."""
        self._publish(StageStatus(stage=device, state="ready", detail=self._names[device]))

    def _wire(self, engines: Engines) -> None:
        from voiceterm.engines.vad import VadSegmenter, VadSettings

        config = self.config
        # Engines may be shared by agents with other settings (the benchmarks do).
        turn_model = engines.turn if config.turn.detector != "silence" else None
        weights, words_end = self._learned_turn(engines) if turn_model is not None else (None, None)
        vad = VadSegmenter(
            VadSettings(
                aggressiveness=config.vad.aggressiveness,
                start_voiced_ms=config.vad.start_ms,
                # With a model, silence only caps the turn; the model ends it sooner.
                hangover_ms=(
                    (weights.cap_ms if weights else config.turn.cap_ms)
                    if turn_model
                    else config.vad.hangover_ms
                ),
                preroll_ms=config.vad.preroll_ms,
                max_utterance_s=config.vad.max_utterance_s,
                # The words transcribed at the pause are the turn's words, however late.
                heard_tail_ms=config.vad.pause_ms or VadSettings().tail_ms,
            )
        )
        gate = self._listen_gate(engines)
        stt = SttNode(
            engines.transcriber,
            Publisher(self.bus, SttNode.id),
            # With a model, unfinished-sounding words already kept the turn open.
            incomplete_wait_s=0.0 if turn_model else config.vad.incomplete_wait_ms / 1000,
            own_voice=self.own_voice if config.audio.drop_own_words else None,
            before_turn=self._end_answer_for_new_turn,
            read_wake=functools.partial(gate.read_check, engines.transcriber),
            confirm_wake=gate.confirm_read,
        )
        self.listener = Listener(
            self.source,
            vad,
            Publisher(self.bus, Listener.id),
            self.activity,
            barge_in=config.barge_in.enabled,
            min_speech_ms=config.barge_in.min_speech_ms,
            min_level_db=config.barge_in.min_level_db,
            start_ms=config.vad.start_ms,
            pause_ms=config.vad.pause_ms,
            hold=config.barge_in.hold,
            hold_settle_ms=config.barge_in.hold_settle_ms,
            hold_confirm_ms=config.barge_in.hold_confirm_ms,
            hold_quiet_ms=config.barge_in.hold_quiet_ms,
            # A source that cleans its own echo (EchoCancelledSource) needs no gate here.
            echo="off" if hasattr(self.source, "canceller") else config.audio.echo,
            turn_model=turn_model,
            turn_policy=TurnPolicy(
                check_ms=weights.first_ms if weights else config.turn.check_ms,
                threshold=config.turn.threshold,
                unsure_ms=config.turn.unsure_ms,
                cap_ms=config.turn.cap_ms,
            ),
            quick_end_ms=config.vad.hangover_ms,
            words_so_far=stt.words_at_pause,
            turn_weights=weights,
            words_end=words_end,
            # The speaker's stream, asleep while idle, starts as the user talks.
            on_active=self.sink.wake if isinstance(self.sink, WakingSink) else None,
            gate=gate,
            check_latency=self._check_latency,
        )
        self.listener.push_to_talk = config.listen.mode == "push_to_talk"
        self._stt = stt
        self.llm_node = LlamaNode(
            engines.llm,
            system_prompt=config.llm.system_prompt,
            max_tokens=config.llm.max_tokens,
            tools=engines.tools,
            speculate_tokens=config.llm.speculate_tokens,
            first_piece_words=config.tts.first_piece_words,
        )
        sentences = SentenceNode(first_piece_words=config.tts.first_piece_words)
        tts = TtsNode(engines.tts, ahead_on_every_core=config.tts.ahead_on_every_core)
        self.player = PlayerNode(self.sink, Publisher(self.bus, PlayerNode.id))
        self._attach(stt, stt.attach)
        self._attach(self.llm_node, self.llm_node.attach)
        self._attach(sentences, lambda bridge: sentences.attach(bridge, self.llm_node_id))
        self._attach(tts, tts.attach)
        player = self.player
        self._attach(player, lambda bridge: player.attach(bridge, TtsNode.id))

    def _learned_turn(
        self, engines: Engines
    ) -> tuple[TurnWeights | None, Callable[[str], float | None] | None]:
        """The learned end-of-turn decision, when it is asked for and can work, and
        where it reads the LLM's P(end of message) at pauses (``None``: it goes without).

        A missing or broken weights file (or words' probe), or an LLM server that
        cannot say how likely the user's message ends when the weights need that
        probability, leaves the hand-set rule to decide, and says so. Weights fitted
        on the words' probe read the LLM's whole next-token distribution; a server
        gives only its top tokens' logprobs, so there the decision goes without the
        LLM's probability (its ``words`` model).
        """
        if self.config.turn.detector != "learned":
            return None, None
        llm = engines.llm
        from voiceterm.pipeline.turn_fusion import load_weights

        try:
            weights = load_weights(self.config.turn.weights)
            if weights.words_signal == "probe":
                return weights, self._words_probe(llm)
        except VoicetermError as error:
            logger.error("end of turn: %s", error)
            self._publish(
                StageStatus(
                    stage="turn",
                    state="failed",
                    detail=f"{error.message} The hand-set rule (smart_turn) decides instead.",
                )
            )
            return None, None
        ask = getattr(llm, "ask_words_end", None)
        if callable(ask):  # a server: one more request at each pause, only now
            ask()
        read = getattr(llm, "words_end_probability", None)
        if not callable(read) or not getattr(llm, "words_end_available", True):
            logger.info("end of turn: the LLM server gives no P(end of message); rules decide")
            return None, None
        return weights, read

    def _words_probe(self, llm: Any) -> Callable[[str], float | None] | None:
        """Give the LLM the words' probe and return its reading; ``None`` for a server.

        Raises:
            ModelError: the probe file is missing or broken, or fits another model.
        """
        use = getattr(llm, "use_words_end_probe", None)
        if not callable(use):
            logger.info(
                "end of turn: the LLM server gives only its top tokens' logprobs, not the "
                "distribution the words' probe reads; the learned decision goes without it"
            )
            return None
        from voiceterm.engines.llm.words_end import load_probe

        use(load_probe(self.config.turn.words_probe))
        read: Callable[[str], float | None] = llm.words_end_probability
        return read

    def _listen_gate(self, engines: Engines) -> ListenGate:
        listen = self.config.listen
        detector = engines.wake
        if listen.mode == "wake_word" and detector is None:
            detector = engines.wake = load_detector(self.config)
        self.gate = ListenGate(
            Publisher(self.bus, "wake"),
            self.activity,
            mode=listen.mode,
            follow_up_s=listen.follow_up_s,
            detector=detector,
            phrase=detector.model.phrase if detector is not None else "",
            cutoff=listen.wake_cutoff,
            by_words_above=listen.wake_by_words_above if listen.wake_by_words else None,
            fit_above=listen.wake_fit_above if listen.wake_by_words else None,
            fit_margin=listen.wake_fit_margin,
            name_fit_above=listen.wake_name_fit_above,
            name_fit_margin=listen.wake_name_fit_margin,
        )
        return self.gate

    def _attach(self, node: Any, attach: Callable[[Bridge], None]) -> None:
        bridge = Bridge(node)
        attach(bridge)
        self.bus.register_bridge(bridge)

    @property
    def llm_node_id(self) -> str:
        return self.llm_node.id if self.llm_node is not None else "llm"

    async def stop(self) -> None:
        """Stop listening and playing, cancel every route, release the devices."""
        if self._stt is not None:
            self._stt.close()
        watches = (self._listen_task, self._glitch_task, self._llm_watch, self._giving_back)
        tasks = {task for task in watches if task is not None}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        self.recording.stop()
        try:
            self.source.close()
        finally:
            try:
                self.sink.close()
            finally:
                await self.bus.stop()
                await self._publish.close()

    # --- what a person can do ---------------------------------------------------------

    async def submit_text(self, text: str) -> None:
        """Answer a typed message with voice, as if it had been spoken."""
        text = text.strip()
        if not text:
            return
        # Typed while the models load: answer once they are ready, not never.
        await self._wired.wait()
        if self._load_error is not None:
            raise self._load_error
        if isinstance(self.sink, WakingSink):
            self.sink.wake()  # a sleeping stream starts while the answer is made
        if self.activity.busy:
            await self.interrupt("typed_message")
        await self.bus.broadcast(Message("keyboard", UserTranscriptionReceived(content=text)))

    async def interrupt(self, reason: str = "key") -> None:
        """Cut the agent off: stop generating, synthesizing and playing.

        Returns once the nodes have acted on it: the player has stopped and said what
        was heard, so that a message sent next (a typed one) comes after that in the
        timeline and in the conversation, not before it.
        """
        await self.bus.broadcast(Message("agent", AgentInterrupted(reason=reason)))
        routes = [
            route
            for bridge in self.bus.bridges
            for route in bridge.routes
            if route.trigger is AgentInterrupted
        ]
        for _ in range(_INTERRUPT_HANDLED_TURNS):
            if not any(route.pending for route in routes):
                return
            await asyncio.sleep(0)

    def set_muted(self, muted: bool) -> None:
        self.source.muted = muted

    def set_push_to_talk(self, enabled: bool) -> None:
        if self.listener is not None:
            self.listener.push_to_talk = enabled
        if self.gate is not None:
            self.gate.set_mode("push_to_talk" if enabled else self._mode_before_push_to_talk())

    def _mode_before_push_to_talk(self) -> str:
        mode = self.config.listen.mode
        return "always" if mode == "push_to_talk" else mode

    def set_listen_mode(self, mode: str) -> None:
        """Switch ``listen.mode`` (always, wake_word, push_to_talk) while running.

        Raises:
            ConfigError: not a mode.
            ModelError: wake_word, and the wake word model does not load.
        """
        from voiceterm.pipeline.wake import MODES

        if mode not in MODES:
            raise ConfigError(f"listen.mode must be one of {', '.join(MODES)}, not {mode!r}.")
        gate, engines = self.gate, self.engines
        if mode == "wake_word" and gate is not None and not gate.has_detector:
            detector = load_detector(self.config)  # a few milliseconds: a 50 KB model
            if engines is not None:
                engines.wake = detector
            gate.set_detector(detector, detector.model.phrase)
        if mode != "push_to_talk":
            self.config.listen.mode = mode
        if self.listener is not None:
            if self.listener.push_to_talk and mode != "push_to_talk":
                self.listener.set_talk_pressed(False)
            self.listener.push_to_talk = mode == "push_to_talk"
        if gate is not None:
            gate.set_mode(mode)

    def push_to_talk(self, pressed: bool) -> None:
        if self.listener is not None:
            self.listener.set_talk_pressed(pressed)

    def clear_conversation(self) -> None:
        if self.llm_node is not None:
            self.llm_node.clear_context()

    def describe(self) -> dict[str, str]:
        described = dict(self.engines.descriptions) if self.engines else {}
        described.update({k: v for k, v in self._names.items() if v})
        return described

    # --- observation ---------------------------------------------------------------------

    def _observe(self, message: Message) -> None:
        self.timeline.record(message)
        event = message.event
        activity = self.activity
        if isinstance(event, UserTranscriptionReceived):
            activity.thinking = True
        elif isinstance(event, AgentSentence):
            self.own_voice.said(event.content, event.timestamp)
        elif isinstance(event, AgentStartedSpeaking):
            activity.speaking = True
            self.own_voice.started(event.playback_start or event.timestamp)
        elif isinstance(event, AgentStoppedSpeaking):
            activity.speaking = False
            activity.thinking = False
            activity.last_sound_end = event.last_sample_time or time.monotonic()
            self.own_voice.stopped(activity.last_sound_end)
            self._give_back_freed_memory()
        elif isinstance(event, AgentInterrupted):
            activity.thinking = False
        elif isinstance(event, AgentGenerationComplete) and event.total_length == 0:
            activity.thinking = False
        elif isinstance(event, AgentError):
            if not activity.speaking and self._nothing_more_to_play(event):
                activity.thinking = False
            if event.source == self.llm_node_id:
                self._watch_llm_server(check_first=True)  # a server gone mid-session
            if event.source == TtsNode.id and self.llm_node is not None:
                # A piece of the answer was never heard: the conversation keeps what
                # was, as for an answer cut off.
                self.llm_node.add_event(AgentInterrupted(reason="speech_lost"))
        if not isinstance(event, AudioLevel | AudioGlitches):
            self._last_activity = time.monotonic()

    def _give_back_freed_memory(self) -> None:
        """Once this answer is over, hand back what the engines freed for it."""
        if self._giving_back is not None and not self._giving_back.done():
            return
        self._giving_back = asyncio.get_running_loop().create_task(
            self._give_back_when_quiet(), name="give-back-memory"
        )

    async def _give_back_when_quiet(self) -> None:
        # The speaker may stop between two sentences of one answer: waiting for the
        # whole pipeline to rest trims once, after the last engine has freed its part.
        while True:
            rested_s = self.quiet_for()
            if rested_s >= _GIVE_BACK_AFTER_QUIET_S:
                break
            await asyncio.sleep(_GIVE_BACK_AFTER_QUIET_S - rested_s)
        await asyncio.to_thread(self.freed_memory.give_back)

    def _nothing_more_to_play(self, error: AgentError) -> bool:
        """Whether a failed stage leaves the answer without any sound to come."""
        if error.source == TtsNode.id:
            return True  # a later piece may still play: that starts the speaking again
        # A model that said some words before it failed has them spoken (the
        # sentence stage ends the answer there); one that said none has nothing.
        node = self.llm_node
        return error.source == self.llm_node_id and node is not None and not node.chunk_counter

    def _pipeline_pending(self) -> bool:
        for bridge in self.bus.bridges:
            for route in bridge.routes:
                if route.pending:
                    return True
        if self._stt is not None and self._stt.holding:
            return True
        return self.sink.position() is not None

    async def wait_until_quiet(self, limit_s: float = 120.0) -> None:
        """Wait until the input ended and every turn has been answered and played.

        The input takes as long as it lasts (a recording plays in real time); after
        it, the last answers get ``limit_s`` to be spoken.
        """
        if self.listener is not None:
            await self.listener.finished.wait()
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.quiet_for() > _QUIET_FOR_S:
                return
            await asyncio.sleep(0.05)
        logger.warning("pipeline still busy after %.0f s", limit_s)

    def quiet_for(self) -> float:
        """Seconds since anything last happened; 0.0 while a turn is still in flight."""
        if self._pipeline_pending() or self.activity.speaking:
            return 0.0
        return time.monotonic() - self._last_activity
