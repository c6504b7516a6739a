"""Tools the agent can call, described once for every kind of caller.

A :class:`Tool` carries a JSON-schema description of its arguments; the
:class:`ToolRegistry` runs tools by name with arguments checked against that
schema and turns every failure into an error string (a tool never raises into
the pipeline), and renders OpenAI-style specs for models that call functions
themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voiceterm.errors import VoicetermError
from voiceterm.tools.calculator import CalculatorError, evaluate, format_number
from voiceterm.tools.clock import CLOCK_QUERIES, Clock, ClockQuery


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool.

    Attributes:
        name: What models and events call it (``"calculator"``).
        description: One sentence a model reads to decide when to use it.
        parameters: JSON schema of the arguments (an ``"object"`` schema).
        function: Called with the arguments as keyword arguments; returns the
            result as text (what gets spoken or shown).
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: Callable[..., str]

    def spec(self) -> dict[str, Any]:
        """The OpenAI-style function spec (also what Jinja chat templates expect)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What running a tool gave: a ``result`` or an ``error`` (never both).

    The fields match :class:`voiceterm.events.ToolResult`.
    """

    result: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def check_arguments(schema: Mapping[str, Any], args: Mapping[str, Any]) -> str | None:
    """Check ``args`` against a flat object schema.

    Covers what tool schemas use: required keys, no unknown keys, the basic JSON
    types and ``enum``. Returns why the arguments are wrong, or ``None``.
    """
    properties: Mapping[str, Any] = schema.get("properties", {})
    missing = [key for key in schema.get("required", []) if key not in args]
    if missing:
        return f"missing argument {', '.join(repr(k) for k in missing)}"
    unknown = [key for key in args if key not in properties]
    if unknown and schema.get("additionalProperties", False) is False:
        return f"unknown argument {', '.join(repr(k) for k in unknown)}"
    for key, value in args.items():
        rule: Mapping[str, Any] = properties.get(key, {})
        expected = rule.get("type")
        if isinstance(expected, str) and expected in _JSON_TYPES:
            is_bool = isinstance(value, bool)
            if not isinstance(value, _JSON_TYPES[expected]) or (is_bool and expected != "boolean"):
                return f"argument {key!r} must be a {expected}"
        if "enum" in rule and value not in rule["enum"]:
            choices = ", ".join(repr(choice) for choice in rule["enum"])
            return f"argument {key!r} must be one of {choices}"
    return None


@dataclass(slots=True)
class ToolRegistry:
    """Tools by name: register, describe, run."""

    _tools: dict[str, Tool] = field(default_factory=dict)

    def register(self, tool: Tool) -> None:
        """Add a tool.

        Raises:
            ValueError: If a tool with that name is already registered.
        """
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> list[dict[str, Any]]:
        """OpenAI-style specs of every tool, for models that call functions."""
        return [tool.spec() for tool in self._tools.values()]

    def run(self, name: str, args: Mapping[str, Any] | None = None) -> ToolOutcome:
        """Run a tool and report what happened, without raising.

        Args:
            name: The tool's name.
            args: Its arguments (checked against the tool's schema first).

        Returns:
            ``ToolOutcome(result=...)``, or ``ToolOutcome(error=...)`` saying in
            one sentence what went wrong (unknown tool, bad arguments, or the
            tool's own failure).
        """
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            return ToolOutcome(error=f"There is no tool named {name!r} (known: {known}).")
        arguments = dict(args or {})
        problem = check_arguments(tool.parameters, arguments)
        if problem is not None:
            return ToolOutcome(error=f"The {name} tool got bad arguments: {problem}.")
        try:
            return ToolOutcome(result=str(tool.function(**arguments)))
        except (CalculatorError, VoicetermError, ValueError, TypeError, ArithmeticError) as error:
            return ToolOutcome(error=f"The {name} tool failed: {error}.")


def calculator_tool() -> Tool:
    """The calculator: a safe arithmetic evaluator (never ``eval``)."""

    def calculate(expression: str) -> str:
        return format_number(evaluate(expression))

    return Tool(
        name="calculator",
        description="Compute an arithmetic expression, e.g. '12*7' or 'sqrt(144)/3'.",
        parameters={
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "Arithmetic with + - * / // % ** ( ), sqrt, round, abs, pi.",
                }
            },
            "required": ["expression"],
        },
        function=calculate,
    )


def clock_tool(clock: Clock | None = None) -> Tool:
    """The clock: the current time, date or weekday in words."""
    source = clock or Clock()

    def tell(query: ClockQuery = "time") -> str:
        return source.answer(query)

    return Tool(
        name="clock",
        description="Tell the current local time, date or day of the week.",
        parameters={
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "enum": list(CLOCK_QUERIES),
                    "description": "What to tell: time, date, weekday or datetime.",
                }
            },
            "required": [],
        },
        function=tell,
    )


def default_registry(clock: Clock | None = None, extra: Iterable[Tool] = ()) -> ToolRegistry:
    """The offline tools voiceterm ships: ``calculator`` and ``clock``."""
    registry = ToolRegistry()
    for tool in (calculator_tool(), clock_tool(clock), *extra):
        registry.register(tool)
    return registry
