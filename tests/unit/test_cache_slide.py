"""find_slide: which cached tokens a trimmed prompt can keep instead of reading them again."""

from __future__ import annotations

from voiceterm.engines.llm import CacheSlide, find_slide

SYSTEM = [1, 2, 3]
OLD_TURN = [10, 11, 12, 13]
KEPT_TURNS = list(range(100, 140))
NEW_QUESTION = [7, 8, 9]


def test_a_dropped_turn_is_skipped_and_the_kept_ones_slide_down() -> None:
    cached = SYSTEM + OLD_TURN + KEPT_TURNS
    prompt = SYSTEM + KEPT_TURNS + NEW_QUESTION
    assert find_slide(cached, prompt, min_kept=32) == CacheSlide(
        start=len(SYSTEM), dropped=len(OLD_TURN), kept=len(KEPT_TURNS)
    )


def test_the_slide_stops_where_the_prompt_stops_following_the_cache() -> None:
    # An interrupted answer: the cache holds all of it, the history only what was heard.
    cached = SYSTEM + OLD_TURN + KEPT_TURNS + [50, 51, 52]
    prompt = SYSTEM + KEPT_TURNS + [50] + NEW_QUESTION
    slide = find_slide(cached, prompt, min_kept=32)
    assert slide is not None
    assert slide.kept == len(KEPT_TURNS) + 1


def test_at_least_one_prompt_token_is_left_to_read() -> None:
    cached = SYSTEM + OLD_TURN + KEPT_TURNS
    prompt = SYSTEM + KEPT_TURNS
    slide = find_slide(cached, prompt, min_kept=32)
    assert slide is not None
    assert slide.start + slide.kept == len(prompt) - 1


def test_no_slide_when_the_prefix_already_matches_or_too_little_would_be_spared() -> None:
    cached = SYSTEM + KEPT_TURNS
    assert find_slide(cached, cached + NEW_QUESTION, min_kept=32) is None
    assert find_slide(SYSTEM + OLD_TURN + KEPT_TURNS[:10], SYSTEM + KEPT_TURNS[:10], 32) is None
    assert find_slide(SYSTEM + OLD_TURN, SYSTEM + NEW_QUESTION * 20, min_kept=32) is None
    assert find_slide([], SYSTEM + KEPT_TURNS, min_kept=32) is None


def test_the_longest_way_to_go_on_wins() -> None:
    # The kept turns' first token also appears in the dropped turn: the later,
    # longer match is the right one.
    cached = SYSTEM + [9, 100, 101, 5] + KEPT_TURNS
    prompt = SYSTEM + KEPT_TURNS + NEW_QUESTION
    slide = find_slide(cached, prompt, min_kept=2)
    assert slide == CacheSlide(start=len(SYSTEM), dropped=4, kept=len(KEPT_TURNS))
