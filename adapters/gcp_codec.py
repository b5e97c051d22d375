"""Veltrix keys and values as GCP secret ids and payloads (no I/O, no Google libraries).

Secret ids are ``[A-Za-z0-9_-]{1,255}``: a canonical key is encoded reversibly and
injectively by escaping ``_`` as ``__``, ``/`` as ``_s`` and ``.`` as ``_d``
(:func:`encode_key` / :func:`decode_secret_id`; :func:`secret_id_for` adds the length
limit). Payloads may not be empty, so an empty value is stored as
:data:`EMPTY_MARKER` (:func:`encode_value` / :func:`decode_value`).
:func:`top_label` is the label value that lets a listing filter on a key's first
segment. Used by :mod:`veltrix.adapters.gcp_secret_manager`; any adapter storing
Veltrix keys under GCP resource ids can use it too.
"""

from __future__ import annotations

import hashlib

from veltrix.errors import InvalidKeyError
from veltrix.keys import SEPARATOR, validate_key

MAX_SECRET_ID_LENGTH = 255

#: The Secret Manager API rejects an empty payload, so an empty value is stored as
#: this marker, and a value that starts with the marker gets one more copy of it.
EMPTY_MARKER = b"\x00veltrix:empty\x00"

_ESCAPES = {"_": "__", "/": "_s", ".": "_d"}
_UNESCAPES = {code[1]: char for char, code in _ESCAPES.items()}


def encode_key(key: str) -> str:
    """The secret id of a canonical ``key`` (not length-checked)."""
    return "".join(_ESCAPES.get(char, char) for char in key)


def decode_secret_id(secret_id: str) -> str:
    """The key a secret id encodes; ``ValueError`` when it is not one of ours."""
    out: list[str] = []
    chars = iter(secret_id)
    for char in chars:
        if char != "_":
            out.append(char)
            continue
        code = next(chars, "")
        if code not in _UNESCAPES:
            raise ValueError(f"secret id {secret_id!r} is not a Veltrix key encoding")
        out.append(_UNESCAPES[code])
    key = "".join(out)
    try:
        validate_key(key)
    except InvalidKeyError as exc:
        raise ValueError(f"secret id {secret_id!r} does not encode a valid key") from exc
    return key


def secret_id_for(key: str) -> str:
    """``encode_key`` plus the API's length limit (raises :class:`InvalidKeyError`)."""
    secret_id = encode_key(key)
    if len(secret_id) > MAX_SECRET_ID_LENGTH:
        raise InvalidKeyError(
            f"key {key[:60]!r}... encodes to a {len(secret_id)}-character secret id; "
            f"Secret Manager allows {MAX_SECRET_ID_LENGTH}"
        )
    return secret_id


def encode_value(value: bytes) -> bytes:
    if not value:
        return EMPTY_MARKER
    if value.startswith(EMPTY_MARKER):
        return EMPTY_MARKER + value
    return value


def decode_value(data: bytes) -> bytes:
    if data == EMPTY_MARKER:
        return b""
    if data.startswith(EMPTY_MARKER):
        return data[len(EMPTY_MARKER) :]
    return data


def top_label(key: str) -> str:
    """The ``veltrix-top`` label value: a hash of the key's first segment."""
    first = key.split(SEPARATOR, 1)[0]
    return hashlib.sha256(first.encode()).hexdigest()[:16]


__all__ = [
    "EMPTY_MARKER",
    "MAX_SECRET_ID_LENGTH",
    "decode_secret_id",
    "decode_value",
    "encode_key",
    "encode_value",
    "secret_id_for",
    "top_label",
]
