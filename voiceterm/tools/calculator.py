"""A safe arithmetic evaluator, and a reader for arithmetic said out loud.

The evaluator parses with :mod:`ast` and walks only the nodes arithmetic needs
(numbers, ``+ - * / // % **``, unary signs, a few named functions and
constants). Anything else -- names, attributes, subscripts, calls of other
things, strings, lambdas -- is refused before any of it runs. ``eval`` and
``exec`` are never used. Sizes are bounded so that a request like
``9**9**9`` fails at once instead of eating the machine.

:func:`parse_spoken_math` turns a transcript such as "what is twelve times
seven" into ``"12*7"``; it returns ``None`` when the words are not arithmetic,
which is what lets the intent step use it as a detector.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from voiceterm.tools.numbers import NUMBER_WORDS, ONES, words_to_number

MAX_EXPRESSION_CHARS = 200
MAX_NODES = 100
MAX_EXPONENT = 1000
MAX_INT_BITS = 4096  # about 1,200 decimal digits: more is not an answer anyone can hear

Number = int | float


class CalculatorError(ValueError):
    """The expression is not arithmetic we accept, or its value cannot be computed."""


_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _round(value: Number, digits: Number = 0) -> Number:
    if not isinstance(digits, int):
        raise CalculatorError("round takes a whole number of digits")
    return round(value, digits) if digits else round(value)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _check_size(value: Number) -> Number:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("the result is too large")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponents above {MAX_EXPONENT} are not allowed")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        # Check the size before computing: 10**1000 has 3,322 bits, fine; 999999**1000 not.
        if max(base.bit_length() - 1, 0) * exponent > MAX_INT_BITS:
            raise CalculatorError("the result is too large")
    try:
        result = base**exponent
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    if isinstance(result, complex):
        raise CalculatorError("the result is not a real number")
    return result


class _Evaluator:
    """Walks a parsed expression, allowing only arithmetic."""

    def visit(self, node: ast.AST) -> Number:
        if isinstance(node, ast.Expression):
            return self.visit(node.body)
        if isinstance(node, ast.Constant):
            # bool is an int subclass: True + True is not arithmetic anyone said.
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise CalculatorError("only numbers are allowed")
            return _check_size(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.visit(node.left), self.visit(node.right)
            if isinstance(node.op, ast.Pow):
                return _check_size(_power(left, right))
            try:
                return _check_size(_BINARY[type(node.op)](left, right))
            except ZeroDivisionError:
                raise CalculatorError("division by zero") from None
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self.visit(node.operand))
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise CalculatorError(f"unknown name {node.id!r}")
        if isinstance(node, ast.Call):
            return self._call(node)
        raise CalculatorError(f"{type(node).__name__} is not allowed in arithmetic")

    def _call(self, node: ast.Call) -> Number:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise CalculatorError("only sqrt, abs, round, floor, ceil, log and trig are allowed")
        if node.keywords or not 1 <= len(node.args) <= 2:
            raise CalculatorError(f"{node.func.id} takes one or two plain arguments")
        args = [self.visit(arg) for arg in node.args]
        try:
            return _check_size(FUNCTIONS[node.func.id](*args))
        except (ValueError, TypeError, OverflowError) as error:
            if isinstance(error, CalculatorError):
                raise
            raise CalculatorError(f"{node.func.id} cannot take {args}") from None


def evaluate(expression: str) -> Number:
    """Compute an arithmetic expression safely.

    Args:
        expression: Python-style arithmetic, e.g. ``"(2 + 3) * sqrt(16) / 2"``;
            ``^`` is read as a power and ``×``/``÷`` as multiply/divide.

    Returns:
        The value, an ``int`` when the arithmetic stayed whole.

    Raises:
        CalculatorError: For anything that is not plain arithmetic, too long or
            too large, or that cannot be computed (division by zero).
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"expressions longer than {MAX_EXPRESSION_CHARS} characters")
    text = expression.replace("^", "**").replace("×", "*").replace("÷", "/").strip()
    if not text:
        raise CalculatorError("the expression is empty")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        raise CalculatorError(f"{expression!r} is not an arithmetic expression") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculatorError("the expression is too complicated")
    try:
        return _Evaluator().visit(tree)
    except OverflowError:
        raise CalculatorError("the result is too large") from None
    except RecursionError:
        raise CalculatorError("the expression is too deeply nested") from None


