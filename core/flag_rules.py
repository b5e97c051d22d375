"""Variant rules of multi-variant feature flags: parse once, evaluate against a context.

The rule language is the one AWS AppConfig documents for multi-variant flags: a
rule is a parenthesised prefix expression ``(operator operand ...)`` that yields
true or false. Operands are double-quoted strings (``\\"`` and ``\\\\`` escapes),
64-bit integers, floats, timestamps (the W3C date and time forms, ``2024-01`` to
``2012-03-04T05:06:07.5-08:00``), ``true``/``false``, ``$key`` (the value of ``key``
in the evaluation context), ``[...]`` lists of literals, nested expressions, and
named operands ``name::operand`` (``matches``, ``exists``, ``split``).

Every operator is evaluated: ``eq gt gte lt lte and or not begins_with ends_with
contains in matches exists split``. ``split`` buckets by Veltrix's own hash (see
:func:`split_bucket`): AWS does not publish AppConfig's, so a user's bucket here is
stable across processes and releases but not the one the AppConfig Agent would give.

Semantics where the reference is silent (our reading): a comparison with a missing
context value, or between a number and a string, is false (never an error);
``eq`` between numbers compares numerically (``1`` equals ``1.0``); a timestamp
compares as an instant with another timestamp, a ``datetime`` (naive ones are UTC)
or a string in a W3C form, and a form without a time of day is its first instant in
UTC (``2024-01`` is 2024-01-01T00:00Z); a bare year is the integer, so write
``2024-01`` for the start of 2024; ``matches`` is a regular-expression *search*
(Python ``re``) in a string; ``in`` also accepts a context value that is a list;
``exists`` is true when the key is present and not null; ``split`` does not match a
missing context value, nor one that is not a string or an integer.

Errors never quote the rule or a context value, only a position and what was
expected, since either may carry data a log must not show.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from veltrix.errors import RuleError

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
#: The W3C date and time forms: YYYY[-MM[-DD[Thh:mm[:ss[.s]]TZD]]], TZD = Z | +hh:mm | -hh:mm.
_TIMESTAMP = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2}))?)?)?\Z",
    re.ASCII,
)


def parse_timestamp(text: str) -> datetime | None:
    """``text`` as an aware ``datetime`` when it is one of the W3C date and time forms
    (a form without a time of day is its first instant in UTC), else None."""
    found = _TIMESTAMP.match(text)
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    offset = UTC
    if zone not in (None, "Z"):
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        sign = -1 if zone[0] == "-" else 1
        offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=offset,
        )
    except ValueError:  # month 13, February 30, hour 24, ...
        return None


def split_bucket(value: str, seed: str = "") -> float:
    """Where ``value`` falls in ``[0, 100)`` for ``split``: the first 8 bytes of the
    SHA-256 of ``seed``, a NUL and ``value`` (UTF-8), as a fraction of 2**64, times 100.

    ``(split by::$k pct::P seed::S)`` matches when the bucket of the context's ``k`` is
    below ``P``. Rules with the same seed share buckets, so ``pct::20`` then
    ``pct::25`` in later variants gives the second 5% (as AppConfig documents), and two
    flags with the same seed pick the same users: give each flag its own seed to
    spread them independently. Integers hash as their decimal text.
    """
    digest = hashlib.sha256(f"{seed}\0{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


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
        timestamp = parse_timestamp(token)
        if timestamp is not None:
            return timestamp
        self.pos = start
        raise self.fail("unsupported operand")

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
        by, pct, seed = named["by"], named["pct"], named.get("seed", "")
        if not isinstance(by, ContextRef):
            raise fail("by:: must be a context value ($key)")
        if not _is_number(pct) or not 0 <= pct <= 100:
            raise fail("pct:: must be a number from 0 to 100")
        if not isinstance(seed, str):
            raise fail("seed:: must be a string")
        return Rule(operator, (by, pct, seed))
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


def _instant(value: Any) -> datetime | None:
    """A context value or literal as an aware datetime, if it is a time."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return parse_timestamp(value)
    return None


def _compare(operator: str, left: Any, right: Any) -> bool:
    if left is None or right is None:
        return False
    if isinstance(left, datetime) or isinstance(right, datetime):
        left, right = _instant(left), _instant(right)
        if left is None or right is None:
            return False
    numbers = _is_number(left) and _is_number(right)
    if not numbers and not (type(left) is type(right) and isinstance(left, str | bool | datetime)):
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
        subject = _value(operands[0], context)
        if isinstance(subject, bool) or not isinstance(subject, str | int):
            return False
        return bool(split_bucket(str(subject), operands[2]) < operands[1])
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


__all__ = [
    "MAX_DEPTH",
    "MAX_RULE_LENGTH",
    "Rule",
    "RuleError",
    "parse",
    "parse_timestamp",
    "split_bucket",
]
