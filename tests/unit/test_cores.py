"""CoreShare: the LLM may take every core only while STT and TTS rest."""

from __future__ import annotations

import threading
import time

import pytest

from voiceterm.engines.cores import CoreShare


def test_an_engine_is_computing_only_inside_its_block() -> None:
    cores = CoreShare()
    assert not cores.others_computing("llm")
    with cores.computing("stt"):
        assert cores.others_computing("llm")
        assert not cores.others_computing("stt")  # its own work does not count
    assert not cores.others_computing("llm")


def test_overlapping_work_of_one_engine_counts_until_the_last_ends() -> None:
    cores = CoreShare()
    with cores.computing("tts"):
        with cores.computing("tts"):
            pass
        assert cores.others_computing("llm")
    assert not cores.others_computing("llm")


def test_a_failure_inside_the_block_still_ends_the_work() -> None:
    cores = CoreShare()
    with pytest.raises(RuntimeError), cores.computing("stt"):
        raise RuntimeError("whisper failed")
    assert not cores.others_computing("llm")


def test_other_threads_see_the_work() -> None:
    cores = CoreShare()
    started, release = threading.Event(), threading.Event()

    def transcribe() -> None:
        with cores.computing("stt"):
            started.set()
            release.wait(5)

    worker = threading.Thread(target=transcribe)
    worker.start()
    assert started.wait(5)
    assert cores.others_computing("llm")
    release.set()
    worker.join(5)
    assert not cores.others_computing("llm")


def test_every_core_is_taken_only_when_no_other_engine_computes() -> None:
    cores = CoreShare()
    with cores.computing("stt"), cores.every_core("llm") as alone:
        assert not alone
    with cores.every_core("llm") as alone:
        assert alone
    with cores.every_core("llm") as alone:  # given back at the end of the block
        assert alone


def test_whisper_waits_for_a_prompt_read_on_every_core_to_end() -> None:
    cores = CoreShare()
    order: list[str] = []

    def transcribe() -> None:
        with cores.computing("stt"):
            order.append("stt")

    with cores.every_core("llm") as alone:
        assert alone
        worker = threading.Thread(target=transcribe)
        worker.start()
        worker.join(0.2)
        order.append("llm read")
    worker.join(5)
    assert order == ["llm read", "stt"]


def test_an_engine_can_wait_for_another_to_rest() -> None:
    cores = CoreShare()
    assert cores.wait_until_resting("tts", 0)  # resting already
    release = threading.Event()

    def synthesize() -> None:
        with cores.computing("tts"):
            release.wait(5)

    worker = threading.Thread(target=synthesize)
    worker.start()
    while not cores.is_computing("tts"):
        time.sleep(0.001)
    assert not cores.wait_until_resting("tts", 0.05)
    release.set()
    assert cores.wait_until_resting("tts", 5)
    worker.join(5)


def test_the_end_of_turn_check_goes_first_even_beside_running_work() -> None:
    cores = CoreShare()
    order: list[str] = []
    with cores.computing("llm"):  # a step under way is not stopped ...
        with cores.first("turn"):
            assert cores.is_computing("turn")

            def next_step() -> None:
                with cores.computing("stt"):  # ... but a new one waits
                    order.append("stt")

            waiter = threading.Thread(target=next_step)
            waiter.start()
            time.sleep(0.05)
            order.append("turn")
    waiter.join(timeout=2)
    assert order == ["turn", "stt"]
    with cores.every_core("llm") as alone:
        assert alone  # and the cores are free again afterwards
