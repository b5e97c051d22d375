"""A real three-member ZooKeeper ensemble (``scripts/services up zookeeper-ensemble``).

Members are killed with SIGKILL and the ensemble is restarted afterwards, so these
tests take a few seconds each and must not share the ensemble with parallel tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from benchmarks.bench_zookeeper import four_letter
from tests.support import kill_service, server_env, start_service, unique_name
from veltrix import CachePolicy, Client
from veltrix.adapters.zookeeper import ZooKeeperBackend
from veltrix.errors import BackendUnavailableError
from veltrix.testing.conformance import ChangeRecorder

pytestmark = pytest.mark.slow

SERVICE = "zookeeper-ensemble"


@pytest.fixture
def ensemble() -> Iterator[list[str]]:
    """The members' ``host:port``s (member n is index n - 1); restarted afterwards."""
    hosts = server_env("VELTRIX_TEST_ZOOKEEPER_ENSEMBLE", "ZooKeeper ensemble").split(",")
    assert len(hosts) == 3
    if not all(_mode(host) in {"leader", "follower"} for host in hosts):
        start_service(SERVICE)  # left broken by an interrupted run
    try:
        yield hosts
    finally:
        start_service(SERVICE)  # every member back, whatever the test killed


def _mode(host: str) -> str:
    """The member's ``Mode:`` line from the ``srvr`` command ("" when it is down)."""
    try:
        reply = four_letter(host, "srvr", timeout=2)
    except OSError:
        return ""
    return next((line[6:] for line in reply.splitlines() if line.startswith("Mode: ")), "")


def _member_of(backend: ZooKeeperBackend, hosts: list[str]) -> int:
    """Which member (1-3) the backend's connection is to."""
    port = backend._client._connection._socket.getpeername()[1]
    return [int(h.rsplit(":", 1)[1]) for h in hosts].index(port) + 1


def test_failover_keeps_reads_and_watch(ensemble: list[str]) -> None:
    url = f"zookeeper://{','.join(ensemble)}/veltrix-tests/{unique_name('ens')}"
    watcher = ZooKeeperBackend.from_url(url + "?reconnect_max_delay=0.2&connect_timeout=0.5")
    reader = Client(watcher, cache=CachePolicy(ttl=0.3, stale_if_error=True, retries=0))
    writer = ZooKeeperBackend.from_url(url + "?connect_timeout=10")
    try:
        writer.put("svc/limit", b"10")
        assert reader.get("svc/limit") == "10"
        recorder = ChangeRecorder()
        watch = reader.watch("svc", recorder)
        member = _member_of(watcher, ensemble)
        kill_service(f"{SERVICE}/{member}")  # the member the watcher talks to

        writer.put("svc/limit", b"20")  # the other two still have a quorum
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ("svc/limit", b"20") not in recorder.states():
            assert reader.get("svc/limit") in {"10", "20"}  # never fails meanwhile
            time.sleep(0.02)
        assert ("svc/limit", b"20") in recorder.states(), recorder.states()
        assert _member_of(watcher, ensemble) != member
        assert reader.get("svc/limit") == "20"
        writer.put("svc/limit", b"30")  # and the watch keeps delivering
        assert recorder.wait_for(lambda _: ("svc/limit", b"30") in recorder.states(), timeout=20)
        watch.stop()
    finally:
        reader.close()
        writer.close()


def test_read_only_member_serves_reads(ensemble: list[str]) -> None:
    chroot = f"/veltrix-tests/{unique_name('ro')}"
    url = f"zookeeper://{','.join(ensemble)}{chroot}"
    seeder = ZooKeeperBackend.from_url(url + "?connect_timeout=10")
    seeder.put("svc/limit", b"10")
    seeder.close()
    kill_service(f"{SERVICE}/1")
    kill_service(f"{SERVICE}/2")  # member 3 is alone: no quorum
    deadline = time.monotonic() + 30
    while _mode(ensemble[2]) != "read-only" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _mode(ensemble[2]) == "read-only"

    read_only = ZooKeeperBackend.from_url(url + "?read_only=true&connect_timeout=10")
    writable = ZooKeeperBackend.from_url(url + "?connect_timeout=1")
    try:
        entry = read_only.get("svc/limit")
        assert entry is not None and entry.value == b"10"
        assert [e.key for e in read_only.list("svc")] == ["svc/limit"]
        with pytest.raises(BackendUnavailableError, match="read-only member"):
            read_only.put("svc/limit", b"20")
        # Without read_only=true the lone member is no use: not connected, typed error.
        with pytest.raises(BackendUnavailableError, match="not connected"):
            writable.get("svc/limit")
    finally:
        read_only.close()
        writable.close()
    after = ZooKeeperBackend.from_url(url + "?read_only=true&connect_timeout=10")
    try:
        entry = after.get("svc/limit")
        assert entry is not None and entry.value == b"10", "the refused write wrote"
    finally:
        after.close()
