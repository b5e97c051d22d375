"""SSM specifics against moto's server: SecureString, pagination, encoding, errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.support import fake_aws_credentials, server_env, unique_name
from veltrix.adapters.ssm import MARKER, SSMBackend, encode_value
from veltrix.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    ValueTooLargeError,
)

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


@pytest.fixture
def moto_endpoint() -> str:
    return server_env("VELTRIX_TEST_MOTO_ENDPOINT", "moto server")


@pytest.fixture
def prefix() -> str:
    return f"veltrix/{unique_name('ssm')}"


@pytest.fixture
def ssm(moto_endpoint: str) -> Iterator[Any]:
    client = boto3.client("ssm", endpoint_url=moto_endpoint, region_name=REGION)
    yield client
    client.close()


def open_ssm(endpoint: str, prefix: str, **options: Any) -> SSMBackend:
    return SSMBackend.from_url(f"ssm:///{prefix}?region={REGION}", endpoint_url=endpoint, **options)


def test_secure_string_is_decrypted_and_flagged(moto_endpoint: str, prefix: str, ssm: Any) -> None:
    ssm.put_parameter(Name=f"/{prefix}/db/password", Value="hunter2", Type="SecureString")
    backend = open_ssm(moto_endpoint, prefix)
    try:
        entry = backend.get("db/password")
        assert entry is not None and entry.value == b"hunter2" and entry.secret
        assert "hunter2" not in repr(entry)
        listed = list(backend.list("db"))
        assert [(e.key, e.value, e.secret) for e in listed] == [("db/password", b"hunter2", True)]
    finally:
        backend.close()
    raw = open_ssm(moto_endpoint, prefix, decrypt=False)
    try:
        entry = raw.get("db/password")
        assert entry is not None and entry.secret and entry.value != b"hunter2"
    finally:
        raw.close()


def test_secure_writes(moto_endpoint: str, prefix: str, ssm: Any) -> None:
    backend = open_ssm(moto_endpoint, prefix, secure=True)
    try:
        backend.put("api/token", b"s3cret")
        parameter = ssm.get_parameter(Name=f"/{prefix}/api/token")["Parameter"]
        assert parameter["Type"] == "SecureString"
        entry = backend.get("api/token")
        assert entry is not None and entry.value == b"s3cret" and entry.secret
    finally:
        backend.close()


def test_list_paginates_recursively(moto_endpoint: str, prefix: str) -> None:
    backend = open_ssm(moto_endpoint, prefix)
    try:
        keys = [f"many/{i // 5}/k{i:02d}" for i in range(23)]  # > 10 per page, nested
        for key in keys:
            backend.put(key, key.encode())
        listed = list(backend.list("many"))
        assert [e.key for e in listed] == sorted(keys)
        assert all(e.value == e.key.encode() for e in listed)
    finally:
        backend.close()


def test_plain_text_is_stored_as_is_and_odd_values_are_encoded(
    moto_endpoint: str, prefix: str, ssm: Any
) -> None:
    backend = open_ssm(moto_endpoint, prefix)
    try:
        backend.put("text", b"plain value")
        backend.put("marker", MARKER.encode() + b"looks encoded")
        stored = ssm.get_parameter(Name=f"/{prefix}/text")["Parameter"]["Value"]
        assert stored == "plain value"
        marker = backend.get("marker")
        assert marker is not None and marker.value == MARKER.encode() + b"looks encoded"
    finally:
        backend.close()


def test_versions_are_ssm_versions(moto_endpoint: str, prefix: str) -> None:
    backend = open_ssm(moto_endpoint, prefix)
    try:
        assert backend.put("v", b"1") == "1"
        assert backend.put("v", b"2", if_version="1") == "2"
    finally:
        backend.close()


def test_reserved_and_deep_names_are_invalid_keys(moto_endpoint: str) -> None:
    backend = open_ssm(moto_endpoint, "")
    try:
        with pytest.raises(InvalidKeyError):
            backend.put("aws/thing", b"x")
        with pytest.raises(InvalidKeyError):
            backend.get("/".join("abcdefghijklmnop"))
    finally:
        backend.close()


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="did you mean"):
        SSMBackend.from_url("ssm:///x?regoin=us-east-1")
    with pytest.raises(ConfigurationError):
        SSMBackend.from_url("ssm://host/x?region=us-east-1")


def test_unreachable_endpoint_is_backend_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = SSMBackend.from_url(
        f"ssm:///x?region={REGION}&endpoint_url=http://127.0.0.1:{port}&max_attempts=1&timeout=1"
    )
    try:
        with pytest.raises(BackendUnavailableError):
            backend.get("a")
    finally:
        backend.close()


def test_check_hooks_are_the_rules_put_applies(moto_endpoint: str, prefix: str) -> None:
    """check_key/check_value refuse exactly what put refuses (before any I/O), and what
    they accept moto stores: names at the length and depth limits, a binary value whose
    encoded form is at the tier's limit."""
    backend = open_ssm(moto_endpoint, prefix)
    try:
        longest = "n" * 255  # the canonical grammar's limit; SSM's 1011 is never reached
        deepest = "/".join(["d"] * (15 - prefix.count("/") - 1))
        limit = backend.max_value_bytes
        assert limit == 4096
        binary = b"\xff" * ((limit - len(MARKER)) // 4 * 3)  # encodes to <= 4096
        assert len(encode_value(binary)) <= limit < len(encode_value(binary + b"\xff" * 3))
        for key in (longest, deepest):
            backend.check_key(key)
            assert backend.get(key) is None
            backend.put(key, b"v")
            assert backend.get(key) is not None
        backend.check_value("bin", binary)
        backend.put("bin", binary)
        entry = backend.get("bin")
        assert entry is not None and entry.value == binary
        refused_keys = [deepest + "/d", "x//y"]
        refused_values = [binary + b"\xff" * 3, b"x" * (limit + 1)]
        for key in refused_keys:
            with pytest.raises(InvalidKeyError) as hooked:
                backend.check_key(key)
            with pytest.raises(InvalidKeyError) as put:
                backend.put(key, b"v")
            assert str(hooked.value) == str(put.value)
        for value in refused_values:
            with pytest.raises(ValueTooLargeError) as hooked_value:
                backend.check_value("v", value)
            with pytest.raises(ValueTooLargeError) as put_value:
                backend.put("v", value)
            assert str(hooked_value.value) == str(put_value.value)
        assert backend.get("v") is None, "refused values were never sent"
    finally:
        backend.close()
    at_root = open_ssm(moto_endpoint, "")
    try:
        for key in ("aws/x", "SSM-config", "awsome"):
            with pytest.raises(InvalidKeyError, match="may not start with 'aws' or 'ssm'"):
                at_root.check_key(key)
        at_root.check_key("configs/aws")  # only the first level is reserved
    finally:
        at_root.close()
