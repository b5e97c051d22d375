"""Decoding stored bytes into Python values, and encoding values to store.

Values are bytes in every store. Reads decode them: ``text`` (UTF-8), ``json``,
``yaml``, ``bytes``, or any type pydantic can validate (``type=int``,
``type=list[str]``, a model...). Conversion failures raise
:class:`~veltrix.errors.DecodeError` with a one-line message that names the key
but never shows the value (it may be a secret).

Unlike the rest of Veltrix, these errors are raised *without* their cause: the
parsers' own exceptions carry the input (pydantic's ``input_value=...``, a YAML
snippet, ``UnicodeDecodeError.object``, ``JSONDecodeError.doc``), and a traceback
logger prints the whole ``__cause__``/``__context__`` chain. So the reason is
taken from the parser's error while it is handled, and the ``DecodeError`` is
raised after the ``except`` block, where there is no exception to chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, PydanticUserError, TypeAdapter, ValidationError

from veltrix.backend import Entry
from veltrix.errors import DecodeError
from veltrix.keys import SEPARATOR, relative

CODECS = ("text", "json", "yaml", "bytes")


class JSON:
    """Conversion target meaning "parse as JSON, any shape" (``client.get_json``)."""


def decode_text(key: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        pass  # raised below, unchained: the UnicodeDecodeError holds the bytes
    raise DecodeError(f"{key!r} is not UTF-8 text ({len(value)} bytes); read it with get_bytes()")


def decode_json(key: str, value: bytes) -> Any:
    try:
        return json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = _reason(exc)
    raise DecodeError(f"{key!r} is not valid JSON: {reason}")


def decode_yaml(key: str, value: bytes) -> Any:
    import yaml  # pyyaml is a core dependency, imported only when used

    try:
        return yaml.safe_load(value)
    except (yaml.YAMLError, RecursionError, ValueError):
        pass  # its message quotes the document
    raise DecodeError(f"{key!r} is not valid YAML")


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
    name = getattr(target, "__name__", None)
    try:
        text = name if isinstance(name, str) else repr(target)
    except Exception:  # a repr that fails (a huge int's, for one)
        text = f"a {type(target).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


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
    except Exception as exc:  # unhashable, or not a type pydantic can build a schema for
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DecodeError(f"cannot convert {key!r} to {_type_name(target)}: {first}") from exc
    reason = None
    try:
        return adapter.validate_json(value)
    except ValidationError as json_error:
        if not any(e["type"] == "json_invalid" for e in json_error.errors(include_input=False)):
            reason = _reason(json_error)
    except RecursionError:
        reason = "nested too deeply"
    except PydanticUserError as exc:  # a type pydantic builds lazily: an unresolved name
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DecodeError(f"cannot convert {key!r} to {_type_name(target)}: {first}") from exc
    if reason is not None:  # raised here, unchained: ValidationError shows the input
        raise DecodeError(f"{key!r} is not a valid {_type_name(target)}: {reason}")
    text = decode_text(key, value)
    try:
        return adapter.validate_strings(text)
    except ValidationError as exc:
        reason = _reason(exc)
    except RecursionError:
        reason = "nested too deeply"
    raise DecodeError(f"{key!r} is not a valid {_type_name(target)}: {reason}")


def encode(key: str, value: object) -> bytes:
    """Bytes to store for ``value``: bytes as given, str as UTF-8, others as JSON."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    try:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, BaseModel):
            return value.model_dump_json().encode("utf-8")
        text = json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        # Not chained: UnicodeEncodeError.object and pydantic's errors hold the value.
        reason = _encode_reason(exc)
    raise DecodeError(f"cannot encode a {type(value).__name__} for {key!r}: {reason}")


def _encode_reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeEncodeError):
        return "text that is not valid Unicode (a lone surrogate)"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, TypeError):  # json: "Object of type set is not JSON serializable"
        return str(exc).splitlines()[0][:200]
    if isinstance(exc, ValueError) and "Circular reference" in str(exc):
        return "circular reference"
    if isinstance(exc, ValueError) and "JSON compliant" in str(exc):
        return "NaN or infinity has no JSON form"
    return type(exc).__name__


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
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise DecodeError(
            f"cannot read {prefix or '/'!r} as {_type_name(model)}: not a pydantic model"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        reason = _reason(exc)
    except RecursionError:
        reason = "nested too deeply"
    # Raised here, unchained: the ValidationError shows the input values.
    raise DecodeError(
        f"configuration under {prefix or '/'!r} is not a valid {model.__name__}: {reason}"
    )


__all__ = ["CODECS", "JSON", "convert", "decode", "decode_text", "encode", "nest", "validate_model"]
