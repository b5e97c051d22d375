"""Secret Manager adapter behaviour beyond the conformance suite: auth, dead endpoints,
disabled versions, retention, labels and annotations, secrecy."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from google.cloud.secretmanager_v1.types import SecretVersion

from tests.integration.test_gcp_secret_manager import open_gcpsm, server_url
from tests.support import server_env, unique_name, unused_port
from veltrix.adapters.gcp_secret_manager import EMPTY_MARKER, SecretManagerBackend
from veltrix.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    ValueTooLargeError,
)

ENABLED = SecretVersion.State.ENABLED
DESTROYED = SecretVersion.State.DESTROYED


@pytest.fixture(params=["grpc", "rest"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(transport: str) -> Iterator[SecretManagerBackend]:
    b = open_gcpsm(server_url(transport, unique_name("beh"), "app"))
    yield b
    b.close()


def _versions(backend: SecretManagerBackend, key: str) -> list[tuple[int, int]]:
    name = backend._secret_name(f"app/{key}")
    return [
        (int(v.name.rsplit("/", 1)[1]), v.state)
        for v in backend._client.list_secret_versions(request={"parent": name})
    ]


def test_entries_are_secret_and_keep_provenance(backend: SecretManagerBackend) -> None:
    backend.put("db/password", b"hunter2")
    entry = backend.get("db/password")
    assert entry is not None and entry.secret
    assert entry.source.endswith("/app/db/password")
    assert all(e.secret for e in backend.list(""))
    secret = backend._client.get_secret(request={"name": backend._secret_name("app/db/password")})
    assert secret.name.endswith("/secrets/app_sdb_spassword")
    assert secret.annotations["veltrix-key"] == "app/db/password"
    assert secret.labels["managed-by"] == "veltrix"


def test_newest_disabled_version_falls_back_to_newest_enabled(
    backend: SecretManagerBackend,
) -> None:
    backend.put("k", b"one")
    v2 = backend.put("k", b"two")
    name = backend._secret_name("app/k")
    backend._client.disable_secret_version(request={"name": f"{name}/versions/{v2}"})
    entry = backend.get("k")
    assert entry is not None and (entry.value, entry.version) == (b"one", "1")
    backend._client.destroy_secret_version(request={"name": f"{name}/versions/1"})
    assert backend.get("k") is None, "no enabled version: nothing to read"
    assert list(backend.list("k")) == []


def test_retention_destroys_older_versions(transport: str) -> None:
    b = open_gcpsm(server_url(transport, unique_name("ret"), "app", retain=2))
    try:
        for i in range(4):
            b.put("k", str(i).encode())
        assert _versions(b, "k") == [(4, ENABLED), (3, ENABLED), (2, DESTROYED), (1, DESTROYED)]
        entry = b.get("k")
        assert entry is not None and entry.value == b"3"
    finally:
        b.close()


def test_list_ignores_unmanaged_and_foreign_secrets(backend: SecretManagerBackend) -> None:
    backend.put("a", b"1")
    parent = backend._parent
    backend._client.create_secret(  # not made by Veltrix: no label
        request={
            "parent": parent,
            "secret_id": "app_sb",
            "secret": {"replication": {"automatic": {}}},
        }
    )
    backend._client.add_secret_version(
        request={"parent": f"{parent}/secrets/app_sb", "payload": {"data": b"x"}}
    )
    assert [e.key for e in backend.list("")] == ["a"]


def test_long_key_rejected_before_io(backend: SecretManagerBackend) -> None:
    with pytest.raises(InvalidKeyError):
        backend.put("x." * 120 + "y", b"v")


def test_repr_and_errors_hide_the_token(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    token = server_env("VELTRIX_TEST_GCPSM_TOKEN", "Secret Manager token")
    monkeypatch.setenv("VELTRIX_GCPSM_ACCESS_TOKEN", token)
    b = open_gcpsm(server_url(transport, unique_name("r")))
    try:
        assert token not in repr(b)
    finally:
        b.close()


# -- auth --------------------------------------------------------------------------------


def auth_url(transport: str, **options: object) -> str:
    variable = {"grpc": "VELTRIX_TEST_GCPSM_AUTH_GRPC", "rest": "VELTRIX_TEST_GCPSM_AUTH_REST"}
    endpoint = server_env(variable[transport], "Secret Manager test server with a token")
    extra = "".join(f"&{k}={v}" for k, v in options.items())
    return (
        f"gcpsm://{unique_name('auth')}/app?endpoint={endpoint}&transport={transport}"
        f"&insecure=true&deadline=3{extra}"
    )


def test_missing_token_is_access_denied(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VELTRIX_GCPSM_ACCESS_TOKEN", raising=False)
    b = open_gcpsm(auth_url(transport))
    try:
        with pytest.raises(AccessDeniedError, match="UNAUTHENTICATED"):
            b.get("k")
        with pytest.raises(AccessDeniedError):
            b.put("k", b"v")
        with pytest.raises(AccessDeniedError):
            list(b.list(""))
    finally:
        b.close()


def test_unknown_token_is_unauthenticated(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token that names nobody is UNAUTHENTICATED (401), as Google answers it."""
    monkeypatch.setenv("GCPSM_WRONG_TOKEN", "not-the-token")
    b = open_gcpsm(auth_url(transport, token_env="GCPSM_WRONG_TOKEN"))
    try:
        with pytest.raises(AccessDeniedError, match="UNAUTHENTICATED") as info:
            b.get("k")
        assert "not-the-token" not in str(info.value)
    finally:
        b.close()


