"""ZooKeeper ``put_many`` (one ``multi`` transaction) and the ``check_key`` /
``check_value`` hooks, against a real ZooKeeper server, looked at with a plain kazoo
client too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from tests.support import unique_name
from veltrix.adapters.zookeeper import MAX_VALUE_BYTES, ZooKeeperBackend
from veltrix.backend import Absent
from veltrix.errors import (
    InvalidKeyError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VersionConflictError,
)

SECRET = "batch-pw-not-logged"


@pytest.fixture
def chroot() -> str:
    return f"/veltrix-tests/{unique_name('zkb')}"


@pytest.fixture
def zk(
    zk_hosts: str, chroot: str, kazoo: KazooClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ZooKeeperBackend]:
    monkeypatch.delenv("VELTRIX_ZK_AUTH", raising=False)
    backend = ZooKeeperBackend(zk_hosts, chroot)
    yield backend
    backend.close()
    if kazoo.exists(chroot):
        kazoo.delete(chroot, recursive=True)


def contents(zk: ZooKeeperBackend) -> dict[str, bytes]:
    return {e.key: e.value for e in zk.list("")}


def test_put_many_is_one_transaction(zk: ZooKeeperBackend, kazoo: KazooClient, chroot: str) -> None:
    zk.put("old", b"0")
    versions = zk.put_many({"a": b"1", "a/b/c": b"2", "x/y": b"", "old": None, "never": None})
    assert versions["old"] is None and versions["never"] is None
    written = {versions[k] for k in ("a", "a/b/c", "x/y")}
    assert len(written) == 1, "one transaction: one zxid for every key it wrote"
    assert contents(zk) == {"a": b"1", "a/b/c": b"2", "x/y": b""}
    for key in ("a", "a/b/c", "x/y"):
        entry = zk.get(key)
        assert entry is not None and entry.version == versions[key]
    data, _ = kazoo.get(f"{chroot}/a/b")  # a parent made inside the transaction
    assert data is None, "parents are null znodes, not keys"
    assert zk.get("a/b") is None
    assert not kazoo.exists(f"{chroot}/old")


def test_one_conflict_writes_nothing(zk: ZooKeeperBackend, kazoo: KazooClient, chroot: str) -> None:
    v1 = zk.put("k", b"1")
    zk.put("k", b"2")  # v1 is stale now
    zk.put("gone", b"x")
    before = contents(zk)
    with pytest.raises(VersionConflictError, match="'k' is at version"):
        zk.put_many({"new/deep/key": b"n", "gone": None, "k": b"3"}, if_versions={"k": v1})
    assert contents(zk) == before, "nothing written"
    assert not kazoo.exists(f"{chroot}/new"), "not even a parent znode"
    with pytest.raises(VersionConflictError, match="already exists"):
        zk.put_many([("fresh", b"f"), ("k", b"4")], if_versions={"k": Absent})
    assert zk.get("fresh") is None
    with pytest.raises(VersionConflictError, match="does not exist"):
        zk.put_many([("fresh", b"f"), ("missing", None)], if_versions={"missing": "12"})
    assert zk.get("fresh") is None
    current = zk.get("k")
    assert current is not None
    done = zk.put_many(
        [("fresh", b"f"), ("k", b"5"), ("gone", None)],
        if_versions={"fresh": Absent, "k": current.version},
    )
    assert contents(zk) == {"fresh": b"f", "k": b"5"}
    assert done["gone"] is None


def test_deletes_keep_children_and_prune_null_parents(
    zk: ZooKeeperBackend, kazoo: KazooClient, chroot: str
) -> None:
    zk.put_many({"p": b"parent", "p/c1": b"1", "p/c2": b"2", "q/r/s": b"deep"})
    p = zk.get("p")
    assert p is not None
    # p keeps a child: it becomes a null parent; q/r/s goes with its null parents
    zk.put_many({"p": None, "p/c1": None, "q/r/s": None}, if_versions={"p": p.version})
    assert contents(zk) == {"p/c2": b"2"}
    assert kazoo.get(f"{chroot}/p")[0] is None
    assert not kazoo.exists(f"{chroot}/q")
    # a parent and all its children deleted together: the parent znode goes too
    zk.put_many({"t": b"t", "t/u": b"u"})
    zk.put_many({"t": None, "t/u": None})
    assert not kazoo.exists(f"{chroot}/t")
    # a key deleted while a child is created under it: a null parent holding the child
    zk.put("w", b"w")
    zk.put_many({"w": None, "w/new": b"n"})
    assert contents(zk) == {"p/c2": b"2", "w/new": b"n"}
    # filling a null parent is a put like any other
    zk.put_many({"p": b"again"}, if_versions={"p": Absent})
    assert contents(zk)["p"] == b"again"


def test_jute_maxbuffer_bounds_one_transaction(zk: ZooKeeperBackend) -> None:
    big = {"big/a": b"a" * 600_000, "big/b": b"b" * 600_000}
    with pytest.raises(UnsupportedOperationError, match="atomic=False"):
        zk.put_many(big)
    assert contents(zk) == {}, "refused before any I/O"
    versions = zk.put_many(big, atomic=False)
    assert versions["big/a"] != versions["big/b"], "two transactions"
    assert contents(zk) == big
    at_limit = b"z" * MAX_VALUE_BYTES  # the largest single value goes through alone
    assert zk.put_many({"one/at/limit": at_limit})["one/at/limit"]
    entry = zk.get("one/at/limit")
    assert entry is not None and entry.value == at_limit


def test_split_batch_reports_what_stayed_written(zk: ZooKeeperBackend) -> None:
    v = zk.put("late", b"1")
    zk.put("late", b"2")
    items = [("s/a", b"a" * 600_000), ("s/b", b"b" * 600_000), ("late", b"3")]
    with pytest.raises(VersionConflictError, match="1 earlier writes stay applied"):
        zk.put_many(items, atomic=False, if_versions={"late": v})
    assert contents(zk) == {"s/a": b"a" * 600_000, "late": b"2"}


def test_batch_is_validated_before_any_io(zk: ZooKeeperBackend) -> None:
    for items, versions, error in (
        ([("a", b"1"), ("a", b"2")], None, InvalidKeyError),
        ([("ok", b"1"), ("bad//key", b"2")], None, InvalidKeyError),
        ([("ok", b"1")], {"other": Absent}, InvalidKeyError),
        ([("ok", b"1"), ("huge", b"x" * (MAX_VALUE_BYTES + 1))], None, ValueTooLargeError),
    ):
        with pytest.raises(error):
            zk.put_many(items, if_versions=versions)
    assert contents(zk) == {}
    assert zk.put_many([]) == {}


def test_digest_acl_on_every_znode_the_batch_creates(
    zk_hosts: str, chroot: str, kazoo: KazooClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kazoo.ensure_path(chroot.rsplit("/", 1)[0])  # shared by other tests: open ACL
    kazoo.add_auth("digest", f"alice:{SECRET}")  # getACL needs READ or ADMIN
    monkeypatch.setenv("VELTRIX_ZK_AUTH", f"alice:{SECRET}")
    backend = ZooKeeperBackend(zk_hosts, chroot)
    try:
        backend.put_many({"a/b": b"1"})
        for path in (chroot, f"{chroot}/a", f"{chroot}/a/b"):
            acls, _ = kazoo.get_acls(path)
            assert [(acl.id.scheme, acl.id.id.split(":")[0]) for acl in acls] == [
                ("digest", "alice")
            ]
        entry = backend.get("a/b")
        assert entry is not None and entry.value == b"1"
    finally:
        backend.put_many({"a/b": None})
        backend.close()
        monkeypatch.delenv("VELTRIX_ZK_AUTH")
    kazoo.delete(chroot, recursive=True)


def test_check_hooks_are_the_rules_put_applies(zk_hosts: str, zk: ZooKeeperBackend) -> None:
    at_root = ZooKeeperBackend(zk_hosts, "")
    try:
        with pytest.raises(InvalidKeyError, match="reserved"):
            at_root.check_key("zookeeper/quota")
        with pytest.raises(InvalidKeyError, match="reserved"):
            at_root.put("zookeeper/quota", b"x")
        at_root.check_key("zookeeper-not/reserved")
    finally:
        at_root.close()
    zk.check_key("zookeeper/fine-under-a-chroot")
    longest = "k" * 255
    zk.check_value(longest, b"x" * MAX_VALUE_BYTES)
    zk.put(longest, b"x" * MAX_VALUE_BYTES)
    for key, value in ((longest, b"x" * (MAX_VALUE_BYTES + 1)), ("bad//key", b"x")):
        with pytest.raises((ValueTooLargeError, InvalidKeyError)) as hooked:
            zk.check_value(key, value)
        with pytest.raises((ValueTooLargeError, InvalidKeyError)) as put:
            zk.put(key, value)
        assert str(hooked.value) == str(put.value)
    entry = zk.get(longest)
    assert entry is not None and len(entry.value) == MAX_VALUE_BYTES
