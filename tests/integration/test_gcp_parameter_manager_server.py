"""The Parameter Manager test server answers the official client (gRPC and REST) the way
the v1 API reference says the real service does, and renders secret references against
the Secret Manager state it serves on the same ports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.parametermanager_v1 import ParameterManagerClient
from google.cloud.parametermanager_v1.services.parameter_manager.transports import (
    ParameterManagerGrpcTransport,
)
from google.cloud.parametermanager_v1.types import ParameterFormat, View
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.iam.v1 import policy_pb2

from tests.support import server_env, unique_name
from veltrix.adapters.gcp_secret_manager import status_of

JSON = ParameterFormat.JSON
YAML = ParameterFormat.YAML
UNFORMATTED = ParameterFormat.UNFORMATTED


@dataclass
class Clients:
    pm: ParameterManagerClient
    sm: SecretManagerServiceClient


def make_clients(transport: str, endpoint: str) -> Clients:
    if transport == "grpc":
        channel = grpc.insecure_channel(endpoint)
        return Clients(
            ParameterManagerClient(transport=ParameterManagerGrpcTransport(channel=channel)),
            SecretManagerServiceClient(
                transport=SecretManagerServiceGrpcTransport(channel=channel)
            ),
        )
    options = ClientOptions(api_endpoint=f"http://{endpoint}")
    return Clients(
        ParameterManagerClient(
            transport="rest", credentials=AnonymousCredentials(), client_options=options
        ),
        SecretManagerServiceClient(
            transport="rest", credentials=AnonymousCredentials(), client_options=options
        ),
    )


@pytest.fixture(params=["grpc", "rest"])
def clients(request: pytest.FixtureRequest) -> Iterator[Clients]:
    variable = {"grpc": "VELTRIX_TEST_GCPPM_GRPC", "rest": "VELTRIX_TEST_GCPPM_REST"}[request.param]
    endpoint = server_env(variable, f"Parameter Manager test server ({request.param})")
    c = make_clients(request.param, endpoint)
    yield c
    c.pm.transport.close()
    c.sm.transport.close()


@pytest.fixture
def project() -> str:
    return unique_name("srv")


@pytest.fixture
def parent(project: str) -> str:
    return f"projects/{project}/locations/global"


def status(call: Any) -> str:
    with pytest.raises(gexc.GoogleAPICallError) as info:
        call()
    return status_of(info.value)


def create(clients: Clients, parent: str, parameter_id: str, fmt: Any = JSON) -> Any:
    return clients.pm.create_parameter(
        request={"parent": parent, "parameter_id": parameter_id, "parameter": {"format_": fmt}}
    )


def version(clients: Clients, name: str, version_id: str, data: bytes, **extra: Any) -> Any:
    return clients.pm.create_parameter_version(
        request={
            "parent": name,
            "parameter_version_id": version_id,
            "parameter_version": {"payload": {"data": data}, **extra},
        }
    )


def secret(clients: Clients, project: str, secret_id: str, data: bytes) -> str:
    created = clients.sm.create_secret(
        request={
            "parent": f"projects/{project}",
            "secret_id": secret_id,
            "secret": {"replication": {"automatic": {}}},
        }
    )
    added = clients.sm.add_secret_version(
        request={"parent": created.name, "payload": {"data": data}}
    )
    return str(added.name)


def test_parameter_crud_and_errors(clients: Clients, parent: str) -> None:
    parameter = create(clients, parent, "app-config", JSON)
    assert parameter.name == f"{parent}/parameters/app-config"
    assert parameter.format_ == JSON
    assert parameter.policy_member.iam_policy_uid_principal.startswith("principal://")
    assert status(lambda: create(clients, parent, "app-config")) == "ALREADY_EXISTS"
    assert status(lambda: create(clients, parent, "bad.id")) == "INVALID_ARGUMENT"
    assert status(lambda: create(clients, parent, "x" * 64)) == "INVALID_ARGUMENT"
    got = clients.pm.get_parameter(request={"name": parameter.name})
    assert got.format_ == JSON
    assert status(
        lambda: clients.pm.get_parameter(request={"name": f"{parent}/parameters/no"})
    ) == ("NOT_FOUND")
    updated = clients.pm.update_parameter(
        request={
            "parameter": {"name": parameter.name, "labels": {"env": "prod"}},
            "update_mask": {"paths": ["labels"]},
        }
    )
    assert updated.labels == {"env": "prod"}
    version(clients, parameter.name, "v1", b'{"a": 1}')
    assert status(lambda: clients.pm.delete_parameter(request={"name": parameter.name})) == (
        "FAILED_PRECONDITION"
    )
    clients.pm.delete_parameter_version(request={"name": f"{parameter.name}/versions/v1"})
    clients.pm.delete_parameter(request={"name": parameter.name})
    assert status(lambda: clients.pm.get_parameter(request={"name": parameter.name})) == (
        "NOT_FOUND"
    )


def test_versions_formats_and_views(clients: Clients, parent: str) -> None:
    as_json = create(clients, parent, "j", JSON).name
    as_yaml = create(clients, parent, "y", YAML).name
    raw = create(clients, parent, "u", UNFORMATTED).name
    version(clients, as_json, "v1", b'{"a": [1, 2]}')
    assert status(lambda: version(clients, as_json, "v2", b"{not json")) == "INVALID_ARGUMENT"
    assert status(lambda: version(clients, as_json, "v1", b"{}")) == "ALREADY_EXISTS"
    version(clients, as_yaml, "v1", b"a:\n  b: 1\n")
    assert status(lambda: version(clients, as_yaml, "v2", b"a: [1,\n")) == "INVALID_ARGUMENT"
    version(clients, raw, "v1", b"\xff\x00 anything")
    too_big = b"x" * (1024 * 1024 + 1)
    assert status(lambda: version(clients, raw, "v2", too_big)) == "INVALID_ARGUMENT"
    assert status(lambda: version(clients, raw, "v2", b"")) == "INVALID_ARGUMENT"
    full = clients.pm.get_parameter_version(request={"name": f"{raw}/versions/v1"})
    assert full.payload.data == b"\xff\x00 anything"
    basic = clients.pm.get_parameter_version(
        request={"name": f"{raw}/versions/v1", "view": View.BASIC}
    )
    assert basic.payload.data == b""
    assert status(
        lambda: clients.pm.get_parameter_version(request={"name": f"{raw}/versions/v9"})
    ) == ("NOT_FOUND")


def test_disabled_versions(clients: Clients, parent: str) -> None:
    name = create(clients, parent, "d", JSON).name
    version(clients, name, "v1", b'{"a": 1}')
    version(clients, name, "v2", b'{"a": 2}', disabled=True)
    v2 = clients.pm.get_parameter_version(request={"name": f"{name}/versions/v2"})
    assert v2.disabled and v2.payload.data == b"", "a disabled version never shows its payload"
    render = f"{name}/versions/v2"
    assert status(lambda: clients.pm.render_parameter_version(request={"name": render})) == (
        "FAILED_PRECONDITION"
    )
    clients.pm.update_parameter_version(
        request={
            "parameter_version": {"name": render, "disabled": False},
            "update_mask": {"paths": ["disabled"]},
        }
    )
    rendered = clients.pm.render_parameter_version(request={"name": render})
    assert json.loads(rendered.rendered_payload) == {"a": 2}
    listed = clients.pm.list_parameter_versions(
        request={"parent": name, "filter": "disabled=false"}
    )
    assert sorted(v.name.rsplit("/", 1)[1] for v in listed) == ["v1", "v2"]


def test_list_filters_order_and_paging(clients: Clients, parent: str) -> None:
    for index in range(5):
        create(clients, parent, f"p{index}", JSON if index % 2 else YAML)
    names = [
        p.name.rsplit("/", 1)[1]
        for p in clients.pm.list_parameters(request={"parent": parent, "page_size": 2})
    ]
    assert names == ["p0", "p1", "p2", "p3", "p4"], "pages of 2 follow the tokens"
    page = clients.pm.list_parameters(request={"parent": parent, "page_size": 2})
    assert page.next_page_token
    json_only = clients.pm.list_parameters(request={"parent": parent, "filter": "format=JSON"})
    assert [p.name.rsplit("/", 1)[1] for p in json_only] == ["p1", "p3"]
    assert status(
        lambda: list(clients.pm.list_parameters(request={"parent": parent, "filter": "nope=1"}))
    ) == ("INVALID_ARGUMENT")
    name = f"{parent}/parameters/p1"
    for version_id in ("b", "a", "c"):
        version(clients, name, version_id, b"{}")
    newest_first = clients.pm.list_parameter_versions(
        request={"parent": name, "order_by": "create_time desc"}
    )
    assert [v.name.rsplit("/", 1)[1] for v in newest_first] == ["c", "a", "b"]


def test_render_resolves_secret_references(clients: Clients, parent: str, project: str) -> None:
    secret_version = secret(clients, project, "db-pass", b'hun"ter2')
    name = create(clients, parent, "db", JSON).name
    data = json.dumps(
        {"host": "h", "password": f"__REF__(//secretmanager.googleapis.com/{secret_version})"}
    ).encode()
    version(clients, name, "v1", data)
    rendered = clients.pm.render_parameter_version(request={"name": f"{name}/versions/v1"})
    assert rendered.payload.data == data, "the raw payload keeps the reference"
    assert json.loads(rendered.rendered_payload) == {"host": "h", "password": 'hun"ter2'}
    as_yaml = create(clients, parent, "dby", YAML).name
    version(
        clients,
        as_yaml,
        "v1",
        f'pw: __REF__("//secretmanager.googleapis.com/{secret_version}")\n'.encode(),
    )
    out = clients.pm.render_parameter_version(request={"name": f"{as_yaml}/versions/v1"})
    assert out.rendered_payload == b'pw: hun"ter2\n'


def test_render_errors_name_the_reference(clients: Clients, parent: str, project: str) -> None:
    name = create(clients, parent, "broken", JSON).name
    missing = f"projects/{project}/secrets/absent/versions/1"
    version(
        clients,
        name,
        "v1",
        json.dumps({"p": f"__REF__(//secretmanager.googleapis.com/{missing})"}).encode(),
    )
    with pytest.raises(gexc.GoogleAPICallError) as info:
        clients.pm.render_parameter_version(request={"name": f"{name}/versions/v1"})
    assert status_of(info.value) == "NOT_FOUND" and missing in str(info.value)
    # a secret whose policy does not grant the parameter's principal: PERMISSION_DENIED
    denied = secret(clients, project, "locked", b"s3cret-value")
    clients.sm.set_iam_policy(
        request={
            "resource": denied.rsplit("/versions/", 1)[0],
            "policy": policy_pb2.Policy(
                bindings=[
                    policy_pb2.Binding(
                        role="roles/secretmanager.secretAccessor", members=["user:a@example.com"]
                    )
                ]
            ),
        }
    )
    other = create(clients, parent, "locked", JSON)
    version(
        clients,
        other.name,
        "v1",
        json.dumps({"p": f"__REF__(//secretmanager.googleapis.com/{denied})"}).encode(),
    )
    with pytest.raises(gexc.GoogleAPICallError) as info:
        clients.pm.render_parameter_version(request={"name": f"{other.name}/versions/v1"})
    assert status_of(info.value) == "PERMISSION_DENIED"
    assert "s3cret" not in str(info.value)
    # granting the parameter's own principal makes it render
    clients.sm.set_iam_policy(
        request={
            "resource": denied.rsplit("/versions/", 1)[0],
            "policy": policy_pb2.Policy(
                bindings=[
                    policy_pb2.Binding(
                        role="roles/secretmanager.secretAccessor",
                        members=[other.policy_member.iam_policy_uid_principal],
                    )
                ]
            ),
        }
    )
    out = clients.pm.render_parameter_version(request={"name": f"{other.name}/versions/v1"})
    assert json.loads(out.rendered_payload) == {"p": "s3cret-value"}


def test_unformatted_is_not_rendered(clients: Clients, parent: str, project: str) -> None:
    secret_version = secret(clients, project, "raw", b"value")
    name = create(clients, parent, "raw", UNFORMATTED).name
    data = f"__REF__(//secretmanager.googleapis.com/{secret_version})".encode()
    version(clients, name, "v1", data)
    out = clients.pm.render_parameter_version(request={"name": f"{name}/versions/v1"})
    assert out.rendered_payload == data
