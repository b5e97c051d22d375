"""The canonical key grammar.

A key is one or more segments of ``[A-Za-z0-9._-]+`` joined by ``/``; no segment
may be empty, ``.`` or ``..``; at most :data:`MAX_KEY_LENGTH` characters. This is
the intersection every supported store can represent after its adapter's
reversible encoding, so a migration never loses or merges keys. Adapters may have
tighter limits of their own (for example the encoded length of a GCP secret id);
they raise :class:`~veltrix.errors.InvalidKeyError` for those too.

A *prefix* names a subtree: ``""`` is everything, ``"a/b"`` (or ``"a/b/"``) is the
key ``a/b`` and every key below it, never ``a/bc``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from veltrix.errors import InvalidKeyError
from veltrix.urls import redact_text

MAX_KEY_LENGTH = 255
SEPARATOR = "/"

_SEGMENT = r"[A-Za-z0-9._-]+"
# The same grammar with the '.' and '..' segments refused by a lookahead, so a valid
# key costs one regex match (it is checked on every cache miss).
_VALID_SEGMENT = r"(?!\.\.?(?:/|\Z))[A-Za-z0-9._-]+"
_VALID_KEY_RE = re.compile(rf"{_VALID_SEGMENT}(?:/{_VALID_SEGMENT})*")
_KEY_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")


#: ``key_match(text)`` is truthy when the str ``text`` is a canonical key of at most
#: :data:`MAX_KEY_LENGTH` characters once its length is checked too: the check
#: :func:`validate_key` makes, without its call (the client's miss path inlines it).
key_match = _VALID_KEY_RE.fullmatch


def _describe(key: object) -> str:
    # A URL pasted where a key belongs must not bring its password into the message.
    text = redact_text(repr(key))
    return text if len(text) <= 80 else text[:77] + "..."


def validate_key(key: object) -> str:
    """Return ``key`` if it is canonical, else raise :class:`InvalidKeyError`."""
    if isinstance(key, str) and len(key) <= MAX_KEY_LENGTH and key_match(key):
        return key
    raise _invalid(key)


def _invalid(key: object) -> InvalidKeyError:
    """What is wrong with a key that failed :func:`validate_key`."""
    if not isinstance(key, str):
        return InvalidKeyError(f"key must be a string, got {type(key).__name__}")
    if not key:
        return InvalidKeyError("key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        return InvalidKeyError(
            f"key {_describe(key)} is {len(key)} characters; at most {MAX_KEY_LENGTH} allowed"
        )
    if _KEY_RE.fullmatch(key) is None:
        return InvalidKeyError(
            f"invalid key {_describe(key)}: use segments of [A-Za-z0-9._-] joined by '/', "
            "with no empty segment"
        )
    segment = next(part for part in key.split(SEPARATOR) if part in (".", ".."))
    return InvalidKeyError(f"invalid key {_describe(key)}: '{segment}' segment")


def is_valid_key(key: object) -> bool:
    try:
        validate_key(key)
    except InvalidKeyError:
        return False
    return True


def normalize_prefix(prefix: object) -> str:
    """Return the canonical form of a prefix: ``""`` or a valid key (no trailing ``/``)."""
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"prefix must be a string, got {type(prefix).__name__}")
    stripped = prefix[:-1] if prefix.endswith(SEPARATOR) else prefix
    if stripped == "":
        if prefix not in ("", SEPARATOR):
            raise InvalidKeyError(f"invalid prefix {_describe(prefix)}")
        return ""
    try:
        return validate_key(stripped)
    except InvalidKeyError as exc:
        raise InvalidKeyError(f"invalid prefix: {exc}") from exc


def normalize_prefixes(prefixes: object) -> tuple[str, ...]:
    """Canonical forms of a collection of prefixes (``secret_prefixes``).

    A lone string is refused rather than read as a collection of one-letter
    prefixes, which would silently leave the intended prefix unprotected.
    """
    if isinstance(prefixes, str | bytes) or not isinstance(prefixes, Iterable):
        raise InvalidKeyError(
            f"expected a list of prefixes, got {type(prefixes).__name__} "
            "(write secret_prefixes=['secrets'], not secret_prefixes='secrets')"
        )
    return tuple(normalize_prefix(prefix) for prefix in prefixes)


def in_prefix(key: str, prefix: str) -> bool:
    """True when ``key`` is ``prefix`` or below it (``prefix`` already normalized)."""
    return not prefix or key == prefix or key.startswith(prefix + SEPARATOR)


def join(*parts: str) -> str:
    """Join key parts, skipping empty ones: ``join("a", "", "b/c") == "a/b/c"``."""
    return SEPARATOR.join(part.strip(SEPARATOR) for part in parts if part.strip(SEPARATOR))


def relative(key: str, prefix: str) -> str:
    """The part of ``key`` below ``prefix`` (``""`` when ``key == prefix``)."""
    if not prefix:
        return key
    if key == prefix:
        return ""
    return key[len(prefix) + 1 :]


__all__ = [
    "MAX_KEY_LENGTH",
    "SEPARATOR",
    "in_prefix",
    "is_valid_key",
    "join",
    "normalize_prefix",
    "normalize_prefixes",
    "relative",
    "validate_key",
]
