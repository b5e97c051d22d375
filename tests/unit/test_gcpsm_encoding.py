"""Property tests of the Secret Manager key <-> secret id and value encodings."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veltrix.adapters.gcp_codec import (
    EMPTY_MARKER,
    MAX_SECRET_ID_LENGTH,
    decode_secret_id,
    decode_value,
    encode_key,
    encode_value,
    secret_id_for,
)
from veltrix.errors import InvalidKeyError
from veltrix.keys import MAX_KEY_LENGTH, is_valid_key

SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")

segment = st.text(alphabet="abcXYZ019._-", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
keys = (
    st.lists(segment, min_size=1, max_size=8)
    .map("/".join)
    .filter(lambda k: len(k) <= MAX_KEY_LENGTH and is_valid_key(k))
)


@given(keys)
def test_round_trip(key: str) -> None:
    assert decode_secret_id(encode_key(key)) == key


@given(keys)
def test_encoded_ids_use_the_secret_id_alphabet(key: str) -> None:
    encoded = encode_key(key)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", encoded)
    if len(encoded) <= MAX_SECRET_ID_LENGTH:
        assert SECRET_ID.fullmatch(secret_id_for(key))
    else:
        with pytest.raises(InvalidKeyError):
            secret_id_for(key)


@given(keys, keys)
def test_injective(a: str, b: str) -> None:
    if a != b:
        assert encode_key(a) != encode_key(b)


@given(keys, keys)
def test_prefix_of_key_is_prefix_of_id(parent: str, child: str) -> None:
    """Keys below a prefix have ids starting with the prefix's id plus the separator code."""
    assert encode_key(f"{parent}/{child}").startswith(encode_key(parent) + "_s")


@given(st.text(alphabet="abc_-sd0", min_size=1, max_size=30))
def test_decode_rejects_or_round_trips(secret_id: str) -> None:
    """Any id either decodes to a key that encodes back to it, or is rejected."""
    try:
        key = decode_secret_id(secret_id)
    except ValueError:
        return
    assert encode_key(key) == secret_id


def test_examples() -> None:
    assert encode_key("app/db.host") == "app_sdb_dhost"
    assert encode_key("a_b/c-d") == "a__b_sc-d"
    for bad in ["a_", "a_x", "_s", "a_sb_s", "_d_d"]:  # dangling escape, bad code, bad key
        with pytest.raises(ValueError):
            decode_secret_id(bad)


def test_long_key_is_invalid() -> None:
    key = "a." * 100 + "b"  # valid key of 201 characters, 301 once encoded
    assert is_valid_key(key)
    with pytest.raises(InvalidKeyError):
        secret_id_for(key)


@given(st.binary(max_size=64))
def test_value_round_trip(value: bytes) -> None:
    encoded = encode_value(value)
    assert encoded
    assert decode_value(encoded) == value


@given(st.binary(max_size=16), st.binary(max_size=16))
def test_value_encoding_injective(a: bytes, b: bytes) -> None:
    for x, y in [(a, b), (EMPTY_MARKER + a, b), (a, EMPTY_MARKER), (EMPTY_MARKER * 2, b"")]:
        if x != y:
            assert encode_value(x) != encode_value(y)


def test_values_without_marker_are_stored_as_is() -> None:
    assert encode_value(b"hunter2") == b"hunter2"
    assert encode_value(b"") == EMPTY_MARKER
    assert decode_value(EMPTY_MARKER + EMPTY_MARKER) == EMPTY_MARKER
