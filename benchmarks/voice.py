"""Voice-to-voice latency: the streaming pipeline against a naive sequential one.

For each test utterance, in one run on the same loaded engines:

* streaming: the real pipeline in real-time file mode (``VoiceAgent`` on a
  ``WavFileSource``/``WavFileSink`` pair). Voice-to-voice is ``playback_start -
  speech_end``: from the last voiced input sample to the first audible output
  sample, so it includes the VAD's end-of-speech wait.
* baseline: the same end-of-speech wait, then the whole utterance transcribed
  with stock faster-whisper (padded to 30 s), the whole reply generated (no prompt
  cache), the whole reply synthesized, and only then the first audible sample.

Several configurations can be compared side by side in one run:
``--variants default llm.speculate_tokens=0 tts.first_piece_words=4`` runs the
streaming pipeline once per variant on every utterance (interleaved, so load on
the machine hits them alike); a variant is ``section.key=value`` settings joined
with ``+``.

A variant with ``llm.backend=openai`` answers from an OpenAI-compatible server
at its ``llm.url``; ``--serve`` starts llama-cpp-python's own server for it on
this machine (``benchmarks/llm_server.py``), on the weights and thread counts the
in-process engine uses, so the two differ only by HTTP and the server.

``--part tuning`` or ``--part held-back`` says the whole real turns of that part
of ``benchmarks/turn_clips.py`` (recordings of real people, the long free talk split
into sentences) instead of the speech corpus. ``--variants turn.detector=smart_turn
turn.detector=learned`` compares the hand-set end-of-turn rule with the learned one.

``--background-load N`` also runs every streaming turn beside N busy programs
(pure-Python spin loops, started by the bench before the turn and killed after
it): each utterance is said on the idle machine and then beside them, and both
figures are printed side by side.

Usage: ``.venv/bin/python scripts/bench_voice.py [--utterances N] [--variants V ...]
[--background-load N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.corpus import Recording, speech_corpus
from benchmarks.load import background_load
from benchmarks.stats import percentile
from voiceterm.audio.wavio import WavFileSink, WavFileSource, write_wav
from voiceterm.bridge import Bridge
from voiceterm.bus import Message
from voiceterm.config import Config, apply_values
from voiceterm.events import AgentError, TurnMark
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.glitches import SpeakerLosses
from voiceterm.pipeline.loading import Engines, load_engines

RATE = 16000
AUDIBLE = 328


@dataclass
class SpeakerTally:
    """The speaker's trouble over many turns, counted as the app's exit summary does."""

    underflows: int = 0
    """Times the speaker ran dry (a file sink never does; kept next to the others)."""
    stops: int = 0
    """The speaker's errors: it stopped playing (or a reopen failed)."""
    cut_answers: int = 0
    """Answers cut off by that (``speaker_lost``)."""

    def add(self, underflows: int, losses: SpeakerLosses) -> None:
        self.underflows += underflows
        self.stops += losses.reports
        self.cut_answers += losses.answers_cut

    def describe(self) -> str:
        return (
            f"ran dry {self.underflows} times, stopped playing {self.stops} times, "
            f"answers cut off by it: {self.cut_answers}"
        )


async def streaming_turn(
    config: Config,
    engines: Engines,
    wav: Path,
    out: Path,
    speaker: SpeakerTally | None = None,
) -> dict[str, float]:
    """One turn from ``wav`` to ``out``; its marks. ``speaker`` adds up its trouble."""
    marks: dict[str, float] = {}
    speaker_errors = 0

    def collect(message: Message) -> None:
        nonlocal speaker_errors
        event = message.event
        if isinstance(event, TurnMark) and event.name not in marks:
            marks[event.name] = event.at
        elif isinstance(event, AgentError) and event.source == "speaker":
            speaker_errors += 1

    sink = WavFileSink(out, realtime=True)
    agent = VoiceAgent(
        config,
        source=WavFileSource(wav, realtime=True),
        sink=sink,
        engines=engines,
    )
    collector = Bridge("bench", queue_size=4096)
    collector.on(TurnMark).map(collect)
    collector.on(AgentError).map(collect)
    agent.bus.register_bridge(collector)
    try:
        await agent.start()
        await agent.wait_until_quiet()
    finally:
        await agent.stop()
    if speaker is not None:
        speaker.add(sink.underflows, SpeakerLosses.of(speaker_errors, agent.timeline.turns))
    if agent.wired:
        agent.nodes.chat.clear_context()
    return marks