def format_number(value: Number) -> str:
    """Write a result the way it should be read out: whole numbers without
    ``.0``, others with at most 6 significant digits (``1/3`` -> ``"0.333333"``)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        text = f"{value:.6g}"
        return text if "e" not in text else f"{value:.6e}"
    return str(value)


# --- spoken arithmetic ------------------------------------------------------

# Phrases, longest first, each mapped to the expression text it stands for.
# "percent of" binds like a multiplication: "15 percent of 80" -> 15/100*80.
_PHRASES: tuple[tuple[str, str], ...] = (
    ("to the power of", "**"),
    ("raised to the power of", "**"),
    ("raised to the", "**"),
    ("raised to", "**"),
    ("to the power", "**"),
    ("multiplied by", "*"),
    ("divided by", "/"),
    ("divided into", "/"),
    ("percent of", "/100*"),
    ("per cent of", "/100*"),
    ("square root of", "sqrt"),
    ("the square root of", "sqrt"),
    ("cube root of", "cbrt"),
    ("the cube root of", "cbrt"),
    ("take away", "-"),
    ("plus", "+"),
    ("add", "+"),
    ("minus", "-"),
    ("less", "-"),
    ("times", "*"),
    ("x", "*"),
    ("over", "/"),
    ("mod", "%"),
    ("modulo", "%"),
    ("squared", "**2"),
    ("cubed", "**3"),
    ("percent", "/100"),
    ("per cent", "/100"),
    ("negative", "neg"),
)
_PHRASE_WORDS: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    sorted(((tuple(p.split()), s) for p, s in _PHRASES), key=lambda item: -len(item[0]))
)

# Words around a question that carry no arithmetic.
_FILLER = frozenset(
    """what whats what's is it the of calculate compute equals equal equal's how much many
    please tell me can you could would work out solve answer result hey okay ok so um uh er
    give do does make makes get i if quick question find value let's lets now then well""".split()
)
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+|[a-z]+(?:'[a-z]+)?|[-+*/^()%×÷]")
_SYMBOLS = {"^": "**", "×": "*", "÷": "/"}


@dataclass(frozen=True, slots=True)
class _Num:
    text: str


def _read_numbers(words: list[str]) -> list[str | _Num] | None:
    """Fold runs of number words (and "point" decimals) into numbers."""
    out: list[str | _Num] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word[0].isdigit() or word[0] == "." or word in CONSTANTS:
            out.append(_Num(word.replace(",", "")))
            i += 1
        elif word in NUMBER_WORDS and not (word == "a" and _next_is_not_multiplier(words, i)):
            j = i
            while j < len(words) and (
                words[j] in NUMBER_WORDS
                or (words[j] == "and" and j + 1 < len(words) and words[j + 1] in NUMBER_WORDS)
            ):
                j += 1
            value = _longest_number(words[i:j])
            if value is None:
                return None
            number, used = value
            text = str(number)
            i += used
            if i + 1 < len(words) and words[i] == "point" and words[i + 1] in ONES[:10]:
                digits = []
                i += 1
                while i < len(words) and words[i] in ONES[:10]:
                    digits.append(str(ONES.index(words[i])))
                    i += 1
                text += "." + "".join(digits)
            out.append(_Num(text))
        elif word == "point" and i + 1 < len(words) and words[i + 1] in ONES[:10]:
            text = "0."
            i += 1
            while i < len(words) and words[i] in ONES[:10]:
                text += str(ONES.index(words[i]))
                i += 1
            out.append(_Num(text))
        else:
            out.append(word)
            i += 1
    return out


def _next_is_not_multiplier(words: list[str], i: int) -> bool:
    return not (i + 1 < len(words) and words[i + 1] in ("hundred", "thousand", "million"))


def _longest_number(words: list[str]) -> tuple[int, int] | None:
    """The longest prefix of ``words`` that reads as one number, and its length.

    "twelve seven" is two numbers said in a row, not one: take "twelve" and let
    the caller decide what the rest is.
    """
    for end in range(len(words), 0, -1):
        if words[end - 1] == "and":
            continue
        value = words_to_number(words[:end])
        if value is not None:
            return value, end
    return None


def parse_spoken_math(text: str) -> str | None:
    """Turn arithmetic said in words into an expression :func:`evaluate` accepts.

    Handles digits or number words up to the millions ("twelve", "1,250",
    "three point five"), plus/minus/times/multiplied by/divided by/over,
    squared/cubed/to the power of, "X percent of Y", "square root of X",
    and the verb forms "add A and B", "subtract A from B", "multiply A by B",
    "divide A by B".

    Args:
        text: A transcript such as ``"What is twelve times seven?"``.

    Returns:
        An expression such as ``"12*7"``, or ``None`` when the text is not
        arithmetic (no operator, or words that are neither numbers, operators
        nor filler).
    """
    lowered = text.lower().replace("what's", "what is").replace("%", " percent ")
    lowered = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", lowered)  # "twenty-five"
    words = _TOKEN.findall(lowered)
    verb_form = _verb_form(words)
    if verb_form is not None:
        words = verb_form
    items = _read_numbers(words)
    if items is None:
        return None
    pieces: list[str] = []
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, _Num):
            pieces.append(item.text)
            i += 1
            continue
        matched = _match_phrase(items, i)
        if matched is not None:
            symbol, length = matched
            pieces.append(symbol)
            i += length
        elif item in _SYMBOLS:
            pieces.append(_SYMBOLS[item])
            i += 1
        elif item in "+-*/()" or item == "**":
            pieces.append(item)
            i += 1
        elif item in _FILLER or item in ("a", "an", "and", "by", "from", "to"):
            i += 1
        else:
            return None
    return _assemble(pieces)


