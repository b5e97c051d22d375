"""Variant rules of multi-variant feature flags: parse once, evaluate against a context.

The rule language is the one AWS AppConfig documents for multi-variant flags: a
rule is a parenthesised prefix expression ``(operator operand ...)`` that yields
true or false. Operands are double-quoted strings (``\\"`` and ``\\\\`` escapes),
64-bit integers, floats, ``true``/``false``, ``$key`` (the value of ``key`` in the
evaluation context), ``[...]`` lists of literals, nested expressions, and named
operands ``name::operand`` (``matches``, ``exists``, ``split``).

Evaluated here: ``eq gt gte lt lte and or not begins_with ends_with contains in
matches exists``. Not evaluated: ``split`` (AWS does not publish its hash, so a
local result would disagree with AppConfig's) raises :class:`RuleNotEvaluatedError`
when a rule reaches it; timestamp literals are not parsed (a :class:`RuleError`).

Semantics where the reference is silent (our reading): a comparison with a missing
context value, or between a number and a string, is false (never an error);
``eq`` between numbers compares numerically (``1`` equals ``1.0``); ``matches``
is a regular-expression *search* (Python ``re``) in a string; ``in`` also accepts
a context value that is a list; ``exists`` is true when the key is present and
not null.

Errors never quote the rule or a context value, only a position and what was
expected, since either may carry data a log must not show.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from veltrix.errors import RuleError, RuleNotEvaluatedError

#: Longest rule accepted (characters) and deepest nesting: bounds parse time and stack.
MAX_RULE_LENGTH = 4096
MAX_DEPTH = 32

_COMPARISONS = ("eq", "gt", "gte", "lt", "lte")
_STRING_TESTS = ("begins_with", "ends_with", "contains")
_OPERATORS = frozenset(
    (*_COMPARISONS, *_STRING_TESTS, "and", "or", "not", "in", "matches", "exists", "split")
)
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\Z")
_INTEGER = re.compile(r"-?(?:0|[1-9]\d*)\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class ContextRef:
    """``$key``: the context's value for ``key``."""

    key: str


@dataclass(frozen=True)
class Named:
    """``name::operand`` (only inside an expression, as one of its operands)."""

    name: str
    operand: Any


@dataclass(frozen=True)
class Rule:
    """One parsed expression: ``operator`` applied to ``operands``."""

    operator: str
    operands: tuple[Any, ...]

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        """Whether the rule matches ``context`` (keys without the ``$``)."""
        return _evaluate(self, context)


