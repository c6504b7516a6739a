"""Replaying a recording through today's pipeline, in lockstep on audio time.

The recorded microphone is handed to the listener one block at a time, and the
next block only once every stage has finished with what the last one caused
(transcripts, end-of-turn checks, the answer being written and synthesized). So
engine speed never changes a decision: processing takes no audio time, and the
same recording with the same settings and models gives the same turns.

Everything that reads the time for a decision reads audio time: the listener's
clock (the replay's, handed to the agent in place of ``time.monotonic``), each
block's capture time (the recording's own, moved to now) and the speaker's
position. The recorded speaker sound is the echo canceller's reference, block
for block as live.

Answers are made and "played" on the same clock, on a speaker nobody hears (its
sound can go to ``--output``), over the stretch of audio where the recorded answer
to the same speech played: from when it started (the recording's voice-to-voice;
``DEFAULT_ANSWER_DELAY_S`` for a turn the recording has no answer to) to when it
stopped at the latest. So a recorded barge-in lands on the replayed answer at the
moment it landed on the original, the user's next question comes after it as it
did in the room, and the echo in the recorded microphone is what the room heard.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from voiceterm.audio.frames import CAPTURE_RATE, AudioFrame, PlaybackPosition
from voiceterm.audio.playback import EngineSink, PlaybackEngine
from voiceterm.bus import Message
from voiceterm.config import Config, apply_values
from voiceterm.errors import ConfigError
from voiceterm.events import UserStoppedSpeaking
from voiceterm.recording.latency import FixedLatency, RecordedLatency
from voiceterm.recording.reader import Recording
from voiceterm.recording.turns import TURN_EVENTS, SpokenTurn, spoken_turns

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import numpy as np
    import numpy.typing as npt

    from voiceterm.pipeline.agent import VoiceAgent
    from voiceterm.pipeline.loading import Engines

    Int16Array = npt.NDArray[np.int16]

DEFAULT_ANSWER_DELAY_S = 0.8
"""When a replayed answer starts after its turn, for speech the recording did not answer."""
TAIL_S = 30.0
"""Most audio time played after the recording ends, for the last answer to finish."""
TAIL_MIN_S = 2.0
"""Silence played after the recording at least: the listener ends a last turn as live."""
_SAME_SPEECH_S = 1.0  # a recorded turn whose speech ended this close is the same turn
# The events' fields that hold a time on the session's clock.
_TIME_FIELDS = (
    "at",
    "start",
    "end",
    "speech_start",
    "speech_end",
    "onset_time",
    "playback_start",
    "last_sample_time",
    "asked_at",
    "answered_at",
)
# A recorded answer heard for less than this still gets this long (a replayed answer
# must make a sound to count as spoken).
_MIN_ANSWER_S = 0.3


# --- settings ------------------------------------------------------------------------------


def replay_config(recording: Recording, sets: list[str]) -> tuple[Config, list[str]]:
    """The recording's settings, then ``--set section.key=value``; and notes for a person.

    Settings this voiceterm does not know are left out (with a note); settings it
    has that the recording lacks keep today's defaults.

    Raises:
        ConfigError: a ``--set`` that is not ``section.key=value`` or names no setting.
    """
    config = Config()
    notes: list[str] = []
    known: dict[str, Any] = {}
    sections = {f.name: f for f in fields(config)}
    for section, values in recording.settings.items():
        if section not in sections or not isinstance(values, dict):
            notes.append(f"the recording's [{section}] is not a section any more")
            continue
        keys = {f.name for f in fields(getattr(config, section))}
        for key, value in values.items():
            if key in keys:
                known.setdefault(section, {})[key] = value
            else:
                notes.append(f"the recording's {section}.{key} is not a setting any more")
    apply_values(config, known, "the recording's settings")
    block_ms = recording.block_ms
    if block_ms is not None and block_ms != config.audio.block_ms:
        # The microphone's blocks were not the setting's (a script's source): the VAD
        # must see the blocks it saw.
        notes.append(f"the microphone gave {block_ms} ms blocks: replayed in those")
        config.audio.block_ms = block_ms
    for assignment in sets:
        name, equals, value = assignment.partition("=")
        section, dot, key = name.strip().partition(".")
        if not equals or not dot or not key:
            raise ConfigError(
                f"--set {assignment!r} is not section.key=value.",
                hint="e.g. --set turn.threshold=0.6",
            )
        apply_values(config, {section: {key: value.strip()}}, "--set")
        notes.append(f"--set {section}.{key} = {value.strip()}")
    config.session.record = False  # a replay is not recorded again
    config.session.record_dir = None
    return config, notes


# --- the clock -----------------------------------------------------------------------------


class AudioClock:
    """Audio time: the capture time of the end of the last block handed out."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


