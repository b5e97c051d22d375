"""The Kubernetes test server speaks the API as the official ``kubernetes`` client and
kubectl use it: discovery, CRUD with the API's status codes, the three patch types,
label selectors, watch semantics (events after a version, 410 ERROR events, bookmarks)
and authentication/authorization (401 without a valid token, 403 for the read-only
token). kubectl runs with ``--validate=false``: the server does not serve OpenAPI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.integration.test_kubernetes_conformance import server_kubeconfig
from tests.servers.kubernetes.server import KubernetesServer
from tests.support import missing_server, unique_name

NS = "default"


def api_for(kubeconfig: str, context: str | None = None) -> client.CoreV1Api:
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=kubeconfig,
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    return client.CoreV1Api(client.ApiClient(configuration))


@pytest.fixture(scope="module")
def api() -> client.CoreV1Api:
    return api_for(server_kubeconfig())


@pytest.fixture
def name(api: client.CoreV1Api) -> Iterator[str]:
    name = unique_name("srv")
    yield name
    for delete in (api.delete_namespaced_config_map, api.delete_namespaced_secret):
        with contextlib.suppress(ApiException):
            delete(name, NS)


def status_of(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["code"] == exc.status
    return dict(body)


def config_map(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> Any:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)


def test_discovery(api: client.CoreV1Api) -> None:
    version = client.VersionApi(api.api_client).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")
    resources = api.get_api_resources()
    kinds = {r.name: r for r in resources.resources}
    assert kinds["configmaps"].kind == "ConfigMap" and kinds["configmaps"].namespaced
    assert "watch" in kinds["secrets"].verbs
    assert client.CoreApi(api.api_client).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(api.api_client).get_api_versions()
    assert groups.groups == []


def test_crud_and_conflicts(api: client.CoreV1Api, name: str) -> None:
    created = api.create_namespaced_config_map(NS, config_map(name, {"a": "1"}))
    rv = created.metadata.resource_version
    assert created.metadata.uid and created.data == {"a": "1"}
    with pytest.raises(ApiException) as exists:
        api.create_namespaced_config_map(NS, config_map(name, {"a": "2"}))
    assert exists.value.status == 409 and status_of(exists.value)["reason"] == "AlreadyExists"
    created.data = {"a": "2"}
    updated = api.replace_namespaced_config_map(name, NS, created)
    assert int(updated.metadata.resource_version) > int(rv)
    created.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        api.replace_namespaced_config_map(name, NS, created)
    assert stale.value.status == 409 and status_of(stale.value)["reason"] == "Conflict"
    same = api.patch_namespaced_config_map(name, NS, {"data": {"a": "2"}})
    assert same.metadata.resource_version == updated.metadata.resource_version, "no-op write"
    with pytest.raises(ApiException) as precondition:
        api.delete_namespaced_config_map(
            name,
            NS,
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=rv)),
        )
    assert precondition.value.status == 409
    status = api.delete_namespaced_config_map(name, NS, _preload_content=False)
    assert json.loads(status.data)["status"] == "Success"
    with pytest.raises(ApiException) as gone:
        api.read_namespaced_config_map(name, NS)
    assert gone.value.status == 404 and status_of(gone.value)["reason"] == "NotFound"


def test_patch_types(api: client.CoreV1Api, name: str) -> None:
    created = api.create_namespaced_config_map(NS, config_map(name, {"a": "1", "b": "2"}))
    merged = api.patch_namespaced_config_map(
        name, NS, {"data": {"a": None, "c": "3"}}, _content_type="application/merge-patch+json"
    )
    assert merged.data == {"b": "2", "c": "3"}
    strategic = api.patch_namespaced_config_map(name, NS, {"data": {"b": None}})
    assert strategic.data == {"c": "3"}
    patched = api.patch_namespaced_config_map(
        name, NS, [{"op": "add", "path": "/data/d", "value": "4"}]
    )
    assert patched.data == {"c": "3", "d": "4"}
    with pytest.raises(ApiException) as stale:
        api.patch_namespaced_config_map(
            name,
            NS,
            {
                "metadata": {"resourceVersion": created.metadata.resource_version},
                "data": {"e": "5"},
            },
        )
    assert stale.value.status == 409
    with pytest.raises(ApiException) as media:
        api.patch_namespaced_config_map(
            name, NS, {"data": {}}, _content_type="application/apply-patch+yaml"
        )
    assert media.value.status == 415


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metadata": {"name": "Upper_Case"}, "data": {"a": "1"}}, "metadata.name"),
        ({"metadata": {"name": "ok-name"}, "data": {"a/b": "1"}}, "data"),
        ({"metadata": {"name": "ok-name"}, "data": {"..a": "1"}}, "data"),
        ({"metadata": {"name": "ok-name"}, "data": {"a": "x" * (1024 * 1024)}}, "[]"),
        ({"metadata": {"name": "ok-name", "labels": {"bad key!": "v"}}}, "metadata.labels"),
    ],
)
def test_invalid_objects_are_422(api: client.CoreV1Api, body: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiException) as invalid:
        api.create_namespaced_config_map(NS, body)
    status = status_of(invalid.value)
    assert invalid.value.status == 422 and status["reason"] == "Invalid"
    assert any(cause["field"].startswith(field) for cause in status["details"]["causes"])


def test_label_and_field_selectors(api: client.CoreV1Api) -> None:
    tag = unique_name("sel")
    names = [f"{tag}-{i}" for i in range(3)]
    tiers = ["web", "db", None]
    for item, tier in zip(names, tiers, strict=True):
        labels = {"run": tag} | ({"tier": tier} if tier else {})
        api.create_namespaced_config_map(NS, config_map(item, {"k": "v"}, labels))
    try:

        def select(selector: str, fields: str | None = None) -> set[str]:
            found = api.list_namespaced_config_map(
                NS, label_selector=f"run={tag},{selector}".rstrip(","), field_selector=fields
            )
            return {item.metadata.name for item in found.items}

        assert select("") == set(names)
        assert select("tier=web") == {names[0]}
        assert select("tier!=web") == {names[1], names[2]}
        assert select("tier in (web,db)") == {names[0], names[1]}
        assert select("tier notin (web)") == {names[1], names[2]}
        assert select("!tier") == {names[2]}
        assert select("tier") == {names[0], names[1]}
        assert select("", f"metadata.name={names[1]}") == {names[1]}
        with pytest.raises(ApiException) as bad:
            api.list_namespaced_config_map(NS, label_selector="a in b")
        assert bad.value.status == 400
    finally:
        for item in names:
            api.delete_namespaced_config_map(item, NS)


def test_secrets_are_base64_and_merge_string_data(api: client.CoreV1Api, name: str) -> None:
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name),
        data={"a": "aHVudGVyMg=="},
        string_data={"b": "plain"},
    )
    created = api.create_namespaced_secret(NS, secret)
    assert created.data == {"a": "aHVudGVyMg==", "b": "cGxhaW4="} and created.type == "Opaque"
    with pytest.raises(ApiException) as bad:
        api.create_namespaced_secret(
            NS, client.V1Secret(metadata=client.V1ObjectMeta(name=name + "x"), data={"a": "!!"})
        )
    assert bad.value.status == 400


def test_authentication_and_authorization(api: client.CoreV1Api, name: str, tmp_path: Path) -> None:
    reader = api_for(server_kubeconfig(), context="veltrix-test-reader")
    api.create_namespaced_config_map(NS, config_map(name, {"a": "1"}))
    assert reader.read_namespaced_config_map(name, NS).data == {"a": "1"}
    with pytest.raises(ApiException) as forbidden:
        reader.patch_namespaced_config_map(name, NS, {"data": {"a": "2"}})
    assert forbidden.value.status == 403 and status_of(forbidden.value)["reason"] == "Forbidden"
    text = Path(server_kubeconfig()).read_text()
    wrong = tmp_path / "kubeconfig"
    wrong.write_text(
        "\n".join("    token: wrong" if "token:" in line else line for line in text.splitlines())
    )
    with pytest.raises(ApiException) as unauthorized:
        api_for(str(wrong)).read_namespaced_config_map(name, NS)
    assert unauthorized.value.status == 401


def _watch_events(api: client.CoreV1Api, **kwargs: Any) -> list[dict[str, Any]]:
    response = api.list_namespaced_config_map(NS, watch=True, _preload_content=False, **kwargs)
    lines = response.data.decode().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_watch_from_a_version(api: client.CoreV1Api, name: str) -> None:
    tag = unique_name("w")
    created = api.create_namespaced_config_map(NS, config_map(name, {"a": "1"}, {"w": tag}))
    api.patch_namespaced_config_map(name, NS, {"data": {"a": "2"}})
    api.delete_namespaced_config_map(name, NS)
    events = _watch_events(
        api,
        label_selector=f"w={tag}",
        resource_version=created.metadata.resource_version,
        timeout_seconds=1,
    )
    assert [(e["type"], e["object"]["data"]["a"]) for e in events] == [
        ("MODIFIED", "2"),
        ("DELETED", "2"),
    ]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )
    fresh = _watch_events(api, label_selector=f"w={tag}", timeout_seconds=1)
    assert fresh == [], "a watch without a version starts with the current state (none)"


@pytest.fixture
def short_history() -> Iterator[client.CoreV1Api]:
    server = KubernetesServer(("127.0.0.1", 0), history=2, bookmark_interval=0.2)
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_port}"
    yield client.CoreV1Api(client.ApiClient(configuration))
    server.shutdown()
    server.server_close()


def test_watch_too_old_is_a_410_error_event(short_history: client.CoreV1Api) -> None:
    first = short_history.create_namespaced_config_map(NS, config_map("a", {"k": "0"}))
    for i in range(1, 5):
        short_history.patch_namespaced_config_map("a", NS, {"data": {"k": str(i)}})
    events = _watch_events(
        short_history, resource_version=first.metadata.resource_version, timeout_seconds=1
    )
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_watch_bookmarks(short_history: client.CoreV1Api) -> None:
    created = short_history.create_namespaced_config_map(NS, config_map("b", {"k": "0"}))
    events = _watch_events(
        short_history,
        resource_version=created.metadata.resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    )
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and all(e["type"] == "BOOKMARK" for e in events)
    assert (
        bookmarks[-1]["object"]["metadata"]["resourceVersion"] == created.metadata.resource_version
    )
    assert "data" not in bookmarks[-1]["object"]


# -- kubectl -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubectl() -> Iterator[Any]:
    binary = shutil.which("kubectl")
    if binary is None:
        missing_server("kubectl is not installed (Debian kubernetes-client)")
    env = {**os.environ, "KUBECONFIG": server_kubeconfig()}

    def run(
        *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(binary), *args],
            check=False,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    yield run


def test_kubectl_create_get_apply_delete(kubectl: Any, api: client.CoreV1Api) -> None:
    name = unique_name("kctl")
    kubectl("create", "configmap", name, "--from-literal=a=1", "--from-literal=b=2")
    got = json.loads(kubectl("get", "configmap", name, "-o", "json").stdout)
    assert got["data"] == {"a": "1", "b": "2"}
    assert name in kubectl("get", "cm").stdout
    manifest = (
        "apiVersion: v1\nkind: ConfigMap\n"
        f"metadata: {{name: {name}, labels: {{tier: web}}}}\ndata: {{a: '10'}}\n"
    )
    assert "configured" in kubectl("apply", "--validate=false", "-f", "-", stdin=manifest).stdout
    current = api.read_namespaced_config_map(name, NS)
    assert current.data == {"a": "10", "b": "2"}  # apply merges into what `create` made
    assert current.metadata.labels == {"tier": "web"}
    second = manifest.replace("'10'", "'11'")
    kubectl("apply", "--validate=false", "-f", "-", stdin=second)
    assert api.read_namespaced_config_map(name, NS).data == {"a": "11", "b": "2"}
    assert name in kubectl("get", "configmaps", "-l", "tier=web", "-o", "name").stdout
    denied = kubectl("--context", "veltrix-test-reader", "delete", "configmap", name, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr
    assert "deleted" in kubectl("delete", "configmap", name).stdout
    missing = kubectl("get", "configmap", name, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_kubectl_apply_creates_and_sees_veltrix_objects(kubectl: Any) -> None:
    from veltrix.registry import open_backend

    name = unique_name("kapp")
    manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{x: z}}\n"
    assert "created" in kubectl("apply", "--validate=false", "-f", "-", stdin=manifest).stdout
    kubectl("delete", "configmap", name)
    prefix = unique_name("kv")
    backend = open_backend(f"k8s://default/{prefix}", kubeconfig=server_kubeconfig())
    try:
        backend.put("payments/timeout_ms", b"250")  # type: ignore[attr-defined]
        listed = json.loads(
            kubectl(
                "get", "configmaps", "-l", "app.kubernetes.io/managed-by=veltrix", "-o", "json"
            ).stdout
        )
        ours = [
            item
            for item in listed["items"]
            if item["metadata"]["annotations"].get("veltrix.io/path") == f"{prefix}/payments"
        ]
        assert len(ours) == 1 and ours[0]["data"] == {"timeout__ms": "250"}
    finally:
        backend.delete("payments/timeout_ms")  # type: ignore[attr-defined]
        backend.close()


def test_kubectl_patch_label_and_secrets(kubectl: Any, api: client.CoreV1Api) -> None:
    name = unique_name("kpatch")
    kubectl("create", "configmap", name, "--from-literal=a=1")
    try:
        kubectl("patch", "configmap", name, "-p", '{"data":{"a":"2"}}')
        kubectl("patch", "configmap", name, "--type=merge", "-p", '{"data":{"b":"3"}}')
        kubectl(
            "patch", "configmap", name, "--type=json", "-p", '[{"op":"remove","path":"/data/a"}]'
        )
        kubectl("label", "configmap", name, "tier=db")
        current = api.read_namespaced_config_map(name, NS)
        assert current.data == {"b": "3"} and current.metadata.labels == {"tier": "db"}
    finally:
        kubectl("delete", "configmap", name)
    secret = unique_name("ksec")
    kubectl("create", "secret", "generic", secret, "--from-literal=password=pa55")
    try:
        encoded = kubectl("get", "secret", secret, "-o", "jsonpath={.data.password}").stdout
        assert encoded == "cGE1NQ=="  # base64 of pa55
    finally:
        kubectl("delete", "secret", secret)


def test_server_side_dry_run_is_refused_without_writing(api: client.CoreV1Api) -> None:
    name = unique_name("dry")
    with pytest.raises(ApiException) as refused:
        api.create_namespaced_config_map(NS, config_map(name, {"a": "1"}), dry_run="All")
    assert refused.value.status == 400
    with pytest.raises(ApiException) as absent:
        api.read_namespaced_config_map(name, NS)
    assert absent.value.status == 404