def baseline_turn(
    config: Config, engines: Engines, padded: Any, text_in: np.ndarray
) -> dict[str, float]:
    from voiceterm.engines.llm import LlamaEngine
    from voiceterm.engines.tts import PiperSynthesizer
    from voiceterm.nodes import ReasoningNode

    assert isinstance(engines.llm, LlamaEngine) and isinstance(engines.tts, PiperSynthesizer)
    wait = config.vad.hangover_ms / 1000
    # A naive pipeline keeps no prompt cache: drop the KV state the streaming run left.
    engines.llm.reset()
    t0 = time.monotonic()
    transcript = padded.transcribe(text_in).text
    t_stt = time.monotonic()
    node = ReasoningNode(system_prompt=config.llm.system_prompt)
    from voiceterm.events import UserTranscriptionReceived

    node.add_event(UserTranscriptionReceived(content=transcript or "Hello."))
    messages = node.format_for_llm(node.conversation_events)
    reply = "".join(
        engines.llm.generate(messages, threading.Event(), max_tokens=config.llm.max_tokens)
    )
    t_llm = time.monotonic()
    audio = engines.tts.synthesize_all(reply or "Okay.")
    t_tts = time.monotonic()
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > AUDIBLE)
    lead = (loud[0] / engines.tts.sample_rate) if len(loud) else 0.0
    return {
        "v2v": wait + (t_tts - t0) + lead,
        "stt": t_stt - t0,
        "llm": t_llm - t_stt,
        "tts": t_tts - t_llm,
    }


STAGES = (
    ("end-of-speech wait", "speech_end", "vad_stop"),
    ("stt", "vad_stop", "stt_done"),
    ("llm first token", "stt_done", "llm_first_token"),
    ("first sentence", "llm_first_token", "first_sentence"),
    ("tts first audio", "first_sentence", "tts_first_audio"),
    ("audio to speaker", "tts_first_audio", "playback_start"),
)


def variant_config(variant: str) -> Config:
    """``default`` or ``section.key=value+section.key=value`` over the defaults."""
    config = Config()
    if variant == "default":
        return config
    values: dict[str, dict[str, str]] = {}
    for setting in variant.split("+"):
        name, _, value = setting.partition("=")
        section, _, key = name.strip().partition(".")
        values.setdefault(section, {})[key] = value.strip()
    return apply_values(config, values, f"variant {variant!r}")


def load_label(busy: int) -> str:
    return "idle" if busy == 0 else f"{busy} busy"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=12)
    parser.add_argument("--variants", nargs="+", default=["default"])
    parser.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="also run each turn beside N busy processes; print both figures",
    )
    parser.add_argument(
        "--part",
        choices=["tuning", "held-back"],
        help="whole real turns of this part of benchmarks/turn_clips.py, not the speech corpus",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="start llama-cpp-python's server for llm.backend=openai variants",
    )
    args = parser.parse_args()
    loads = [0] if args.background_load <= 0 else [0, args.background_load]
    configs = {variant: variant_config(variant) for variant in args.variants}
    config = configs[args.variants[0]]
    load_before = os.getloadavg()
    print("loading models ...", flush=True)
    # The in-process engines; a server variant swaps its LLM for the server's below.
    engines = load_engines(in_process(config))
    from voiceterm.engines.stt import WhisperTranscriber
    from voiceterm.modelstore import resolve_model

    padded = WhisperTranscriber(resolve_model("stt").path, pad_to_30s=True)
    with contextlib.ExitStack() as servers:
        variant_engines = {
            variant: server_engines(variant_cfg, engines, servers, serve=args.serve)
            for variant, variant_cfg in configs.items()
        }
        return run(args, configs, engines, variant_engines, padded, loads, load_before)


def in_process(config: Config) -> Config:
    """``config`` with the LLM run in this process (llm.backend = llama_cpp)."""
    import copy

    local = copy.deepcopy(config)
    local.llm.backend = "llama_cpp"
    return local


def server_engines(
    config: Config, engines: Engines, servers: contextlib.ExitStack, *, serve: bool
) -> Engines:
    """``engines``, or for ``llm.backend=openai`` the same with the server's LLM."""
    from dataclasses import replace

    from voiceterm.pipeline.loading import load_llm_server

    if config.llm.backend != "openai":
        return engines
    if serve:
        from benchmarks.llm_server import LocalChatServer
        from voiceterm.engines.llm import LlamaEngine

        llm = engines.llm
        assert isinstance(llm, LlamaEngine)
        threads = (
            "--n_threads",
            str(llm.threads.n_threads),
            "--n_threads_batch",
            str(llm.threads.n_threads_batch),
        )
        log = Path(tempfile.gettempdir()) / "bench_voice_server.log"
        server = LocalChatServer(log, model=llm.weights_path, extra=threads).start()
        servers.callback(server.stop)
        config.llm.url = server.url
        print(f"serving {llm.weights_path.name} at {server.url} ({' '.join(threads)})")
    engine, description = load_llm_server(config, lambda stage, state, detail: None)
    if not engine.ready:
        raise SystemExit(f"bench_voice: the server at {config.llm.url} does not answer")
    servers.callback(engine.close)
    return replace(engines, llm=engine, descriptions={**engines.descriptions, "llm": description})


