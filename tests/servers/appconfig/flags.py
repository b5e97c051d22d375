"""``AWS.AppConfig.FeatureFlags`` documents: validation and the data-plane view.

A feature-flag profile stores a *definition* document::

    {"version": "1",
     "flags": {"ui_refresh": {"name": "UI refresh",
                              "attributes": {"color": {"constraints": {"type": "string"}}}}},
     "values": {"ui_refresh": {"enabled": true, "color": "blue"}}}

while AppConfigData serves the *evaluated* view, one object per flag::

    {"ui_refresh": {"enabled": true, "color": "blue"}}

The checks follow the published ``AWS.AppConfig.FeatureFlags`` type reference
(flag and attribute names ``^[a-z][a-zA-Z\\d_-]{0,63}$``, ``version`` "1", no
unknown members, attribute values within their constraints). Each problem is
reported the way CreateHostedConfigurationVersion reports it: an item of
``Details.InvalidConfiguration`` with Location, Reason, Type, Constraint and Value.
"""

from __future__ import annotations

import json
import re
from typing import Any

NAME_RE = re.compile(r"^[a-z][a-zA-Z\d_-]{0,63}$")
_FLAG_MEMBERS = {"name", "description", "_createdAt", "_updatedAt", "_deprecation", "attributes"}
_TYPES = {"string", "number", "boolean", "string[]", "number[]", "array"}


class Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, location: str, reason: str, constraint: str = "", value: Any = None) -> None:
        item = {"Location": location, "Reason": reason, "Type": "Validation"}
        if constraint:
            item["Constraint"] = constraint
        if value is not None:
            item["Value"] = value if isinstance(value, str) else json.dumps(value)[:200]
        self.items.append(item)


