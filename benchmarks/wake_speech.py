"""Speech for the wake word: the wake phrase in synthetic voices, and a room under it.

The bundled microWakeWord models were trained on neural text-to-speech voices, and
espeak-ng's formant voices mostly do not wake them (a finding of
``benchmarks.wake``). Debian's ``flite`` (CMU Flite, BSD-style) has four
English voices made from recordings of people (awb, rms, slt, kal16), and those do;
the embedded Piper voice does too. None of them is a person: they stand in for the
people the tests cannot record.

A microphone is never digitally silent, and the model's front end (a per-channel
noise estimate) behaves differently on exact zeros than on a room's hiss, so the
test audio always has a quiet room under it (:func:`room`).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks.corpus import RATE, read_speech

Audio = npt.NDArray[np.int16]

FLITE_VOICES: tuple[str, ...] = ("awb", "rms", "slt", "kal16")
"""Flite's voices built from recordings of people (``kal`` is the older diphone one)."""

_CACHE_DIR = Path(tempfile.gettempdir()) / "voiceterm-test-speech"


def flite_available() -> bool:
    return shutil.which("flite") is not None


def flite(
    text: str, voice: str = "awb", stretch: float = 1.0, pitch_hz: float | None = None
) -> Audio:
    """Speak ``text`` with a flite voice (``stretch`` > 1 slower); 16 kHz int16, cached."""
    key = hashlib.sha1(f"flite|{voice}|{stretch}|{pitch_hz}|{text}".encode()).hexdigest()[:16]
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = _CACHE_DIR / f"{key}.wav"
    if not path.exists():
        partial = path.with_suffix(".part.wav")
        command = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}"]
        if pitch_hz is not None:
            command += ["--setf", f"int_f0_target_mean={pitch_hz}"]
        subprocess.run(
            [*command, "-t", text, "-o", str(partial)], check=True, capture_output=True, timeout=60
        )
        partial.replace(path)
    return read_speech(path)


def room(seconds: float, level_dbfs: float = -60.0, seed: int = 0) -> Audio:
    """A quiet room: pink-ish noise (white noise through a gentle low-pass) at ``level_dbfs``."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    white = rng.normal(0.0, 1.0, n + 64)
    pinkish = np.convolve(white, np.ones(8) / 8, mode="same")[:n]
    pinkish *= 32768 * 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(pinkish**2)) + 1e-12)
    return np.clip(pinkish, -32768, 32767).astype(np.int16)


def in_room(*pieces: Audio, gap_s: float = 1.0, level_dbfs: float = -60.0, seed: int = 0) -> Audio:
    """The pieces one after another, ``gap_s`` apart (and around), over a quiet room."""
    gap = np.zeros(round(gap_s * RATE), np.int16)
    speech = np.concatenate(
        [gap, *(np.concatenate((np.asarray(p, np.int16), gap)) for p in pieces)]
    )
    noise = room(len(speech) / RATE, level_dbfs, seed)
    mixed = speech.astype(np.int32) + noise[: len(speech)].astype(np.int32)
    return np.clip(mixed, -32768, 32767).astype(np.int16)


def mix_at_snr(speech: Audio, noise: Audio, snr_db: float) -> Audio:
    """``speech`` with ``noise`` under it, scaled so that speech is ``snr_db`` louder.

    Loudness is the RMS of the speech's voiced part (frames within 30 dB of its loudest).
    """
    voice = speech.astype(np.float64)
    frames = voice[: len(voice) // 160 * 160].reshape(-1, 160)
    power = np.mean(frames**2, axis=1)
    voiced = power[power > power.max() * 1e-3]
    speech_rms = float(np.sqrt(np.mean(voiced))) if voiced.size else 1.0
    bed = np.resize(noise.astype(np.float64), len(voice))
    bed *= speech_rms / (np.sqrt(np.mean(bed**2)) + 1e-12) / 10 ** (snr_db / 20)
    return np.clip(voice + bed, -32768, 32767).astype(np.int16)


# --- packaged recordings: people's voices in other languages, and music ----------------------

GAME_DATA_DIR = Path("/usr/share/games/fillets-ng")
"""Fish Fillets NG's data (Debian's fillets-ng-data, -cs, -nl; GPL-2): the game's dialogue,
acted by people (English, a few minutes; Czech and Dutch, over 1.5 h each), and its music."""
GAME_DATA_INSTALL = "apt-get install fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl"


def read_packaged(path: Path) -> Audio:
    """An Ogg Vorbis (or any libsndfile format) file as 16 kHz mono int16."""
    import soundfile

    from voiceterm.audio.resample import resample

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    samples = np.clip(np.asarray(resample(mono, rate, RATE)) * 32767, -32768, 32767)
    result: Audio = samples.astype(np.int16)
    return result


def game_dialogue(language: str) -> list[Path]:
    """The game's dialogue lines in ``language`` (``en``, ``cs`` or ``nl``), in a fixed order."""
    return sorted((GAME_DATA_DIR / "sound").glob(f"*/{language}/*.ogg"))


def game_music() -> list[Path]:
    """The game's music (about 25 minutes)."""
    return sorted((GAME_DATA_DIR / "music").glob("*.ogg"))
