"""A JSON or YAML document as Veltrix keys: paths inside one document (an AppConfig
profile, a formatted Parameter Manager parameter).

``payments/timeout_ms`` <-> ``{"payments": {"timeout_ms": 500}}``. A leaf is text, a
JSON scalar, or ``{"$binary": "<base64>"}`` for bytes that are not UTF-8; a node that
is both a key and the parent of others keeps its own value under the member ``""``.
Members whose names are not key segments are left alone (not listed, never removed).
Pure functions, no I/O: the AppConfig and Parameter Manager adapters read and write
whole documents through them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

import yaml

from veltrix.backend import AbsentType
from veltrix.errors import DecodeError, VeltrixError
from veltrix.keys import SEPARATOR, validate_key
from veltrix.values import check_expected_version

_BINARY = "$binary"
SELF = ""  # member holding a node's own value when it also has children
_YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml")

#: ``(key, value or None to delete, if_version)`` per write of a batch.
Batch = list[tuple[str, bytes | None, str | AbsentType | None]]


def version_of(value: bytes) -> str:
    """A key's version: a digest of its value (same in every process)."""
    return hashlib.sha256(value).hexdigest()[:20]


def leaf_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {_BINARY} and isinstance(value[_BINARY], str):
        try:
            return base64.b64decode(value[_BINARY], validate=True)
        except ValueError as exc:
            raise DecodeError("malformed $binary value in the AppConfig document") from exc
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def leaf_value(value: bytes) -> Any:
    """How a value is written into the document: text, a JSON scalar, or ``$binary``."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return {_BINARY: base64.b64encode(value).decode("ascii")}
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if (
        (isinstance(parsed, bool | int | float) or parsed is None)
        and json.dumps(parsed) == text
        and (not isinstance(parsed, float) or math.isfinite(parsed))
    ):
        return parsed
    return text


def _is_segment(name: object) -> bool:
    return isinstance(name, str) and name != "" and _segment_ok(name)


def _segment_ok(name: str) -> bool:
    try:
        validate_key(name)
    except VeltrixError:
        return False
    return SEPARATOR not in name


def flatten(document: Any) -> dict[str, bytes]:
    """Every key of a document with its value (members that are not key segments are skipped)."""
    result: dict[str, bytes] = {}

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict) and set(node) != {_BINARY}:
            for name, child in node.items():
                if name == SELF and path:
                    result[SEPARATOR.join(path)] = leaf_bytes(child)
                elif _is_segment(name):
                    walk(child, [*path, name])
        elif path:
            result[SEPARATOR.join(path)] = leaf_bytes(node)

    walk(document, [])
    return result


def lookup(document: Any, key: str) -> bytes | None:
    node = document
    for segment in key.split(SEPARATOR):
        if not isinstance(node, dict) or set(node) == {_BINARY} or segment not in node:
            return None
        node = node[segment]
    if isinstance(node, dict) and set(node) != {_BINARY}:
        return leaf_bytes(node[SELF]) if SELF in node else None
    return leaf_bytes(node)


def _is_node(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {_BINARY}


def set_path(document: dict[str, Any], key: str, value: Any) -> None:
    node = document
    for segment in key.split(SEPARATOR)[:-1]:
        child: Any = node.get(segment)
        if not _is_node(child):
            child = {} if segment not in node else {SELF: child}
            node[segment] = child
        node = child
    last = key.rsplit(SEPARATOR, 1)[-1]
    if _is_node(node.get(last)):
        node[last][SELF] = value
    else:
        node[last] = value


def remove(document: dict[str, Any], key: str) -> bool:
    segments = key.split(SEPARATOR)
    trail: list[dict[str, Any]] = [document]
    node: Any = document
    for segment in segments[:-1]:
        node = node.get(segment) if _is_node(node) else None
        if not _is_node(node):
            return False
        trail.append(node)
    parent, last = trail[-1], segments[-1]
    if last not in parent:
        return False
    target = parent[last]
    if _is_node(target):
        if SELF not in target:
            return False
        del target[SELF]
        if len(target) == 0:
            del parent[last]
    else:
        del parent[last]
    # prune emptied nodes and unwrap nodes left with only their own value
    for depth in range(len(trail) - 1, 0, -1):
        holder, name = trail[depth - 1], segments[depth - 1]
        child: Any = holder.get(name)
        if _is_node(child) and not child:
            del holder[name]
        elif _is_node(child) and set(child) == {SELF}:
            holder[name] = child[SELF]
    return True


def apply_batch(document: dict[str, Any], batch: Batch) -> bool:
    """Check every key's compare-and-set against ``document`` first, then apply the
    batch of ``(key, value or None to delete, if_version)``; True when something was
    set or removed."""
    for key, _, if_version in batch:
        now = lookup(document, key)
        check_expected_version(key, None if now is None else version_of(now), if_version)
    changed = False
    for key, value, _ in batch:
        if value is None:
            changed = remove(document, key) or changed
        else:
            set_path(document, key, leaf_value(value))
            changed = True
    return changed


def parse_document(content: bytes, content_type: str | None) -> Any:
    if not content.strip():
        return {}
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        if kind in _YAML_TYPES:
            return yaml.safe_load(content)
        try:
            return json.loads(content)
        except ValueError:
            if kind == "application/json":
                raise
            return yaml.safe_load(content)
    except (ValueError, yaml.YAMLError, RecursionError):
        pass  # raised below, unchained: a YAML error quotes the document around the problem
    raise DecodeError(f"the AppConfig document is neither JSON nor YAML ({kind})")


def dump_document(document: Any, content_type: str) -> bytes:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in _YAML_TYPES:
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode("utf-8")
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


__all__ = [
    "SELF",
    "Batch",
    "apply_batch",
    "dump_document",
    "flatten",
    "leaf_bytes",
    "leaf_value",
    "lookup",
    "parse_document",
    "remove",
    "set_path",
    "version_of",
]
