"""The list-filter language of Secret Manager (a subset of Google's AIP-160 filters).

Supported: comparisons ``field:value`` (has: substring, or ``*`` for presence),
``field=value``, ``field!=value``; map fields as ``labels.key``; values bare or
double-quoted; ``AND`` (also implied by whitespace), ``OR`` (binds tighter than
AND, as in AIP-160), ``NOT`` / ``-`` and parentheses. Comparisons on fields the
resource does not have are errors, as on the real service.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Lookup = Callable[[Any, str], "str | dict[str, str] | None"]
Predicate = Callable[[Any], bool]

_TOKEN = re.compile(
    r'\s*(?:(?P<paren>[()])|(?P<op>!=|=|:)|"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<word>[^\s()=:!"]+))'
)


class FilterError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"unexpected character at position {pos}")
        pos = match.end()
        if match["paren"]:
            result.append(("paren", match["paren"]))
        elif match["op"]:
            result.append(("op", match["op"]))
        elif match["quoted"] is not None:
            result.append(("value", re.sub(r"\\(.)", r"\1", match["quoted"])))
        else:
            result.append(("word", match["word"]))
    return result


class _Parser:
    def __init__(
        self,
        tokens: list[tuple[str, str]],
        lookup: Lookup,
        fields: frozenset[str],
        maps: frozenset[str],
    ) -> None:
        self.tokens = tokens
        self.pos = 0
        self.lookup = lookup
        self.fields = fields
        self.maps = maps

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of filter")
        self.pos += 1
        return token

    def expression(self) -> Predicate:
        parts = [self.factor()]
        while True:
            token = self.peek()
            if token is None or token == ("paren", ")"):
                break
            if token == ("word", "AND"):
                self.take()
            parts.append(self.factor())
        return lambda item: all(part(item) for part in parts)

    def factor(self) -> Predicate:
        parts = [self.term()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.term())
        return lambda item: any(part(item) for part in parts)

    def term(self) -> Predicate:
        token = self.take()
        if token == ("word", "NOT"):
            inner = self.term()
            return lambda item: not inner(item)
        if token == ("paren", "("):
            inner = self.expression()
            if self.take() != ("paren", ")"):
                raise FilterError("missing ')'")
            return inner
        if token[0] == "word" and token[1].startswith("-") and len(token[1]) > 1:
            self.tokens.insert(self.pos, ("word", token[1][1:]))
            inner = self.term()
            return lambda item: not inner(item)
        if token[0] != "word":
            raise FilterError(f"expected a field name, got {token[1]!r}")
        field_name = token[1]
        op_token = self.take()
        if op_token[0] != "op":
            raise FilterError(f"expected ':', '=' or '!=' after {field_name!r}")
        value_token = self.take()
        if value_token[0] not in ("word", "value"):
            raise FilterError(f"expected a value after {field_name}{op_token[1]}")
        return self.comparison(field_name, op_token[1], value_token[1])

    def comparison(self, field_name: str, op: str, value: str) -> Predicate:
        head, _, sub = field_name.partition(".")
        lookup = self.lookup

        def current(item: Any) -> str | None:
            found = lookup(item, head)
            if isinstance(found, dict):
                return found.get(sub) if sub else None
            return found

        if (
            head not in self.fields
            or (sub and head not in self.maps)
            or (not sub and head in self.maps)
        ):
            raise FilterError(f"unknown field {field_name!r}")
        if op == ":":
            if value == "*":
                return lambda item: current(item) is not None
            return lambda item: value in (current(item) or "")
        if op == "=":
            return lambda item: current(item) == value
        return lambda item: current(item) != value


def compile_filter(
    text: str, lookup: Lookup, fields: frozenset[str], maps: frozenset[str] = frozenset()
) -> Predicate:
    """A predicate for ``text``; an empty filter matches everything.

    ``fields`` names the filterable fields, ``maps`` those of them that are maps
    (compared as ``field.key``).
    """
    if not text.strip():
        return lambda item: True
    parser = _Parser(_tokens(text), lookup, fields, maps)
    predicate = parser.expression()
    extra = parser.peek()
    if extra is not None:
        raise FilterError(f"unexpected {extra[1]!r}")
    return predicate


__all__ = ["FilterError", "compile_filter"]