# --- source, reference, speaker --------------------------------------------------------


class RecordedReference:
    """The recorded speaker sound, handed to the echo canceller block by block as live."""

    def __init__(self, speaker: Int16Array) -> None:
        self._speaker = speaker
        self._cursor = 0
        self.upto = 0
        """End of the block just handed out (set by the source)."""
        self.upto_t = 0.0
        """Its time: the canceller may ask for the speaker's sound ahead of it, as live."""

    def until(self, t: float) -> list[Int16Array]:
        ahead = max(0, round((t - self.upto_t) * CAPTURE_RATE))
        end = min(self.upto + ahead, len(self._speaker))
        start, self._cursor = self._cursor, max(self._cursor, end)
        return [self._speaker[start : self._cursor]] if self._cursor > start else []


class ReplaySource:
    """The recorded microphone as an ``AudioSource``, one block at a time in lockstep."""

    realtime = False

    def __init__(
        self,
        mic: Int16Array,
        times: Any,
        clock: AudioClock,
        *,
        block_ms: int,
        reference: RecordedReference | None,
    ) -> None:
        self._mic = mic
        self._times = times
        self._clock = clock
        self._block = CAPTURE_RATE * block_ms // 1000
        self._reference = reference
        self.muted = False
        self.sink: ReplaySink | None = None
        self.idle: Callable[[], bool] = lambda: True
        self.finished_at: float | None = None
        self._closed = False

    def start(self) -> None:
        pass

    def close(self) -> None:
        self._closed = True

    async def _settled(self) -> None:
        # Yield to the loop until no stage has work left; sleep a little while an
        # engine thread works, not to take its core.
        await asyncio.sleep(0)
        while True:
            if self.idle():
                break
            await asyncio.sleep(0.002)
        await asyncio.sleep(0)

    async def frames(self) -> AsyncIterator[AudioFrame]:
        import numpy as np

        n = self._block
        total = len(self._mic)
        block_s = n / CAPTURE_RATE
        t = float(self._times[0]) if total else self._clock.now
        index = 0
        while not self._closed:
            await self._settled()
            if index < total:
                samples = self._mic[index : index + n]
                t = float(self._times[index])
                if len(samples) < n:
                    samples = np.concatenate((samples, np.zeros(n - len(samples), np.int16)))
            else:
                # After the recording: a quiet room, until the last answer has played.
                if self.finished_at is None:
                    self.finished_at = t
                quiet_s = t - self.finished_at
                done = self.idle() and (self.sink is None or not self.sink.busy)
                if quiet_s >= TAIL_S or (done and quiet_s >= TAIL_MIN_S):
                    return
                samples = np.zeros(n, dtype=np.int16)
            index += n
            if self._reference is not None:
                self._reference.upto = min(index, total)
                self._reference.upto_t = t + block_s
            self._clock.now = t + block_s
            if self.sink is not None:
                self.sink.advance(t, block_s)
            yield AudioFrame(
                samples=np.ascontiguousarray(samples, dtype=np.int16), t_start=t, offset=index - n
            )
            t += block_s


AnswerPlacement = Callable[[float], tuple[float, float | None]]
"""End of a turn's speech -> when its answer starts, and when it must be over (None: any time)."""


