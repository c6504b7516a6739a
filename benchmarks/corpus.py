"""Test speech: synthetic (espeak-ng) and recordings of real people.

Synthetic speech comes from ``espeak-ng`` with several voices and speeds, made
on the fly into a cache directory (nothing is committed).

Real speech comes from Debian's ``pocketsphinx-testdata`` package (BSD-2, CMU
Sphinx test data), installed by ``.ci/run`` with::

    apt-get install -y --no-install-recommends pocketsphinx-testdata

It holds 16 kHz recordings of real people with reference transcripts: five
sentences read by a LibriVox volunteer (Sense and Sensibility), five
playing-card phrases (CMU "cards"), "go forward ten meters" (AN4) and a TIDIGITS
digit string. :func:`real_recordings` returns them; tests that need them call
:func:`require_real_recordings`, which skips with the install command when the
package is missing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voiceterm.audio.resample import resample

RATE = 16000
"""Everything returned here is mono int16 at this rate."""

REAL_SPEECH_DIR = Path("/usr/share/pocketsphinx/test/data")
REAL_SPEECH_INSTALL = "apt-get install -y --no-install-recommends pocketsphinx-testdata"
RADIO_SPEECH_DIR = Path("/usr/share/codec2/raw")
RADIO_SPEECH_INSTALL = "apt-get install -y --no-install-recommends codec2-examples"

# (espeak-ng voice, words per minute): a spread of accents, pitches and speeds.
VOICES: tuple[tuple[str, int], ...] = (
    ("en-us", 160),
    ("en-gb", 140),
    ("en-us+f3", 175),
    ("en-gb-x-rp+m3", 150),
    ("en-us+klatt2", 130),
    ("en-029", 185),
)

_CACHE_DIR = Path(tempfile.gettempdir()) / "voiceterm-test-speech"

Audio = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class Recording:
    """One utterance with its reference transcript."""

    name: str
    audio: Audio
    transcript: str
    speaker: str
    real: bool

    @property
    def duration_s(self) -> float:
        return len(self.audio) / RATE

    @property
    def text(self) -> str:
        """The reference transcript (same as ``transcript``)."""
        return self.transcript


# --- WAV files ---------------------------------------------------------------


def read_wav(path: Path) -> tuple[Audio, int]:
    """Read a 16-bit PCM WAV; several channels are averaged to mono."""
    with wave.open(str(path), "rb") as reader:
        if reader.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        channels = reader.getnchannels()
        rate = reader.getframerate()
        frames = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    if channels > 1:
        frames = frames.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return frames.astype(np.int16), rate


def write_wav(path: Path, audio: Audio, rate: int = RATE) -> Path:
    """Write mono int16 samples as a 16-bit PCM WAV and return ``path``."""
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(np.asarray(audio, dtype="<i2").tobytes())
    return path


def read_speech(path: Path) -> Audio:
    """Read a WAV or Ogg Vorbis (any rate) or a headerless 16 kHz ``.raw`` file as 16 kHz int16."""
    if path.suffix == ".raw":
        return np.frombuffer(path.read_bytes(), dtype="<i2").astype(np.int16)
    if path.suffix == ".ogg":
        import soundfile

        samples, rate = soundfile.read(str(path), dtype="int16", always_2d=True)
        audio = samples.mean(axis=1).astype(np.int16)
    else:
        audio, rate = read_wav(path)
    return np.asarray(resample(audio, rate, RATE), dtype=np.int16)


# --- synthetic speech ------------------------------------------------------------


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: str = "en-us", wpm: int = 160, pitch: int | None = None) -> Audio:
    """Speak ``text`` with espeak-ng (``pitch`` 0-99, its default 50); 16 kHz int16, cached."""
    tail = "" if pitch is None else f"|p{pitch}"
    key = hashlib.sha1(f"{voice}|{wpm}|{text}{tail}".encode()).hexdigest()[:16]
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = _CACHE_DIR / f"{key}.wav"
    if not path.exists():
        partial = path.with_suffix(".part.wav")
        pitch_flags = [] if pitch is None else ["-p", str(pitch)]
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(wpm), *pitch_flags, "-w", str(partial), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        partial.replace(path)
    return read_speech(path)


def silence(seconds: float) -> Audio:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def white_noise(seconds: float, level_dbfs: float = -30.0, seed: int = 0) -> Audio:
    """Gaussian white noise whose RMS is ``level_dbfs`` dB below full scale."""
    rng = np.random.default_rng(seed)
    rms = 32768.0 * 10 ** (level_dbfs / 20)
    samples = rng.normal(0.0, rms, round(seconds * RATE))
    return np.clip(samples, -32768, 32767).astype(np.int16)


def concat(*parts: Audio) -> Audio:
    return np.concatenate([np.asarray(p, dtype=np.int16) for p in parts])


def with_pauses(pieces: list[Audio], pause_s: float, lead_s: float = 0.5) -> Audio:
    """Join utterances with ``pause_s`` of silence between them and around them."""
    parts: list[Audio] = [silence(lead_s)]
    for index, piece in enumerate(pieces):
        if index:
            parts.append(silence(pause_s))
        parts.append(piece)
    parts.append(silence(lead_s))
    return concat(*parts)


def clip(audio: Audio, gain: float) -> Audio:
    """Amplify by ``gain`` and hard-clip at full scale, like an overdriven microphone."""
    louder = audio.astype(np.float64) * gain
    return np.clip(louder, -32768, 32767).astype(np.int16)


SYNTHETIC_SENTENCES: tuple[str, ...] = (
    "What time is it right now?",
    "Please set a timer for ten minutes.",
    "How far away is the moon from the earth?",
    "Tell me a short story about a brave little dog.",
    "What is twelve times seven?",
    "Turn off the lights in the kitchen.",
    # Short commands: on clips this short Whisper is most prone to loop.
    "Stop.",
    "Yes, please.",
    "Next song.",
    "Louder, please.",
    "Cancel that.",
    "Good morning.",
)


def synthetic_recordings() -> list[Recording]:
    """Each sentence in :data:`SYNTHETIC_SENTENCES` spoken by a different voice."""
    recordings = []
    for index, text in enumerate(SYNTHETIC_SENTENCES):
        voice, wpm = VOICES[index % len(VOICES)]
        recordings.append(
            Recording(
                name=f"espeak-{voice}-{index}",
                audio=concat(silence(0.3), espeak(text, voice, wpm), silence(0.3)),
                transcript=text,
                speaker=f"espeak-ng {voice} {wpm} wpm",
                real=False,
            )
        )
    return recordings


# --- recordings of real people ----------------------------------------------------


def real_speech_available() -> bool:
    return (REAL_SPEECH_DIR / "librivox" / "transcription").is_file()


def require_real_recordings() -> list[Recording]:
    """The real recordings, or skip the calling test with the install command."""
    if not real_speech_available():
        import pytest

        pytest.skip(f"recordings of real people missing: {REAL_SPEECH_INSTALL}")
    return real_recordings()


def _sphinx_transcripts(path: Path) -> dict[str, str]:
    """Parse ``<s> words </s> (utterance-id)`` lines."""
    transcripts = {}
    for line in path.read_text().splitlines():
        if "(" not in line:
            continue
        words, _, rest = line.rpartition("(")
        words = words.replace("<s>", "").replace("</s>", "")
        transcripts[rest.strip(" )")] = " ".join(words.split())
    return transcripts


def speech_corpus() -> list[Recording]:
    """Real recordings when installed (first), then the espeak-ng set."""
    real = real_recordings() if real_speech_available() else []
    return real + synthetic_recordings()


def long_speech(min_seconds: float) -> Audio:
    """At least ``min_seconds`` of speech: corpus utterances, real people first.

    They are joined by 0.2 s pauses, shorter than the VAD's end of speech, so the
    app hears one long turn.
    """
    pieces: list[Audio] = []
    for recording in speech_corpus():
        pieces.append(recording.audio)
        joined = with_pauses(pieces, pause_s=0.2)
        if len(joined) >= min_seconds * RATE:
            return joined
    raise ValueError(f"the speech corpus holds less than {min_seconds} s")


def real_recordings() -> list[Recording]:
    """Recordings of real people from ``pocketsphinx-testdata`` (12 utterances)."""
    base = REAL_SPEECH_DIR
    recordings: list[Recording] = []
    librivox = _sphinx_transcripts(base / "librivox" / "transcription")
    for utterance_id, text in sorted(librivox.items()):
        recordings.append(
            Recording(
                name=f"librivox-{utterance_id[-4:]}",
                audio=read_speech(base / "librivox" / f"{utterance_id}.wav"),
                transcript=text,
                speaker="LibriVox reader (Sense and Sensibility)",
                real=True,
            )
        )
    cards = _sphinx_transcripts(base / "cards" / "cards.transcription")
    for utterance_id, text in sorted(cards.items()):
        recordings.append(
            Recording(
                name=f"cards-{utterance_id}",
                audio=read_speech(base / "cards" / f"{utterance_id}.wav"),
                transcript=text,
                speaker="CMU cards speaker",
                real=True,
            )
        )
    # Transcripts of these two come from the package's own grammar and TIDIGITS
    # file name (goforward.gram's <move> rule; "2934z" is two nine three four zero).
    recordings.append(
        Recording(
            name="an4-goforward",
            audio=read_speech(base / "goforward.raw"),
            transcript="go forward ten meters",
            speaker="CMU AN4 speaker",
            real=True,
        )
    )
    recordings.append(
        Recording(
            name="tidigits-dhd-2934z",
            audio=read_speech(base / "tidigits" / "dhd.2934z.raw"),
            transcript="two nine three four zero",
            speaker="TIDIGITS speaker dhd",
            real=True,
        )
    )
    return recordings


# Codec2's sample speech (Debian's codec2-examples, LGPL-2.1): 8 kHz recordings of
# real people, read sentences and radio operators talking freely. Name -> (speaker,
# transcript; "" for the long free talk, which the benchmarks transcribe and split).
# f2400/m2400 are forig/morig through the codec; hts1/hts2 repeat hts's sentences.
_RADIO_SPEECH: dict[str, tuple[str, str]] = {
    "big_dog": ("codec2 big_dog", "The big dog loved to chew on the old rag doll."),
    "cross": ("codec2 cross", "They took the cross town bus."),
    "forig": ("codec2 forig", "Don't throw trash on the street."),
    "morig": ("codec2 morig", "That frog jumped through the weeds."),
    "mmt1": ("codec2 mmt1", "It's easy to tell the depth of a well."),
    "hts": ("codec2 hts", ""),
    "cq_ref": ("radio operator K8", ""),
    "g3plx": ("radio operator G3PLX", "1 2 3 4 5 5 4 3 2 1 Golf 3 Papa Lima X-ray testing"),
    "kristoff": ("radio operator Kristoff", ""),
    "vk5qi": ("radio operator VK5QI", ""),
    "ve9qrp": ("radio operator VE9QRP", ""),
}


def radio_speech_available() -> bool:
    return (RADIO_SPEECH_DIR / "ve9qrp.raw").is_file()


def radio_recordings() -> list[Recording]:
    """Codec2's recordings of real people (11 speakers; 16 kHz, resampled from 8)."""
    recordings = []
    for name, (speaker, transcript) in _RADIO_SPEECH.items():
        samples = np.fromfile(RADIO_SPEECH_DIR / f"{name}.raw", dtype="<i2")
        recordings.append(
            Recording(
                name=f"codec2-{name}",
                audio=resample(samples, 8000, RATE).astype(np.int16),
                transcript=transcript,
                speaker=speaker,
                real=True,
            )
        )
    return recordings