def real_turns(part: str) -> list[Recording]:
    """The whole real turns of one part (the held-back speakers', or the tuning ones')."""
    from faster_whisper import WhisperModel

    from benchmarks.turn_clips import all_turns
    from voiceterm.modelstore import resolve_model

    whisper = WhisperModel(
        str(resolve_model("stt").path), device="cpu", compute_type="int8", local_files_only=True
    )
    return [
        Recording(name=t.name, audio=t.audio, transcript=t.name, speaker=t.speaker, real=True)
        for t in all_turns(whisper)
        if t.part == part
    ]


def run(
    args: argparse.Namespace,
    configs: dict[str, Config],
    engines: Engines,
    variant_engines: dict[str, Engines],
    padded: Any,
    loads: list[int],
    load_before: tuple[float, float, float],
) -> int:
    config = configs[args.variants[0]]
    corpus = (real_turns(args.part) if args.part else speech_corpus())[: args.utterances]
    runs = [(variant, busy) for busy in loads for variant in configs]
    streaming: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
    baseline: list[float] = []
    stages: dict[tuple[str, int], dict[str, list[float]]] = {run: {} for run in runs}
    speaker: dict[tuple[str, int], SpeakerTally] = {run: SpeakerTally() for run in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for index, item in enumerate(corpus):
            audio = np.concatenate(
                [np.zeros(RATE // 4, np.int16), item.audio, np.zeros(RATE // 2, np.int16)]
            )
            wav = Path(tmp) / f"q{index}.wav"
            write_wav(wav, audio, RATE)
            shown = []
            for busy in loads:
                # The busy programs run for the whole block, as a user's would.
                with background_load(busy) if busy else contextlib.nullcontext():
                    for variant, variant_cfg in configs.items():
                        out = Path(tmp) / f"a{index}.wav"
                        run = (variant, busy)
                        marks = asyncio.run(
                            streaming_turn(
                                variant_cfg, variant_engines[variant], wav, out, speaker[run]
                            )
                        )
                        if "speech_end" not in marks or "playback_start" not in marks:
                            print(
                                f"  utterance {index} ({variant}, {load_label(busy)}): "
                                f"no answer was played ({sorted(marks)})"
                            )
                            shown.append("   n/a")
                            continue
                        streaming[run].append(marks["playback_start"] - marks["speech_end"])
                        shown.append(f"{streaming[run][-1] * 1000:6.0f}")
                        for label, start, end in STAGES:
                            if start in marks and end in marks:
                                stage_times = stages[run].setdefault(label, [])
                                stage_times.append(marks[end] - marks[start])
            base = baseline_turn(config, engines, padded, item.audio)
            baseline.append(base["v2v"])
            print(
                f"  {index:2d} streaming {' / '.join(shown)} ms"
                f"   baseline {base['v2v'] * 1000:6.0f} ms"
                f"   {item.text[:50]!r}",
                flush=True,
            )
    load_after = os.getloadavg()
    print()
    print(
        f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f};"
        f" {os.cpu_count()} cores"
    )
    if len(loads) > 1:
        print(f"each turn said {' / '.join(load_label(busy) for busy in loads)}")
    header = "".join(f"{load_label(busy):>10} p50      p95" for busy in loads)
    print(f"voice-to-voice over {len(corpus)} utterances (ms)".ljust(38) + header)
    for variant in configs:
        row = f"  streaming ({variant[:24]})".ljust(38)
        for busy in loads:
            times = streaming[(variant, busy)]
            row += f"{percentile(times, 50) * 1000:14.0f}   {percentile(times, 95) * 1000:6.0f}"
        print(row)
    print(
        "  sequential baseline (idle)".ljust(38)
        + f"{percentile(baseline, 50) * 1000:14.0f}   {percentile(baseline, 95) * 1000:6.0f}"
    )
    for variant, busy in runs:
        print(
            f"  the speaker ({variant[:24]}, {load_label(busy)}, a WAV file in real time): "
            f"{speaker[(variant, busy)].describe()}"
        )
    idle_times = streaming[(args.variants[0], 0)]
    if idle_times:
        print(
            f"  baseline/streaming (idle, {args.variants[0]}):"
            f" {statistics.median(baseline) / statistics.median(idle_times):.1f}x"
        )
    for variant in configs:
        print(f"\nstreaming ({variant}), per stage (ms)".ljust(39) + header)
        labels = [label for label, _, _ in STAGES if label in stages[(variant, 0)]]
        for label in labels:
            row = f"  {label:<36}"
            for busy in loads:
                values = stages[(variant, busy)].get(label, [])
                row += (
                    f"{percentile(values, 50) * 1000:14.0f}   {percentile(values, 95) * 1000:6.0f}"
                )
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
