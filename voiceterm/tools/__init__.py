"""Offline tools the assistant can use: a safe calculator and a clock.

Pure Python: nothing under ``voiceterm.tools`` imports a model or audio library.
``registry`` describes and runs tools; ``intent`` decides how a model reaches
them (a rule-based intent step for the tiny embedded model, the model's own
function calls for larger ones).
"""

from voiceterm.engines.llm.protocol import ToolRequest
from voiceterm.tools.calculator import CalculatorError, evaluate, parse_spoken_math
from voiceterm.tools.clock import Clock
from voiceterm.tools.intent import (
    ToolCallStreamFilter,
    choose_strategy,
    detect_intent,
    parse_tool_calls,
    spoken_answer,
)
from voiceterm.tools.registry import Tool, ToolOutcome, ToolRegistry, default_registry

__all__ = [
    "CalculatorError",
    "Clock",
    "Tool",
    "ToolCallStreamFilter",
    "ToolOutcome",
    "ToolRegistry",
    "ToolRequest",
    "choose_strategy",
    "default_registry",
    "detect_intent",
    "evaluate",
    "parse_spoken_math",
    "parse_tool_calls",
    "spoken_answer",
]