# More recordings of real people, each from a package that ships one or two for its own
# tests or demos (scripts/setup.sh --dev installs them; only these files are read):
# Debian's linphone-common (Linphone's developer's test message, 16 kHz), codec2-examples'
# 16 kHz Harvard sentences, and from PyPI useful-moonshine-onnx (a read Beckett quote, MIT),
# amfm_decompy (one question, MIT) and pyannote.audio (a telephone conversation between
# two people with its transcript, MIT).
MORE_SPEECH_INSTALL = (
    "bash scripts/setup.sh --dev (linphone-common; pip install --no-deps pyannote.audio "
    "useful-moonshine-onnx; amfm_decompy)"
)
_LINPHONE_HELLO = Path("/usr/share/sounds/linphone/hello16000.wav")
_PACKAGED_SPEECH: dict[str, tuple[str, str, str, str]] = {
    # name -> (distribution, file in it, speaker, transcript)
    "moonshine-beckett": (
        "useful-moonshine-onnx",
        "moonshine_onnx/assets/beckett.wav",
        "moonshine's Beckett reader",
        "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.",
    ),
    "amfm-sample": (
        "amfm_decompy",
        "amfm_decompy/sample.wav",
        "amfm_decompy's speaker",
        "How do we define it?",
    ),
}
_CONVERSATION = ("pyannote.audio", "pyannote/audio/sample/sample")


