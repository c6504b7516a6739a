"""The events of scripted turns: the user speaking, the agent answering, a barge-in.

Pure functions of the text and a start time on a virtual clock, with timings
roughly those of the embedded models on a small laptop;
:class:`~voiceterm.tui.demo.ScriptedAgent` publishes them. The events, marks and
spans are the ones the real pipeline publishes, so the TUI draws a scripted turn
as it draws a real one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voiceterm.events import (
    AgentGenerationComplete,
    AgentInterrupted,
    AgentResponse,
    AgentSentence,
    AgentSpeechSent,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    StageSpan,
    ToolCall,
    ToolResult,
    TurnMark,
    UserStartedSpeaking,
    UserStoppedSpeaking,
    UserTranscriptionPartial,
    UserTranscriptionReceived,
)

# Scripted speeds, roughly those of the embedded models on a small laptop.
_SPEECH_S_PER_CHAR = 0.06  # the user talking
_HANGOVER_S = 0.30  # VAD silence before it calls the end
_STT_S = 0.06
_PROMPT_S = 0.15  # LLM time to first token
_TOKEN_S = 0.035
_TTS_S_PER_CHAR = 0.003
_TTS_BASE_S = 0.03
_PLAY_S_PER_CHAR = 0.065  # the agent talking
_OUTPUT_LATENCY_S = 0.02
_STOP_LATENCY_S = 0.04  # barge-in: onset confirmed -> last sample played

PlayedPiece = tuple[float, float, str]
"""A sentence piece on the speaker: when it starts and ends playing, and its text."""


@dataclass(slots=True)
class Reply:
    """What the scripted agent answers, and which tool it calls first."""

    text: str
    tool: str = ""
    tool_args: dict[str, Any] | None = None
    tool_result: str = ""


def canned_reply(text: str, now_wall: float) -> Reply:
    """A small offline 'brain': the clock tool for time questions, else an echo."""
    lowered = text.lower()
    if "time" in lowered:
        clock = datetime.fromtimestamp(now_wall).strftime("%H:%M")
        return Reply(f"It is {clock}. Anything else I can help with?", "clock", {}, clock)
    if "story" in lowered:
        return Reply(
            "Once upon a time, a small terminal learned to speak. "
            "It listened carefully, answered quickly, and stopped talking "
            "the moment anyone interrupted it. Everyone liked that very much."
        )
    return Reply(
        f"You said: {text.strip().rstrip('.?!')}. This is the demo voice, so I can only "
        "echo you, but the real one runs Whisper, SmolLM2 and Piper on this machine."
    )


def speech_events(onset: float, text: str) -> list[Any]:
    """The user saying ``text`` from ``onset``: VAD, partial transcripts, STT."""
    speech_end = onset + max(0.8, len(text) * _SPEECH_S_PER_CHAR)
    vad_stop = speech_end + _HANGOVER_S
    stt_done = vad_stop + _STT_S
    events: list[Any] = [UserStartedSpeaking(onset_time=onset, timestamp=onset + 0.12)]
    words = text.split()
    for count in range(1, len(words)):
        at = onset + (speech_end - onset) * count / len(words)
        partial = " ".join(words[:count])
        events.append(UserTranscriptionPartial(content=partial, timestamp=at))
    events += [
        TurnMark(name="speech_end", at=speech_end, timestamp=vad_stop),
        TurnMark(name="vad_stop", at=vad_stop, timestamp=vad_stop),
        StageSpan(stage="vad", start=onset, end=speech_end, content="", timestamp=vad_stop),
        UserStoppedSpeaking(speech_start=onset, speech_end=speech_end, timestamp=vad_stop),
        StageSpan(stage="stt", start=vad_stop, end=stt_done, content=text, timestamp=stt_done),
        TurnMark(name="stt_done", at=stt_done, detail=text, timestamp=stt_done),
        UserTranscriptionReceived(content=text, timestamp=stt_done),
    ]
    return events


def answer_events(reply: Reply, start: float, *, cut_after_s: float | None = None) -> list[Any]:
    """The agent giving ``reply`` from ``start``: tool, tokens, pieces, TTS, playback.

    With ``cut_after_s``, the user barges in that many seconds after the answer
    started playing.
    """
    events, t = _tool_events(reply, start)
    tokens = _tokens(reply.text)
    token_end = [t + _PROMPT_S + i * _TOKEN_S for i in range(len(tokens))]
    events += _token_events(reply.text, tokens, token_end, t)
    spoken, played = _spoken_pieces(tokens, token_end)
    events += spoken
    if cut_after_s is None:
        play_free = played[-1][1]
        events.append(AgentStoppedSpeaking(last_sample_time=play_free, timestamp=play_free + 0.001))
        return events
    return barge_in(events, played, played[0][0] + cut_after_s)


def barge_in(events: list[Any], played: list[PlayedPiece], onset: float) -> list[Any]:
    """Cut an answer: the user starts talking at ``onset``."""
    confirmed = onset + 0.15
    stopped = confirmed + _STOP_LATENCY_S
    kept = [e for e in events if e.timestamp <= confirmed]
    kept += [
        UserStartedSpeaking(onset_time=onset, timestamp=onset + 0.12),
        TurnMark(name="barge_in_onset", at=onset, timestamp=confirmed),
        AgentInterrupted(reason="user_speech", timestamp=confirmed),
    ]
    for start, end, content in played:
        if start < stopped < end:
            words = content.split()
            heard = " ".join(words[: int(len(words) * (stopped - start) / (end - start))])
            kept += [
                StageSpan(
                    stage="playback", start=start, end=stopped, content=heard, timestamp=stopped
                ),
                AgentSpeechSent(content=heard + " " if heard else "", timestamp=stopped),
            ]
    kept += [
        TurnMark(name="playback_stopped", at=stopped, timestamp=stopped),
        AgentStoppedSpeaking(interrupted=True, last_sample_time=stopped, timestamp=stopped),
    ]
    return kept


def _tool_events(reply: Reply, start: float) -> tuple[list[Any], float]:
    """The reply's tool call and result, if it has one; and when the answer's prompt starts."""
    if not reply.tool:
        return [], start
    call = ToolCall(tool_name=reply.tool, tool_args=reply.tool_args or {}, timestamp=start)
    t = start + 0.01
    events: list[Any] = [
        call,
        ToolResult(
            tool_name=reply.tool,
            tool_args=call.tool_args,
            result=reply.tool_result,
            tool_call_id=call.tool_call_id,
            timestamp=t,
        ),
        StageSpan(stage="llm", start=start, end=t, content=f"tool {reply.tool}", timestamp=t),
    ]
    return events, t


def _token_events(text: str, tokens: list[str], token_end: list[float], t: float) -> list[Any]:
    """The LLM streaming ``tokens`` from ``t``, each done at its ``token_end``."""
    events: list[Any] = [TurnMark(name="llm_first_token", at=token_end[0], timestamp=token_end[0])]
    previous = t
    for token, end in zip(tokens, token_end, strict=True):
        events += [
            AgentResponse(content=token, timestamp=end),
            StageSpan(stage="llm", start=previous, end=end, content=token, timestamp=end),
        ]
        previous = end
    events.append(
        AgentGenerationComplete(
            total_length=len(text), chunk_count=len(tokens), timestamp=token_end[-1]
        )
    )
    return events


def _spoken_pieces(
    tokens: list[str], token_end: list[float]
) -> tuple[list[Any], list[PlayedPiece]]:
    """Each sentence piece cut, synthesized and played (one synthesizer, one speaker)."""
    events: list[Any] = []
    tts_free = play_free = 0.0
    played: list[PlayedPiece] = []
    for index, piece in enumerate(_pieces(tokens)):
        content = "".join(tokens[i] for i in piece).strip()
        cut = token_end[piece[-1]]
        first = token_end[piece[0]] - _TOKEN_S
        synth_start = max(cut, tts_free)
        tts_free = synth_start + _TTS_BASE_S + _TTS_S_PER_CHAR * len(content)
        play_start = max(tts_free + _OUTPUT_LATENCY_S, play_free)
        play_free = play_start + _PLAY_S_PER_CHAR * len(content)
        played.append((play_start, play_free, content))
        events += [
            AgentSentence(content=content, index=index, timestamp=cut),
            StageSpan(stage="sentence", start=first, end=cut, content=content, timestamp=cut),
            StageSpan(
                stage="tts", start=synth_start, end=tts_free, content=content, timestamp=tts_free
            ),
        ]
        if index == 0:
            events += [
                TurnMark(name="first_sentence", at=cut, timestamp=cut),
                TurnMark(name="tts_first_audio", at=tts_free, timestamp=tts_free),
                TurnMark(name="playback_start", at=play_start, timestamp=play_start),
                AgentStartedSpeaking(playback_start=play_start, timestamp=play_start),
            ]
        events += [
            StageSpan(
                stage="playback",
                start=play_start,
                end=play_free,
                content=content,
                timestamp=play_free,
            ),
            AgentSpeechSent(content=content + " ", timestamp=play_free),
        ]
    return events, played


def _tokens(text: str) -> list[str]:
    """Word-sized tokens with their leading space, like an LLM's stream."""
    return re.findall(r"\s*\S+", text)


def _pieces(tokens: list[str]) -> list[list[int]]:
    """Token indices grouped into sentence pieces (the first may end at a comma)."""
    pieces: list[list[int]] = [[]]
    for index, token in enumerate(tokens):
        pieces[-1].append(index)
        ends = token.rstrip()[-1:] in ".!?"
        first_clause = len(pieces) == 1 and token.endswith(",") and len(pieces[-1]) >= 3
        if ends or first_clause:
            pieces.append([])
    return [p for p in pieces if p]
