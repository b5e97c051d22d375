"""Decoding stored bytes into Python values, and encoding values to store.

Values are bytes in every store. Reads decode them: ``text`` (UTF-8), ``json``,
``yaml``, ``bytes``, or any type pydantic can validate (``type=int``,
``type=list[str]``, a model...). Conversion failures raise
:class:`~veltrix.errors.DecodeError` with a one-line message that names the key
but never shows the value (it may be a secret).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from veltrix.backend import Entry
from veltrix.errors import DecodeError
from veltrix.keys import SEPARATOR, relative

CODECS = ("text", "json", "yaml", "bytes")


class JSON:
    """Conversion target meaning "parse as JSON, any shape" (``client.get_json``)."""


def decode_text(key: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"{key!r} is not UTF-8 text ({len(value)} bytes); read it with get_bytes()"
        ) from exc


def decode_json(key: str, value: bytes) -> Any:
    try:
        return json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"{key!r} is not valid JSON: {_reason(exc)}") from exc


def decode_yaml(key: str, value: bytes) -> Any:
    import yaml  # pyyaml is a core dependency, imported only when used

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise DecodeError(f"{key!r} is not valid YAML") from exc


def decode(key: str, value: bytes, codec: str) -> Any:
    if codec == "text":
        return decode_text(key, value)
    if codec == "json":
        return decode_json(key, value)
    if codec == "yaml":
        return decode_yaml(key, value)
    if codec == "bytes":
        return value
    raise DecodeError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        return f"{where}: {first.get('msg', 'invalid')}"
    return type(exc).__name__


@lru_cache(maxsize=256)
def _adapter(target: Any) -> TypeAdapter[Any]:
    return TypeAdapter(target)


def _type_name(target: Any) -> str:
    return getattr(target, "__name__", None) or repr(target)


def convert(key: str, value: bytes, target: Any) -> Any:
    """Convert a stored value to ``target`` (``str``, ``bytes``, ``int``, a model, ...).

    ``str`` and ``bytes`` are returned as stored; anything else is first read as
    JSON (so ``[1, 2]`` becomes a list and ``true`` a bool), then, if the value is
    not JSON, validated from its text (so ``yes`` becomes ``True`` for ``bool``).
    """
    if target is str:
        return decode_text(key, value)
    if target is bytes:
        return value
    if target is JSON:
        return decode_json(key, value)
    try:
        adapter = _adapter(target)
    except TypeError as exc:  # unhashable or not a type pydantic understands
        raise DecodeError(f"cannot convert {key!r} to {target!r}: {exc}") from exc
    try:
        return adapter.validate_json(value)
    except ValidationError as json_error:
        if not any(e["type"] == "json_invalid" for e in json_error.errors(include_input=False)):
            raise DecodeError(
                f"{key!r} is not a valid {_type_name(target)}: {_reason(json_error)}"
            ) from json_error
    text = decode_text(key, value)
    try:
        return adapter.validate_strings(text)
    except ValidationError as exc:
        raise DecodeError(f"{key!r} is not a valid {_type_name(target)}: {_reason(exc)}") from exc


def encode(key: str, value: object) -> bytes:
    """Bytes to store for ``value``: bytes as given, str as UTF-8, others as JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode("utf-8")
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"cannot encode a {type(value).__name__} for {key!r}: {exc}") from exc


def _leaf(key: str, value: bytes) -> Any:
    """A value inside a nested mapping: JSON objects/arrays decoded, everything else text."""
    text = decode_text(key, value)
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def nest(entries: Iterable[Entry], prefix: str) -> dict[str, Any]:
    """Turn ``prefix/a/b = 1`` entries into ``{"a": {"b": "1"}}``.

    A key that is both a value and a parent (``a`` and ``a/b``) cannot be nested:
    :class:`DecodeError`.
    """
    root: dict[str, Any] = {}
    for entry in entries:
        path = relative(entry.key, prefix)
        if not path:
            continue  # the prefix's own value is not a field
        parts = path.split(SEPARATOR)
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise DecodeError(f"{entry.key!r} is below a key that has a value of its own")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise DecodeError(f"{entry.key!r} has a value and keys below it")
        node[parts[-1]] = _leaf(entry.key, entry.value)
    return root


def validate_model(prefix: str, model: type[Any], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise DecodeError(
            f"configuration under {prefix or '/'!r} is not a valid {model.__name__}: {_reason(exc)}"
        ) from exc


__all__ = ["CODECS", "JSON", "convert", "decode", "decode_text", "encode", "nest", "validate_model"]
