"""Every event that travels on the bus, as small dataclasses.

Each event is stamped with ``time.monotonic()`` when it is created (``timestamp``),
so the timeline can place it without asking anyone. Names and fields follow the
Line SDK (``line.events``) so that its examples run with ``voiceterm.`` imports.

Control events (``ControlEvent`` subclasses) are the ones that must never wait
behind data: the bus hands them to interrupt handlers before anything queued.

Audio payloads are typed ``Any`` on purpose: the core never imports numpy; the
engines put ``numpy.ndarray`` (int16 or float32, mono) there.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

_tool_call_ids = itertools.count(1)


def _next_tool_call_id() -> str:
    return f"call_{next(_tool_call_ids)}"


@dataclass(slots=True)
class Event:
    """Base of all events: carries the monotonic time at which it was made."""

    timestamp: float = field(default_factory=time.monotonic, kw_only=True, compare=False)


@dataclass(slots=True)
class ControlEvent(Event):
    """An event that interrupts or steers; delivered ahead of queued data."""


# --- the user -------------------------------------------------------------


@dataclass(slots=True)
class UserStartedSpeaking(ControlEvent):
    """The VAD heard the user start talking.

    ``onset_time`` is the monotonic time of the first voiced input sample (before
    the VAD's confirmation delay), when the source knows it.
    """

    onset_time: float | None = None


@dataclass(slots=True)
class UserStoppedSpeaking(Event):
    """The VAD decided the user finished an utterance.

    ``audio`` is the utterance (mono, ``sample_rate`` Hz, with pre-roll);
    ``speech_end`` is the monotonic time of the last voiced input sample.
    ``discarded``: it is not a turn (a click, a cough, the agent's own echo) and
    carries no audio. ``barge_in``: it cut the agent off. ``wake_near_miss``: in
    wake_word mode, the wake word model's best score in an utterance that nearly woke
    it: a turn only if its words begin with the wake phrase (the STT node checks).
    """

    audio: Any = None
    sample_rate: int = 16000
    speech_start: float | None = None
    speech_end: float | None = None
    discarded: bool = False
    barge_in: bool = False
    wake_near_miss: float | None = None


@dataclass(slots=True)
class UserSpeechPaused(Event):
    """The user has been silent for a moment but the utterance is not over yet.

    Carries the utterance so far, so that transcription and the LLM's prompt can
    start while the end-of-speech wait runs; if the user goes on talking, that
    work is simply not used. ``speech_end`` is the last voiced sample so far.
    ``wake_check``: in wake_word mode, not a turn unless it begins with the wake
    phrase: the STT node checks it (and says nothing of it unless it does).
    """

    audio: Any = None
    sample_rate: int = 16000
    speech_start: float | None = None
    speech_end: float | None = None
    wake_check: bool = False


@dataclass(slots=True)
class UserTranscriptionPartial(Event):
    """A provisional transcript while the user is still talking."""

    content: str = ""


@dataclass(slots=True)
class UserTranscriptionReceived(Event):
    """The final transcript of one user utterance (or a typed message)."""

    content: str = ""


@dataclass(slots=True)
class UserTranscriptionDropped(Event):
    """An utterance that is not a turn after all, seen in its transcript.

    ``reason`` is ``"nothing_heard"`` (Whisper found no words), ``"own_voice"``
    (the words are the agent's own, come back through the microphone),
    ``"not_wake_phrase"`` (a near miss of the wake word whose words are not the
    phrase; ``content`` stays empty: it was not addressed to the agent) or
    ``"wake_phrase_alone"`` (the wake phrase said alone: the window opened).
    """

    content: str = ""
    reason: str = "nothing_heard"


# --- the agent ------------------------------------------------------------


@dataclass(slots=True)
class AgentResponse(Event):
    """One chunk of the agent's answer."""

    content: str = ""
    chunk_type: str = "text"


@dataclass(slots=True)
class AgentGenerationComplete(Event):
    """The end of one generation: how much text it produced, in how many chunks."""

    total_length: int = 0
    chunk_count: int = 0


@dataclass(slots=True)
class AgentSentence(Event):
    """A piece of the answer cut at a clause or sentence boundary, ready for TTS."""

    content: str = ""
    index: int = 0
    final: bool = False


@dataclass(slots=True)
class AgentAudioChunk(Event):
    """Synthesized speech for (part of) one sentence."""

    audio: Any = None
    sample_rate: int = 22050
    text: str = ""
    sentence_index: int = 0
    chunk_index: int = 0
    last_of_sentence: bool = True
    last_of_answer: bool = False


@dataclass(slots=True)
class AgentStartedSpeaking(Event):
    """The first audible sample of an answer reached the output device."""

    playback_start: float | None = None


@dataclass(slots=True)
class AgentStoppedSpeaking(Event):
    """Playback of an answer ended, fully or because it was interrupted."""

    interrupted: bool = False
    last_sample_time: float | None = None


@dataclass(slots=True)
class AgentSpeechSent(Event):
    """Text that was actually played to the user (from playback progress)."""

    content: str = ""


@dataclass(slots=True)
class AgentInterrupted(ControlEvent):
    """The agent's turn was cut off (barge-in, a typed message, or a key)."""

    reason: str = "user_speech"


@dataclass(slots=True)
class AgentSpeculation(Event):
    """The start of the answer to a provisional transcript, sampled ahead of time.

    Not an answer yet: if the user's turn ends with exactly ``transcript``, the
    answer begins with ``pieces`` (and the stages after the LLM can prepare them).
    ``complete``: the pieces are the whole answer (a short reply that ended, or a
    tool's), so its last piece is known too.
    """

    transcript: str = ""
    pieces: tuple[str, ...] = ()
    complete: bool = False


@dataclass(slots=True)
class SpeculativeSentence(Event):
    """The first piece the answer will be cut into, if the speculation holds."""

    content: str = ""


@dataclass(slots=True)
class BargeInSuspected(ControlEvent):
    """Someone may be talking over the agent: playback holds while the listener checks.

    Holding the sound also silences the agent's own echo, so what goes on being
    heard after the hold is the user (``AgentInterrupted`` follows) and what stops
    with it was echo or a cough (``BargeInDismissed`` follows).
    """

    onset_time: float = 0.0


@dataclass(slots=True)
class BargeInDismissed(ControlEvent):
    """It was not the user taking the turn: the held answer plays on."""

    onset_time: float = 0.0


@dataclass(slots=True)
class AgentError(Event):
    """Something failed inside a stage; the app keeps going.

    ``source`` names the stage (``stt``, ``llm``, ``tts``, ``speaker``, ``mic``) or,
    for any other route, the route (see ``Route.name``).
    """

    error: str = ""
    source: str = ""
    STAGES: ClassVar[dict[str, str]] = {
        "stt": "speech recognition (stt)",
        "llm": "language model (llm)",
        "sentences": "sentence splitter",
        "tts": "speech synthesis (tts)",
        "speaker": "speaker",
        "mic": "microphone",
    }

    @property
    def stage(self) -> str:
        """The failed stage, for a person: "speech recognition (stt)", "speaker"...

        Any route of a stage's node counts as the stage (``"llm:UserTranscriptionPartial"``
        is the language model too).
        """
        node = self.source.split(":", 1)[0]
        return self.STAGES.get(node, self.source or "a stage")

    def describe(self) -> str:
        """One line for a person: which stage failed, why, and that the talk goes on."""
        return f"The {self.stage} failed: {self.error.rstrip('.')}. The conversation goes on."


@dataclass(slots=True)
class ToolCall(Event):
    """The agent asks for a tool to run."""

    tool_name: str = ""
    tool_args: dict[str, Any] = field(default_factory=dict)
    tool_call_id: str = field(default_factory=_next_tool_call_id)


@dataclass(slots=True)
class ToolResult(Event):
    """What a tool returned (``result``) or why it failed (``error``)."""

    tool_name: str = ""
    tool_args: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    tool_call_id: str = ""


# --- observability --------------------------------------------------------


@dataclass(slots=True)
class LogMetric(Event):
    """A named measurement (seconds, tokens/s, counts...)."""

    name: str = ""
    value: Any = None


@dataclass(slots=True)
class AudioLevel(Event):
    """Microphone level for meters: RMS in dBFS and whether the VAD hears voice."""

    level_db: float = -120.0
    voiced: bool = False


@dataclass(slots=True)
class AudioGlitches(Event):
    """The sound devices dropped audio; counts since they were opened.

    Published when a count grows. ``speaker_underflows``: the speaker ran dry
    (an audible click); ``mic_overflows``: microphone audio was lost before the
    app read it. Both mean the machine was too busy to keep the audio in time.
    """

    speaker_underflows: int = 0
    mic_overflows: int = 0
    HINT: ClassVar[str] = (
        "The machine is too busy to keep the sound in time: close other programs,"
        " or raise audio.output_buffer_ms (speaker) / audio.block_ms (microphone)."
    )

    def describe(self) -> str:
        """One sentence for a person: what was lost, since start."""
        lost = []
        if self.speaker_underflows:
            lost.append(f"the speaker ran dry {_times(self.speaker_underflows)} (clicks)")
        if self.mic_overflows:
            lost.append(f"the microphone lost audio {_times(self.mic_overflows)}")
        return f"Audio dropouts since start: {' and '.join(lost) or 'none'}."


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


@dataclass(slots=True)
class StageStatus(Event):
    """A stage's lifecycle: ``loading``, ``ready``, ``failed`` or ``stopped``.

    Start-up progress (models loading, devices opening) and stage crashes reach
    the UI this way; ``detail`` is one human sentence (the model name, the error).
    """

    stage: str = ""
    state: str = "loading"
    detail: str = ""


@dataclass(slots=True)
class WakeWordHeard(Event):
    """The wake word model scored the microphone above its cutoff (or, a near miss, above half).

    ``at`` is the monotonic time of the end of the audio that scored it;
    ``phrase_end`` where the wake phrase is taken to end (the turn's audio starts
    there). ``near_miss``: it did not wake (the best score of an utterance that
    was not a turn), published so a person can see why. ``by_words``: the model's
    score did not wake it, but Whisper's check of the utterance did (``probability``
    is the model's best score in it; ``at`` when the check was done); ``how`` that
    check found the phrase: by its ``"words"`` or by its ``"sound"``.
    """

    phrase: str = ""
    probability: float = 0.0
    cutoff: float = 0.0
    at: float = 0.0
    phrase_end: float = 0.0
    near_miss: bool = False
    by_words: bool = False
    how: str = "words"

    def describe(self) -> str:
        if self.near_miss:
            verb = "did not wake"
        elif self.by_words:
            verb = f"woke by its {self.how}"
        else:
            verb = "woke"
        return f"{self.phrase}: {self.probability:.2f} ({verb}; wakes above {self.cutoff:.2f})"


@dataclass(slots=True)
class ListeningChanged(Event):
    """What the microphone is listening for now (``listen.mode`` and the follow-up window).

    ``mode``: ``always``, ``wake_word`` or ``push_to_talk``. ``state`` in wake_word
    mode: ``asleep`` (waiting for the wake word), ``open`` (turns are heard without it
    until ``until``, a monotonic time) or ``answering`` (the agent is busy: open until
    the answer ends, then ``open`` for the follow-up window); ``on`` in other modes.
    """

    mode: str = "always"
    state: str = "on"
    until: float | None = None
    phrase: str = ""


@dataclass(slots=True)
class TurnMark(Event):
    """A named instant of the current turn (``speech_end``, ``stt_done``, ...).

    The timeline builds its per-turn record from these; ``at`` is the monotonic
    time the mark refers to, which may be earlier than ``timestamp``.
    """

    name: str = ""
    at: float = 0.0
    detail: str = ""


@dataclass(slots=True)
class PauseChecked(Event):
    """A check made at a pause in the user's speech: when it was asked, when answered.

    ``kind`` is ``"turn"`` (the end-of-turn model's verdict) or ``"words"`` (the
    transcript of the utterance so far). Every check is told, also one answered too
    late to count (the user had gone on): how late each answer came decides turns
    live, so a recording keeps it and its replay uses each answer as late as it came.
    """

    kind: str = ""
    speech_end: float | None = None
    asked_at: float = 0.0
    answered_at: float = 0.0


@dataclass(slots=True)
class StageSpan(Event):
    """A chunk of work of one stage, with its start and end (monotonic seconds)."""

    stage: str = ""
    start: float = 0.0
    end: float = 0.0
    content: str = ""


__all__ = [
    "AgentAudioChunk",
    "AgentError",
    "AgentGenerationComplete",
    "AgentInterrupted",
    "AgentResponse",
    "AgentSentence",
    "AgentSpeculation",
    "AgentSpeechSent",
    "AgentStartedSpeaking",
    "AgentStoppedSpeaking",
    "AudioGlitches",
    "AudioLevel",
    "BargeInDismissed",
    "BargeInSuspected",
    "ControlEvent",
    "Event",
    "ListeningChanged",
    "LogMetric",
    "PauseChecked",
    "SpeculativeSentence",
    "StageSpan",
    "StageStatus",
    "ToolCall",
    "ToolResult",
    "TurnMark",
    "UserSpeechPaused",
    "UserStartedSpeaking",
    "UserStoppedSpeaking",
    "UserTranscriptionDropped",
    "UserTranscriptionPartial",
    "UserTranscriptionReceived",
    "WakeWordHeard",
]
