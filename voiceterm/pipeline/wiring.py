"""Wiring: the nodes of one agent, built from the settings and the engines, on a bus.

Data flow (see DESIGN.md)::

    AudioSource -> Listener (VAD) -> SttNode -> ChatNode -> SentenceNode
                                                              -> TtsNode -> PlayerNode -> AudioSink

:func:`build_nodes` makes them and registers their bridges; the agent keeps the
:class:`Nodes` to steer them (interrupt, listen mode, push-to-talk).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from voiceterm.audio.abilities import cancels_echo
from voiceterm.audio.frames import AudioSink, AudioSource, WakingSink
from voiceterm.bridge import Bridge
from voiceterm.bus import Bus
from voiceterm.config import Config
from voiceterm.engines.llm.protocol import (
    ChatEngine,
    asks_words_end,
    probes_words_end,
    reads_words_end,
)
from voiceterm.errors import VoicetermError
from voiceterm.events import StageStatus
from voiceterm.pipeline.end_of_turn.learned import TurnWeights
from voiceterm.pipeline.end_of_turn.policy import CheckLatency, TurnModel, TurnPolicy
from voiceterm.pipeline.listen import Listener
from voiceterm.pipeline.listening.activity import AgentActivity
from voiceterm.pipeline.listening.seams import Segmenter
from voiceterm.pipeline.listening.settings import ListenerSettings, TurnJudging
from voiceterm.pipeline.loading import Engines
from voiceterm.pipeline.own_voice import OwnVoice
from voiceterm.pipeline.publish import Publisher
from voiceterm.pipeline.respond import ChatNode
from voiceterm.pipeline.speak import PlayerNode, SentenceNode, TtsNode
from voiceterm.pipeline.transcribe import SttNode
from voiceterm.pipeline.wake import ListenGate, load_detector
from voiceterm.pipeline.wake_words import FitRule, reads_phrases

logger = logging.getLogger(__name__)

WordsEnd = Callable[[str], float | None]
"""Reads the LLM's P(end of message) after the user's words so far."""


@dataclass(slots=True)
class Nodes:
    """The nodes an agent steers; their bridges are on the agent's bus."""

    listener: Listener
    gate: ListenGate
    stt: SttNode
    chat: ChatNode
    player: PlayerNode


@dataclass(slots=True)
class Shared:
    """What the nodes share with the agent that owns them."""

    bus: Bus
    publish: Publisher
    activity: AgentActivity
    own_voice: OwnVoice
    before_turn: Callable[[], Awaitable[None]]
    """Awaited before a transcript starts a new turn (an answer in flight ends there)."""
    clock: Callable[[], float] = time.monotonic
    """The time the listener's decisions read (a replay's: its audio time)."""
    check_latency: CheckLatency | None = None
    """When the answers of pause checks may be used (``None``: as they come)."""


def build_nodes(
    config: Config, engines: Engines, source: AudioSource, sink: AudioSink, shared: Shared
) -> Nodes:
    """Make every node of the pipeline and register its bridge on ``shared.bus``."""
    turn_model = engines.turn if config.turn.detector != "silence" else None
    weights, words_end = (
        learned_turn(config, engines.llm, shared.publish) if turn_model else (None, None)
    )
    gate = _listen_gate(config, engines, shared)
    transcriber = engines.transcriber
    stt = SttNode(
        transcriber,
        Publisher(shared.bus, SttNode.id),
        # With a model, unfinished-sounding words already kept the turn open.
        incomplete_wait_s=0.0 if turn_model else config.vad.incomplete_wait_ms / 1000,
        own_voice=shared.own_voice if config.audio.drop_own_words else None,
        before_turn=shared.before_turn,
        read_wake=(
            functools.partial(gate.read_check, transcriber) if reads_phrases(transcriber) else None
        ),
        confirm_wake=gate.confirm_read,
    )
    listener = _listener(config, turn_model, source, sink, shared, gate, stt, weights, words_end)
    chat = ChatNode(
        engines.llm,
        system_prompt=config.llm.system_prompt,
        max_tokens=config.llm.max_tokens,
        tools=engines.tools,
        speculate_tokens=config.llm.speculate_tokens,
        first_piece_words=config.tts.first_piece_words,
    )
    sentences = SentenceNode(first_piece_words=config.tts.first_piece_words)
    tts = TtsNode(engines.tts, ahead_on_every_core=config.tts.ahead_on_every_core)
    player = PlayerNode(sink, Publisher(shared.bus, PlayerNode.id))
    _attach(shared.bus, stt, stt.attach)
    _attach(shared.bus, chat, chat.attach)
    _attach(shared.bus, sentences, lambda bridge: sentences.attach(bridge, chat.id))
    _attach(shared.bus, tts, tts.attach)
    _attach(shared.bus, player, lambda bridge: player.attach(bridge, TtsNode.id))
    return Nodes(listener=listener, gate=gate, stt=stt, chat=chat, player=player)


