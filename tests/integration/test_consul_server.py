"""The Consul test server speaks Consul's HTTP API as py-consul sends it.

These talk to the server process started by ``scripts/services up consul`` with
py-consul and plain ``requests``, checking the wire details the adapter relies on.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator

import consul
import pytest
import requests

from tests.support import server_env, unique_name


@pytest.fixture(scope="module")
def address() -> str:
    return server_env("VELTRIX_TEST_CONSUL_ADDR", "Consul test server")


@pytest.fixture
def base(address: str) -> str:
    return f"http://{address}"


@pytest.fixture
def client(address: str) -> consul.Consul:
    host, _, port = address.rpartition(":")
    return consul.Consul(host=host, port=int(port), token=None)


@pytest.fixture
def prefix(client: consul.Consul) -> Iterator[str]:
    name = f"wire/{unique_name()}"
    yield name
    client.kv.delete(name + "/", recurse=True)


def test_put_get_shape_and_headers(client: consul.Consul, base: str, prefix: str) -> None:
    assert client.kv.put(f"{prefix}/a", b"hello", flags=7) is True
    response = requests.get(f"{base}/v1/kv/{prefix}/a", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    for header in ("X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact"):
        assert header in response.headers
    [item] = response.json()
    assert set(item) == {"LockIndex", "Key", "Flags", "Value", "CreateIndex", "ModifyIndex"}
    assert item["Key"] == f"{prefix}/a" and item["Flags"] == 7
    assert base64.b64decode(item["Value"]) == b"hello"
    assert int(response.headers["X-Consul-Index"]) >= item["ModifyIndex"]
    index, data = client.kv.get(f"{prefix}/a")
    assert data["Value"] == b"hello" and int(index) >= data["ModifyIndex"]


def test_404_carries_index_headers(base: str, prefix: str) -> None:
    response = requests.get(f"{base}/v1/kv/{prefix}/missing", timeout=5)
    assert response.status_code == 404
    assert response.text == ""
    assert int(response.headers["X-Consul-Index"]) >= 1
    assert response.headers["X-Consul-KnownLeader"] == "true"


def test_empty_value_is_null_and_raw(client: consul.Consul, base: str, prefix: str) -> None:
    client.kv.put(f"{prefix}/empty", None)
    [item] = requests.get(f"{base}/v1/kv/{prefix}/empty", timeout=5).json()
    assert item["Value"] is None
    client.kv.put(f"{prefix}/bin", bytes(range(256)))
    raw = requests.get(f"{base}/v1/kv/{prefix}/bin?raw", timeout=5)
    assert raw.content == bytes(range(256))


def test_create_index_kept_modify_index_moves(client: consul.Consul, prefix: str) -> None:
    client.kv.put(f"{prefix}/k", "1")
    _, first = client.kv.get(f"{prefix}/k")
    client.kv.put(f"{prefix}/other", "x")
    client.kv.put(f"{prefix}/k", "2")
    _, second = client.kv.get(f"{prefix}/k")
    assert second["CreateIndex"] == first["CreateIndex"]
    assert second["ModifyIndex"] > first["ModifyIndex"] + 1  # one index shared by all writes


def test_cas_and_delete_answers(client: consul.Consul, prefix: str) -> None:
    key = f"{prefix}/cas"
    assert client.kv.put(key, "a", cas=0) is True
    assert client.kv.put(key, "b", cas=0) is False  # 0 = create only
    _, item = client.kv.get(key)
    assert client.kv.put(key, "c", cas=item["ModifyIndex"] + 1000) is False
    assert client.kv.put(key, "c", cas=item["ModifyIndex"]) is True
    _, item = client.kv.get(key)
    assert client.kv.delete(key, cas=item["ModifyIndex"] - 1) is False
    assert client.kv.delete(key, cas=item["ModifyIndex"]) is True
    assert client.kv.delete(key) is True  # plain delete answers true even when absent
    assert client.kv.delete(key, cas=5) is True  # as Consul: nothing to delete is success


def test_recurse_keys_separator_and_folders(client: consul.Consul, prefix: str) -> None:
    for key in ["a", "b/c", "b/d/e", "f/"]:
        client.kv.put(f"{prefix}/{key}", None if key.endswith("/") else key)
    _, items = client.kv.get(prefix + "/", recurse=True)
    assert [i["Key"] for i in items] == [f"{prefix}/{k}" for k in ["a", "b/c", "b/d/e", "f/"]]
    _, keys = client.kv.get(prefix + "/", keys=True, separator="/")
    assert keys == [f"{prefix}/a", f"{prefix}/b/", f"{prefix}/f/"]
    _, keys = client.kv.get(prefix + "/", keys=True)
    assert len(keys) == 4
    assert client.kv.get(prefix + "/zzz", recurse=True)[1] is None
    client.kv.delete(prefix + "/b", recurse=True)
    _, keys = client.kv.get(prefix + "/", keys=True)
    assert keys == [f"{prefix}/a", f"{prefix}/f/"]


def test_blocking_query_waits_for_a_change(client: consul.Consul, prefix: str) -> None:
    key = f"{prefix}/block"
    client.kv.put(key, "1")
    index, _ = client.kv.get(prefix, recurse=True)
    result: dict[str, object] = {}

    def block() -> None:
        started = time.monotonic()
        result["index"], result["items"] = client.kv.get(
            prefix, recurse=True, index=index, wait="30s"
        )
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=block)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive(), "a blocking query must wait while nothing changed"
    client.kv.put(key, "2")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert int(str(result["index"])) > int(index)
    assert [i["Value"] for i in result["items"]] == [b"2"]  # type: ignore[attr-defined]
    assert float(str(result["took"])) < 5


def test_blocking_query_wakes_on_delete_in_prefix(client: consul.Consul, prefix: str) -> None:
    client.kv.put(f"{prefix}/x", "1")
    index, _ = client.kv.get(prefix, recurse=True)
    done = threading.Event()

    def block() -> None:
        client.kv.get(prefix, recurse=True, index=index, wait="30s")
        done.set()

    threading.Thread(target=block, daemon=True).start()
    elsewhere = f"wire-elsewhere/{unique_name()}"
    client.kv.put(elsewhere, "no")  # outside the prefix: must not wake it
    assert not done.wait(0.5)
    client.kv.delete(f"{prefix}/x")
    assert done.wait(10)
    client.kv.delete(elsewhere)


def test_blocking_query_returns_at_once_when_behind(client: consul.Consul, prefix: str) -> None:
    client.kv.put(f"{prefix}/k", "1")
    index, _ = client.kv.get(prefix, recurse=True)
    client.kv.put(f"{prefix}/k", "2")
    started = time.monotonic()
    new_index, _ = client.kv.get(prefix, recurse=True, index=index, wait="30s")
    assert time.monotonic() - started < 2
    assert int(new_index) > int(index)


def test_blocking_query_ends_after_wait(client: consul.Consul, prefix: str) -> None:
    index, _ = client.kv.get(prefix, recurse=True)
    started = time.monotonic()
    same, _ = client.kv.get(prefix, recurse=True, index=index, wait="1s")
    took = time.monotonic() - started
    assert same == index
    assert 0.9 < took < 1.0 + 1.0 / 16 + 1.0  # wait plus at most wait/16 jitter (+ slack)


def test_bad_wait_and_index(base: str, prefix: str) -> None:
    assert requests.get(f"{base}/v1/kv/{prefix}?index=1&wait=10", timeout=5).status_code == 400
    assert requests.get(f"{base}/v1/kv/{prefix}?index=x", timeout=5).status_code == 400


def test_value_limit(client: consul.Consul, base: str, prefix: str) -> None:
    assert client.kv.put(f"{prefix}/max", b"x" * 524288) is True
    response = requests.put(f"{base}/v1/kv/{prefix}/big", data=b"x" * 524289, timeout=10)
    assert response.status_code == 413
    assert "too large" in response.text
    assert client.kv.get(f"{prefix}/big")[1] is None


def test_txn_verbs_and_results(base: str, prefix: str, client: consul.Consul) -> None:
    def kv(verb: str, key: str, **fields: object) -> dict[str, object]:
        return {"KV": {"Verb": verb, "Key": f"{prefix}/{key}", **fields}}

    value = base64.b64encode(b"v").decode()
    result = client.txn.put([kv("set", "a", Value=value), kv("cas", "b", Value=value, Index=0)])
    assert [r["KV"]["Key"] for r in result["Results"]] == [f"{prefix}/a", f"{prefix}/b"]
    assert all(r["KV"]["Value"] is None for r in result["Results"])  # no values for writes
    index = result["Results"][0]["KV"]["ModifyIndex"]
    assert result["Results"][1]["KV"]["ModifyIndex"] == index  # one index per transaction
    got = client.txn.put([kv("get", "a"), kv("get-tree", "")])
    assert base64.b64decode(got["Results"][0]["KV"]["Value"]) == b"v"
    assert len(got["Results"]) == 3
    # A failing op rolls everything back and answers 409 with Errors.
    response = requests.put(
        f"{base}/v1/txn",
        data=json.dumps(
            [
                kv("set", "c", Value=value),
                kv("cas", "a", Value=value, Index=index + 99),
                kv("get", "nope"),
            ]
        ),
        timeout=5,
    )
    assert response.status_code == 409
    body = response.json()
    assert body["Results"] is None
    assert [e["OpIndex"] for e in body["Errors"]] == [1, 2]
    assert "index is stale" in body["Errors"][0]["What"]
    assert client.kv.get(f"{prefix}/c")[1] is None, "a rolled-back transaction writes nothing"
    deleted = client.txn.put([kv("delete-cas", "a", Index=index), kv("delete", "b")])
    assert deleted["Results"] is None
    assert client.kv.get(f"{prefix}/a")[1] is None


def test_txn_limits(base: str, prefix: str) -> None:
    ops = [{"KV": {"Verb": "get-or-empty", "Key": f"{prefix}/{i}"}} for i in range(65)]
    response = requests.put(f"{base}/v1/txn", data=json.dumps(ops), timeout=5)
    assert response.status_code == 413
    assert "too many operations (65 > 64)" in response.text
    assert requests.put(f"{base}/v1/txn", data=json.dumps(ops[:64]), timeout=5).status_code == 200
    big = base64.b64encode(b"x" * 400_000).decode()
    response = requests.put(
        f"{base}/v1/txn",
        data=json.dumps([{"KV": {"Verb": "set", "Key": "k", "Value": big}}]),
        timeout=5,
    )
    assert response.status_code == 413
    assert requests.put(f"{base}/v1/txn", data=b"{nope", timeout=5).status_code == 400


def test_status_leader_and_unknown_dc(client: consul.Consul, base: str) -> None:
    assert client.status.leader() == "127.0.0.1:8300"
    assert requests.get(f"{base}/v1/kv/x?dc=elsewhere", timeout=5).status_code == 500


class TestACLs:
    @pytest.fixture
    def acl(self) -> tuple[str, str]:
        return (
            server_env("VELTRIX_TEST_CONSUL_ACL_ADDR", "Consul test server with ACLs"),
            server_env("VELTRIX_TEST_CONSUL_ACL_TOKEN", "Consul test server ACL token"),
        )

    def test_token_sources(self, acl: tuple[str, str]) -> None:
        address, token = acl
        url = f"http://{address}/v1/kv/acl/{unique_name()}"
        assert requests.put(url, data=b"x", headers={"X-Consul-Token": token}, timeout=5).json()
        assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).ok
        assert requests.get(url, params={"token": token}, timeout=5).ok
        assert requests.delete(url, params={"token": token}, timeout=5).json() is True

    def test_refusals(self, acl: tuple[str, str]) -> None:
        address, token = acl
        url = f"http://{address}/v1/kv/acl/{unique_name()}"
        requests.put(url, data=b"x", headers={"X-Consul-Token": token}, timeout=5)
        anonymous = requests.get(url, timeout=5)
        assert anonymous.status_code == 403
        assert anonymous.text.startswith("Permission denied")
        assert requests.put(url, data=b"y", timeout=5).status_code == 403
        wrong = requests.get(url, headers={"X-Consul-Token": "not-" + token}, timeout=5)
        assert (wrong.status_code, wrong.text) == (403, "ACL not found")
        assert token not in wrong.text
        # As Consul: a listing filters what the token may not read instead of refusing.
        listing = requests.get(url + "?recurse", timeout=5)
        assert listing.status_code == 404
        assert listing.headers["X-Consul-Results-Filtered-By-ACLs"] == "true"
        txn = requests.put(
            f"http://{address}/v1/txn",
            data=json.dumps([{"KV": {"Verb": "delete", "Key": "k"}}]),
            timeout=5,
        )
        assert txn.status_code == 409 and "Permission denied" in txn.text
        assert requests.get(f"http://{address}/v1/status/leader", timeout=5).ok
        requests.delete(url, headers={"X-Consul-Token": token}, timeout=5)
