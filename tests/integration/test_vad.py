"""The VAD segmenter on the real webrtcvad, with espeak-ng speech and real recordings."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.corpus import (
    RATE,
    concat,
    espeak,
    espeak_available,
    require_real_recordings,
    silence,
    white_noise,
    with_pauses,
)
from voiceterm.audio.resample import resample
from voiceterm.engines.vad import (
    SpeechEnded,
    SpeechStarted,
    VadEvent,
    VadSegmenter,
    VadSettings,
    segment_file,
)
from voiceterm.errors import ConfigError

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")

MONOLOGUE = (
    "Let me tell you about the old lighthouse on the northern cape. It was built more than "
    "a hundred years ago, when ships still carried coal and timber along the coast. The "
    "keeper lived alone with a grey cat and a shelf of books, and every evening he climbed "
    "the narrow stairs to light the lamp. In winter the storms came in from the sea and the "
    "waves reached the windows of the kitchen. Nobody in the village remembers his name now, "
    "but the children still tell stories about the light that never went out, even on the "
    "night of the great storm when the bridge fell into the river. Today the lighthouse is a "
    "small museum with a cafe, and on clear days you can see the islands from the top. The "
    "stairs are still narrow, the books are still on the shelf, and there is still a grey cat "
    "sleeping in the sun by the door, although nobody knows where it came from."
)


def feed_in_chunks(
    segmenter: VadSegmenter, audio: np.ndarray, sizes: list[int], t0: float = 100.0
) -> list[VadEvent]:
    events: list[VadEvent] = []
    offset = index = 0
    while offset < len(audio):
        size = sizes[index % len(sizes)]
        events += segmenter.feed(audio[offset : offset + size], t0 + offset / RATE)
        offset += size
        index += 1
    return events + segmenter.flush()


def ended(events: list[VadEvent]) -> list[SpeechEnded]:
    return [e for e in events if isinstance(e, SpeechEnded)]


def test_two_utterances_with_a_pause_become_two() -> None:
    first, second = espeak("Turn on the radio."), espeak("And make it louder, please.", "en-gb")
    audio = with_pauses([first, second], pause_s=1.2, lead_s=0.5)
    segmenter = VadSegmenter()
    events = feed_in_chunks(segmenter, audio, [320], t0=50.0)
    utterances = ended(events)
    assert [type(e).__name__ for e in events] == ["SpeechStarted", "SpeechEnded"] * 2
    assert not any(u.too_short or u.forced for u in utterances)
    # Times follow the clock given to feed() (t0 = 50 s); compare with where the
    # sound really is (espeak-ng adds silence around its speech).
    audible = np.flatnonzero(np.abs(audio) > 300) / RATE + 50.0
    second_start = 50.5 + (len(first) / RATE) + 1.2
    assert utterances[0].speech_start == pytest.approx(audible[0], abs=0.1)
    assert utterances[0].speech_end == pytest.approx(audible[audible < second_start][-1], abs=0.1)
    assert utterances[1].speech_start == pytest.approx(audible[audible > second_start][0], abs=0.1)
    assert utterances[1].speech_end == pytest.approx(audible[-1], abs=0.1)
    started = [e for e in events if isinstance(e, SpeechStarted)]
    assert [s.onset_time for s in started] == [u.speech_start for u in utterances]


def test_chunk_size_does_not_change_the_result() -> None:
    audio = with_pauses([espeak("Hello there."), espeak("How are you?")], pause_s=1.0)
    whole = ended(feed_in_chunks(VadSegmenter(), audio, [len(audio)]))
    odd = ended(feed_in_chunks(VadSegmenter(), audio, [1, 77, 480, 3, 1601]))
    assert len(whole) == len(odd) == 2
    for a, b in zip(whole, odd, strict=True):
        assert a.speech_start == pytest.approx(b.speech_start)
        assert a.speech_end == pytest.approx(b.speech_end)
        assert np.array_equal(a.audio, b.audio)


def test_the_audio_at_a_pause_is_the_finished_utterances_audio_over_room_noise() -> None:
    # What is transcribed ahead at a 40 ms pause must be what the finished turn would
    # be transcribed from: otherwise the words depend on how soon the machine got there.
    noise = white_noise(3.0, level_dbfs=-55.0, seed=3)
    speech = espeak("What is the capital of France?")
    audio = noise[: RATE // 2].copy()
    audio = concat(audio, speech + noise[: len(speech)] // 2, noise[RATE:])
    segmenter = VadSegmenter(VadSettings(heard_tail_ms=40))
    at_pause = None  # the utterance as it was at its last 40 ms pause
    events: list[VadEvent] = []
    silence_before = 0
    for offset in range(0, len(audio), 160):
        events += segmenter.feed(audio[offset : offset + 160], 10.0 + offset / RATE)
        silence = segmenter.trailing_silence_ms
        if silence >= 40 > silence_before:
            at_pause = segmenter.current_utterance()
        silence_before = silence
    (finished,) = ended(events + segmenter.flush())
    assert at_pause is not None and at_pause.speech_end == finished.speech_end
    assert np.array_equal(at_pause.audio, finished.audio)
    # The tail keeps its length: 40 ms heard, the rest digital silence.
    assert len(finished.audio) == len(at_pause.audio)
    assert not finished.audio[-int(0.2 * RATE) :].any()


def test_pre_roll_keeps_the_soft_start_of_the_first_word() -> None:
    speech = espeak("Seven hundred and fifty.", "en-us", 150)
    audio = concat(silence(1.0), speech, silence(1.0))
    (utterance,) = segment_file(audio, RATE)
    # The utterance audio begins before the first audible sample of the word
    # (webrtcvad only fires on the voiced "e", the "s" comes before it).
    first_sound = 1.0 + int(np.argmax(np.abs(speech) > 300)) / RATE
    assert utterance.audio_start <= first_sound
    assert utterance.speech_start - utterance.audio_start == pytest.approx(0.3, abs=0.02)
    assert len(utterance.audio) / RATE >= len(speech) / RATE


def test_a_sixty_second_monologue_is_force_split() -> None:
    speech = espeak(MONOLOGUE, "en-us", 130)
    assert len(speech) / RATE > 60
    settings = VadSettings()
    segmenter = VadSegmenter(settings)
    events = feed_in_chunks(segmenter, concat(silence(0.5), speech, silence(1.0)), [480])
    utterances = ended(events)
    # Two splits are forced (the speaker never pauses for long before 40 s);
    # a long pause between sentences may end a piece naturally after that.
    assert len(utterances) >= 3
    assert utterances[0].forced and utterances[1].forced
    assert all(u.duration_s <= settings.max_utterance_s + 0.01 for u in utterances)
    # Every start has its end, and the pieces cover the monologue.
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["SpeechStarted", "SpeechEnded"] * len(utterances)
    covered = sum(u.duration_s for u in utterances)
    assert covered >= 0.9 * len(speech) / RATE


@pytest.mark.parametrize(
    "noise",
    [
        pytest.param(silence(5), id="silence"),
        pytest.param(white_noise(5, -50), id="white-50dBFS"),
        pytest.param(white_noise(5, -30), id="white-30dBFS"),
        pytest.param(white_noise(5, -15), id="white-15dBFS"),
    ],
)
def test_silence_and_white_noise_give_nothing(noise: np.ndarray) -> None:
    segmenter = VadSegmenter()
    events = feed_in_chunks(segmenter, noise, [320])
    assert events == []
    assert not segmenter.in_speech


def test_speech_over_noise_is_still_found() -> None:
    speech = concat(silence(1.0), espeak("Where is the nearest train station?"), silence(1.0))
    noisy = np.clip(speech.astype(np.int32) + white_noise(len(speech) / RATE, -35), -32768, 32767)
    utterances = segment_file(noisy.astype(np.int16), RATE)
    assert len(utterances) == 1


def test_a_click_is_not_speech_and_a_short_blip_is_flagged() -> None:
    click = np.zeros(RATE, dtype=np.int16)
    click[8000:8080] = 20000
    assert segment_file(concat(silence(1.0), click, silence(1.0)), RATE, keep_too_short=True) == []
    burst = np.random.default_rng(0).normal(0, 6000, 2400) * np.exp(-np.arange(2400) / 800)
    blips = segment_file(
        concat(silence(1.0), burst.astype(np.int16), silence(1.0)), RATE, keep_too_short=True
    )
    assert all(b.too_short for b in blips)
    assert segment_file(concat(silence(1.0), burst.astype(np.int16), silence(1.0)), RATE) == []


def test_real_recordings_each_give_one_utterance() -> None:
    for recording in require_real_recordings():
        utterances = segment_file(concat(silence(0.5), recording.audio, silence(1.0)), RATE)
        assert len(utterances) == 1, recording.name


def test_flush_ends_speech_at_end_of_input_and_reset_forgets_it() -> None:
    speech = concat(silence(0.5), espeak("This sentence is cut off"))
    segmenter = VadSegmenter()
    events = segmenter.feed(speech, 0.0)
    assert [type(e) for e in events] == [SpeechStarted]
    assert segmenter.in_speech
    (end,) = segmenter.flush()
    assert isinstance(end, SpeechEnded) and not end.forced
    assert not segmenter.in_speech

    segmenter.feed(speech, 10.0)
    segmenter.reset()
    assert not segmenter.in_speech
    assert segmenter.flush() == []


def test_level_meter_follows_the_input() -> None:
    segmenter = VadSegmenter()
    segmenter.feed(silence(0.1), 0.0)
    assert segmenter.level_db == -100.0
    assert not segmenter.voiced
    segmenter.feed(white_noise(0.1, -20), 0.1)
    assert segmenter.level_db == pytest.approx(-20, abs=1)
    speech = concat(silence(0.5), espeak("Hello, can you hear me?"))
    voiced = []
    for offset in range(0, len(speech), 320):
        segmenter.feed(speech[offset : offset + 320], 1.0 + offset / RATE)
        voiced.append(segmenter.voiced)
    assert any(voiced) and not all(voiced)


def test_other_rates_are_resampled_by_segment_file() -> None:
    speech = with_pauses([espeak("One."), espeak("Two.")], pause_s=1.0)
    audio48 = np.asarray(resample(speech, RATE, 48000), dtype=np.int16)
    assert len(segment_file(audio48, 48000)) == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"frame_ms": 25},
        {"aggressiveness": 4},
        {"hangover_ms": 5},
        {"preroll_ms": -1},
        {"max_utterance_s": 1.0},
    ],
)
def test_bad_settings_raise_config_error(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        VadSettings(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("frame_ms", [10, 30])
def test_other_frame_lengths_work(frame_ms: int) -> None:
    audio = with_pauses([espeak("Good night."), espeak("Sleep well.")], pause_s=1.0)
    assert len(segment_file(audio, RATE, VadSettings(frame_ms=frame_ms))) == 2