def _listener(
    config: Config,
    turn_model: TurnModel | None,
    source: AudioSource,
    sink: AudioSink,
    shared: Shared,
    gate: ListenGate,
    stt: SttNode,
    weights: TurnWeights | None,
    words_end: WordsEnd | None,
) -> Listener:
    turn = None
    if turn_model is not None:
        policy = TurnPolicy(
            check_ms=weights.first_ms if weights else config.turn.check_ms,
            threshold=config.turn.threshold,
            unsure_ms=config.turn.unsure_ms,
            cap_ms=config.turn.cap_ms,
        )
        turn = TurnJudging(
            turn_model,
            policy,
            weights=weights,
            words_so_far=stt.words_at_pause,
            words_end=words_end,
            latency=shared.check_latency,
        )
    listener = Listener(
        source,
        _voice_detector(config, weights.cap_ms if weights else config.turn.cap_ms, turn_model),
        Publisher(shared.bus, Listener.id),
        shared.activity,
        _listener_settings(config, source),
        turn=turn,
        gate=gate,
        # The speaker's stream, asleep while idle, starts as the user talks.
        on_active=sink.wake if isinstance(sink, WakingSink) else None,
        clock=shared.clock,
    )
    listener.push_to_talk = config.listen.mode == "push_to_talk"
    return listener


def _voice_detector(config: Config, cap_ms: int, turn_model: TurnModel | None) -> Segmenter:
    from voiceterm.engines.vad import VadSegmenter, VadSettings

    return VadSegmenter(
        VadSettings(
            aggressiveness=config.vad.aggressiveness,
            start_voiced_ms=config.vad.start_ms,
            # With a model, silence only caps the turn; the model ends it sooner.
            hangover_ms=cap_ms if turn_model else config.vad.hangover_ms,
            preroll_ms=config.vad.preroll_ms,
            max_utterance_s=config.vad.max_utterance_s,
            # The words transcribed at the pause are the turn's words, however late.
            heard_tail_ms=config.vad.pause_ms or VadSettings().tail_ms,
        )
    )


def _listener_settings(config: Config, source: AudioSource) -> ListenerSettings:
    barge_in = config.barge_in
    return ListenerSettings(
        barge_in=barge_in.enabled,
        min_speech_ms=barge_in.min_speech_ms,
        min_level_db=barge_in.min_level_db,
        start_ms=config.vad.start_ms,
        hold=barge_in.hold,
        hold_settle_ms=barge_in.hold_settle_ms,
        hold_confirm_ms=barge_in.hold_confirm_ms,
        hold_quiet_ms=barge_in.hold_quiet_ms,
        # A source that cleans its own echo needs no gate here.
        echo="off" if cancels_echo(source) else config.audio.echo,
        pause_ms=config.vad.pause_ms,
        quick_end_ms=config.vad.hangover_ms,
    )


def learned_turn(
    config: Config, llm: ChatEngine, publish: Callable[[StageStatus], None]
) -> tuple[TurnWeights | None, WordsEnd | None]:
    """The learned end-of-turn decision, when it is asked for and can work, and
    where it reads the LLM's P(end of message) at pauses (``None``: it goes without).

    A missing or broken weights file (or words' probe), or an LLM server that
    cannot say how likely the user's message ends when the weights need that
    probability, leaves the hand-set rule to decide, and says so. Weights fitted
    on the words' probe read the LLM's whole next-token distribution; a server
    gives only its top tokens' logprobs, so there the decision goes without the
    LLM's probability (its ``words`` model).
    """
    if config.turn.detector != "learned":
        return None, None
    from voiceterm.pipeline.end_of_turn.learned import load_weights

    try:
        weights = load_weights(config.turn.weights)
        if weights.words_signal == "probe":
            return weights, _words_probe(config, llm)
    except VoicetermError as error:
        logger.error("end of turn: %s", error)
        detail = f"{error.message} The hand-set rule (smart_turn) decides instead."
        publish(StageStatus(stage="turn", state="failed", detail=detail))
        return None, None
    if asks_words_end(llm):  # a server: one more request at each pause, only now
        llm.ask_words_end()
        if llm.words_end_available:
            return weights, llm.words_end_probability
    elif reads_words_end(llm):
        return weights, llm.words_end_probability
    logger.info("end of turn: the LLM server gives no P(end of message); rules decide")
    return None, None


def _words_probe(config: Config, llm: ChatEngine) -> WordsEnd | None:
    """Give the LLM the words' probe and return its reading; ``None`` for a server.

    Raises:
        ModelError: the probe file is missing or broken, or fits another model.
    """
    if not probes_words_end(llm):
        logger.info(
            "end of turn: the LLM server gives only its top tokens' logprobs, not the "
            "distribution the words' probe reads; the learned decision goes without it"
        )
        return None
    from voiceterm.engines.llm.words_end import load_probe

    llm.use_words_end_probe(load_probe(config.turn.words_probe))
    return llm.words_end_probability


def _listen_gate(config: Config, engines: Engines, shared: Shared) -> ListenGate:
    listen = config.listen
    if listen.mode == "wake_word" and engines.wake is None:
        engines.wake = load_detector(config)
    detector = engines.wake
    return ListenGate(
        Publisher(shared.bus, "wake"),
        shared.activity,
        mode=listen.mode,
        follow_up_s=listen.follow_up_s,
        detector=detector,
        phrase=detector.model.phrase if detector is not None else "",
        cutoff=listen.wake_cutoff,
        by_words_above=listen.wake_by_words_above if listen.wake_by_words else None,
        fit=FitRule(
            above=listen.wake_fit_above if listen.wake_by_words else None,
            margin=listen.wake_fit_margin,
            name_above=listen.wake_name_fit_above,
            name_margin=listen.wake_name_fit_margin,
        ),
    )


def _attach(bus: Bus, node: object, attach: Callable[[Bridge], None]) -> None:
    bridge = Bridge(node)
    attach(bridge)
    bus.register_bridge(bridge)
