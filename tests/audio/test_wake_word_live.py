"""wake_word mode in the real app on the rig, with the speaker looped into the microphone.

The app (``voiceterm --headless``, echo cancellation on) hears its own answers
through the rig's echo path at -6 dB, as a laptop's microphone hears its speaker.
Its voice must not wake it: the detector runs on the echo-cancelled signal.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from benchmarks.rig import LiveApp, RigIO, utterance
from benchmarks.wake_speech import flite, flite_available, in_room
from tests.audio.conftest import Rig

pytestmark = [pytest.mark.audio, pytest.mark.models, pytest.mark.slow]

ECHO_GAIN_DB = -6.0
FOLLOW_UP_S = 2.0
WOKE = r"^wake: .*\(woke"


@pytest.fixture(scope="module")
def app(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    if not flite_available():
        pytest.fail("flite is not installed (scripts/setup.sh --dev installs it)")
    rig.set_echo(ECHO_GAIN_DB)
    the_app = LiveApp(
        rig.env,
        (
            "--audio-echo",
            "aec",
            "--listen-mode",
            "wake_word",
            "--listen-follow-up-s",
            str(FOLLOW_UP_S),
            "--llm-max-tokens",
            "48",
        ),
        config_home=tmp_path_factory.mktemp("config"),
    )
    the_app.start()
    try:
        yield the_app
    finally:
        the_app.stop()
        rig.set_echo(None)


@pytest.fixture(scope="module")
def io(rig: Rig) -> Iterator[RigIO]:
    with RigIO(rig.env) as rig_io:
        yield rig_io


def say(io: RigIO, text: str, voice: str) -> None:
    spoken = utterance(in_room(flite(text, voice), gap_s=1.0), text)
    io.play_and_wait(spoken.audio, spoken.rate)


def test_its_own_voice_over_the_echo_path_does_not_wake_it(app: LiveApp, io: RigIO) -> None:
    since = app.mark()
    say(io, "Hey Jarvis, tell me a long story about a brave little dog.", "awb")
    app.wait_for(r"^you:", since=since, timeout=30)
    app.wait_for(r"^agent:", since=since, timeout=60)
    played = app.wait_for(r"voice-to-voice \d+ ms", since=since, timeout=60)
    answer_over = app.mark()
    app.wait_for(r"^listen: asleep", since=answer_over, timeout=FOLLOW_UP_S + 30)
    lines = app.lines(since)
    woke = [line for line in lines if line.text.startswith("wake:") and "(woke" in line.text]
    assert len(woke) == 1, app.transcript()  # the user's, before the answer
    assert woke[0].t < played.t
    assert sum(line.text.startswith("you:") for line in lines) == 1, app.transcript()
    # Asleep again: a question without the wake word is not answered.
    since = app.mark()
    say(io, "What is the capital of France?", "rms")
    time.sleep(4.0)
    assert app.find(r"^you:", since) is None, app.transcript()
