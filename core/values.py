"""Checks on values shared by adapters: bytes only, size limits before any I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from veltrix.backend import Absent, AbsentType
from veltrix.errors import InvalidKeyError, ValueTooLargeError, VersionConflictError
from veltrix.keys import validate_key

#: One write of a ``put_many`` batch: key, value (``None`` = delete), expected version.
BatchItem = tuple[str, bytes | None, str | AbsentType | None]


def check_value(key: str, value: object, max_bytes: int | None) -> bytes:
    """Return ``value`` as bytes or raise before anything is sent to a store."""
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise TypeError(f"value for {key!r} must be bytes, got {type(value).__name__}")
    if max_bytes is not None and len(value) > max_bytes:
        raise ValueTooLargeError(
            f"value for {key!r} is {len(value)} bytes; this store holds at most {max_bytes}"
        )
    return value


def check_expected_version(
    key: str, current_version: str | None, if_version: str | AbsentType | None
) -> None:
    """Compare-and-set check for stores that compare on the client side of a lock.

    ``current_version`` is ``None`` when the key is absent.
    """
    if if_version is None:
        return
    if if_version is Absent:
        if current_version is not None:
            raise VersionConflictError(f"{key!r} already exists (create-only write)")
        return
    if current_version is None:
        raise VersionConflictError(f"{key!r} does not exist (expected version {if_version})")
    if current_version != if_version:
        raise VersionConflictError(f"{key!r} is at version {current_version}, not {if_version}")


def prepare_batch(
    items: Mapping[str, bytes | None] | Iterable[tuple[str, bytes | None]],
    if_versions: Mapping[str, str | AbsentType] | None,
    check: Callable[[str, bytes], bytes],
) -> list[BatchItem]:
    """Validate a ``put_many`` batch before any I/O.

    Keys must be canonical and appear once; every value passes ``check`` (the
    store's own size/encoding rule, the one its ``put`` uses); ``if_versions`` may
    only name keys in the batch.
    """
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    versions = dict(if_versions or {})
    batch: list[BatchItem] = []
    seen: set[str] = set()
    for key, raw in pairs:
        validate_key(key)
        if key in seen:
            raise InvalidKeyError(f"key {key!r} appears twice in one batch")
        seen.add(key)
        batch.append((key, None if raw is None else check(key, raw), versions.pop(key, None)))
    if versions:
        raise InvalidKeyError(
            f"if_versions names {sorted(versions)[0]!r}, which is not in the batch"
        )
    return batch


__all__ = ["BatchItem", "check_expected_version", "check_value", "prepare_batch"]
