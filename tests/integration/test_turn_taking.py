"""Turn-taking through the real pipeline: webrtcvad, Smart Turn, Whisper, the LLM, Piper.

Recordings of real people (pocketsphinx-testdata), answered from a file as fast
as possible: the listener then waits for each end-of-turn check, so the turns
are decided as they would be live. A clip whose decision hangs on the words
heard at the pause is said in real time instead (``FileConversation``, as the
soak says it), so that Whisper's transcript of the pause is there in time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.conversation import FileConversation
from benchmarks.corpus import (
    RATE,
    Recording,
    normalize_words,
    require_real_recordings,
    silence,
    synthetic_recordings,
)
from benchmarks.rig import utterance
from voiceterm.audio.wavio import write_wav
from voiceterm.config import Config
from voiceterm.pipeline.agent import VoiceAgent
from voiceterm.pipeline.end_of_turn.learned import load_weights
from voiceterm.pipeline.headless import run_file
from voiceterm.pipeline.loading import Engines, load_engines
from voiceterm.timeline import Turn
from voiceterm.timeline_export import to_markdown

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(scope="module")
def engines() -> Iterator[Engines]:
    yield load_engines(Config())


def recording(name: str) -> Recording:
    return next(r for r in require_real_recordings() if r.name == name)


def answer(
    engines: Engines, audio: np.ndarray, tmp_path: Path, config: Config | None = None
) -> VoiceAgent:
    question = tmp_path / "question.wav"
    write_wav(question, audio, RATE)
    out = io.StringIO()
    return asyncio.run(
        run_file(
            config or Config(),
            question,
            tmp_path / "answer.wav",
            realtime=False,
            engines=engines,
            out=out,
        )
    )


def learned_config() -> Config:
    """The learned decision (the voice, the words, the LLM's reading, the silence)."""
    config = Config()
    config.turn.detector = "learned"
    return config


def rule_config() -> Config:
    """Today's hand-set rule (Smart Turn and the word lists), for comparison."""
    config = Config()
    config.turn.detector = "smart_turn"
    return config


def spoken_turns(agent: VoiceAgent) -> list[Turn]:
    return [t for t in agent.timeline.turns if t.source == "voice" and t.user_text]


def decisions(turn: Turn) -> list[str]:
    return [span.content for span in turn.lane_spans("turn")]


class AlwaysIncomplete:
    """An end-of-turn model that never hears the end."""

    def probability(self, audio: object) -> float:
        return 0.05


@pytest.mark.parametrize("detector", ["learned", "smart_turn"])
def test_a_sentence_with_a_700_ms_pause_in_it_is_one_turn(
    engines: Engines, tmp_path: Path, detector: str
) -> None:
    # "A person reading aloud..." cut after its third word, where Whisper writes a full
    # stop at the pause and the old rule answered the first half.
    read = recording("librivox-0930")
    cut = round(1.01 * RATE)
    audio = np.concatenate(
        [silence(0.3), read.audio[:cut], silence(0.7), read.audio[cut:], silence(2.0)]
    )
    agent = answer(
        engines, audio, tmp_path, learned_config() if detector == "learned" else rule_config()
    )
    turns = spoken_turns(agent)
    assert len(turns) == 1, [t.user_text for t in turns]
    heard = normalize_words(turns[0].user_text)
    reference = normalize_words(read.transcript)
    assert reference[0] in heard[:3] and reference[-1] in heard[-3:], turns[0].user_text
    # The pause was judged, and waited through. (A click before the first word may
    # have been asked about too.)
    waited = " → wait up to " if detector == "learned" else "model: incomplete"
    assert any(waited in d for d in decisions(turns[0])), decisions(turns[0])
    assert turns[0].agent_text  # and it was answered


@pytest.mark.xfail(
    strict=True,
    reason="goal missed: '7 of clubs' reads as finished (voice 0.99, words 0.63, p 0.64), "
    "but the bars chosen per check end no turn before 720 ms of silence: sentence ends "
    "inside a read passage (codec2 hts, 400-600 ms; voice 0.73-0.96, words 0.97-0.98) "
    "score as high as finished turns, and no whole turn may be split; it ends at 760 ms "
    "(docs/BENCHMARKS.md, learned end of turn, eighth look)",
)
def test_a_finished_question_is_answered_at_its_first_check(
    engines: Engines, tmp_path: Path
) -> None:
    # "Seven of clubs": a speaker the learned decision was not fitted on.
    audio = np.concatenate([silence(0.3), recording("cards-003").audio, silence(2.0)])
    agent = answer(engines, audio, tmp_path, learned_config())
    turns = spoken_turns(agent)
    assert len(turns) == 1
    first_ms = load_weights().first_ms
    done = [d for d in decisions(turns[0]) if " → done at " in d]
    assert done == [d for d in done if d.endswith(f"→ done at {first_ms} ms")] != [], done
    assert turns[0].agent_text


def test_a_finished_sentence_the_model_calls_unfinished_waits_the_shorter_silence(
    engines: Engines, tmp_path: Path
) -> None:
    # The words say done, the (stand-in) model says not: not the full cap.
    stubborn = dataclasses.replace(engines, turn=AlwaysIncomplete())
    audio = np.concatenate([silence(0.3), recording("cards-003").audio, silence(2.0)])
    agent = answer(stubborn, audio, tmp_path, rule_config())
    turns = spoken_turns(agent)
    assert len(turns) == 1
    turn = Config().turn
    # (Sorted: from a file the end's span starts on the file's clock, the check's on the app's.)
    assert sorted(decisions(turns[0])) == [
        f"model: incomplete 0.05 at {turn.check_ms} ms",
        f"unsure: {turn.unsure_ms} ms of silence (model: incomplete 0.05 at "
        f"{turn.check_ms} ms, the words sound finished)",
    ]
    assert turns[0].agent_text


@pytest.mark.parametrize(
    "detector",
    [
        "smart_turn",
        pytest.param(
            "learned",
            marks=pytest.mark.xfail(
                strict=False,
                reason="goal missed now and then: on the 10 ms offset Whisper writes "
                "'cancelled that', whose words score depends on the answer before it "
                "(p 0.33-0.54 in 8 runs, the bar near 0.43; alone, words 0.11): about one "
                "run in four waits the learned cap, 1120 ms (a CI run on 2026-12-07 did)",
            ),
        ),
    ],
)
def test_a_short_command_is_answered_without_waiting_for_the_cap(
    engines: Engines, detector: str
) -> None:
    # "Cancel that." (espeak-ng, klatt2 voice) as scripts/bench_soak.py says it. Where
    # the clip falls in the VAD's 20 ms frames changes what is heard at the pause: on
    # one of the two half-frame offsets Whisper writes "cancelled that" (two words
    # ending on one that usually leads on) and Smart Turn says 0.50, incomplete. That
    # turn used to wait the whole cap (1500 ms of silence). Blocks of one VAD frame
    # make the offset the test's choice.
    config = Config()
    config.audio.block_ms = 20
    config.turn.detector = detector
    clip = next(r for r in synthetic_recordings() if r.transcript == "Cancel that.")
    with FileConversation(config, engines, None, realtime_speaker=False) as conversation:
        for offset_ms in (0, 10):
            audio = np.concatenate([silence(offset_ms / 1000), clip.audio])
            conversation.turn(utterance(audio, clip.transcript))
    turns = spoken_turns(conversation.agent)
    assert len(turns) == 2, [t.user_text for t in turns]
    cap_ms = load_weights().cap_ms if detector == "learned" else config.turn.cap_ms
    for turn in turns:
        said = decisions(turn)
        assert not any(d.startswith("cap:") for d in said), said
        assert not any(d.endswith(f"→ done at {cap_ms} ms") for d in said), said
        assert turn.agent_text


def test_a_finished_phrase_of_an_unseen_speaker_is_answered_before_the_cap(
    engines: Engines, tmp_path: Path
) -> None:
    audio = np.concatenate([silence(0.3), recording("cards-003").audio, silence(2.0)])
    agent = answer(engines, audio, tmp_path, learned_config())
    turns = spoken_turns(agent)
    assert len(turns) == 1
    # (Any order: from a file the end's span starts on the file's clock, the checks' on the app's.)
    assert any(" → done at " in d for d in decisions(turns[0])), decisions(turns[0])
    assert turns[0].agent_text


def test_out_of_the_box_the_learned_decision_judges_the_pause(
    engines: Engines, tmp_path: Path
) -> None:
    audio = np.concatenate([silence(0.3), recording("cards-003").audio, silence(2.0)])
    agent = answer(engines, audio, tmp_path)
    turns = spoken_turns(agent)
    assert len(turns) == 1
    said = decisions(turns[0])
    assert any(" → done at " in d for d in said), said
    assert not any(d.startswith(("model:", "unsure:", "cap:")) for d in said), said
    assert turns[0].agent_text


def test_the_rule_still_decides_when_asked_for(engines: Engines, tmp_path: Path) -> None:
    audio = np.concatenate([silence(0.3), recording("cards-003").audio, silence(2.0)])
    agent = answer(engines, audio, tmp_path, rule_config())
    turns = spoken_turns(agent)
    assert len(turns) == 1
    assert all(d.startswith(("model:", "unsure:", "cap:")) for d in decisions(turns[0]))
    assert turns[0].agent_text


@pytest.mark.parametrize("broken", ["missing", "corrupt", "probe missing", "probe corrupt"])
def test_broken_weights_leave_the_rule_to_decide_and_say_so(
    engines: Engines, tmp_path: Path, broken: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The weights, or the words' probe that the shipped weights were fitted on.
    weights = tmp_path / "weights.json"
    if "corrupt" in broken:
        weights.write_text('{"models": {"full": ', encoding="utf-8")
    config = learned_config()
    if broken.startswith("probe"):
        config.turn.words_probe = str(weights)
    else:
        config.turn.weights = str(weights)
    audio = np.concatenate([silence(0.3), recording("cards-003").audio, silence(2.0)])
    agent = answer(engines, audio, tmp_path, config)
    turns = spoken_turns(agent)
    assert len(turns) == 1 and turns[0].agent_text
    assert all(d.startswith(("model:", "unsure:", "cap:")) for d in decisions(turns[0]))
    said = capsys.readouterr().err
    broke = "words' end-of-turn probe" if broken.startswith("probe") else "end-of-turn weights file"
    assert f"end of turn: The {broke} {weights}" in said
    assert "The hand-set rule (smart_turn) decides instead." in said


def test_the_conversation_export_has_no_turn_without_words(
    engines: Engines, tmp_path: Path
) -> None:
    read = recording("librivox-0930")
    cut = round(1.01 * RATE)
    audio = np.concatenate(
        [silence(0.3), read.audio[:cut], silence(0.7), read.audio[cut:], silence(2.0)]
    )
    agent = answer(engines, audio, tmp_path)
    markdown = to_markdown(agent.timeline.turns)
    sections = markdown.split("## Turn ")[1:]
    assert sections, markdown
    for section in sections:
        if section.startswith(tuple("0123456789")):
            assert "**You:**" in section or "**voiceterm:**" in section, markdown