def _packaged_file(distribution: str, path: str) -> Path | None:
    """A file inside an installed distribution, found without importing it."""
    from importlib import metadata

    try:
        located = Path(str(metadata.distribution(distribution).locate_file(path)))
    except metadata.PackageNotFoundError:
        return None
    return located if located.is_file() else None


def more_speech_available() -> bool:
    files = [_packaged_file(d, f) for d, f, _, _ in _PACKAGED_SPEECH.values()]
    files.append(_packaged_file(_CONVERSATION[0], _CONVERSATION[1] + ".wav"))
    return _LINPHONE_HELLO.is_file() and all(files)


def more_recordings() -> list[Recording]:
    """Single recordings of five more speakers (see :data:`MORE_SPEECH_INSTALL`)."""
    recordings = [
        Recording(
            name="linphone-hello",
            audio=read_speech(_LINPHONE_HELLO),
            transcript="Hello, this is Simon speaking, the main developer of Linphone. If you "
            "can hear me, congratulations, it seems everything is okay. Bye!",
            speaker="Linphone's Simon",
            real=True,
        ),
        Recording(
            name="codec2-speech_orig_16k",
            audio=read_speech(RADIO_SPEECH_DIR / "speech_orig_16k.wav"),
            transcript="The birch canoe slid on the smooth planks. Glue the sheet to the dark "
            "blue background. It's easy to tell the depth of a well. Four hours of steady "
            "work faced us.",
            speaker="codec2 speech_orig_16k reader",
            real=True,
        ),
    ]
    for name, (distribution, path, speaker, transcript) in _PACKAGED_SPEECH.items():
        located = _packaged_file(distribution, path)
        if located is None:
            raise FileNotFoundError(f"{distribution} is not installed: {MORE_SPEECH_INSTALL}")
        recordings.append(Recording(name, read_speech(located), transcript, speaker, True))
    return recordings


