"""Reading P(end of the user's message) from a server's logprobs."""

from __future__ import annotations

import math

from voiceterm.engines.llm.words_end import end_marker, server_end_probability


def test_the_end_marker_is_the_markup_right_after_the_words() -> None:
    assert end_marker("<|im_end|>\n<|im_start|>assistant\n") == "<|im_end|>"
    assert end_marker("<|eot_id|><|start_header_id|>assistant") == "<|eot_id|>"
    assert end_marker("</s>[INST]") == "</s>"
    assert end_marker(" and more words") is None


def test_the_marker_is_read_from_either_shape_of_logprobs() -> None:
    completions = {"top_logprobs": [{"<|im_end|>": math.log(0.4), " and": math.log(0.1)}]}
    chat = {
        "content": [
            {
                "top_logprobs": [
                    {"token": " and", "logprob": -2.0},
                    {"token": "<|im_end|>", "logprob": math.log(0.3)},
                ]
            }
        ]
    }
    assert math.isclose(server_end_probability(completions, "<|im_end|>") or 0, 0.4)
    assert math.isclose(server_end_probability(chat, "<|im_end|>") or 0, 0.3)


def test_a_special_token_written_as_nothing_counts_and_an_unlisted_one_is_bounded() -> None:
    # llama-cpp-python's server writes a special token's text as "".
    assert math.isclose(
        server_end_probability({"top_logprobs": [{"": math.log(0.5)}]}, "<|im_end|>") or 0, 0.5
    )
    listed = {"top_logprobs": [{" France": math.log(0.2), " the": math.log(0.05)}]}
    assert math.isclose(server_end_probability(listed, "<|im_end|>") or 0, 0.05)


def test_no_logprobs_is_no_probability() -> None:
    assert server_end_probability({"top_logprobs": []}, "<|im_end|>") is None
    assert server_end_probability(None, "<|im_end|>") is None
    assert server_end_probability({"content": []}, "<|im_end|>") is None
