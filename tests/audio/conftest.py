"""The PulseAudio rig for real-audio tests: two null sinks behind real PortAudio.

``VT_RIG_PROFILE`` picks the sound server (``scripts/audio_rig.sh``): ``lab`` (the
default: a steady private PulseAudio), ``pulse-desktop`` (PulseAudio with Debian's
stock default.pa, which suspends idle sinks) or ``pipewire`` (PipeWire with
pipewire-pulse). Tests marked ``desktop`` are the ones CI runs on every profile.

A session fixture starts a private sound server with ``scripts/audio_rig.sh``
(its own runtime folder, so a developer's own rig or desktop sound is untouched),
points this process at it (``PULSE_SERVER``, ``PULSE_SINK``, ``PULSE_SOURCE``) and
stops it at the end. PortAudio reaches it through ALSA's "pulse" plugin, so the
tests open the device named ``pulse``.

- play speech into the microphone: ``rig.play_into_mic(wav)`` (``paplay`` into
  ``vt_mic``; the app's microphone is ``vt_mic.monitor``);
- hear the app: ``with rig.record_speaker(path):`` (``parecord`` of
  ``vt_speaker.monitor``);
- echo: ``rig.set_echo(-12)`` loops the speaker into the microphone at -12 dB.

Tests here are skipped only when PulseAudio itself is not installed; CI installs it
(``scripts/setup.sh --dev``), so there they always run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

ROOT = Path(__file__).resolve().parents[2]
RIG_SCRIPT = ROOT / "scripts" / "audio_rig.sh"
DEVICE = "pulse"  # the ALSA PCM that the "pulse" plugin provides; PULSE_* pick the sinks


@dataclass
class Rig:
    """A running rig and the helpers tests use to drive it."""

    rig_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    profile: str = "lab"

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["bash", str(RIG_SCRIPT), *args],
            env={**os.environ, "VT_RIG_DIR": str(self.rig_dir), "VT_RIG_PROFILE": self.profile},
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(f"audio_rig.sh {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def pactl(self, *args: str) -> str:
        return subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout

    def set_echo(self, gain_db: float | None) -> None:
        """Loop the speaker into the microphone at ``gain_db`` (``None``: no echo)."""
        self.run("echo", "off" if gain_db is None else f"{gain_db:g}")

    def play_into_mic(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start playing ``wav`` into the microphone sink; returns the player process."""
        return subprocess.Popen(
            ["paplay", "--device=vt_mic", str(wav)],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
        )

    def sink_state(self, sink: str) -> str:
        """``RUNNING``, ``IDLE`` or ``SUSPENDED``, as the sound server tells it."""
        for line in self.pactl("list", "short", "sinks").splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[1] == sink:
                return fields[-1]
        raise AssertionError(f"no sink {sink!r} on the rig")

    @contextlib.contextmanager
    def record_speaker(
        self, path: Path, rate: int = 16000, latency_msec: int = 50
    ) -> Iterator[Path]:
        """Record what reaches the speaker sink into ``path`` while the block runs.

        A recorder of the sink's monitor sets how often the sink renders; a long
        ``latency_msec`` leaves it rendering as it does with nobody listening.
        """
        recorder = subprocess.Popen(
            [
                *_realtime_prefix(),
                "parecord",
                "--device=vt_speaker.monitor",
                f"--rate={rate}",
                "--channels=1",
                "--format=s16le",
                "--file-format=wav",
                f"--latency-msec={latency_msec}",
                str(path),
            ],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
        )
        time.sleep(0.3)  # let the recording stream connect before anything plays
        try:
            yield path
        finally:
            time.sleep(0.2)  # let the last sound through the sink's buffer
            recorder.send_signal(signal.SIGINT)  # parecord finishes the WAV header
            try:
                recorder.wait(timeout=5)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()


def best_correlation(captured: npt.NDArray[np.int16], reference: npt.NDArray[np.int16]) -> float:
    """Peak normalized cross-correlation: 1.0 means the same waveform, shifted."""
    a = captured.astype(np.float64)
    b = reference.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lag = int(np.argmax(corr))
    segment = a[lag : lag + len(b)] if lag + len(b) <= len(a) else a[lag:]
    ref = b[: len(segment)]
    return float(np.dot(segment, ref) / (np.linalg.norm(segment) * np.linalg.norm(ref) + 1e-9))


def envelope_correlation(
    captured: npt.NDArray[np.int16], reference: npt.NDArray[np.int16]
) -> float:
    """Correlation of the 20 ms loudness envelopes (dB) at their best alignment.

    Unlike the waveform correlation, a dropout of a block or two (an overloaded
    machine) barely moves it, while different speech or noise gives a low value.
    """
    window = 320

    def envelope(audio: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
        frames = audio[: len(audio) // window * window].astype(np.float64).reshape(-1, window)
        level: npt.NDArray[np.float64] = 20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1.0)
        return level

    a, b = envelope(captured), envelope(reference)
    best = -1.0
    for lag in range(0, max(1, len(a) - len(b) + 1)):
        segment = a[lag : lag + len(b)]
        ref = b[: len(segment)]
        if len(segment) > 10:
            best = max(best, float(np.corrcoef(segment, ref)[0, 1]))
    return best


def _realtime_prefix() -> list[str]:
    """``chrt -r 5`` when this process may use it, so recorders keep up under load."""
    chrt = shutil.which("chrt")
    if chrt and subprocess.run([chrt, "-r", "5", "true"], capture_output=True).returncode == 0:
        return [chrt, "-r", "5"]
    return []


def _reinitialize_portaudio() -> None:
    """Make an already-imported PortAudio see the rig's devices.

    PortAudio lists devices once, at initialization; if another test imported
    sounddevice before the rig ran, it would not know the "pulse" device yet.
    """
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


@pytest.fixture(scope="session")
def rig() -> Iterator[Rig]:
    """A private PulseAudio daemon with vt_mic and vt_speaker, for the whole session."""
    missing = [
        tool for tool in ("pulseaudio", "pactl", "paplay", "parecord") if not shutil.which(tool)
    ]
    if missing:
        pytest.skip(
            f"PulseAudio is not installed ({', '.join(missing)} missing): "
            "apt-get install pulseaudio pulseaudio-utils"
        )
    rig_dir = Path(tempfile.mkdtemp(prefix="vt-rig-"))
    the_rig = Rig(rig_dir, profile=os.environ.get("VT_RIG_PROFILE", "lab"))
    output = the_rig.run("start")
    for line in output.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        the_rig.env[name] = value.strip("'\"")
    saved = {name: os.environ.get(name) for name in the_rig.env}
    os.environ.update(the_rig.env)
    _reinitialize_portaudio()
    try:
        yield the_rig
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        with contextlib.suppress(Exception):
            the_rig.run("stop")
        shutil.rmtree(rig_dir, ignore_errors=True)


SpeechMaker = Callable[[str], Path]


@pytest.fixture(scope="session")
def make_speech(tmp_path_factory: pytest.TempPathFactory) -> SpeechMaker:
    """``make_speech(text)`` -> a WAV of espeak-ng saying it (22.05 kHz, cached)."""
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("speech")
    made: dict[str, Path] = {}

    def make(text: str) -> Path:
        if text not in made:
            path = folder / f"speech{len(made)}.wav"
            subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
            made[text] = path
        return made[text]

    return make


@pytest.fixture(scope="session")
def speech_wav(make_speech: SpeechMaker) -> Path:
    """About two and a half seconds of synthetic speech between short silences."""
    return make_speech("The quick brown fox jumps over the lazy dog.")
