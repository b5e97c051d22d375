"""Pure parts of the Parameter Manager adapter: ids, documents, reference detection."""

from __future__ import annotations

import pytest

from veltrix.adapters.gcp_parameter_manager import (
    JSON,
    YAML,
    dump,
    parameter_id_for,
    parse,
    references_in,
)
from veltrix.adapters.gcp_secret_manager import decode_secret_id
from veltrix.errors import DecodeError, InvalidKeyError


@pytest.mark.parametrize("key", ["payments", "app/payments", "a_b/c.d", "x-1"])
def test_parameter_ids_round_trip(key: str) -> None:
    assert decode_secret_id(parameter_id_for(key)) == key


def test_parameter_id_limit() -> None:
    parameter_id_for("x" * 63)
    with pytest.raises(InvalidKeyError):
        parameter_id_for("x" * 64)
    with pytest.raises(InvalidKeyError):
        parameter_id_for("a_" * 22)  # 44 characters, 66 once encoded


def test_documents_round_trip_and_refuse_garbage() -> None:
    document = {"a": {"b": 1, "": "self"}, "c": [1, 2], "d": "zoë"}
    for fmt in (JSON, YAML):
        assert parse(dump(document, fmt), fmt) == document
    with pytest.raises(DecodeError) as info:
        parse(b'{"password": "hunter2", broken', JSON)
    assert "hunter2" not in str(info.value) and info.value.__cause__ is None
    with pytest.raises(DecodeError):
        parse(b"a: [1,\n", YAML)
    with pytest.raises(DecodeError):
        parse(b"\xff", JSON)


def test_references_found_in_messages() -> None:
    ref = "//secretmanager.googleapis.com/projects/p/secrets/s/versions/3"
    regional = "//secretmanager.googleapis.com/projects/p/locations/eu/secrets/s/versions/latest"
    text = f'Failed to render secret reference {ref}: NOT_FOUND; also "{regional}"'
    assert references_in(text) == sorted([ref, regional])
    assert references_in("Parameter [projects/p/locations/global/parameters/x] not found") == []