def conversation_turns() -> list[Recording]:
    """The turns of a real telephone conversation, as its transcript (``.stm``) cuts them.

    A turn is one speaker's consecutive lines, up to where the other one takes over:
    what a person says before yielding. The last turn is left out (the recording
    stops while its speaker is still talking, so where she would have yielded is
    not known). Each turn keeps at most 100 ms of audio either side of its lines,
    never reaching into the other speaker's lines (the two overlap a little now and
    then: a turn may hold a few syllables of the other voice).
    """
    wav = _packaged_file(_CONVERSATION[0], _CONVERSATION[1] + ".wav")
    stm = _packaged_file(_CONVERSATION[0], _CONVERSATION[1] + ".stm")
    if wav is None or stm is None:
        raise FileNotFoundError(f"pyannote.audio is not installed: {MORE_SPEECH_INSTALL}")
    audio = read_speech(wav)
    lines = []
    for line in stm.read_text(encoding="utf-8").splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6:
            lines.append((fields[2], float(fields[3]), float(fields[4]), fields[5]))
    turns: list[tuple[str, float, float, str]] = []
    for speaker, start, end, words in lines:
        if turns and turns[-1][0] == speaker:
            turns[-1] = (speaker, turns[-1][1], end, f"{turns[-1][3]} {words}")
        else:
            turns.append((speaker, start, end, words))
    recordings = []
    for index, (speaker, start, end, words) in enumerate(turns[:-1]):
        before = turns[index - 1][2] if index else 0.0
        after = turns[index + 1][1]
        first = max(before, start - 0.1) if before < start else start
        last = min(after, end + 0.1) if after > end else end
        recordings.append(
            Recording(
                name=f"pyannote-sample@{start:.1f}s",
                audio=audio[round(first * RATE) : round(last * RATE)],
                transcript=words,
                speaker=f"telephone speaker {speaker} (pyannote.audio's sample)",
                real=True,
            )
        )
    return recordings


