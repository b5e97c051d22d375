"""Multi-variant flags as stored under ``flags/<name>/_variants``: parse, then select.

The key holds a JSON list of variants, evaluated in order; each is an object with

- ``name``: the variant's name (reported as the OpenFeature ``variant``);
- ``rule``: a rule in the AppConfig variant-rule language (:mod:`veltrix.flag_rules`),
  on every variant but the last;
- the last variant is the *default*: it has no ``rule`` and is returned when no
  other variant's rule matches the context;
- the variant's values: ``enabled`` (a boolean flag's value; ``false`` disables the
  flag for the other types), ``value`` (a string, number or object flag's value)
  and any other attributes (an object flag without ``value`` resolves to them all).

This mirrors AppConfig's multi-variant flags (ordered variants, a rule each, a
default variant last without a rule); the JSON layout itself is Veltrix's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from veltrix.errors import RuleError
from veltrix.flag_rules import Rule, parse

#: The key segment under a flag that holds its variants.
VARIANTS = "_variants"
#: Most variants one flag may hold (bounds the work of one evaluation).
MAX_VARIANTS = 64
#: The context key the OpenFeature targeting key is exposed under (``$targetingKey``).
TARGETING_KEY = "targetingKey"


@dataclass(frozen=True)
class Variant:
    name: str
    rule: Rule | None
    values: Mapping[str, Any] = field(default_factory=dict)


def parse_variants(stored: Any) -> tuple[Variant, ...]:
    """The variants of one flag, checked completely (a :class:`RuleError` otherwise)."""
    if isinstance(stored, bytes):
        stored = stored.decode("utf-8", errors="replace")
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            # from None: the JSON error keeps the whole text (``doc``) on itself
            raise RuleError("_variants is not JSON") from None
    if not isinstance(stored, list) or not stored:
        raise RuleError("_variants must be a non-empty JSON list")
    if len(stored) > MAX_VARIANTS:
        raise RuleError(f"at most {MAX_VARIANTS} variants")
    variants: list[Variant] = []
    seen: set[str] = set()
    for index, item in enumerate(stored):
        last = index == len(stored) - 1
        if not isinstance(item, dict):
            raise RuleError(f"variant {index} is not an object")
        name = item.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise RuleError(f"variant {index}: name must be 1-64 characters")
        if name in seen:
            raise RuleError(f"variant {index}: the name is used twice")
        seen.add(name)
        text = item.get("rule")
        if last and text is not None:
            raise RuleError("the last variant is the default and has no rule")
        if not last and not isinstance(text, str):
            raise RuleError(f"variant {index}: a rule is required (only the last has none)")
        try:
            rule = parse(text) if isinstance(text, str) else None
        except RuleError as exc:
            raise RuleError(f"variant {index}: {exc}") from None
        values = {key: value for key, value in item.items() if key not in ("name", "rule")}
        variants.append(Variant(name, rule, values))
    return tuple(variants)


def context_values(context: Any) -> dict[str, Any]:
    """An OpenFeature evaluation context as rule context: its attributes, and the
    targeting key as ``targetingKey``."""
    if context is None:
        return {}
    values = dict(getattr(context, "attributes", None) or {})
    targeting_key = getattr(context, "targeting_key", None)
    if targeting_key is not None:
        values[TARGETING_KEY] = targeting_key
    return values


def select_variant(variants: Sequence[Variant], context: Mapping[str, Any]) -> tuple[Variant, bool]:
    """The first variant whose rule matches, with True; else the default, with False."""
    for variant in variants:
        if variant.rule is not None and variant.rule.evaluate(context):
            return variant, True
    return variants[-1], False


class ParsedVariants:
    """Parsed variants per flag, reused while the stored text is unchanged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[str, tuple[Any, tuple[Variant, ...]]] = {}

    def get(self, flag: str, stored: Any) -> tuple[Variant, ...]:
        with self._lock:
            known = self._parsed.get(flag)
        if known is not None and known[0] == stored:
            return known[1]
        variants = parse_variants(stored)
        with self._lock:
            if len(self._parsed) >= 1024:
                self._parsed.clear()
            self._parsed[flag] = (stored, variants)
        return variants


__all__ = [
    "MAX_VARIANTS",
    "TARGETING_KEY",
    "VARIANTS",
    "ParsedVariants",
    "Variant",
    "context_values",
    "parse_variants",
    "select_variant",
]
