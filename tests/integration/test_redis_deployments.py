"""What is specific to Redis over TLS and to Redis Cluster, against the real servers.

- TLS: a wrong CA is refused with a typed, secret-free error (store); the L2 on a bad
  TLS configuration degrades to store reads without failing one.
- Sentinel: a failover (the replica promoted) while clients read and write through
  the store and the L2 -> zero failed reads, writes land on the new master, the bus
  keeps invalidating.
- Cluster: kill -9 one master while clients read through the L2 -> zero failed reads,
  L2 used again after the restart; the bus listener moves to another node when its
  node dies and keeps delivering invalidations, also after the cluster restarts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from benchmarks.redis_fleet import CountingBackend
from tests.integration import redis_targets
from tests.integration.redis_targets import raw_client, with_path
from tests.support import SERVICES_DIR, ReadLoad, start_service, unique_name
from veltrix import CachePolicy, Client
from veltrix.adapters.sqlite import SQLiteBackend
from veltrix.errors import AccessDeniedError, BackendUnavailableError, ConfigurationError
from veltrix.registry import open_backend

KEYS = [f"hot/key{i}" for i in range(8)]
SECRET = "s3cr3t-Pa55word-do-not-print"


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = str(tmp_path / "config.db")
    backend = SQLiteBackend(path)
    for key in KEYS:
        backend.put(key, f"value of {key}".encode())
    backend.close()
    return path


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA certificate that did not sign the test server's certificate."""
    folder = tmp_path_factory.mktemp("wrong-ca")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-new", "-nodes", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-days", "1", "-subj", "/CN=wrong CA",
            "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.crt"),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(folder / "ca.crt")


def _served_by_l2(clients: list[Client]) -> int:
    """Reads the shared cache answered: from Redis, or from a refresh another client
    pushed over the bus (a waiter's fill, or a held key's update: no Redis read)."""
    return sum(
        s["l2_hits"] + s["bus_fills"] + s["bus_updates"] for s in (c.stats() for c in clients)
    )


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# -- TLS ---------------------------------------------------------------------------