def parse(text: str) -> Rule:
    """The rule ``text`` parsed (checked completely, so evaluation only meets data)."""
    if not isinstance(text, str):
        raise RuleError("a rule must be text")
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"a rule is at most {MAX_RULE_LENGTH} characters")
    parser = _Parser(text)
    parser.skip_space()
    rule = parser.expression(0)
    parser.skip_space()
    if parser.pos != len(text):
        raise RuleError(f"unexpected text after the rule at position {parser.pos}")
    return rule


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> RuleError:
        return RuleError(f"{what} at position {self.pos}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expression(self, depth: int) -> Rule:
        if depth >= MAX_DEPTH:
            raise self.fail(f"rules nest at most {MAX_DEPTH} deep")
        if self.peek() != "(":
            raise self.fail("expected '('")
        self.pos += 1
        self.skip_space()
        operator = self.word()
        if operator not in _OPERATORS:
            raise self.fail("unknown operator")
        operands: list[Any] = []
        while True:
            self.skip_space()
            if self.peek() == ")":
                self.pos += 1
                break
            if self.peek() == "":
                raise self.fail("expected ')'")
            operands.append(self.operand(depth, named_ok=True))
        return _check(operator, tuple(operands))

    def word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] in "_.-+$:"
        ):
            if self.text.startswith("::", self.pos):
                break
            self.pos += 1
        return self.text[start : self.pos]

    def operand(self, depth: int, *, named_ok: bool) -> Any:
        char = self.peek()
        if char == "(":
            return self.expression(depth + 1)
        if char == '"':
            return self.string()
        if char == "[":
            return self.listing()
        start = self.pos
        token = self.word()
        if not token:
            raise self.fail("expected an operand")
        if named_ok and self.text.startswith("::", self.pos) and _NAME.match(token):
            self.pos += 2
            return Named(token, self.operand(depth, named_ok=False))
        if token.startswith("$"):
            if not _NAME.match(token[1:]):
                self.pos = start
                raise self.fail("invalid context key")
            return ContextRef(token[1:])
        if token in ("true", "false"):
            return token == "true"
        if _INTEGER.match(token):
            number = int(token)
            if not _INT64[0] <= number <= _INT64[1]:
                self.pos = start
                raise self.fail("integer out of 64-bit range")
            return number
        if _NUMBER.match(token):
            value = float(token)
            if value in (float("inf"), float("-inf")):
                self.pos = start
                raise self.fail("float out of range")
            return value
        self.pos = start
        raise self.fail("unsupported operand (timestamps are not parsed)")

    def string(self) -> str:
        self.pos += 1  # the opening quote
        out: list[str] = []
        while True:
            char = self.peek()
            if char == "":
                raise self.fail("unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\"):
                    raise self.fail("unsupported escape in a string")
                self.pos += 1
                out.append(escaped)
            else:
                out.append(char)

    def listing(self) -> tuple[Any, ...]:
        self.pos += 1  # the opening bracket
        items: list[Any] = []
        while True:
            self.skip_space()
            if self.peek() == "]":
                self.pos += 1
                return tuple(items)
            if self.peek() == "":
                raise self.fail("expected ']'")
            if self.peek() == ",":
                if not items:
                    raise self.fail("unexpected ','")
                self.pos += 1
                self.skip_space()
            item = self.operand(0, named_ok=False)
            if isinstance(item, Rule | ContextRef | tuple):
                raise self.fail("a list holds literals only")
            items.append(item)


def _check(operator: str, operands: tuple[Any, ...]) -> Rule:
    """The operator's arity and operand kinds, checked at parse time."""

    def fail(what: str) -> RuleError:
        return RuleError(f"{operator}: {what}")

    named = {item.name: item.operand for item in operands if isinstance(item, Named)}
    plain = [item for item in operands if not isinstance(item, Named)]
    if operator in ("matches", "exists", "split"):
        wanted = {"matches": {"in", "pattern"}, "exists": {"key"}, "split": {"by", "pct"}}[operator]
        allowed = wanted | ({"seed"} if operator == "split" else set())
        if plain or not wanted <= set(named) or not set(named) <= allowed:
            raise fail("expects the named operands " + ", ".join(sorted(wanted)))
        if len(named) != sum(isinstance(item, Named) for item in operands):
            raise fail("a named operand is repeated")
        if operator == "matches":
            pattern = named["pattern"]
            if not isinstance(pattern, str):
                raise fail("pattern:: must be a string")
            try:
                compiled = re.compile(pattern)
            except (re.error, RecursionError, OverflowError):
                # from None: re.error keeps the pattern on itself
                raise fail("pattern:: is not a valid regular expression") from None
            return Rule(operator, (named["in"], compiled))
        if operator == "exists":
            if not isinstance(named["key"], str):
                raise fail("key:: must be a string")
            return Rule(operator, (named["key"],))
        return Rule(operator, (named["by"], named["pct"], named.get("seed")))
    if named:
        raise fail("takes no named operands")
    if operator == "not":
        if len(plain) != 1 or not isinstance(plain[0], Rule):
            raise fail("expects one expression")
    elif operator in ("and", "or"):
        if len(plain) < 2 or not all(isinstance(item, Rule) for item in plain):
            raise fail("expects two or more expressions")
    elif operator == "in":
        if len(plain) != 2 or not isinstance(plain[1], tuple | ContextRef):
            raise fail("expects a value and a list")
    elif len(plain) != 2:
        raise fail("expects two operands")
    return Rule(operator, tuple(plain))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value(operand: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(operand, ContextRef):
        return context.get(operand.key)
    if isinstance(operand, Rule):
        return _evaluate(operand, context)
    return operand


def _compare(operator: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    numbers = _is_number(left) and _is_number(right)
    if not numbers and not (type(left) is type(right) and isinstance(left, str | bool)):
        return False  # a number against a string, a list, ...: no match, not an error
    if operator == "eq":
        return bool(left == right)
    if isinstance(left, bool):
        return False  # booleans are equal or not, never ordered
    tests: dict[str, Callable[[Any, Any], bool]] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return tests[operator](left, right)


def _evaluate(rule: Rule, context: Mapping[str, Any]) -> bool:
    operator, operands = rule.operator, rule.operands
    if operator == "and":
        return all(_evaluate(item, context) for item in operands)
    if operator == "or":
        return any(_evaluate(item, context) for item in operands)
    if operator == "not":
        return not _evaluate(operands[0], context)
    if operator == "exists":
        return context.get(operands[0]) is not None
    if operator == "split":
        raise RuleNotEvaluatedError(
            "split: percentage rollout is evaluated by AppConfig, not by Veltrix"
        )
    if operator == "matches":
        subject = _value(operands[0], context)
        return isinstance(subject, str) and operands[1].search(subject) is not None
    left, right = (_value(item, context) for item in operands)
    if operator in _COMPARISONS:
        return _compare(operator, left, right)
    if operator == "in":
        if not isinstance(right, Sequence) or isinstance(right, str | bytes) or left is None:
            return False
        return any(_compare("eq", left, item) for item in right)
    if not isinstance(left, str) or not isinstance(right, str):
        return False
    if operator == "begins_with":
        return left.startswith(right)
    if operator == "ends_with":
        return left.endswith(right)
    return right in left  # contains


__all__ = ["MAX_DEPTH", "MAX_RULE_LENGTH", "Rule", "RuleError", "RuleNotEvaluatedError", "parse"]
