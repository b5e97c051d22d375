"""Shared pre-I/O checks used by adapters: sizes, client-side CAS, batch validation."""

from __future__ import annotations

import pytest

from veltrix.backend import Absent
from veltrix.errors import InvalidKeyError, ValueTooLargeError, VersionConflictError
from veltrix.values import check_expected_version, check_value, prepare_batch


def limited(key: str, raw: bytes) -> bytes:
    return check_value(key, raw, 4)


def test_check_value() -> None:
    assert check_value("k", bytearray(b"ab"), 2) == b"ab"
    with pytest.raises(ValueTooLargeError, match="at most 2"):
        check_value("k", b"abc", 2)
    with pytest.raises(TypeError):
        check_value("k", "text", None)


def test_check_expected_version() -> None:
    check_expected_version("k", None, Absent)
    check_expected_version("k", "3", "3")
    check_expected_version("k", "3", None)
    with pytest.raises(VersionConflictError, match="already exists"):
        check_expected_version("k", "3", Absent)
    with pytest.raises(VersionConflictError, match="does not exist"):
        check_expected_version("k", None, "3")
    with pytest.raises(VersionConflictError, match="version 3, not 2"):
        check_expected_version("k", "3", "2")


def test_prepare_batch() -> None:
    batch = prepare_batch({"a": b"1", "b": None}, {"a": Absent}, limited)
    assert batch == [("a", b"1", Absent), ("b", None, None)]
    assert prepare_batch([("x/y", b"")], None, limited) == [("x/y", b"", None)]


@pytest.mark.parametrize(
    ("items", "versions", "error", "match"),
    [
        ([("a", b"1"), ("a", b"2")], None, InvalidKeyError, "twice"),
        ([("a", b"1")], {"b": "1"}, InvalidKeyError, "not in the batch"),
        ([("bad key", b"1")], None, InvalidKeyError, "invalid key"),
        ([("a", b"12345")], None, ValueTooLargeError, "at most 4"),
    ],
)
def test_prepare_batch_rejects(
    items: list[tuple[str, bytes]], versions: dict[str, str] | None, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        prepare_batch(items, versions, limited)