def test_tls_wrong_ca_is_refused_with_a_clear_error(
    wrong_ca: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_targets.redis_url("tls")
    monkeypatch.setenv("REDIS_PASSWORD", SECRET)  # must not leak into any message
    backend = open_backend(with_path(url, unique_name("tls"), ca_file=wrong_ca, timeout=2))
    try:
        with pytest.raises(BackendUnavailableError) as caught:
            backend.get("k")
    finally:
        backend.close()
    message = str(caught.value)
    assert "TLS certificate verification failed" in message, message
    assert "check ca_file" in message and "\n" not in message
    assert SECRET not in message and SECRET not in repr(caught.value)
    assert isinstance(caught.value.__cause__, Exception)  # raised from the redis-py error

    # Plain redis:// against the TLS port is refused too (the server drops the connection).
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    plain = open_backend(f"redis://{host_port}/0?timeout=2&connect_timeout=2")
    try:
        with pytest.raises(BackendUnavailableError):
            plain.get("k")
    finally:
        plain.close()
    # A CA file that does not exist is a configuration error before any connection.
    with pytest.raises(ConfigurationError, match="not a readable file"):
        open_backend(with_path(url, "x", ca_file="/nonexistent/ca.crt"))
    # tls_verify=false accepts any certificate (documented as for tests only); the
    # password set above is then sent, and refused by this password-less server.
    unverified = open_backend(with_path(url, unique_name("tls"), ca_file=wrong_ca, tls_verify=0))
    try:
        with pytest.raises(AccessDeniedError) as denied:
            unverified.get("k")
        assert SECRET not in str(denied.value) and "\n" not in str(denied.value)
    finally:
        unverified.close()
    monkeypatch.delenv("REDIS_PASSWORD")
    unverified = open_backend(with_path(url, unique_name("tls"), ca_file=wrong_ca, tls_verify=0))
    try:
        assert unverified.get("k") is None
    finally:
        unverified.close()


def test_l2_with_a_wrong_ca_degrades_to_store_reads(store: str, wrong_ca: str) -> None:
    cache_url = with_path(
        redis_targets.redis_url("tls"), ca_file=wrong_ca, namespace=unique_name("badtls")
    )
    backend = CountingBackend(store)
    policy = CachePolicy(ttl=0.05, watch=False)
    with Client(backend, cache=policy, cache_url=cache_url) as client:
        for _ in range(20):
            for key in KEYS[:3]:
                assert client.get(key) == f"value of {key}"
            time.sleep(0.01)
        client.put(KEYS[0], "written")  # the L2 publish fails quietly, the write lands
        assert client.get(KEYS[0]) == "written"
        stats = client.stats()
    assert stats["l2_hits"] == 0 and stats["l2_errors"] >= 3, stats
    assert stats["l2_breaker_open"] == 1, stats
    assert all(backend.gets[k] >= 2 for k in KEYS[:3]), dict(backend.gets)  # TTL refreshes


# -- Sentinel ----------------------------------------------------------------------


def _sentinel_master(url: str) -> tuple[str, int]:
    """The (host, port) the Sentinel at ``url`` names as the service's master."""
    import redis

    parts = urlsplit(url)
    service = parts.path.strip("/").split("/")[0]
    sentinel = redis.Redis(host=parts.hostname, port=parts.port, socket_timeout=2)
    try:
        host, port = sentinel.sentinel_get_master_addr_by_name(service)
    finally:
        sentinel.close()
    return (host.decode() if isinstance(host, bytes) else host), int(port)


def test_sentinel_failover_fails_no_read_and_follows_the_new_master() -> None:
    import redis

    url = redis_targets.redis_url("sentinel")
    store_url = with_path(url, unique_name("sfo"))
    policy = CachePolicy(ttl=0.2, watch=False, retries=2)
    reader = Client(store_url, cache=policy, cache_url=url)
    writer = Client(store_url, cache=CachePolicy(ttl=0), cache_url=url)
    old_master = _sentinel_master(url)
    try:
        writer.put("svc/limit", "10")
        assert reader.get("svc/limit") == "10"
        parts = urlsplit(url)
        sentinel = redis.Redis(host=parts.hostname, port=parts.port, socket_timeout=5)
        old = redis.Redis(host=old_master[0], port=old_master[1], socket_timeout=5)
        try:
            assert old.wait(1, 5000) == 1  # the replica has every write so far
            sentinel.execute_command("SENTINEL FAILOVER", parts.path.strip("/").split("/")[0])
        finally:
            old.close()
            sentinel.close()
        deadline = time.monotonic() + 30
        while _sentinel_master(url) == old_master:
            assert time.monotonic() < deadline, "the Sentinel never promoted the replica"
            assert reader.get("svc/limit") == "10"  # never fails meanwhile
            time.sleep(0.01)
        new_master = _sentinel_master(url)
        assert new_master != old_master
        # Writes reach the new master (the old one is a replica now and refuses them):
        # at most a transient failure while the clients' connections move over.
        deadline = time.monotonic() + 20
        while True:
            try:
                writer.put("svc/limit", "20")
                break
            except BackendUnavailableError:
                assert time.monotonic() < deadline, "writes never reached the new master"
                time.sleep(0.1)
        on_new = redis.Redis(host=new_master[0], port=new_master[1], socket_timeout=5)
        try:
            assert on_new.info("replication")["role"] == "master"
        finally:
            on_new.close()
        # The reader hears of it (bus invalidation or TTL) and reads the new value.
        _wait(lambda: reader.get("svc/limit") == "20", 10, "the reader never saw the write")
    finally:
        reader.close()
        writer.close()
        start_service("redis-sentinel")  # the original master back in charge


# -- Cluster -----------------------------------------------------------------------


@pytest.fixture
def cluster_restored() -> Iterator[list[bool]]:
    """Tests set ``[True]`` while a node is down; the cluster is restarted if one still is."""
    down = [False]
    yield down
    if down[0]:
        start_service("redis-cluster")


def _cluster_node_of(key: str, *, store: bool = False) -> int:
    """The port of the cluster master holding ``key``'s L2 entry slot (``store``: the slot
    of the redis+cluster:// store namespace ``key``)."""
    raw = raw_client(redis_targets.redis_url("cluster"))
    try:
        name = f"veltrix:{{{key}}}:rev" if store else "veltrix:l2:x:e:{" + key + "}"
        return int(raw.get_node_from_key(name).port)
    finally:
        raw.close()


def _namespace_on(port: int, *, on: bool) -> str:
    """A fresh store namespace whose slot is (``on``) or is not on the node at ``port``."""
    while True:
        namespace = unique_name("cns")
        if (_cluster_node_of(namespace, store=True) == port) == on:
            return namespace


def _kill_cluster_node(port: int) -> None:
    pid = int((SERVICES_DIR / "redis-cluster" / str(port) / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not _alive(pid), 10, f"node {port} did not die")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cluster_master_killed_mid_run_fails_no_read(
    store: str, cluster_restored: list[bool]
) -> None:
    """kill -9 the master of one key's slot while 2 clients x 2 threads read 8 keys:
    zero failed reads (L2 calls fail, the breaker opens, the store serves); after the
    cluster is back the L2 is used again. Meanwhile a redis+cluster:// store opened
    during the outage answers for namespaces on live nodes, and raises a one-line
    BackendUnavailableError for a namespace on the dead one."""
    url = redis_targets.redis_url("cluster")
    victim = _cluster_node_of(KEYS[3])
    dead_ns, live_ns = _namespace_on(victim, on=True), _namespace_on(victim, on=False)
    cache_url = with_path(url, namespace=unique_name("ckill"), timeout=0.2)
    policy = CachePolicy(ttl=0.2, negative_ttl=0.2, watch=False)
    backend = CountingBackend(store)
    clients = [Client(backend, cache=policy, cache_url=cache_url) for _ in range(2)]
    try:
        with ReadLoad(clients, KEYS, lambda key: f"value of {key}") as load:
            _wait(lambda: _served_by_l2(clients) > 20, 10, "no L2 hits")
            cluster_restored[0] = True
            _kill_cluster_node(victim)
            errors_before = sum(c.stats()["l2_errors"] for c in clients)
            _wait(
                lambda: sum(c.stats()["l2_errors"] for c in clients) > errors_before,
                10,
                "no L2 error after the kill",
            )
            dead_store = open_backend(with_path(url, dead_ns, timeout=0.5, connect_timeout=0.5))
            live_store = open_backend(with_path(url, live_ns, timeout=0.5, connect_timeout=0.5))
            try:
                with pytest.raises(BackendUnavailableError) as caught:
                    dead_store.get("k")
                assert "\n" not in str(caught.value), caught.value
                version = live_store.put("k", b"v")
                entry = live_store.get("k")
                assert entry is not None and entry.version == version
            finally:
                dead_store.close()
                live_store.close()
            time.sleep(0.3)  # keep reading with one master down
            start_service("redis-cluster")
            cluster_restored[0] = False
            hits_after = _served_by_l2(clients)
            _wait(
                lambda: _served_by_l2(clients) > hits_after + 20,
                15,
                f"L2 not used again: {[c.stats() for c in clients]}",
            )
    finally:
        stats = [c.stats() for c in clients]
        for client in clients:
            client.close()
    assert not load.failures, load.failures[:3]
    assert load.reads > 1000, load.reads
    assert sum(s["l2_errors"] for s in stats) > 0, stats


def test_cluster_bus_listener_moves_to_another_node_and_back(
    store: str, cluster_restored: list[bool]
) -> None:
    url = redis_targets.redis_url("cluster")
    cache_url = with_path(url, namespace=unique_name("cbus"), timeout=1)
    policy = CachePolicy(ttl=60, watch=False)  # only the bus can tell the reader
    writer = Client(f"sqlite:///{store}", cache=policy, cache_url=cache_url)
    reader = Client(f"sqlite:///{store}", cache=policy, cache_url=cache_url)
    try:
        for client in (writer, reader):
            assert client._l2 is not None and client._l2.wait_ready(10)
        assert reader._l2 is not None
        listening = reader._l2.bus_node
        assert listening is not None
        dead_port = int(listening.rsplit(":", 1)[1])
        # A key whose slot lives on another node, so the writer's PUBLISH still runs.
        key = next(k for k in KEYS if _cluster_node_of(k) != dead_port)
        assert reader.get(key) == f"value of {key}"

        cluster_restored[0] = True
        _kill_cluster_node(dead_port)
        _wait(
            lambda: reader._l2 is not None and reader._l2.bus_node not in (None, listening),
            15,
            "the bus listener did not move to another node",
        )
        writer.put(key, "while one node is down")
        _wait(lambda: reader.get(key) == "while one node is down", 10, "no invalidation")

        start_service("redis-cluster")  # the whole cluster restarts (empty)
        cluster_restored[0] = False
        received = reader.stats()["bus_received"]
        deadline = time.monotonic() + 20
        # The listener's node restarted too: it reconnects, then a write reaches it again.
        while reader.get(key) != "after the restart":
            assert time.monotonic() < deadline, reader.stats()
            writer.put(key, "after the restart")
            time.sleep(0.2)
        assert reader.stats()["bus_received"] > received
    finally:
        writer.close()
        reader.close()
