"""Clock wording, the tool registry, the intent step and tool-call parsing."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime

import pytest

from voiceterm.engines.llm.protocol import ToolRequest
from voiceterm.tools.clock import Clock, time_in_words
from voiceterm.tools.intent import (
    ToolCallStreamFilter,
    assistant_tool_call_message,
    choose_strategy,
    detect_intent,
    parse_tool_calls,
    spoken_answer,
    tool_result_message,
)
from voiceterm.tools.registry import Tool, ToolOutcome, ToolRegistry, default_registry

TUESDAY_AFTERNOON = datetime(2025, 11, 25, 15, 7)


def fixed(moment: datetime) -> Clock:
    return Clock(now=lambda: moment)


# --- clock --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "words"),
    [
        (15, 7, "three oh seven in the afternoon"),
        (9, 30, "nine thirty in the morning"),
        (0, 0, "midnight"),
        (12, 0, "twelve noon"),
        (0, 15, "twelve fifteen in the morning"),
        (12, 45, "twelve forty-five in the afternoon"),
        (19, 0, "seven o'clock in the evening"),
        (23, 59, "eleven fifty-nine at night"),
    ],
)
def test_time_in_words(hour: int, minute: int, words: str) -> None:
    assert time_in_words(datetime(2025, 1, 1, hour, minute)) == words


def test_clock_answers_in_sentences() -> None:
    clock = fixed(TUESDAY_AFTERNOON)
    assert clock.answer("time") == "It's three oh seven in the afternoon."
    assert clock.answer("date") == "Today is Tuesday, November twenty-fifth, twenty twenty-five."
    assert clock.answer("weekday") == "Today is Tuesday."
    assert clock.answer("datetime").startswith("It's three oh seven in the afternoon on Tuesday")


def test_clock_reads_now_each_time() -> None:
    moments = iter([datetime(2025, 1, 1, 8, 0), datetime(2025, 1, 1, 8, 1)])
    clock = Clock(now=lambda: next(moments))
    assert clock.answer() == "It's eight o'clock in the morning."
    assert clock.answer() == "It's eight oh one in the morning."


# --- registry -------------------------------------------------------------------


def test_registry_runs_the_shipped_tools() -> None:
    registry = default_registry(fixed(TUESDAY_AFTERNOON))
    assert registry.names == ["calculator", "clock"]
    assert registry.run("calculator", {"expression": "12*7"}) == ToolOutcome(result="84")
    assert registry.run("clock", {"query": "weekday"}).result == "Today is Tuesday."
    assert registry.run("clock", {}).result == "It's three oh seven in the afternoon."


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        ("weather", {}, "no tool named 'weather'"),
        ("calculator", {}, "missing argument 'expression'"),
        ("calculator", {"expression": 12}, "'expression' must be a string"),
        ("calculator", {"expression": "1+1", "mode": "x"}, "unknown argument 'mode'"),
        ("clock", {"query": "moon"}, "must be one of 'time', 'date'"),
        ("calculator", {"expression": "1/0"}, "division by zero"),
        ("calculator", {"expression": "__import__('os')"}, "calculator tool failed"),
    ],
)
def test_registry_reports_errors_without_raising(
    name: str, args: dict[str, object], says: str
) -> None:
    outcome = default_registry().run(name, args)
    assert outcome.result is None
    assert outcome.error is not None and says in outcome.error
    assert not outcome.ok


def test_a_failing_tool_becomes_an_error_string() -> None:
    def broken(text: str) -> str:
        raise ValueError(f"cannot handle {text}")

    registry = ToolRegistry()
    registry.register(
        Tool(
            "echo", "Fails.", {"type": "object", "properties": {"text": {"type": "string"}}}, broken
        )
    )
    assert registry.run("echo", {"text": "hi"}).error == "The echo tool failed: cannot handle hi."
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Tool("echo", "Again.", {"type": "object"}, broken))


def test_specs_are_openai_style() -> None:
    specs = default_registry().specs()
    assert [spec["function"]["name"] for spec in specs] == ["calculator", "clock"]
    calculator = specs[0]
    assert calculator["type"] == "function"
    assert calculator["function"]["parameters"]["required"] == ["expression"]
    assert calculator["function"]["description"]


# --- intent step (the tiny model's route to tools) --------------------------------


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("What time is it?", ToolRequest("clock", {"query": "time"})),
        ("what's the time", ToolRequest("clock", {"query": "time"})),
        ("Can you tell me the time please?", ToolRequest("clock", {"query": "time"})),
        ("Do you know what time it is?", ToolRequest("clock", {"query": "time"})),
        ("What's the date today?", ToolRequest("clock", {"query": "date"})),
        ("What is today's date?", ToolRequest("clock", {"query": "date"})),
        ("What day is it?", ToolRequest("clock", {"query": "weekday"})),
        ("Which day of the week is it?", ToolRequest("clock", {"query": "weekday"})),
        ("Tell me the time and the date.", ToolRequest("clock", {"query": "datetime"})),
        ("What is twelve times seven?", ToolRequest("calculator", {"expression": "12*7"})),
        ("What's 15% of 80?", ToolRequest("calculator", {"expression": "15/100*80"})),
        ("What's the square root of 144?", ToolRequest("calculator", {"expression": "sqrt(144)"})),
        (
            "How much is twenty-five divided by five?",
            ToolRequest("calculator", {"expression": "25/5"}),
        ),
        ("Two to the power of ten.", ToolRequest("calculator", {"expression": "2**10"})),
        ("Add three and four.", ToolRequest("calculator", {"expression": "3+4"})),
        ("Tell me a joke.", None),
        ("I had a great time yesterday.", None),
        ("What is the capital of France?", None),
        ("I have two cats and three dogs.", None),
        ("Hello, how are you?", None),
    ],
)
def test_detect_intent(said: str, expected: ToolRequest | None) -> None:
    assert detect_intent(said) == expected


def test_spoken_answers_from_tool_results() -> None:
    registry = default_registry(fixed(TUESDAY_AFTERNOON))
    sums = detect_intent("what is twelve times seven")
    assert sums is not None
    assert spoken_answer(sums, registry.run(sums.name, sums.args)) == "12 times 7 is 84."
    root = detect_intent("what's the square root of 144")
    assert root is not None
    assert spoken_answer(root, registry.run(root.name, root.args)) == (
        "The square root of 144 is 12."
    )
    time = detect_intent("what time is it")
    assert time is not None
    assert spoken_answer(time, registry.run(time.name, time.args)) == (
        "It's three oh seven in the afternoon."
    )
    zero = detect_intent("ten divided by zero")
    assert zero is not None
    assert spoken_answer(zero, registry.run(zero.name, zero.args)) == (
        "Sorry, I couldn't work that out: division by zero."
    )


# --- larger models: their own tool-call formats -------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        '<tool_call>\n{"name": "clock", "arguments": {"query": "time"}}\n</tool_call>',
        '<tool_call>[{"name": "clock", "arguments": {"query": "time"}}]</tool_call>',
        '<|python_tag|>{"name": "clock", "parameters": {"query": "time"}}',
        '{"name": "clock", "arguments": "{\\"query\\": \\"time\\"}"}',
        '[TOOL_CALLS] [{"name": "clock", "arguments": {"query": "time"}}]',
        '{"type": "function", "function": {"name": "clock", "arguments": {"query": "time"}}}',
        '[clock(query="time")]',
    ],
)
def test_parses_tool_call_formats(output: str) -> None:
    assert parse_tool_calls(output) == [ToolRequest("clock", {"query": "time"})]


def test_parses_several_calls_and_ignores_prose() -> None:
    two = (
        '<tool_call>{"name": "clock", "arguments": {}}</tool_call>\n'
        '<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>'
    )
    assert [call.name for call in parse_tool_calls(two)] == ["clock", "calculator"]
    assert parse_tool_calls("Paris is the capital of France.") == []
    assert parse_tool_calls('{"answer": 42}') == []
    assert parse_tool_calls("<tool_call>not json</tool_call>") == []


def test_stream_filter_keeps_markup_out_of_speech() -> None:
    pieces = [
        "Sure",
        ", one",
        " moment. <to",
        "ol_call>",
        '{"name": "clock", ',
        '"arguments": {}}',
        "</tool_call>",
    ]
    stream = ToolCallStreamFilter()
    spoken = "".join(stream.feed(piece) for piece in pieces)
    rest, calls = stream.finish()
    assert spoken + rest == "Sure, one moment. "
    assert calls == [ToolRequest("clock", {})]


def test_stream_filter_passes_plain_text_through() -> None:
    stream = ToolCallStreamFilter()
    spoken = "".join(stream.feed(piece) for piece in ["I ", "<3 ", "cats", " [really]"])
    rest, calls = stream.finish()
    assert spoken + rest == "I <3 cats [really]"
    assert calls == []


def test_stream_filter_returns_json_that_is_not_a_call_as_text() -> None:
    stream = ToolCallStreamFilter()
    assert stream.feed('{"answer": 42}') == ""
    assert stream.finish() == ('{"answer": 42}', [])


def test_messages_for_the_native_route() -> None:
    request = ToolRequest("calculator", {"expression": "2+2"}, call_id="call_9")
    asked = assistant_tool_call_message([request])
    assert asked["tool_calls"][0]["function"] == {
        "name": "calculator",
        "arguments": '{"expression": "2+2"}',
    }
    answer = tool_result_message(request, ToolOutcome(result="4"))
    assert answer == {
        "role": "tool",
        "name": "calculator",
        "tool_call_id": "call_9",
        "content": "4",
    }
    failed = tool_result_message(request, ToolOutcome(error="division by zero"))
    assert failed["content"] == "Error: division by zero"


def test_strategy_follows_the_chat_template() -> None:
    tiny = "{% for message in messages %}{{'<|im_start|>' + message['role'] }}{% endfor %}"
    big = "{% if tools %}{% for tool in tools %}{{ tool | tojson }}{% endfor %}{% endif %}"
    assert choose_strategy(tiny) == "rules"
    assert choose_strategy(big) == "native"
    assert choose_strategy(None) == "rules"


def test_tools_import_no_model_library() -> None:
    code = (
        "import sys, voiceterm.tools, voiceterm.tools.intent;"
        "bad = {'numpy', 'llama_cpp', 'textual'} & set(sys.modules);"
        "print(sorted(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
