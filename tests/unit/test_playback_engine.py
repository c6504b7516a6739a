"""PlaybackEngine.pause/resume: a held answer is silent at once and resumes sample-exact;
the Player counts only underflows that could be heard."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from voiceterm.audio.frames import PlaybackTag
from voiceterm.audio.playback import PlaybackEngine
from voiceterm.audio.speaker import Player

RATE = 1000
BLOCK = 10


class Posts:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def __call__(self, kind: str, tag: PlaybackTag | None, t: float) -> None:
        self.kinds.append(kind)


def ramp(n: int) -> np.ndarray:
    return np.arange(1000, 1000 + n, dtype=np.int16)


def fill(engine: PlaybackEngine, t: float) -> np.ndarray:
    out = np.full(BLOCK, 7, dtype=np.int16)
    engine.fill(out, t)
    return out


def test_a_held_chunk_is_silent_then_continues_from_the_sample_where_it_stopped() -> None:
    posts = Posts()
    engine = PlaybackEngine(RATE, posts)
    audio = ramp(40)
    engine.enqueue(audio, PlaybackTag(turn_id=1, sentence_index=0))
    first = fill(engine, 0.0)
    assert list(first) == list(audio[:10])
    sound_ends = engine.pause()
    assert sound_ends == 0.01  # the block already handed to the device still plays
    for block in range(3):
        assert not fill(engine, 0.01 * (block + 1)).any(), "sound went on while held"
    assert "idle" not in posts.kinds, "a held answer is not a finished one"
    engine.resume()
    assert list(fill(engine, 0.04)) == list(audio[10:20])


def test_stopping_a_held_answer_drops_it_and_the_next_answer_plays() -> None:
    engine = PlaybackEngine(RATE, Posts())
    engine.enqueue(ramp(40), PlaybackTag(turn_id=1, sentence_index=0))
    fill(engine, 0.0)
    engine.pause()
    engine.stop_now()
    assert not fill(engine, 0.01).any()
    engine.enqueue(ramp(10), PlaybackTag(turn_id=2, sentence_index=0))
    assert list(fill(engine, 0.02)) == list(ramp(10))


def underflow_reported(player: Player) -> None:
    """One PortAudio callback that reports an underflow, as the device thread makes it.

    A block after the one before, as a device that consumes calls back.
    """
    time.sleep(0.006)
    status = SimpleNamespace(output_underflow=True)
    timing = SimpleNamespace(outputBufferDacTime=1.02, currentTime=1.0)
    player._callback(np.zeros((BLOCK, 1), np.int16), BLOCK, timing, status)


def test_only_a_gap_that_cuts_into_sound_counts_as_a_click() -> None:
    player = Player(block_ms=10)
    player._engine = PlaybackEngine(RATE, Posts())
    player._priority_asked = True  # no thread-priority call from the test's thread
    player._stream_clock.flowing = True  # the device consumes: blocks carry the answer
    underflow_reported(player)
    assert player.underflows == 0, "a gap in silence was counted as a click"
    player._engine.enqueue(ramp(40), PlaybackTag(turn_id=1))
    underflow_reported(player)  # writes the first sound: a gap before it only delays it
    assert player.underflows == 0
    for _ in range(3):
        underflow_reported(player)  # each between two blocks of the answer: clicks
    assert player.underflows == 3
    underflow_reported(player)  # after the last sound: silent
    assert player.underflows == 3


class FakeStream:
    """What the player asks of a PortAudio stream to sleep and wake."""

    def __init__(self) -> None:
        self.running = True

    def abort(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True


def sleepy_player(sleep_after_s: float) -> tuple[Player, FakeStream]:
    player = Player(block_ms=10, sleep_after_s=sleep_after_s)
    player._engine = PlaybackEngine(RATE, Posts())
    stream = FakeStream()
    player._stream = stream
    return player, stream


def test_a_player_with_nothing_to_play_stops_its_stream_until_the_next_chunk() -> None:
    player, stream = sleepy_player(0.0)
    assert player._sleepy()
    player._sleep()
    assert player.asleep and not stream.running
    player.enqueue(ramp(40), RATE, PlaybackTag(turn_id=1))
    assert not player.asleep and stream.running, "queued sound must start the stream"
    assert not player._sleepy(), "a stream with sound queued must keep running"


def test_a_held_answer_keeps_the_stream_running() -> None:
    player, _ = sleepy_player(0.0)
    assert player._engine is not None
    player.enqueue(ramp(40), RATE, PlaybackTag(turn_id=1))
    player._engine.fill(np.zeros(BLOCK, np.int16), 0.0)
    player.pause()
    assert not player._sleepy()


def test_a_player_sleeps_only_after_a_quiet_while() -> None:
    player, _ = sleepy_player(60.0)
    player._last_start = float("inf")  # just started
    assert not player._sleepy()
    never, _ = sleepy_player(0.0)
    never.sleep_after_s = None
    assert not never._sleepy()


def test_waking_a_sleeping_player_starts_its_stream_before_any_sound() -> None:
    player, stream = sleepy_player(0.0)
    player._sleep()
    player.wake()
    assert not player.asleep and stream.running
    player.sleep_after_s = 60.0
    assert not player._sleepy(), "a player just woken went back to sleep"
