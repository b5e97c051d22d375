"""The redis:// store's ``put_many`` (one WATCH/MULTI/EXEC transaction) against a real
Redis: revisions and the change log, all or nothing, CAS under contention. Runs on
one node and on Redis Cluster (the transaction's keys share the namespace's slot)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from tests.integration import redis_targets
from tests.integration.redis_targets import raw_client, with_path
from tests.support import unique_name
from veltrix.adapters import redis as redis_adapter
from veltrix.adapters.redis import RedisBackend
from veltrix.backend import Absent
from veltrix.errors import InvalidKeyError, ValueTooLargeError, VersionConflictError
from veltrix.registry import open_backend
from veltrix.testing.conformance import ChangeRecorder


@pytest.fixture(scope="module", params=["single", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    return redis_targets.redis_url(request.param)


@pytest.fixture
def namespace() -> str:
    return unique_name("batch")


@pytest.fixture
def store(redis_url: str, namespace: str) -> Iterator[RedisBackend]:
    backend = open_backend(with_path(redis_url, namespace, timeout=5, watch_block=0.2))
    assert isinstance(backend, RedisBackend)
    yield backend
    for entry in list(backend.list("")):
        backend.delete(entry.key)
    backend.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = raw_client(redis_url)  # redis.Redis or RedisCluster (same commands here)
    yield client
    client.close()


def contents(store: RedisBackend) -> dict[str, bytes]:
    return {e.key: e.value for e in store.list("")}


def revision(raw: redis.Redis, namespace: str) -> int:
    return int(raw.get("veltrix:{" + namespace + "}:rev") or 0)


def test_put_many_takes_one_revision_per_write(
    store: RedisBackend, raw: redis.Redis, namespace: str
) -> None:
    store.put("old", b"0")
    recorder = ChangeRecorder()
    watch = store.watch("", recorder)
    try:
        versions = store.put_many([("a", b"1"), ("b/c", b"2"), ("old", None), ("never", None)])
        assert versions == {"a": "2", "b/c": "3", "old": None, "never": None}
        assert revision(raw, namespace) == 4, "a delete of an absent key takes no revision"
        assert contents(store) == {"a": b"1", "b/c": b"2"}
        entry = store.get("b/c")
        assert entry is not None and entry.version == "3"
        assert recorder.wait_for(lambda changes: len(changes) >= 3, timeout=10)
        assert recorder.states() == [("a", b"1"), ("b/c", b"2"), ("old", None)]
    finally:
        watch.stop()


def test_one_conflict_writes_nothing(store: RedisBackend, raw: redis.Redis, namespace: str) -> None:
    v1 = store.put("k", b"1")
    store.put("k", b"2")
    store.put("gone", b"x")
    before, rev = contents(store), revision(raw, namespace)
    with pytest.raises(VersionConflictError, match="'k' is at version"):
        store.put_many({"new": b"n", "gone": None, "k": b"3"}, if_versions={"k": v1})
    assert contents(store) == before and revision(raw, namespace) == rev, "nothing written"
    with pytest.raises(VersionConflictError, match="already exists"):
        store.put_many([("new", b"n"), ("k", b"3")], if_versions={"k": Absent})
    with pytest.raises(VersionConflictError, match="does not exist"):
        store.put_many([("new", b"n"), ("missing", None)], if_versions={"missing": "1"})
    assert contents(store) == before and revision(raw, namespace) == rev
    current = store.get("k")
    assert current is not None
    store.put_many(
        [("new", b"n"), ("k", b"3"), ("gone", None)],
        if_versions={"new": Absent, "k": current.version, "gone": "3"},
    )
    assert contents(store) == {"k": b"3", "new": b"n"}


def test_batches_under_contention_stay_consistent(store: RedisBackend) -> None:
    """Eight threads move one unit from ``from`` to ``to`` with CAS on both keys in one
    batch: every transfer lands exactly once, both halves together."""
    store.put_many({"from": b"200", "to": b"0"})
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                while True:
                    a, b = store.get("from"), store.get("to")
                    assert a is not None and b is not None
                    try:
                        store.put_many(
                            {
                                "from": str(int(a.value) - 1).encode(),
                                "to": str(int(b.value) + 1).encode(),
                            },
                            if_versions={"from": a.version, "to": b.version},
                        )
                        break
                    except VersionConflictError:
                        continue
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert contents(store) == {"from": b"0", "to": b"200"}


def test_split_batch_reports_what_stayed_written(
    store: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_adapter, "MAX_BATCH_OPS", 2)
    v = store.put("late", b"1")
    store.put("late", b"2")
    items = [("s/a", b"a"), ("s/b", b"b"), ("s/c", b"c"), ("late", b"3")]
    with pytest.raises(VersionConflictError, match="2 earlier writes stay applied"):
        store.put_many(items, atomic=False, if_versions={"late": v})
    assert contents(store) == {"s/a": b"a", "s/b": b"b", "late": b"2"}
    store.put_many(items[:3], atomic=False)  # three writes, two transactions
    assert contents(store)["s/c"] == b"c"


def test_batch_is_validated_before_any_io(
    store: RedisBackend, raw: redis.Redis, namespace: str
) -> None:
    limit = store.max_value_bytes
    assert limit is not None
    for items, versions, error in (
        ([("a", b"1"), ("a", b"2")], None, InvalidKeyError),
        ([("ok", b"1"), ("bad//key", b"2")], None, InvalidKeyError),
        ([("ok", b"1")], {"other": Absent}, InvalidKeyError),
        ([("ok", b"1"), ("huge", b"x" * (limit + 1))], None, ValueTooLargeError),
    ):
        with pytest.raises(error):
            store.put_many(items, if_versions=versions)
    assert contents(store) == {} and revision(raw, namespace) == 0
    assert store.put_many([]) == {}