def _check_value(problems: Problems, where: str, value: Any, constraints: dict[str, Any]) -> None:
    kind = constraints.get("type")
    ok = {
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "string[]": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "number[]": isinstance(value, list)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value),
        "array": isinstance(value, list),
    }.get(str(kind), True)
    if not ok:
        problems.add(where, f"value must be of type {kind}", "type", value)
        return
    if isinstance(value, str):
        pattern = constraints.get("pattern")
        if isinstance(pattern, str):
            try:
                matched = re.search(pattern, value) is not None
            except re.error:
                problems.add(where, f"the attribute's pattern {pattern} is not valid", "pattern")
                return
            if not matched:
                problems.add(where, f"value does not match pattern {pattern}", "pattern", value)
        enum = constraints.get("enum")
        if isinstance(enum, list) and value not in enum:
            problems.add(where, "value is not one of the allowed values", "enum", value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = constraints.get("minimum"), constraints.get("maximum")
        if isinstance(low, int | float) and value < low:
            problems.add(where, f"value is below the minimum {low}", "minimum", value)
        if isinstance(high, int | float) and value > high:
            problems.add(where, f"value is above the maximum {high}", "maximum", value)


def _check_variants(problems: Problems, where: str, variants: Any) -> None:
    """A multi-variant flag's variants, as the multi-variant concepts page states them:
    an ordered list, each variant with a rule except the default, which must be last
    and has none (AWS answers BadRequestException otherwise). The member names
    ``name`` and ``rule`` are our reading; the rule's syntax is not checked here."""
    if not isinstance(variants, list) or not variants:
        problems.add(where, "variants must be a non-empty array", "type")
        return
    names: set[str] = set()
    for index, variant in enumerate(variants):
        vwhere = f"{where}[{index}]"
        if not isinstance(variant, dict):
            problems.add(vwhere, "a variant must be an object", "type")
            continue
        name = variant.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            problems.add(f"{vwhere}.name", "name must be 1-64 characters", "maxLength")
        elif name in names:
            problems.add(f"{vwhere}.name", "variant names must be unique", "uniqueItems", name)
        else:
            names.add(name)
        last = index == len(variants) - 1
        rule = variant.get("rule")
        if last and rule is not None:
            problems.add(
                f"{vwhere}.rule", "the default variant must be last, without a rule", "rule"
            )
        if not last and not (isinstance(rule, str) and rule):
            problems.add(f"{vwhere}.rule", "a variant other than the default needs a rule", "rule")


def validate(document: bytes) -> list[dict[str, str]]:
    """The problems in a feature-flag definition document (empty when valid)."""
    problems = Problems()
    try:
        data = json.loads(document)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.add("$", f"content is not valid JSON: {exc}")
        return problems.items
    if not isinstance(data, dict):
        problems.add("$", "document must be a JSON object", "type")
        return problems.items
    for member in data:
        if member not in ("version", "flags", "values"):
            problems.add(f"$.{member}", "unknown member", "additionalProperties")
    if data.get("version") != "1":
        problems.add(
            "$.version", 'version is required and must be "1"', "enum", data.get("version")
        )
    flags = data.get("flags", {})
    values = data.get("values", {})
    if not isinstance(flags, dict):
        problems.add("$.flags", "flags must be an object", "type")
        flags = {}
    if not isinstance(values, dict):
        problems.add("$.values", "values must be an object", "type")
        values = {}
    for name, definition in flags.items():
        where = f"$.flags.{name}"
        if not NAME_RE.match(name):
            problems.add(where, "invalid flag key", "pattern", name)
        if not isinstance(definition, dict):
            problems.add(where, "flag definition must be an object", "type")
            continue
        for member in definition:
            if member not in _FLAG_MEMBERS:
                problems.add(f"{where}.{member}", "unknown member", "additionalProperties")
        label = definition.get("name")
        if label is not None and (not isinstance(label, str) or not 1 <= len(label) <= 64):
            problems.add(f"{where}.name", "name must be 1-64 characters", "maxLength", label)
        attributes = definition.get("attributes", {})
        if not isinstance(attributes, dict):
            problems.add(f"{where}.attributes", "attributes must be an object", "type")
            continue
        if len(attributes) > 25:
            problems.add(f"{where}.attributes", "at most 25 attributes", "maxProperties")
        for attr, spec in attributes.items():
            awhere = f"{where}.attributes.{attr}"
            if not NAME_RE.match(attr) or attr == "enabled":
                problems.add(awhere, "invalid attribute key", "pattern", attr)
            constraints = spec.get("constraints", {}) if isinstance(spec, dict) else None
            if not isinstance(constraints, dict):
                problems.add(awhere, "attribute definition must be an object", "type")
            elif constraints.get("type") not in _TYPES:
                problems.add(
                    f"{awhere}.constraints.type",
                    "unknown attribute type",
                    "enum",
                    constraints.get("type"),
                )
    for name, value in values.items():
        where = f"$.values.{name}"
        if name not in flags:
            problems.add(where, "value given for a flag that is not defined", "flagDefined", name)
            continue
        if not isinstance(value, dict):
            problems.add(where, "flag value must be an object", "type")
            continue
        # The current schema lists ``enabled`` among the value's properties but not as
        # required (older revisions required it): absent means disabled.
        if "enabled" in value and not isinstance(value["enabled"], bool):
            problems.add(f"{where}.enabled", "enabled must be a boolean", "type", value["enabled"])
        definition = flags[name] if isinstance(flags[name], dict) else {}
        attributes = definition.get("attributes", {})
        attributes = attributes if isinstance(attributes, dict) else {}
        if "_variants" in value:
            _check_variants(problems, f"{where}._variants", value["_variants"])
        for attr, attr_value in value.items():
            if attr in ("enabled", "_createdAt", "_updatedAt", "_variants"):
                continue
            spec = attributes.get(attr)
            if not isinstance(spec, dict):
                problems.add(
                    f"{where}.{attr}",
                    "value given for an undefined attribute",
                    "additionalProperties",
                    attr,
                )
                continue
            constraints = spec.get("constraints", {})
            if isinstance(constraints, dict):  # a malformed definition is reported above
                _check_value(problems, f"{where}.{attr}", attr_value, constraints)
        for attr, spec in attributes.items():
            constraints = spec.get("constraints", {}) if isinstance(spec, dict) else {}
            if isinstance(constraints, dict) and constraints.get("required") and attr not in value:
                problems.add(f"{where}.{attr}", "required attribute has no value", "required")
    return problems.items


def evaluate(document: bytes) -> bytes:
    """The data-plane view of a (valid) definition document.

    The type reference describes it: each flag maps to ``{"enabled": bool}`` (its
    output schema requires ``enabled``), and "if a flag sets enabled to true, any
    attributes of the flag will be present as well": a disabled flag, or one whose
    value leaves ``enabled`` out, is served as ``{"enabled": false}`` alone.
    """
    data = json.loads(document)
    flags = data.get("flags", {})
    values = data.get("values", {})
    view: dict[str, dict[str, Any]] = {}
    for name in flags:
        value = values.get(name, {})
        enabled = value.get("enabled") is True
        flag: dict[str, Any] = {"enabled": enabled}
        if enabled:
            for attr, attr_value in value.items():
                if attr not in ("enabled", "_createdAt", "_updatedAt", "_variants"):
                    flag[attr] = attr_value
        view[name] = flag
    return json.dumps(view, separators=(",", ":")).encode()
