"""The redis:// store against a real Redis: conformance, and what is specific to it.

The conformance suite and the store-specific tests run against every deployment in
:mod:`tests.integration.redis_targets`: one node, TLS, Sentinel and Cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration import redis_targets
from tests.integration.redis_targets import with_path
from tests.support import unique_name
from veltrix.adapters.redis import RedisBackend
from veltrix.backend import Change
from veltrix.errors import ConfigurationError, VersionConflictError
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance, ChangeRecorder


@pytest.fixture(scope="module")
def redis_url() -> str:
    return redis_targets.redis_url("single").rstrip("/")


@pytest.fixture(scope="module", params=list(redis_targets.KINDS))
def store_url(request: pytest.FixtureRequest) -> str:
    """Each Redis deployment in turn: single node, TLS, Sentinel, Cluster."""
    return redis_targets.redis_url(request.param)


def _open(url: str, namespace: str) -> RedisBackend:
    backend = open_backend(with_path(url, namespace, timeout=5, watch_block=0.2))
    assert isinstance(backend, RedisBackend)
    return backend


class TestRedisConformance(BackendConformance):
    watch_timeout = 10.0

    @pytest.fixture
    def backend(self, store_url: str) -> Iterator[RedisBackend]:
        backend = _open(store_url, unique_name("conf"))
        yield backend
        backend.close()


def test_url_errors(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="database number"):
        open_backend(redis_url.rsplit("/", 1)[0] + "/zero")
    with pytest.raises(ConfigurationError, match="unknown option 'timout'"):
        open_backend(redis_url + "?timout=1")
    with pytest.raises(ConfigurationError, match="credentials"):
        open_backend("redis://user:pw@127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match="service name"):
        open_backend("redis+sentinel://127.0.0.1:26379")
    with pytest.raises(ConfigurationError, match="only database 0, got 3"):
        open_backend("redis+cluster://127.0.0.1:17000,127.0.0.1:17001/3")
    with pytest.raises(ConfigurationError, match="one host only"):
        open_backend("redis://127.0.0.1:1,127.0.0.1:2/0")
    with pytest.raises(ConfigurationError, match="ca_file needs rediss://"):
        open_backend("redis://127.0.0.1:1/0?ca_file=/etc/hostname")
    with pytest.raises(ConfigurationError, match="not a readable file"):
        open_backend("rediss://127.0.0.1:1/0?ca_file=/nonexistent/ca.pem")


def test_namespaces_are_separate(store_url: str) -> None:
    a, b = _open(store_url, unique_name("ns")), _open(store_url, unique_name("ns"))
    try:
        a.put("k", b"a")
        assert b.get("k") is None
        assert [e.key for e in a.list("")] == ["k"]
        assert list(b.list("")) == []
    finally:
        a.close()
        b.close()


def test_versions_never_reused_after_recreate(store_url: str) -> None:
    backend = _open(store_url, unique_name("aba"))
    try:
        v1 = backend.put("k", b"x")
        backend.delete("k")
        v2 = backend.put("k", b"x")
        assert v1 != v2
        with pytest.raises(VersionConflictError):
            backend.put("k", b"y", if_version=v1)
    finally:
        backend.close()


def test_concurrent_cas_increments_lose_nothing(store_url: str) -> None:
    """Eight threads doing read-modify-write with CAS: every increment lands once."""
    backend = _open(store_url, unique_name("cas"))
    backend.put("counter", b"0")
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                while True:
                    entry = backend.get("counter")
                    assert entry is not None
                    try:
                        backend.put(
                            "counter", str(int(entry.value) + 1).encode(), if_version=entry.version
                        )
                        break
                    except VersionConflictError:
                        continue
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors
        entry = backend.get("counter")
        assert entry is not None and entry.value == b"200"
    finally:
        backend.close()


def test_watch_sees_other_process_writes_and_flush(store_url: str) -> None:
    """A second connection's writes arrive in order; FLUSHDB-style data loss becomes deletes."""
    namespace = unique_name("wf")
    writer, watcher = _open(store_url, namespace), _open(store_url, namespace)
    recorder = ChangeRecorder()
    writer.put("gone", b"1")
    watch = watcher.watch("", recorder)
    try:
        for i in range(20):
            writer.put("seq", str(i).encode())
        assert recorder.wait_for(lambda ch: len(ch) >= 20, 10), recorder.states()
        assert [c.entry.value for c in recorder.changes if c.entry] == [
            str(i).encode() for i in range(20)
        ]
        # Wipe the namespace behind the store's back (as a Redis restart without persistence would).
        raw = writer._r
        for name in raw.scan_iter(match=f"veltrix:{{{namespace}}}:*"):
            raw.delete(name)
        assert recorder.wait_for(
            lambda ch: {c.key for c in ch if c.deleted} >= {"gone", "seq"}, 10
        ), recorder.states()
        writer.put("after", b"x")
        assert recorder.wait_for(lambda ch: ch[-1] == Change("after", ch[-1].entry), 10)
    finally:
        watch.stop()
        writer.close()
        watcher.close()


def test_unavailable_is_transient() -> None:
    from veltrix.errors import BackendUnavailableError

    backend = open_backend("redis://127.0.0.1:1/0?timeout=0.2&connect_timeout=0.2")
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        backend.get("k")
    assert time.monotonic() - started < 5
    backend.close()
