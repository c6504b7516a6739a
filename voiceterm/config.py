"""Settings: typed sections, read from TOML, overridden by CLI flags that were set.

Lookup: ``--config PATH`` if given, else ``config.toml`` in the user config
directory (platformdirs), else the defaults below. Every field is documented by
the attribute docstring under it; ``voiceterm --help`` prints the same text.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

from voiceterm import paths
from voiceterm.errors import ConfigError


@dataclass(slots=True)
class AudioSettings:
    input_device: str | None = None
    """Microphone: a device index or part of its name (default: the system default)."""
    output_device: str | None = None
    """Speaker: a device index or part of its name (default: the system default)."""
    block_ms: int = 10
    """Microphone block in milliseconds. The end of speech is seen one block late at
    worst, and PortAudio buffers two blocks: smaller blocks hear speech sooner for a
    little more CPU while idle (docs/BENCHMARKS.md, python -m benchmarks.round_trip)."""
    output_block_ms: int = 5
    """Speaker block in milliseconds: a barge-in silences the speaker within one block,
    and PortAudio's "high" buffer grows with the block. Smaller blocks answer sooner
    for more CPU while idle (docs/BENCHMARKS.md, python -m benchmarks.round_trip)."""
    output_buffer_ms: int = 0
    """Sound queued for the speaker ahead of time (PortAudio's output latency); 0 is
    PortAudio's "high" default for the block. The speaker's callback needs the
    interpreter lock, so the buffer must ride out its stalls (docs/BENCHMARKS.md,
    python -m benchmarks.speaker_buffer); raise this (or output_block_ms) if the app
    reports that the speaker ran dry."""
    echo: str = "aec"
    """Echo handling while the agent speaks: aec (WebRTC's echo canceller from whichever
    package is installed, livekit first), livekit or webrtc (that package), half_duplex
    (the microphone is deaf while the agent speaks: no barge-in) or off."""
    drop_own_words: bool = True
    """Do not answer speech heard while (or just after) the agent spoke whose words
    repeat the agent's own: its voice come back through the microphone."""


@dataclass(slots=True)
class VadSettings:
    aggressiveness: int = 3
    """webrtcvad aggressiveness, 0 (lenient) to 3 (strict)."""
    start_ms: int = 60
    """Voiced audio needed before speech counts as started."""
    hangover_ms: int = 300
    """Silence that ends an utterance with turn.detector = silence (the end-of-speech
    wait); with smart_turn, it still ends speech that may be the agent's own echo."""
    pause_ms: int = 40
    """Silence after which the words so far are transcribed and answered ahead (0: never)."""
    incomplete_wait_ms: int = 400
    """With turn.detector = silence: extra wait for more speech when the transcript sounds
    unfinished ("and", a comma)."""
    preroll_ms: int = 300
    """Audio kept from before the start, so the first syllable is not lost."""
    max_utterance_s: float = 30.0
    """An utterance longer than this is split."""


@dataclass(slots=True)
class TurnSettings:
    detector: str = "learned"
    """What decides that you have finished. learned: the voice (Smart Turn, an audio
    model), the words so far and the LLM's probability that your message ends there
    are weighed by a model fitted on recordings of real people, and the bar it must
    reach falls as the silence goes on, up to a cap (turn.weights; the LLM's
    probability is read by turn.words_probe; with llm.backend = openai the decision
    goes without it). smart_turn: the hand-set rule it replaced: Smart Turn at
    turn.check_ms and word lists (threshold, unsure_ms, cap_ms); it answers sooner
    after a short pause and cuts more sentences at a thinking pause. silence:
    vad.hangover_ms of silence, vad.incomplete_wait_ms more for unfinished words."""
    model: str | None = None
    """The Smart Turn .onnx file (default: models/turn/*.onnx, then the pipecat-ai package)."""
    weights: str | None = None
    """learned: the weights file (default: the one shipped with voiceterm, made by
    scripts/fit_turn_end.py). A missing or broken file falls back to smart_turn."""
    words_probe: str | None = None
    """learned: the probe that reads the LLM's next-token distribution after your words
    as P(end of message), when the weights were fitted on it (default: the one shipped
    with voiceterm, made by scripts/fit_text_probe.py). A missing or broken file falls
    back to smart_turn."""
    check_ms: int = 200
    """smart_turn: silence after which the model is asked whether your turn is complete
    (learned: the weights file sets it)."""
    threshold: float = 0.7
    """smart_turn: the model's probability from which a turn counts as complete (higher:
    fewer sentences cut at a pause, more turns that wait for the cap)."""
    unsure_ms: int = 800
    """smart_turn: silence that ends a turn when the model and the words disagree (a full
    stop where the voice goes on, or a voice that sounds done after "and")."""
    cap_ms: int = 1500
    """smart_turn: silence that ends a turn even when the model and the words say it goes
    on (the words only say so when they stop mid-sentence: "and", the, a comma).
    learned: the weights file sets the cap."""


@dataclass(slots=True)
class SttSettings:
    model: str | None = None
    """A CTranslate2 Whisper model directory (default: the bundled tiny.en)."""
    pad_to_30s: bool = False
    """Pad every utterance to 30 s like stock Whisper (slower; for comparison)."""


@dataclass(slots=True)
class LlmSettings:
    backend: str = "llama_cpp"
    """Where answers come from: llama_cpp (the GGUF in llm.model, run inside voiceterm) or
    openai (an OpenAI-compatible server at llm.url: llama-server, Ollama, vLLM, LM Studio)."""
    model: str | None = None
    """llama_cpp: a GGUF file, or a model's name from `voiceterm models` (default: the
    bundled SmolLM2-135M-Instruct).
    openai: the server's name for the model (default: the first one it lists)."""
    url: str = "http://127.0.0.1:8080/v1"
    """openai: the server's API base URL, ending in /v1 (llama-server's default port is
    8080, Ollama's http://127.0.0.1:11434/v1, vLLM's http://127.0.0.1:8000/v1)."""
    api_key_env: str | None = None
    """openai: the NAME of the environment variable holding the server's API key (the key
    itself never goes in the config); none: no key is sent."""
    connect_timeout_s: float = 3.0
    """openai: seconds to wait for the server to accept a connection."""
    timeout_s: float = 60.0
    """openai: seconds to wait for the answer's first words, and then for each next piece."""
    context_tokens: int = 2048
    """The model's context window."""
    max_tokens: int = 96
    """The longest answer, in tokens."""
    speculate_tokens: int = 12
    """Tokens of the answer sampled during the end-of-speech wait (0: none)."""
    temperature: float = 0.3
    """Sampling temperature."""
    eight_bit_copy: bool = True
    """Run a small 4-bit model from an 8-bit copy, made once in ~/.cache (faster on CPUs)."""
    system_prompt: str = (
        "You are voiceterm, a helpful voice assistant. Answer in one or two short "
        "spoken sentences. Do not use lists or markdown."
    )
    """Instructions given to the model on every turn."""


@dataclass(slots=True)
class TtsSettings:
    model: str | None = None
    """A Piper voice .onnx file, with its .onnx.json beside it (default: the bundled joe-medium)."""
    length_scale: float | None = None
    """Speaking rate: above 1 slower, below 1 faster (default: the voice's own)."""
    threads: int = 1
    """Piper's CPU threads. One leaves a core to the LLM, which writes while Piper speaks."""
    ahead_on_every_core: bool = True
    """Make the answer's first piece ahead (in the end-of-speech wait) on every core."""
    first_piece_words: int = 3
    """An answer with no clause boundary yet starts speaking its first this-many words."""


@dataclass(slots=True)
class BargeInSettings:
    enabled: bool = True
    """Let the user cut the agent off by speaking."""
    min_speech_ms: int = 150
    """Speech needed, while the agent talks, before it is cut off (coughs are shorter)."""
    min_level_db: float = -32.0
    """While the agent speaks, only speech this loud (dBFS) counts; echo residue is quieter."""
    hold: bool = True
    """Hold the answer when speech starts; cut it off once confirmed (off: min_speech_ms)."""
    hold_settle_ms: int = 200
    """After the hold, how long the agent's own echo may still be arriving (not counted)."""
    hold_confirm_ms: int = 150
    """Speech after the settle time that confirms the barge-in and cuts the answer off."""
    hold_quiet_ms: int = 400
    """Silence (after the settle time) that lets a hold go: it was echo or a cough; play on."""


@dataclass(slots=True)
class SessionSettings:
    record: bool = False
    """Record every session (microphone, speaker, events, settings) in a new folder under
    the state directory; `voiceterm replay DIR` and `voiceterm view DIR` read it."""
    record_dir: str | None = None
    """With record = true: the folder of this session's recording (--record DIR), which
    must be new or empty (default: a new folder per session under the state directory)."""


@dataclass(slots=True)
class ListenSettings:
    mode: str = "always"
    """Which speech is a turn: always (everything heard), wake_word (only after the wake
    word, and during the follow-up window after an answer) or push_to_talk (while the talk
    key is down). The app switches it from the command palette."""
    wake_word: str = "hey_jarvis"
    """The wake word: hey_jarvis, okay_nabu, hey_mycroft or alexa (bundled microWakeWord
    models), or the path of a microWakeWord .tflite with its .json beside it."""
    follow_up_s: float = 8.0
    """After an answer (or the wake word said alone), how long you may speak without the
    wake word."""
    wake_cutoff: float | None = None
    """The wake word model's probability that wakes it (default: the model's own, 0.97
    for hey_jarvis). Lower wakes more easily and more often by mistake."""
    wake_by_words: bool = True
    """Check a near miss by its words: speech the wake word model nearly woke on (its best
    score at least wake_by_words_above) is transcribed on this machine, and wakes it when
    the words begin with the wake phrase. Some voices score low on the small model."""
    wake_by_words_above: float = 0.02
    """The wake word model's score from which a near miss is checked by its words (speech
    without the wake phrase scores 0.00 on hey_jarvis nearly always; see BENCHMARKS)."""
    wake_fit_above: float = -12.0
    """With wake_by_words: every utterance heard while asleep is scored by Whisper for how
    well its start fits the wake phrase (the phrase forced on it: nothing is written
    down), and wakes it from this log-probability on; only then is it transcribed. Higher
    is stricter; over 5 h of speech without the phrase, 99 % scored below -17 and none
    above -12 (see BENCHMARKS)."""
    wake_fit_margin: float = 6.0
    """And only when the wake phrase is at most this much less likely (log-probability)
    than Whisper's own reading of those first words: "Hey Charlie" fits the phrase nearly
    as well as a robot's "Hey Jarvis", but Whisper reads "Charlie" there far more surely."""
    wake_name_fit_above: float | None = -6.0
    """Also wakes it when the wake phrase's name alone ("Jarvis", its last word) fits from
    this log-probability, however its greeting fits: some voices' "Hey" is what Whisper
    loses. Over 5 h of speech without the phrase, one utterance scored above -9.7 (-6.04,
    "The Jaws"; see BENCHMARKS). Empty: off."""
    wake_name_fit_margin: float = 10.0
    """The margin (as wake_fit_margin) for an utterance that wakes it by its name's fit."""


@dataclass(slots=True)
class Config:
    audio: AudioSettings = field(default_factory=AudioSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    turn: TurnSettings = field(default_factory=TurnSettings)
    stt: SttSettings = field(default_factory=SttSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    barge_in: BargeInSettings = field(default_factory=BargeInSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    listen: ListenSettings = field(default_factory=ListenSettings)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Turn a TOML value or a flag's string into the setting's type."""
    if value is None:
        return None
    kinds = set(get_args(annotation)) or {annotation}
    if bool in kinds:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where} must be true or false, not {value!r}.")
    if int in kinds and not isinstance(value, bool):
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} must be a whole number, not {value!r}.") from exc
    if float in kinds and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} must be a number, not {value!r}.") from exc
    if str in kinds:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where} must be text, not {value!r}.")
        return str(value)
    return value


def apply_values(config: Config, values: dict[str, Any], origin: str) -> Config:
    """Set ``section.key`` values from a mapping (a parsed TOML file or flags)."""
    for section_name, section_values in values.items():
        section = getattr(config, section_name, None)
        if section is None or not is_dataclass(section):
            raise ConfigError(f"{origin}: unknown section [{section_name}].")
        if not isinstance(section_values, dict):
            raise ConfigError(f"{origin}: [{section_name}] must be a table.")
        hints = get_type_hints(type(section))
        known = {f.name for f in fields(section)}
        for key, value in section_values.items():
            if key not in known:
                raise ConfigError(
                    f"{origin}: unknown setting {section_name}.{key}.",
                    hint=f"known settings in [{section_name}]: {', '.join(sorted(known))}",
                )
            where = f"{origin}: {section_name}.{key}"
            setattr(section, key, _coerce(value, hints[key], where))
    return config


def load_config(path: Path | None = None, *, explicit: bool = False) -> Config:
    """Read the config file at ``path`` (or the default location) over the defaults.

    A missing default file is fine; a missing file named with ``--config`` is not.
    """
    config = Config()
    path = path or paths.config_file()
    if not path.exists():
        if explicit:
            raise ConfigError(f"The config file {path} does not exist.")
        return config
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"The config file {path} is not valid TOML: {exc}.",
            hint="fix the line it names, or move the file away to use the defaults",
        ) from exc
    except OSError as exc:
        raise ConfigError(f"The config file {path} cannot be read: {exc.strerror}.") from exc
    return apply_values(config, values, str(path))


LISTEN_MODES: tuple[str, ...] = ("always", "wake_word", "push_to_talk")
TURN_DETECTORS: tuple[str, ...] = ("learned", "smart_turn", "silence")
LLM_BACKENDS: tuple[str, ...] = ("llama_cpp", "openai")


def check_config(config: Config) -> Config:
    """Raise :class:`ConfigError` for a setting that cannot work, before anything opens.

    Values are checked here, where they are read; whether the files they name exist
    is the loaders' business (``voiceterm models`` lists what is found).
    """
    _check_llm(config.llm)
    _check_turn(config.turn)
    _check_listen(config.listen)
    return config


def _check_llm(llm: LlmSettings) -> None:
    if llm.backend not in LLM_BACKENDS:
        raise ConfigError(
            f"llm.backend must be llama_cpp or openai, not {llm.backend!r}.",
            hint="llama_cpp runs a GGUF file inside voiceterm; openai talks to a server at llm.url",
        )
    if llm.backend == "openai" and not llm.url.startswith(("http://", "https://")):
        raise ConfigError(
            f"llm.url must be an http:// or https:// address, not {llm.url!r}.",
            hint="e.g. http://127.0.0.1:8080/v1 for llama-server",
        )


def _check_turn(turn: TurnSettings) -> None:
    if turn.detector not in TURN_DETECTORS:
        raise ConfigError(
            f"turn.detector must be learned, smart_turn or silence, not {turn.detector!r}.",
            hint="set turn.detector = 'learned' (or 'smart_turn', or 'silence')",
        )
    if not 0.0 < turn.threshold < 1.0:
        raise ConfigError(f"turn.threshold must be between 0 and 1, not {turn.threshold}.")
    if not 0 < turn.check_ms < turn.unsure_ms <= turn.cap_ms:
        raise ConfigError(
            f"turn.check_ms ({turn.check_ms}), turn.unsure_ms ({turn.unsure_ms}) and "
            f"turn.cap_ms ({turn.cap_ms}) must grow in that order: the model is asked "
            "before the silences that end a turn without it."
        )


def _check_listen(listen: ListenSettings) -> None:
    if listen.mode not in LISTEN_MODES:
        raise ConfigError(
            f"listen.mode must be one of {', '.join(LISTEN_MODES)}, not {listen.mode!r}.",
            hint="e.g. --listen-mode wake_word",
        )
    if not listen.follow_up_s >= 0:
        raise ConfigError(
            f"listen.follow_up_s must be 0 or more seconds, not {listen.follow_up_s}."
        )
    probabilities = {"wake_by_words_above": listen.wake_by_words_above}
    if listen.wake_cutoff is not None:
        probabilities["wake_cutoff"] = listen.wake_cutoff
    for name, value in probabilities.items():
        if not 0.0 < value < 1.0:
            raise ConfigError(f"listen.{name} must be between 0 and 1, not {value}.")
    log_probabilities = {"wake_fit_above": listen.wake_fit_above}
    if listen.wake_name_fit_above is not None:
        log_probabilities["wake_name_fit_above"] = listen.wake_name_fit_above
    for name, value in log_probabilities.items():
        if not value < 0.0:
            raise ConfigError(f"listen.{name} must be a log-probability below 0, not {value}.")
    for name, value in (
        ("wake_fit_margin", listen.wake_fit_margin),
        ("wake_name_fit_margin", listen.wake_name_fit_margin),
    ):
        if not value >= 0.0:
            raise ConfigError(f"listen.{name} must be 0 or more, not {value}.")


def settings_help() -> list[tuple[str, str, str]]:
    """``(section.key, default, description)`` for every setting, for ``--help``."""
    import ast
    import inspect

    rows: list[tuple[str, str, str]] = []
    for section_field in fields(Config):
        section_cls = type(getattr(Config(), section_field.name))
        docs: dict[str, str] = {}
        tree = ast.parse(inspect.getsource(section_cls))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, following in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
            ):
                docs[node.target.id] = str(following.value.value)
        instance = section_cls()
        for f in fields(instance):
            default = getattr(instance, f.name)
            shown = "(none)" if default is None else repr(default)
            if isinstance(default, str) and len(default) > 40:
                shown = repr(default[:37] + "...")
            rows.append((f"{section_field.name}.{f.name}", shown, docs.get(f.name, "")))
    return rows
