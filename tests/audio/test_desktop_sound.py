"""The speaker after a long quiet, on the sound server the rig runs (``VT_RIG_PROFILE``).

On a desktop the sound server suspends a sink nobody plays to (PulseAudio's
module-suspend-on-idle and PipeWire both do, after 5 s), and voiceterm stops its
own stream after ``SLEEP_AFTER_S`` of silence. The next answer then starts a
stream on a sink that is waking up: the first buffer is taken at once, the next
callback comes only when the sink runs, up to 2 s later on a null sink. That is
slow, not lost: the whole answer must be heard, and nothing reported as lost.

The ear records the speaker's monitor with a 2 s latency, started only when the
question is asked, so that it neither keeps the sink from suspending nor makes it
render in small blocks (which would hide the slow start).
"""

from __future__ import annotations

import re
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from benchmarks.corpus import espeak, normalize_words
from benchmarks.rig import LiveApp, Recording, transcribe
from tests.audio.conftest import Rig
from voiceterm.audio.speaker import SLEEP_AFTER_S

pytestmark = [pytest.mark.audio, pytest.mark.desktop, pytest.mark.models]

SERVER_SUSPEND_S = 5.0  # PulseAudio's module-suspend-on-idle and PipeWire's default
QUESTION = "What is the capital of France?"
WHOLE = 0.8
"""Share of the answer's sound that must be heard (levels differ a little at -40 dBFS)."""


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.asarray(audio, np.int16).tobytes())
    return path


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as recording:
        return np.frombuffer(recording.readframes(recording.getnframes()), np.int16)


def rendered(text: str) -> np.ndarray:
    """``text`` as the app's voice says it (the embedded Piper voice), at 16 kHz."""
    from voiceterm.audio.resample import resample
    from voiceterm.engines.tts import PiperSynthesizer
    from voiceterm.modelstore import resolve_model

    tts = PiperSynthesizer(resolve_model("tts").path, warm_up=False)
    return np.asarray(resample(tts.synthesize_all(text), tts.sample_rate, 16000), np.int16)


def test_an_answer_after_a_long_quiet_is_heard_whole(rig: Rig, tmp_path: Path) -> None:
    question = write_wav(
        tmp_path / "question.wav",
        np.concatenate((np.zeros(3200, np.int16), espeak(QUESTION), np.zeros(3200, np.int16))),
    )
    app = LiveApp(rig.env, ("--audio-echo", "off", "--llm-max-tokens", "32"), config_home=tmp_path)
    app.start()
    heard_path = tmp_path / "heard.wav"
    try:
        time.sleep(SLEEP_AFTER_S + SERVER_SUSPEND_S + 2.0)
        if rig.profile != "lab":  # the lab keeps its sinks running on purpose
            assert rig.sink_state("vt_speaker") == "SUSPENDED", "the quiet did not suspend the sink"
        since = app.mark()
        with rig.record_speaker(heard_path, latency_msec=2000):
            player = rig.play_into_mic(question)
            player.wait(timeout=30)
            app.wait_for(r"^agent:", since=since, timeout=60)
            app.wait_for(r"voice-to-voice \d+ ms|\[interrupted", since=since, timeout=60)
            time.sleep(2.5)  # the ear's 2 s buffer still holds the answer's end
    finally:
        app.stop()

    transcript = app.transcript()
    assert "The speaker failed" not in transcript, (
        f"a slow start was taken for a loss:\n{transcript}"
    )
    assert "The speaker stopped playing 0 times" in transcript, transcript
    assert app.find(r"\[interrupted", since) is None, transcript
    agent = app.find(r"^agent:", since)
    assert agent is not None
    printed = agent.text.removeprefix("agent:").strip()
    sound = read_wav(heard_path)
    heard = transcribe(sound)
    # Whole: as much sound as the app's voice makes of the answer. Whisper's words
    # only show it was the answer: it reads a French name differently each time
    # ("Le Grand Paris": "Lagrange Paris", "Lagrain Paris").
    own = rendered(printed)
    expected = transcribe(own)
    words = set(normalize_words(printed)) | set(normalize_words(expected))
    assert set(normalize_words(heard)) & words, f"heard {heard!r}, the answer was {printed!r}"
    heard_s = Recording(sound, 16000, 0.0).loud_seconds()
    spoken_s = Recording(own, 16000, 0.0).loud_seconds()
    assert heard_s >= WHOLE * spoken_s, (
        f"{heard_s:.2f} s of the answer's {spoken_s:.2f} s of sound heard ({heard!r})"
    )
    assert re.search(r"voice-to-voice \d+ ms", transcript), transcript
