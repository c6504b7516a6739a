"""How a model gets to use tools: a rule-based intent step, or its own tool calls.

Two routes, picked per model by :func:`choose_strategy`:

``"rules"`` -- for the tiny embedded model (SmolLM2-135M). It cannot do free-form
function calling, and it cannot even *choose* a tool: constrained by a grammar
to answer ``{"tool": "clock" | "calculator" | "none"}``, it picked the right one
for 5 of 12 test requests, about chance (``scripts/bench_llm.py`` repeats the
measurement). Asked to phrase a tool's result it also garbles it ("Three
o'clock." for 3:07 pm). So a small deterministic step reads the user's
transcript (:func:`detect_intent`): time/date questions go to the clock,
arithmetic in words or digits to the calculator; the tool runs and
:func:`spoken_answer` words the result itself. The model answers everything else.

``"native"`` -- for larger GGUF models whose chat template renders tool specs
(Qwen2.5, Llama 3.1+, Hermes, SmolLM2-1.7B...). The engine passes the
registry's specs to the template; the model writes a call in its own format,
which :func:`parse_tool_calls` reads (``<tool_call>{...}</tool_call>``, bare or
``<|python_tag|>`` JSON, ``[TOOL_CALLS] [...]``, or Python-style
``[name(arg=...)]``). :class:`ToolCallStreamFilter` keeps that markup out of the
spoken text while tokens stream. The tool's result goes back as a ``tool``
message (:func:`tool_result_message`) and the model answers with it.

Either way the bus sees the seed's shape: ``ToolCall`` -> the tool runs ->
``ToolResult`` -> the answer.

A server that receives calls as such hands them over as ``ToolRequest`` pieces
(:mod:`voiceterm.engines.llm.protocol`): only text a model wrote is parsed here.

Pure Python: nothing here imports a model library.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from voiceterm.engines.llm.protocol import ToolRequest
from voiceterm.tools.calculator import parse_spoken_math
from voiceterm.tools.clock import ClockQuery
from voiceterm.tools.registry import ToolOutcome

ToolStrategy = Literal["rules", "native"]


def choose_strategy(chat_template: str | None) -> ToolStrategy:
    """``"native"`` when the model's chat template renders tool specs, else ``"rules"``.

    Templates of function-calling models loop over a ``tools`` variable; the
    tiny model's template never mentions it.
    """
    if chat_template and re.search(r"\btools\b", chat_template):
        return "native"
    return "rules"


# --- the rule-based intent step ----------------------------------------------------

_TIME = re.compile(
    r"\bwhat time is it\b|\bwhat time it is\b|\bwhat is the (?:current )?time\b"
    r"|\b(?:tell|give) me the time\b|\bcurrent time\b|\btime (?:is it )?(?:right )?now\b"
    r"|\b(?:know|have|got) the time\b|\bcheck the time\b|\bthe time please\b"
)
_WEEKDAY = re.compile(
    r"\bwhat day (?:is it|is today|of the week)\b|\bwhich day is (?:it|today)\b"
    r"|\bday of the week\b|\bwhat is the day\b|\bwhat day it is\b"
)
_DATE = re.compile(
    r"\b(?:what|which) is (?:the )?date\b|\bwhat date\b|\btoday'?s date\b|\bthe date today\b"
    r"|\bdate is it\b|\bwhat is today\b|\bwhat month\b|\bwhat year\b|\b(?:tell|give) me the date\b"
)


def _normalise(text: str) -> str:
    lowered = text.lower().replace("’", "'")
    lowered = re.sub(r"\bwhat's\b", "what is", lowered)
    lowered = re.sub(r"[^a-z0-9'%+*/^().,\- ]+", " ", lowered)
    return re.sub(r"\s+", " ", lowered).strip()


def clock_query(transcript: str) -> ClockQuery | None:
    """Which clock question the transcript asks, if any."""
    text = _normalise(transcript)
    wants_time = bool(_TIME.search(text))
    wants_weekday = bool(_WEEKDAY.search(text))
    wants_date = bool(_DATE.search(text)) or (wants_time and bool(re.search(r"\bdate\b", text)))
    if wants_time and (wants_date or wants_weekday):
        return "datetime"
    if wants_time:
        return "time"
    if wants_weekday:
        return "weekday"
    if wants_date:
        return "date"
    return None


def detect_intent(transcript: str) -> ToolRequest | None:
    """The tool a user's words ask for, or ``None`` to let the model answer.

    Args:
        transcript: What the user said, e.g. ``"What's twelve times seven?"``.

    Returns:
        ``ToolRequest("clock", {"query": "time"})``,
        ``ToolRequest("calculator", {"expression": "12*7"})``, or ``None``.
    """
    query = clock_query(transcript)
    if query is not None:
        return ToolRequest("clock", {"query": query})
    expression = parse_spoken_math(transcript)
    if expression is not None:
        return ToolRequest("calculator", {"expression": expression})
    return None


_SPOKEN_OPERATORS = (
    (re.compile(r"sqrt\(([^()]*)\)"), r"the square root of \1"),
    (re.compile(r"\(([^()]*)\)\*\*\(1/3\)"), r"the cube root of \1"),
    (re.compile(r"/100\*"), " percent of "),
    (re.compile(r"\*\*2\b"), " squared"),
    (re.compile(r"\*\*3\b"), " cubed"),
    (re.compile(r"\*\*"), " to the power of "),
    (re.compile(r"//"), " divided by, rounded down, "),
    (re.compile(r"/100\b"), " percent"),
    (re.compile(r"\*"), " times "),
    (re.compile(r"/"), " divided by "),
    (re.compile(r"\+"), " plus "),
    (re.compile(r"(?<=[\w)])-"), " minus "),
    (re.compile(r"%"), " modulo "),
    (re.compile(r"-"), "minus "),
)


def speakable_expression(expression: str) -> str:
    """``"12*7"`` -> ``"12 times 7"``: an expression as it is read out."""
    text = expression.replace(" ", "")
    for pattern, words in _SPOKEN_OPERATORS:
        text = pattern.sub(words, text)
    return re.sub(r"\s+", " ", text).strip()


def spoken_answer(request: ToolRequest, outcome: ToolOutcome) -> str:
    """The sentence the assistant says for a tool's outcome (the "rules" route).

    Args:
        request: The tool that ran and its arguments.
        outcome: What it returned.

    Returns:
        E.g. ``"12 times 7 is 84."`` or ``"Sorry, I couldn't work that out: division by zero."``.
    """
    if outcome.error is not None:
        reason = outcome.error.rstrip(".")
        reason = reason.split(": ", 1)[1] if ": " in reason else reason
        return f"Sorry, I couldn't work that out: {reason}."
    if request.name == "calculator":
        spoken = speakable_expression(str(request.args.get("expression", "")))
        return f"{spoken[:1].upper()}{spoken[1:]} is {outcome.result}."
    return str(outcome.result)


# --- the model's own tool calls (larger models) --------------------------------------

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_PREFIXES = ("<|python_tag|>", "[TOOL_CALLS]", "<tool_call>")


def _request_from_json(item: Any) -> ToolRequest | None:
    if not isinstance(item, Mapping):
        return None
    if isinstance(item.get("function"), Mapping):  # OpenAI: {"type": "function", "function": {...}}
        inner = item["function"]
        return _request_from_json({**inner, "id": item.get("id")})
    name = item.get("name")
    args = item.get("arguments", item.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or not name or not isinstance(args, Mapping):
        return None
    call_id = item.get("id")
    return ToolRequest(name, dict(args), str(call_id) if call_id else None)


def _requests_from_json_text(text: str) -> list[ToolRequest] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    items = value if isinstance(value, list) else [value]
    requests = [_request_from_json(item) for item in items]
    if not requests or any(request is None for request in requests):
        return None
    return [request for request in requests if request is not None]


def _requests_from_python_calls(text: str) -> list[ToolRequest] | None:
    """``[clock(query="time"), calculator(expression="2+2")]`` (Llama 3.2 style)."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return None
    body = tree.body
    calls = body.elts if isinstance(body, ast.List) else [body]
    requests: list[ToolRequest] = []
    for call in calls:
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.args:
            return None
        try:
            args = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        except ValueError:
            return None
        requests.append(ToolRequest(call.func.id, args))
    return requests