def test_known_identity_without_access_is_permission_denied(transport: str) -> None:
    server_env("VELTRIX_TEST_GCPSM_DENIED_TOKEN", "Secret Manager token without access")
    b = open_gcpsm(auth_url(transport, token_env="VELTRIX_TEST_GCPSM_DENIED_TOKEN"))
    try:
        with pytest.raises(AccessDeniedError, match="PERMISSION_DENIED"):
            b.get("k")
    finally:
        b.close()


def test_right_token_works(transport: str) -> None:
    server_env("VELTRIX_TEST_GCPSM_TOKEN", "Secret Manager token")
    b = open_gcpsm(auth_url(transport, token_env="VELTRIX_TEST_GCPSM_TOKEN"))
    try:
        assert b.get("k") is None
        version = b.put("k", b"v")
        entry = b.get("k")
        assert entry is not None and (entry.value, entry.version) == (b"v", version)
    finally:
        b.close()


# -- availability ------------------------------------------------------------------------


def test_dead_endpoint_fails_fast(transport: str) -> None:
    port = unused_port()
    b = open_gcpsm(
        f"gcpsm://p/app?endpoint=127.0.0.1:{port}&transport={transport}&insecure=true"
        "&timeout=1&deadline=2"
    )
    try:
        for call in (lambda: b.get("k"), lambda: b.put("k", b"v"), lambda: list(b.list(""))):
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError):
                call()
            assert time.monotonic() - started < 8
    finally:
        b.close()


def test_closed_backend_is_unavailable(backend: SecretManagerBackend) -> None:
    backend.close()
    with pytest.raises(BackendUnavailableError):
        backend.get("k")


@pytest.mark.parametrize(
    "url",
    [
        "gcpsm://",
        "gcpsm://p?transport=http",
        "gcpsm://p?insecure=true",
        "gcpsm://p?retain=-1",
        "gcpsm://p?colour=red",
        "gcpsm://p/a//b?endpoint=x:1&insecure=true",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        SecretManagerBackend.from_url(url)


def test_check_hooks_are_the_rules_put_applies(backend: SecretManagerBackend) -> None:
    """check_key/check_value refuse exactly what put refuses (before any I/O); what they
    accept the server stores: a key encoding to a 255-character id, 64 KiB values."""
    room = 255 - len("app_s")  # the URL's prefix is part of the secret id
    fits = "k" * room
    backend.check_key(fits)
    backend.put(fits, b"v")
    assert backend.get(fits) is not None
    limit = 64 * 1024
    full = b"x" * limit
    backend.check_value("big", full)
    backend.put("big", full)
    entry = backend.get("big")
    assert entry is not None and entry.value == full
    backend.check_value("empty", b"")  # stored as a marker, read back empty
    for key in ("k" * (room + 1), "_" * (room // 2 + 1)):  # '_' doubles in an id
        with pytest.raises(InvalidKeyError) as hooked:
            backend.check_key(key)
        with pytest.raises(InvalidKeyError) as put:
            backend.put(key, b"v")
        assert str(hooked.value) == str(put.value)
    marked = EMPTY_MARKER + b"x" * (limit - len(EMPTY_MARKER))  # at the limit, one more marker
    for value in (full + b"x", marked):
        with pytest.raises(ValueTooLargeError) as hooked_value:
            backend.check_value("v", value)
        with pytest.raises(ValueTooLargeError) as put_value:
            backend.put("v", value)
        assert str(hooked_value.value) == str(put_value.value)
    assert backend.get("v") is None, "refused values were never sent"