def _match_phrase(items: list[str | _Num], start: int) -> tuple[str, int] | None:
    for phrase, symbol in _PHRASE_WORDS:
        end = start + len(phrase)
        if end <= len(items) and all(
            isinstance(items[start + k], str) and items[start + k] == word
            for k, word in enumerate(phrase)
        ):
            return symbol, len(phrase)
    return None


def _verb_form(words: list[str]) -> list[str] | None:
    """Rewrite "add 3 and 4" / "subtract 3 from 10" / "multiply 6 by 7" /
    "divide 10 by 4" / "the sum of 3 and 4" into infix words."""
    patterns: tuple[tuple[tuple[str, ...], str, str, bool], ...] = (
        (("add",), "and", "plus", False),
        (("add",), "to", "plus", False),
        (("subtract",), "from", "minus", True),
        (("take",), "from", "minus", True),
        (("multiply",), "by", "times", False),
        (("multiply",), "and", "times", False),
        (("divide",), "by", "over", False),
        (("sum", "of"), "and", "plus", False),
        (("product", "of"), "and", "times", False),
        (("difference", "between"), "and", "minus", False),
    )
    for head, separator, operator_word, swap in patterns:
        for start in range(len(words) - len(head)):
            if tuple(words[start : start + len(head)]) != head:
                continue
            rest = words[start + len(head) :]
            if separator not in rest:
                continue
            cut = len(rest) - 1 - rest[::-1].index(separator)
            left, right = rest[:cut], rest[cut + 1 :]
            if not left or not right or separator == "and" and _and_inside_number(rest, cut):
                continue
            if swap:
                left, right = right, left
            return [*words[:start], *left, operator_word, *right]
    return None


def _and_inside_number(words: list[str], index: int) -> bool:
    """True when the "and" at ``index`` belongs to a number ("one hundred and five")."""
    return index > 0 and words[index - 1] in ("hundred", "thousand", "million")


def _is_operand(piece: str) -> bool:
    return piece[0].isdigit() or piece[0] == "." or piece in CONSTANTS


def _assemble(pieces: list[str]) -> str | None:
    """Join pieces, turning function and sign markers into calls; None if no operator."""
    out: list[str] = []
    pending_calls: list[str] = []
    has_operator = has_number = False
    previous_was_operand = False
    for piece in pieces:
        if piece in ("sqrt", "cbrt"):
            pending_calls.append(piece)
            has_operator = True
            continue
        if piece == "neg":
            out.append("-")
            continue
        is_operand = _is_operand(piece)
        if (is_operand or piece == "(") and previous_was_operand:
            return None  # "three four": two numbers in a row are not arithmetic
        previous_was_operand = is_operand or piece == ")" or piece in ("**2", "**3", "/100")
        has_number = has_number or is_operand
        if is_operand and pending_calls:
            for call in reversed(pending_calls):
                piece = f"sqrt({piece})" if call == "sqrt" else f"({piece})**(1/3)"
            pending_calls.clear()
        elif not is_operand and piece not in "()":
            has_operator = True
        out.append(piece)
    if pending_calls or not has_operator or not has_number:
        return None
    expression = "".join(out)
    try:
        evaluate(expression)
    except CalculatorError as error:
        # Well-formed but uncomputable ("ten divided by zero") is still arithmetic:
        # return it so the tool can say why. Malformed word salad is not.
        if "not an arithmetic expression" in str(error) or "is not allowed" in str(error):
            return None
    return expression