class ReplaySink(EngineSink):
    """A speaker on audio time: it plays as the recorded microphone advances.

    Each answer plays over the stretch of audio where the recording's answer to the
    same speech played: it starts when that one started and is over, at the latest,
    when that one stopped (the rest of a longer answer is dropped unheard), so the
    user's recorded speech meets the answer it met in the room.

    Args:
        placement: where the answer to a turn goes (see ``AnswerPlacement``).
        keep: keep what was played (for ``--output``).
    """

    def __init__(self, placement: AnswerPlacement, *, keep: bool) -> None:
        super().__init__()
        self._engine = PlaybackEngine(22050, self._callbacks.post_soon)
        self._placement = placement
        self._room_left: int | None = None  # samples the current answer may still fill
        self._keep = keep
        self._blocks: list[Int16Array] = []
        self._filled = 0.0
        self._turn: int | None = None
        self._release_at = 0.0
        self.now = 0.0
        self.speech_end: float | None = None
        """The end of the latest turn's speech (the replay tells it)."""
        self.underflows = 0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._callbacks.bind_loop(loop)

    def enqueue(self, audio: Int16Array, sample_rate: int, tag: Any) -> None:
        from voiceterm.audio.resample import resample_int16

        if tag.turn_id != self._turn:
            self._turn = tag.turn_id
            speech_end = self.speech_end if self.speech_end is not None else self.now
            self._release_at, stop_at = self._placement(speech_end)
            self._room_left = (
                None
                if stop_at is None
                else round(max(_MIN_ANSWER_S, stop_at - self._release_at) * self.sample_rate)
            )
        samples = resample_int16(audio, sample_rate, self.sample_rate)
        if self._room_left is not None:
            # One sample at least: every piece must still come back "played".
            samples = samples[: max(1, self._room_left)]
            self._room_left = max(0, self._room_left - len(samples))
        self._require_engine().enqueue(samples, tag)

    def advance(self, t: float, seconds: float) -> None:
        """Play the audio of ``seconds`` from audio time ``t`` on."""
        import numpy as np

        self.now = t
        self._filled += seconds * self.sample_rate
        n = int(self._filled)
        self._filled -= n
        out = np.zeros(n, dtype=np.int16)
        if t >= self._release_at:
            self._require_engine().fill(out, t)
        if self._keep:
            self._blocks.append(out)

    def position(self, at: float | None = None) -> PlaybackPosition | None:
        return super().position(self.now if at is None else at)

    def recording(self) -> Int16Array:
        import numpy as np

        return np.concatenate(self._blocks) if self._blocks else np.zeros(0, dtype=np.int16)

    def close(self) -> None:
        pass


# --- the run ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayResult:
    recorded: list[SpokenTurn]
    replayed: list[SpokenTurn]
    audio_s: float
    wall_s: float
    answers: Any = None
    latency: str = ""
    """Where the pause checks' answers came from on audio time (a line for a person)."""
    shift: float = 0.0
    """Seconds added to the recording's times to put them on the replay's clock."""
    notes: list[str] = field(default_factory=list)


def _recorded_answers(recorded: list[SpokenTurn]) -> AnswerPlacement:
    """Where the recording's answers played, relative to the end of their turn's speech."""
    known = [
        (t.speech_end, t.playback_start - t.speech_end, t.playback_end)
        for t in recorded
        if t.playback_start is not None
    ]
    default = statistics.median(d for _end, d, _stop in known) if known else DEFAULT_ANSWER_DELAY_S

    def placement(speech_end: float) -> tuple[float, float | None]:
        near = [
            (abs(end - speech_end), delay, stop)
            for end, delay, stop in known
            if abs(end - speech_end) < _SAME_SPEECH_S
        ]
        if not near:
            return speech_end + default, None
        _distance, delay, stop = min(near, key=lambda item: item[0])
        return speech_end + delay, stop

    return placement


async def replay(
    recording: Recording,
    config: Config,
    *,
    engines: Engines | None = None,
    keep_answers: bool = False,
    check_latency_s: float | None = None,
) -> ReplayResult:
    """Run the recording's microphone through a new agent; its turns and the recorded ones.

    ``check_latency_s``: every pause check (end-of-turn verdict, words so far) is
    answered this long after it is asked, on audio time; ``None``: as late as the
    recorded session's were (``RecordedLatency``).

    Raises:
        RecordingError: the recording's audio is truncated or damaged.
        ModelError: a model is missing.
    """
    from voiceterm.pipeline.agent import VoiceAgent
    from voiceterm.pipeline.loading import load_engines

    audio, times = _framed_as_live(recording)
    if engines is None:
        engines = await asyncio.to_thread(load_engines, config)
    clock = AudioClock()
    shift = clock.now - (float(times[0]) if len(times) else clock.now)
    messages = _shifted(recording.messages(), shift)
    recorded = spoken_turns(messages)
    latency, described = _pause_check_latency(messages, check_latency_s)
    mic, source = _replayed_microphone(recording, config, audio, times + shift, clock)
    sink = ReplaySink(_recorded_answers(recorded), keep=keep_answers)
    mic.sink = sink
    agent = VoiceAgent(
        config, source=source, sink=sink, engines=engines, check_latency=latency, clock=clock
    )
    seen = _watch_turns(agent, sink)
    mic.idle = _idle_check(agent)
    started = time.monotonic()
    await _run_to_the_end(agent)
    wall = time.monotonic() - started
    return ReplayResult(
        recorded=recorded,
        replayed=spoken_turns(seen),
        audio_s=len(audio) / CAPTURE_RATE,
        wall_s=wall,
        answers=sink.recording() if keep_answers else None,
        latency=described,
        shift=shift,
    )


