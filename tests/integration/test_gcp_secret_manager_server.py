"""The Secret Manager test server answers the official client (gRPC and REST) the way the
v1 API reference says the real service does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.secretmanager_v1.types import SecretVersion

from tests.support import server_env, unique_name
from veltrix.adapters.gcp_secret_manager import crc32c, status_of

ENABLED = SecretVersion.State.ENABLED
DISABLED = SecretVersion.State.DISABLED
DESTROYED = SecretVersion.State.DESTROYED


def make_client(transport: str, endpoint: str) -> SecretManagerServiceClient:
    if transport == "grpc":
        channel = grpc.insecure_channel(endpoint)
        return SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )
    return SecretManagerServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=f"http://{endpoint}"),
    )


@pytest.fixture(params=["grpc", "rest"])
def client(request: pytest.FixtureRequest) -> Iterator[SecretManagerServiceClient]:
    variable = {"grpc": "VELTRIX_TEST_GCPSM_GRPC", "rest": "VELTRIX_TEST_GCPSM_REST"}[request.param]
    endpoint = server_env(variable, f"Secret Manager test server ({request.param})")
    c = make_client(request.param, endpoint)
    yield c
    c.transport.close()


@pytest.fixture
def parent() -> str:
    return f"projects/{unique_name('srv')}"


def status(call: Any) -> str:
    with pytest.raises(gexc.GoogleAPICallError) as info:
        call()
    return status_of(info.value)


def create(client: SecretManagerServiceClient, parent: str, secret_id: str, **secret: Any) -> Any:
    return client.create_secret(
        request={
            "parent": parent,
            "secret_id": secret_id,
            "secret": {"replication": {"automatic": {}}, **secret},
        }
    )


def add(client: SecretManagerServiceClient, name: str, data: bytes) -> Any:
    return client.add_secret_version(request={"parent": name, "payload": {"data": data}})


def test_create_get_and_already_exists(client: SecretManagerServiceClient, parent: str) -> None:
    secret = create(client, parent, "db_password-1", labels={"env": "prod"})
    assert secret.name == f"{parent}/secrets/db_password-1"
    assert secret.etag and secret.create_time
    assert client.get_secret(request={"name": secret.name}).labels == {"env": "prod"}
    assert status(lambda: create(client, parent, "db_password-1")) == "ALREADY_EXISTS"
    assert status(lambda: client.get_secret(request={"name": f"{parent}/secrets/nope"})) == (
        "NOT_FOUND"
    )


@pytest.mark.parametrize("secret_id", ["a.b", "a/b", "x" * 256, "ä"])
def test_invalid_secret_ids(
    client: SecretManagerServiceClient, parent: str, secret_id: str
) -> None:
    assert status(lambda: create(client, parent, secret_id)) == "INVALID_ARGUMENT"


def test_secret_id_at_limit(client: SecretManagerServiceClient, parent: str) -> None:
    create(client, parent, "x" * 255)


@pytest.mark.parametrize(
    "labels", [{"Env": "x"}, {"1env": "x"}, {"env": "UPPER"}, {"e" * 64: "x"}, {"env": "v" * 64}]
)
def test_invalid_labels(
    client: SecretManagerServiceClient, parent: str, labels: dict[str, str]
) -> None:
    assert status(lambda: create(client, parent, "s", labels=labels)) == "INVALID_ARGUMENT"


def test_replication_required_for_global_secrets(
    client: SecretManagerServiceClient, parent: str
) -> None:
    request = {"parent": parent, "secret_id": "s", "secret": {}}
    assert status(lambda: client.create_secret(request=request)) == "INVALID_ARGUMENT"


def test_regional_secret(client: SecretManagerServiceClient, parent: str) -> None:
    regional = f"{parent}/locations/europe-west1"
    secret = client.create_secret(request={"parent": regional, "secret_id": "s", "secret": {}})
    assert secret.name == f"{regional}/secrets/s"
    add(client, secret.name, b"v")
    latest = client.access_secret_version(request={"name": f"{secret.name}/versions/latest"})
    assert latest.payload.data == b"v"


def test_versions_latest_and_states(client: SecretManagerServiceClient, parent: str) -> None:
    secret = create(client, parent, "s")
    latest = f"{secret.name}/versions/latest"
    assert status(lambda: client.access_secret_version(request={"name": latest})) == "NOT_FOUND"
    v1 = add(client, secret.name, b"one")
    v2 = add(client, secret.name, b"two")
    assert (v1.name.rsplit("/", 1)[1], v2.name.rsplit("/", 1)[1]) == ("1", "2")
    assert v2.state == ENABLED
    response = client.access_secret_version(request={"name": latest})
    assert (response.name, response.payload.data) == (v2.name, b"two")
    assert response.payload.data_crc32c == crc32c(b"two")
    disabled = client.disable_secret_version(request={"name": v2.name})
    assert disabled.state == DISABLED and disabled.etag != v2.etag
    # ``latest`` is the newest version whatever its state: it fails now
    assert status(lambda: client.access_secret_version(request={"name": latest})) == (
        "FAILED_PRECONDITION"
    )
    assert client.get_secret_version(request={"name": latest}).state == DISABLED
    assert client.access_secret_version(request={"name": v1.name}).payload.data == b"one"
    enabled = client.enable_secret_version(request={"name": v2.name})
    assert enabled.state == ENABLED
    destroyed = client.destroy_secret_version(request={"name": v1.name})
    assert destroyed.state == DESTROYED and destroyed.destroy_time
    assert status(lambda: client.access_secret_version(request={"name": v1.name})) == (
        "FAILED_PRECONDITION"
    )
    assert status(lambda: client.enable_secret_version(request={"name": v1.name})) == (
        "FAILED_PRECONDITION"
    )
    states = [
        (v.name.rsplit("/", 1)[1], v.state)
        for v in client.list_secret_versions(request={"parent": secret.name})
    ]
    assert states == [("2", ENABLED), ("1", DESTROYED)]  # newest first
    enabled_only = client.list_secret_versions(
        request={"parent": secret.name, "filter": "state:ENABLED"}
    )
    assert [v.name for v in enabled_only] == [v2.name]
    missing = f"{secret.name}/versions/9"
    assert status(lambda: client.get_secret_version(request={"name": missing})) == "NOT_FOUND"


def test_version_etags(client: SecretManagerServiceClient, parent: str) -> None:
    secret = create(client, parent, "s")
    version = add(client, secret.name, b"x")
    request = {"name": version.name, "etag": '"stale"'}
    assert status(lambda: client.disable_secret_version(request=request)) == "ABORTED"
    client.disable_secret_version(request={"name": version.name, "etag": version.etag})


def test_payload_limits_and_checksum(client: SecretManagerServiceClient, parent: str) -> None:
    secret = create(client, parent, "s")
    assert status(lambda: add(client, secret.name, b"x" * (64 * 1024 + 1))) == "INVALID_ARGUMENT"
    assert status(lambda: add(client, secret.name, b"")) == "INVALID_ARGUMENT"
    add(client, secret.name, b"x" * (64 * 1024))
    bad = {"parent": secret.name, "payload": {"data": b"hello", "data_crc32c": 1}}
    assert status(lambda: client.add_secret_version(request=bad)) == "INVALID_ARGUMENT"
    good = {"parent": secret.name, "payload": {"data": b"hello", "data_crc32c": 0x9A71BB4C}}
    assert client.add_secret_version(request=good).client_specified_payload_checksum
    missing = f"{parent}/secrets/nope"
    assert status(lambda: add(client, missing, b"x")) == "NOT_FOUND"


def test_update_and_delete_with_etags(client: SecretManagerServiceClient, parent: str) -> None:
    secret = create(client, parent, "s", labels={"a": "1"})
    stale = secret.etag
    updated = client.update_secret(
        request={
            "secret": {"name": secret.name, "labels": {"b": "2"}, "annotations": {"k.x": "v"}},
            "update_mask": {"paths": ["labels", "annotations"]},
        }
    )
    assert dict(updated.labels) == {"b": "2"} and dict(updated.annotations) == {"k.x": "v"}
    assert updated.etag != stale
    conflict = {
        "secret": {"name": secret.name, "labels": {"c": "3"}, "etag": stale},
        "update_mask": {"paths": ["labels"]},
    }
    assert status(lambda: client.update_secret(request=conflict)) == "ABORTED"
    no_mask = {"secret": {"name": secret.name, "labels": {"c": "3"}}}
    assert status(lambda: client.update_secret(request=no_mask)) == "INVALID_ARGUMENT"
    request = {"name": secret.name, "etag": stale}
    assert status(lambda: client.delete_secret(request=request)) == "ABORTED"
    client.delete_secret(request={"name": secret.name, "etag": updated.etag})
    assert status(lambda: client.get_secret(request={"name": secret.name})) == "NOT_FOUND"
    assert status(lambda: client.delete_secret(request={"name": secret.name})) == "NOT_FOUND"


def test_list_filters_and_pages(client: SecretManagerServiceClient, parent: str) -> None:
    for i in range(7):
        create(client, parent, f"s{i}", labels={"team": "a" if i % 2 else "b"})
    create(client, f"{parent}x", "other")  # another project: never listed
    names = [s.name.rsplit("/", 1)[1] for s in client.list_secrets(request={"parent": parent})]
    assert names == [f"s{i}" for i in range(7)]
    page = client.list_secrets(request={"parent": parent, "page_size": 3}).pages
    sizes = [len(p.secrets) for p in page]
    assert sizes == [3, 3, 1]

    def listed(expression: str) -> list[str]:
        request = {"parent": parent, "filter": expression}
        return [s.name.rsplit("/", 1)[1] for s in client.list_secrets(request=request)]

    assert listed("labels.team=a") == ["s1", "s3", "s5"]
    assert listed("labels.team=a AND name:s3") == ["s3"]
    assert listed("name:s1 OR name:s2") == ["s1", "s2"]
    assert listed("labels.team:* NOT labels.team=b") == ["s1", "s3", "s5"]
    assert listed("labels.missing:*") == []
    bad = {"parent": parent, "filter": "colour=red"}
    assert status(lambda: list(client.list_secrets(request=bad))) == "INVALID_ARGUMENT"
    token = {"parent": parent, "page_token": "not-a-token"}
    assert status(lambda: list(client.list_secrets(request=token))) == "INVALID_ARGUMENT"


def test_version_aliases(client: SecretManagerServiceClient, parent: str) -> None:
    secret = create(client, parent, "aliased")
    add(client, secret.name, b"one")
    add(client, secret.name, b"two")
    updated = client.update_secret(
        request={
            "secret": {"name": secret.name, "version_aliases": {"stable": 1, "canary": 2}},
            "update_mask": {"paths": ["version_aliases"]},
        }
    )
    assert dict(updated.version_aliases) == {"stable": 1, "canary": 2}
    stable = client.access_secret_version(request={"name": f"{secret.name}/versions/stable"})
    assert stable.payload.data == b"one" and stable.name.endswith("/versions/1")
    unknown = f"{secret.name}/versions/nope"
    assert status(lambda: client.access_secret_version(request={"name": unknown})) == "NOT_FOUND"
    for bad in ({"latest": 1}, {"gone": 9}, {"a b": 1}):
        assert (
            status(
                lambda bad=bad: client.update_secret(
                    request={
                        "secret": {"name": secret.name, "version_aliases": bad},
                        "update_mask": {"paths": ["version_aliases"]},
                    }
                )
            )
            == "INVALID_ARGUMENT"
        )


def test_ttl_is_answered_as_expire_time(client: SecretManagerServiceClient, parent: str) -> None:
    secret = create(client, parent, "short-lived", ttl={"seconds": 3600})
    assert secret.expire_time and "ttl" not in secret
    got = client.get_secret(request={"name": secret.name})
    assert got.expire_time == secret.expire_time and "ttl" not in got
    brief = create(client, parent, "brief", ttl={"nanos": 50_000_000})
    import time

    time.sleep(0.1)
    assert status(lambda: client.get_secret(request={"name": brief.name})) == "NOT_FOUND"
