"""Parameter Manager adapter behaviour beyond the conformance suite: the document
mapping, secret references, disabled versions, format validation, auth, dead endpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from google.cloud.parametermanager_v1.types import ParameterFormat
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.iam.v1 import policy_pb2

from tests.integration.test_gcp_parameter_manager import endpoint, open_gcppm, server_url
from tests.support import server_env, unique_name, unused_port
from veltrix.adapters.gcp_parameter_manager import ParameterManagerBackend
from veltrix.cache import CachePolicy
from veltrix.client import Client
from veltrix.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    ConfigurationError,
    DecodeError,
    InvalidKeyError,
    SecretReferenceError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VersionConflictError,
)

JSON = ParameterFormat.JSON
YAML = ParameterFormat.YAML


@pytest.fixture(params=["grpc", "rest"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def project() -> str:
    return unique_name("beh")


@pytest.fixture
def backend(transport: str, project: str) -> Iterator[ParameterManagerBackend]:
    b = open_gcppm(server_url(transport, project))
    yield b
    b.close()


def parameter(backend: ParameterManagerBackend, parameter_id: str, fmt: object, data: bytes) -> str:
    """Create a parameter the way another tool would, with one version ``p1``."""
    name = f"{backend._parent}/parameters/{parameter_id}"
    backend._client.create_parameter(
        request={
            "parent": backend._parent,
            "parameter_id": parameter_id,
            "parameter": {"format_": fmt},
        }
    )
    add_version(backend, name, "p1", data)
    return name


def add_version(
    backend: ParameterManagerBackend,
    name: str,
    version_id: str,
    data: bytes,
    disabled: bool = False,
) -> None:
    backend._client.create_parameter_version(
        request={
            "parent": name,
            "parameter_version_id": version_id,
            "parameter_version": {"payload": {"data": data}, "disabled": disabled},
        }
    )


def secret_version(project: str, secret_id: str, data: bytes) -> str:
    channel_target = endpoint("grpc")
    import grpc

    client = SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(channel_target))
    )
    created = client.create_secret(
        request={
            "parent": f"projects/{project}",
            "secret_id": secret_id,
            "secret": {"replication": {"automatic": {}}},
        }
    )
    added = client.add_secret_version(request={"parent": created.name, "payload": {"data": data}})
    client.transport.close()
    return str(added.name)


def test_json_and_yaml_parameters_read_as_subtrees(backend: ParameterManagerBackend) -> None:
    parameter(
        backend,
        "payments",
        JSON,
        b'{"timeout_ms": 500, "db": {"host": "h", "tls": true}, "tags": ["a"]}',
    )
    parameter(backend, "search", YAML, b"replicas: 3\nname: idx\n")
    entry = backend.get("payments/timeout_ms")
    assert entry is not None and entry.value == b"500" and entry.version == "p1"
    assert not entry.secret
    assert {e.key: e.value for e in backend.list("payments")} == {
        "payments/timeout_ms": b"500",
        "payments/db/host": b"h",
        "payments/db/tls": b"true",
        "payments/tags": b'["a"]',
    }
    assert {e.key for e in backend.list("search")} == {"search/replicas", "search/name"}
    assert backend.get("payments") is None, "an object parameter has no value of its own"
    # writes change the document and keep the format
    version = backend.put("search/replicas", b"5")
    assert version == "v1"
    raw = backend._client.get_parameter_version(
        request={"name": f"{backend._parent}/parameters/search/versions/v1"}
    )
    assert b"replicas: 5" in raw.payload.data


def test_unformatted_parameters_are_one_key(backend: ParameterManagerBackend) -> None:
    assert backend.put("banner", b"hello") == "v1"
    param = backend._client.get_parameter(request={"name": f"{backend._parent}/parameters/banner"})
    assert param.format_ == ParameterFormat.UNFORMATTED
    entry = backend.get("banner")
    assert entry is not None and entry.value == b"hello"
    with pytest.raises(UnsupportedOperationError):
        backend.put("banner/child", b"x")
    assert backend.put("empty", b"") and backend.get("empty").value == b""  # type: ignore[union-attr]
    assert backend.delete("banner") is True
    assert backend.get("banner") is None and backend.delete("banner") is False


def test_newest_enabled_version_is_current(backend: ParameterManagerBackend) -> None:
    name = parameter(backend, "flags", JSON, b'{"on": 1}')
    add_version(backend, name, "zz-newer", b'{"on": 2}', disabled=True)
    entry = backend.get("flags/on")
    assert entry is not None and (entry.value, entry.version) == (b"1", "p1")
    with pytest.raises(VersionConflictError):
        backend.put("flags/on", b"3", if_version="zz-newer")
    assert backend.put("flags/on", b"3", if_version="p1") == "v1"
    entry = backend.get("flags/on")
    assert entry is not None and (entry.value, entry.version) == (b"3", "v1")


def test_invalid_document_for_format_is_decode_error(backend: ParameterManagerBackend) -> None:
    parameter(backend, "scalar", JSON, b'"just text"')
    entry = backend.get("scalar")
    assert entry is not None and entry.value == b'"just text"'
    with pytest.raises(DecodeError):
        backend.put("scalar", b"{not json")
    assert backend.get("scalar").value == b'"just text"'  # type: ignore[union-attr]


def test_limits_before_io(backend: ParameterManagerBackend) -> None:
    with pytest.raises(InvalidKeyError):
        backend.put("x" * 70 + "/k", b"v")
    with pytest.raises(ValueTooLargeError):
        backend.put("big/v", b"x" * (1024 * 1024))
    backend.put("big/a", b"a" * (600 * 1024))
    with pytest.raises(ValueTooLargeError):
        backend.put("big/b", b"b" * (600 * 1024))  # the document would pass 1 MiB
    assert backend.get("big/b") is None


def test_secret_references_are_rendered_and_flagged(
    backend: ParameterManagerBackend, project: str
) -> None:
    ref = secret_version(project, "db-pass", b"hunter2")
    parameter(
        backend,
        "db",
        JSON,
        json.dumps(
            {"host": "h", "password": f"__REF__(//secretmanager.googleapis.com/{ref})"}
        ).encode(),
    )
    password = backend.get("db/password")
    assert password is not None and password.value == b"hunter2" and password.secret
    host = backend.get("db/host")
    assert host is not None and not host.secret
    assert "hunter2" not in repr(password)
    # a write keeps the reference, not the rendered secret
    backend.put("db/host", b"h2")
    raw = backend._client.get_parameter_version(
        request={"name": f"{backend._parent}/parameters/db/versions/v1"}
    )
    assert b"hunter2" not in raw.payload.data and b"__REF__" in raw.payload.data
    with Client(backend, cache=CachePolicy(ttl=60)) as client:
        assert client.get("db/password") == "hunter2"


def test_broken_references_raise_naming_the_reference(
    backend: ParameterManagerBackend, project: str
) -> None:
    missing = f"projects/{project}/secrets/absent/versions/1"
    parameter(
        backend,
        "gone",
        JSON,
        json.dumps({"p": f"__REF__(//secretmanager.googleapis.com/{missing})"}).encode(),
    )
    with pytest.raises(SecretReferenceError) as info:
        backend.get("gone/p")
    assert info.value.reference.endswith(missing) and info.value.status == "NOT_FOUND"
    ref = secret_version(project, "locked", b"topsecret")
    import grpc

    client = SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(endpoint("grpc")))
    )
    client.set_iam_policy(
        request={
            "resource": ref.rsplit("/versions/", 1)[0],
            "policy": policy_pb2.Policy(
                bindings=[
                    policy_pb2.Binding(
                        role="roles/secretmanager.secretAccessor", members=["user:x@example.com"]
                    )
                ]
            ),
        }
    )
    client.transport.close()
    parameter(
        backend,
        "locked",
        JSON,
        json.dumps({"p": f"__REF__(//secretmanager.googleapis.com/{ref})"}).encode(),
    )
    with pytest.raises(SecretReferenceError) as info:
        backend.get("locked/p")
    assert info.value.status == "PERMISSION_DENIED"
    chain: BaseException | None = info.value
    while chain is not None:
        assert "topsecret" not in str(chain)
        chain = chain.__cause__ or chain.__context__


def test_auth_token_rules(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    variable = {"grpc": "VELTRIX_TEST_GCPPM_AUTH_GRPC", "rest": "VELTRIX_TEST_GCPPM_AUTH_REST"}[
        transport
    ]
    auth = server_env(variable, "Parameter Manager test server with a token")
    token = server_env("VELTRIX_TEST_GCPPM_TOKEN", "Parameter Manager test token")
    base = f"gcppm://{unique_name('auth')}?endpoint={auth}&transport={transport}&insecure=true&deadline=3&timeout=2"
    monkeypatch.delenv("VELTRIX_GCPPM_ACCESS_TOKEN", raising=False)
    anonymous = open_gcppm(base)
    with pytest.raises(AccessDeniedError):
        anonymous.get("a/b")
    anonymous.close()
    monkeypatch.setenv("MY_PM_TOKEN", "not-a-known-token")
    unknown = open_gcppm(base + "&token_env=MY_PM_TOKEN")
    with pytest.raises(AccessDeniedError, match="UNAUTHENTICATED"):
        unknown.get("a/b")
    unknown.close()
    denied = server_env("VELTRIX_TEST_GCPPM_DENIED_TOKEN", "token without access")
    monkeypatch.setenv("MY_PM_TOKEN", denied)
    no_access = open_gcppm(base + "&token_env=MY_PM_TOKEN")
    with pytest.raises(AccessDeniedError, match="PERMISSION_DENIED"):
        no_access.get("a/b")
    no_access.close()
    monkeypatch.setenv("MY_PM_TOKEN", token)
    authed = open_gcppm(base + "&token_env=MY_PM_TOKEN")
    assert authed.get("a/b") is None
    authed.put("a/b", b"1")
    assert token not in repr(authed)
    authed.close()


def test_dead_endpoint_fails_within_the_deadline(transport: str) -> None:
    port = unused_port()
    backend = open_gcppm(
        f"gcppm://p?endpoint=127.0.0.1:{port}&transport={transport}&insecure=true&timeout=0.5&deadline=1.5"
    )
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        backend.get("a/b")
    assert time.monotonic() - started < 5
    backend.close()


def test_bad_urls() -> None:
    with pytest.raises(ConfigurationError):
        open_gcppm("gcppm:///prefix")
    with pytest.raises(ConfigurationError):
        open_gcppm("gcppm://p?insecure=true")
    with pytest.raises(ConfigurationError):
        open_gcppm("gcppm://p?endpoint=x:1&insecure=true&colour=red")


def test_concurrent_writers_to_one_parameter(backend: ParameterManagerBackend) -> None:
    """Writers of different keys in one parameter all land (a lost version id is retried);
    of two compare-and-set writes based on one version, exactly one wins."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: backend.put(f"shared/k{i}", str(i).encode()), range(12)))
    assert {e.key: e.value for e in backend.list("shared")} == {
        f"shared/k{i}": str(i).encode() for i in range(12)
    }
    base = backend.get("shared/k0")
    assert base is not None

    def cas(value: bytes) -> bool:
        try:
            backend.put("shared/k0", value, if_version=base.version)
        except VersionConflictError:
            return False
        return True

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(cas, [b"x", b"y"]))
    assert sorted(outcomes) == [False, True]