def parse_tool_calls(text: str) -> list[ToolRequest]:
    """Read the tool calls a function-calling model wrote, in the common formats.

    Args:
        text: The model's whole output for the turn.

    Returns:
        The calls in order; empty when the text is an ordinary answer.
    """
    tagged = _TAGGED.findall(text)
    if tagged:
        requests: list[ToolRequest] = []
        for block in tagged:
            requests.extend(_requests_from_json_text(block) or [])
        return requests
    body = text.strip()
    for prefix in _PREFIXES:
        if body.startswith(prefix):
            body = body[len(prefix) :].strip()
    if body.startswith(("{", "[")):
        found = _requests_from_json_text(body)
        if found is None and body.startswith("[") and body.endswith("]"):
            found = _requests_from_python_calls(body)
        return found or []
    return []


class ToolCallStreamFilter:
    """Separates speakable text from tool-call markup while tokens stream in.

    Feed it each piece; it returns what can be spoken now. Anything that starts
    like a tool call (a marker such as ``<tool_call>``, or JSON at the very start
    of the answer) is held back; :meth:`finish` returns the held text and the
    calls parsed from it. A held-back blob that turns out not to be a call is
    returned as text.
    """

    MARKERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>")

    def __init__(self) -> None:
        self._pending = ""
        self._captured = ""
        self._capturing = False
        self._emitted_any = False

    def feed(self, piece: str) -> str:
        """Take the next piece; return the text that is safe to speak now."""
        if self._capturing:
            self._captured += piece
            return ""
        self._pending += piece
        if not self._emitted_any and self._pending.lstrip()[:1] in ("{", "["):
            return self._capture_from(self._pending.index(self._pending.lstrip()[0]))
        positions = [self._pending.find(m) for m in self.MARKERS if m in self._pending]
        if positions:
            return self._capture_from(min(positions))
        # Hold back a tail that could be the start of a marker ("<tool").
        keep = 0
        for marker in self.MARKERS:
            for size in range(min(len(marker) - 1, len(self._pending)), 0, -1):
                if self._pending.endswith(marker[:size]):
                    keep = max(keep, size)
                    break
        text, self._pending = (
            self._pending[: len(self._pending) - keep],
            self._pending[len(self._pending) - keep :],
        )
        if text.strip():
            self._emitted_any = True
        return text

    def _capture_from(self, index: int) -> str:
        text = self._pending[:index]
        self._captured = self._pending[index:]
        self._pending = ""
        self._capturing = True
        return text

    def finish(self) -> tuple[str, list[ToolRequest]]:
        """End of the stream: the text still held back, and the tool calls found."""
        if not self._capturing:
            text, self._pending = self._pending, ""
            return text, []
        calls = parse_tool_calls(self._captured)
        if calls:
            return "", calls
        return self._captured, []


# --- conversation messages for the "native" route ----------------------------------


def assistant_tool_call_message(requests: list[ToolRequest]) -> dict[str, Any]:
    """The assistant turn that asked for ``requests``, in OpenAI form (what templates read)."""
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": request.call_id or f"call_{index}",
                "type": "function",
                "function": {"name": request.name, "arguments": json.dumps(request.args)},
            }
            for index, request in enumerate(requests, start=1)
        ],
    }


def tool_result_message(
    request: ToolRequest, outcome: ToolOutcome, call_id: str | None = None
) -> dict[str, Any]:
    """A ``tool`` message carrying a tool's result (or error) back to the model."""
    content = outcome.result if outcome.error is None else f"Error: {outcome.error}"
    return {
        "role": "tool",
        "name": request.name,
        "tool_call_id": call_id or request.call_id or "",
        "content": content or "",
    }