def _pause_check_latency(
    messages: list[Message], check_latency_s: float | None
) -> tuple[RecordedLatency | FixedLatency, str]:
    """How late the pause checks are answered, and that in a line for a person."""
    if check_latency_s is None:
        recorded = RecordedLatency.of(messages)
        return recorded, f"pause checks as late as recorded: {recorded.summary()}"
    fixed = FixedLatency(check_latency_s)
    return fixed, f"pause checks answered {1000 * check_latency_s:.0f} ms after asked"


def _replayed_microphone(
    recording: Recording, config: Config, audio: Int16Array, times: Any, clock: AudioClock
) -> tuple[ReplaySource, Any]:
    """The recorded microphone, and what the agent reads: it, or it echo-cancelled
    against the recorded speaker sound as live."""
    from voiceterm.audio.echo import EchoCancelledSource, make_echo_canceller
    from voiceterm.errors import EngineError

    echo = config.audio.echo
    # A session whose microphone had no canceller (file mode) is replayed without one.
    cancelled = recording.meta.get("echo_canceller", "unknown") is not None
    reference = RecordedReference(audio[:, 1].copy()) if echo != "off" and cancelled else None
    mic = ReplaySource(
        audio[:, 0].copy(), times, clock, block_ms=config.audio.block_ms, reference=reference
    )
    if reference is None:
        return mic, mic
    try:
        canceller = make_echo_canceller(echo)
    except EngineError:  # no WebRTC package: as live, half-duplex instead
        canceller = make_echo_canceller("half_duplex")
    recorded_reference: Any = reference  # it has the one method the source calls
    source = EchoCancelledSource(mic, canceller, recorded_reference)
    setattr(source, "realtime", False)  # noqa: B010 - the listener waits for each check
    return mic, source


def _watch_turns(agent: VoiceAgent, sink: ReplaySink) -> list[Message]:
    """The messages the replayed turns are read from, as the agent publishes them; the
    sink also learns where each turn's speech ended (its answer is placed from there)."""
    seen: list[Message] = []

    def observe(message: Message) -> None:
        event = message.event
        if isinstance(event, TURN_EVENTS):  # the rest, sound chunks above all, is not kept
            seen.append(message)
        if isinstance(event, UserStoppedSpeaking) and not event.discarded:
            sink.speech_end = event.speech_end

    agent.bus.tap(observe)
    return seen


async def _run_to_the_end(agent: VoiceAgent) -> None:
    """Start the agent and stop it once its listener has heard everything."""
    try:
        await agent.start()
        if agent.wired:
            await agent.nodes.listener.finished.wait()
    finally:
        await agent.stop()


def _framed_as_live(recording: Recording) -> tuple[Int16Array, Any]:
    """The recording's audio and capture times, led in by the samples the live voice
    detector already held when recording started (as silence): its frames then fall
    where the live session's fell."""
    import numpy as np

    audio = recording.audio()
    times = recording.times(len(audio))
    lead = int(recording.meta.get("vad_phase_samples", 0) or 0)
    if lead <= 0 or not len(audio):
        return audio, times
    lead_in = np.zeros((lead, audio.shape[1]), dtype=audio.dtype)
    lead_times = times[0] - np.arange(lead, 0, -1, dtype=np.float64) / CAPTURE_RATE
    return np.concatenate((lead_in, audio)), np.concatenate((lead_times, times))


def _idle_check(agent: VoiceAgent) -> Callable[[], bool]:
    def idle() -> bool:
        for bridge in agent.bus.bridges:
            for route in bridge.routes:
                if route.pending:
                    return False
        # The replay waits for a held transcript too.
        return not (agent.nodes is not None and agent.nodes.stt.holding)

    return idle


def _shifted(messages: list[Message], shift: float) -> list[Message]:
    """The recorded messages with every time moved by ``shift`` (onto the replay's clock)."""
    for message in messages:
        message.timestamp += shift
        event = message.event
        for name in _TIME_FIELDS:
            value = getattr(event, name, None)
            if isinstance(value, float):
                setattr(event, name, value + shift)
    return messages
