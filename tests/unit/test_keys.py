"""The canonical key grammar, by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veltrix.errors import InvalidKeyError
from veltrix.keys import (
    MAX_KEY_LENGTH,
    in_prefix,
    is_valid_key,
    join,
    normalize_prefix,
    relative,
    validate_key,
)

SEGMENT_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
segments = st.text(SEGMENT_ALPHABET, min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
keys = (
    st.lists(segments, min_size=1, max_size=6)
    .map("/".join)
    .filter(lambda k: len(k) <= MAX_KEY_LENGTH)
)


@pytest.mark.parametrize("key", ["a", "a/b", "A-1/b_2/c.3", "x" * MAX_KEY_LENGTH, "..a/b..", "-"])
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/",
        "/a",
        "a/",
        "a//b",
        ".",
        "..",
        "a/./b",
        "a/../b",
        "a b",
        "a\nb",
        "ä",
        "a:b",
        "a\\b",
        "x" * (MAX_KEY_LENGTH + 1),
        None,
        3,
        b"a",
    ],
)
def test_invalid_keys(key: object) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)
    assert not is_valid_key(key)


def test_error_messages_are_short() -> None:
    with pytest.raises(InvalidKeyError) as info:
        validate_key("y" * 10_000)
    assert len(str(info.value)) < 200


@given(keys)
def test_generated_keys_are_valid(key: str) -> None:
    assert validate_key(key) == key


@given(st.text(max_size=40))
def test_validation_never_crashes_and_agrees_with_grammar(text: str) -> None:
    expected = 0 < len(text) <= MAX_KEY_LENGTH and all(
        seg and seg not in (".", "..") and all(c in SEGMENT_ALPHABET for c in seg)
        for seg in text.split("/")
    )
    assert is_valid_key(text) == expected


@given(keys, keys)
def test_prefix_is_segment_wise(prefix: str, key: str) -> None:
    assert in_prefix(key, prefix) == (key == prefix or key.startswith(prefix + "/"))
    assert in_prefix(prefix, prefix)
    assert not in_prefix(prefix + "x", prefix)
    assert in_prefix(key, "")


@given(keys, keys)
def test_relative_and_join_round_trip(prefix: str, rest: str) -> None:
    key = join(prefix, rest)
    assert in_prefix(key, prefix)
    assert relative(key, prefix) == rest
    assert join(prefix, relative(key, prefix)) == key


def test_normalize_prefix() -> None:
    assert normalize_prefix("") == ""
    assert normalize_prefix("/") == ""
    assert normalize_prefix("a/b/") == "a/b"
    assert normalize_prefix("a/b") == "a/b"
    for bad in ("//", "a//", "/a", "a b/"):
        with pytest.raises(InvalidKeyError):
            normalize_prefix(bad)