# Short phrases of real people from two Debian packages (scripts/setup.sh --dev installs
# them; only these files are read): alsa-utils' speaker-test voice, a woman naming the
# loudspeakers (GPL-2+), and two of Hedgewars' voice packs, acted game lines by two men
# ("Classic" and "British"; hedgewars-data, GFDL-1.3). The hedgehogs' transcripts are what
# Whisper heard where it agrees with the file's name or makes plain sense of the line; the
# lines Whisper could not make sense of, and the Classic files that the pack shares with
# another voice, are left out.
SHORT_PHRASES_INSTALL = "apt-get install -y --no-install-recommends alsa-utils hedgewars-data"
_ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
_HEDGEWARS_VOICES = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
_SHORT_PHRASES: dict[str, tuple[Path, str, str]] = {
    # name -> (file, speaker, transcript)
    **{
        f"alsa-{stem.lower()}": (
            _ALSA_SOUNDS / f"{stem}.wav",
            "ALSA's speaker-test voice",
            stem.replace("_", " ").capitalize() + ".",
        )
        for stem in (
            "Front_Center",
            "Front_Left",
            "Front_Right",
            "Rear_Center",
            "Rear_Left",
            "Rear_Right",
            "Side_Left",
            "Side_Right",
        )
    },
    **{
        f"hedgewars-classic-{stem.lower()}": (
            _HEDGEWARS_VOICES / "Classic" / f"{stem}.ogg",
            "Hedgewars' Classic voice",
            text,
        )
        for stem, text in (
            ("Hello", "Hello?"),
            ("Byebye", "Bye bye."),
            ("Comeonthen", "Come on then."),
            ("Illgetyou", "I'll get you."),
            ("Runaway", "Run away!"),
            ("Watchit", "Watch it!"),
            ("Youllregretthat", "You'll regret that."),
            ("Traitor", "Traitor!"),
            ("Ohdear", "Oh dear."),
            ("Reinforcements", "Reinforcements!"),
        )
    },
    **{
        f"hedgewars-british-{stem.lower()}": (
            _HEDGEWARS_VOICES / "British" / f"{stem}.ogg",
            "Hedgewars' British voice",
            text,
        )
        for stem, text in (
            ("Hello", "Good day to you, sir."),
            ("Byebye", "Farewell, good sir."),
            ("Hurry", "Time is short."),
            ("Incoming", "Incoming!"),
            ("Runaway", "Run away!"),
            ("Solong", "Parting is such sweet sorrow."),
            ("Whatthe", "Good heavens!"),
            ("Revenge", "I have claimed my revenge."),
            ("Thisoneismine", "This one is mine."),
            ("Watchit", "Watch it!"),
        )
    },
}


def short_phrases_available() -> bool:
    return all(path.is_file() for path, _, _ in _SHORT_PHRASES.values())


def require_short_phrases() -> list[Recording]:
    """The short phrases, or skip the calling test with the install command."""
    if not short_phrases_available():
        import pytest

        pytest.skip(f"short phrases of real people missing: {SHORT_PHRASES_INSTALL}")
    return short_phrases()


def short_phrases() -> list[Recording]:
    """28 short phrases of three real people (see :data:`SHORT_PHRASES_INSTALL`)."""
    if not short_phrases_available():
        raise FileNotFoundError(f"short phrases of real people missing: {SHORT_PHRASES_INSTALL}")
    # The files are cut tight around the words; a microphone hears the room before and
    # after (and the benchmarks take the room's level from a recording's quietest frames).
    return [
        Recording(name, concat(silence(0.3), read_speech(path), silence(0.3)), text, speaker, True)
        for name, (path, speaker, text) in _SHORT_PHRASES.items()
    ]


# --- word error rate ---------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def _number_words(digits: str) -> list[str]:
    """Spell a digit string: up to three digits as a number, longer ones digit by digit."""
    if len(digits) > 3 or (len(digits) > 1 and digits.startswith("0")):
        return [_ONES[int(d)] for d in digits]
    value = int(digits)
    words: list[str] = []
    if value >= 100:
        words += [_ONES[value // 100], "hundred"]
        value %= 100
        if value == 0:
            return words
    if value < 20:
        words.append(_ONES[value])
    else:
        words.append(_TENS[value // 10])
        if value % 10:
            words.append(_ONES[value % 10])
    return words


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation; numbers spelled out; a few abbreviations expanded.

    Whisper writes "Mr." and "10", references say "mister" and "ten": both sides
    go through this before words are compared.
    """
    import re

    cleaned = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))
    words: list[str] = []
    for token in cleaned.split():
        token = token.strip("'")
        if not token:
            continue
        if token.isdigit():
            words += _number_words(token)
        else:
            words.append(_ABBREVIATIONS.get(token, token))
    return words


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edit distance, reference word count) after :func:`normalize_words`."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return previous[-1], len(ref)


def word_error_rate(pairs: list[tuple[str, str]]) -> float:
    """Corpus WER in percent over (reference, hypothesis) pairs."""
    errors = total = 0
    for reference, hypothesis in pairs:
        e, n = word_errors(reference, hypothesis)
        errors += e
        total += n
    return 100.0 * errors / max(total, 1)
