"""Checks on values shared by adapters: bytes only, size limits before any I/O."""

from __future__ import annotations

from veltrix.backend import Absent, AbsentType
from veltrix.errors import ValueTooLargeError, VersionConflictError


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


__all__ = ["check_expected_version", "check_value"]