def test_oversized_first_write_creates_no_parameter(backend: ParameterManagerBackend) -> None:
    """Binary values grow by a third in a JSON document: the size is checked before the
    parameter is created, so a refused first write leaves nothing behind."""
    with pytest.raises(ValueTooLargeError):
        backend.put("blob/data", b"\xff" * (900 * 1024))
    names = [p.name for p in backend._client.list_parameters(request={"parent": backend._parent})]
    assert names == []


def test_rendered_secret_never_logged_or_shown(
    transport: str, project: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Rendered at DEBUG through the client library, listed by the CLI: the secret value
    appears in no log record and is masked in the CLI's output."""
    import logging
    import subprocess
    import sys

    ref = secret_version(project, "cli-pass", b"Sup3rS3cretRendered")
    url = server_url(transport, project)
    backend = open_gcppm(url)
    try:
        parameter(
            backend,
            "svc",
            JSON,
            json.dumps(
                {"host": "h", "pw": f"__REF__(//secretmanager.googleapis.com/{ref})"}
            ).encode(),
        )
        with (
            caplog.at_level(logging.DEBUG),
            Client(backend, cache=CachePolicy(ttl=60)) as client,
        ):
            assert client.get("svc/pw") == "Sup3rS3cretRendered"
            shown = repr(client.get_entry("svc/pw"))
        assert "Sup3rS3cret" not in caplog.text and "Sup3rS3cret" not in shown
    finally:
        backend.close()
    listed = subprocess.run(
        [sys.executable, "-m", "veltrix", "ls", "svc", "--values", "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "svc/host" in listed.stdout and "svc/pw" in listed.stdout
    assert "Sup3rS3cret" not in listed.stdout + listed.stderr
