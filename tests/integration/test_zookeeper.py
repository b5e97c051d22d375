"""ZooKeeper-specific behaviour against a real ZooKeeper 3.8 server.

Digest ACLs, the znode mapping (null parents, interop with plain kazoo clients),
watches across a session expiry, options and error mapping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from benchmarks.bench_zookeeper import session_watches
from tests.support import server_env, unique_name
from veltrix.adapters.zookeeper import MAX_VALUE_BYTES, ZooKeeperBackend
from veltrix.adapters.zookeeper.tree import children
from veltrix.backend import Absent
from veltrix.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    ValueTooLargeError,
    VersionConflictError,
)
from veltrix.registry import open_backend
from veltrix.testing.conformance import ChangeRecorder

SECRET = "s3cr3t-pw-do-not-log"

OpenZK = Callable[..., ZooKeeperBackend]


@pytest.fixture
def chroot() -> str:
    return f"/veltrix-tests/{unique_name('zk')}"


@pytest.fixture
def open_zk(zk_hosts: str, chroot: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenZK]:
    monkeypatch.delenv("VELTRIX_ZK_AUTH", raising=False)
    opened: list[ZooKeeperBackend] = []

    def factory(query: str = "", auth: str | None = None) -> ZooKeeperBackend:
        if auth is None:
            monkeypatch.delenv("VELTRIX_ZK_AUTH", raising=False)
        else:
            monkeypatch.setenv("VELTRIX_ZK_AUTH", auth)
        backend = open_backend(f"zookeeper://{zk_hosts}{chroot}{query}")
        assert isinstance(backend, ZooKeeperBackend)
        opened.append(backend)
        return backend

    yield factory
    for backend in opened:
        backend.close()


# -- digest ACLs ------------------------------------------------------------------------


def test_digest_acl_denies_unauthenticated_reader(
    open_zk: OpenZK, kazoo: KazooClient, chroot: str
) -> None:
    owner = open_zk(auth=f"alice:{SECRET}")
    assert SECRET not in repr(owner)
    owner.put("db/password", b"hunter2")
    entry = owner.get("db/password")
    assert entry is not None and entry.value == b"hunter2"

    kazoo.add_auth("digest", f"alice:{SECRET}")  # getACL needs READ or ADMIN on the znode
    acls, _ = kazoo.get_acls(f"{chroot}/db/password")
    assert [(a.id.scheme, a.id.id.split(":")[0], a.perms) for a in acls] == [
        ("digest", "alice", 31)
    ]
    assert SECRET not in str(acls)  # the ACL holds a hash, never the password

    anonymous = open_zk()
    with pytest.raises(AccessDeniedError) as denied:
        anonymous.get("db/password")  # denied, not "absent"
    assert SECRET not in str(denied.value)
    with pytest.raises(AccessDeniedError):
        list(anonymous.list("db"))
    with pytest.raises(AccessDeniedError):
        anonymous.put("db/password", b"mallory")
    with pytest.raises(AccessDeniedError):
        anonymous.delete("db/password")
    with pytest.raises(AccessDeniedError):
        anonymous.watch("db", ChangeRecorder())

    other = open_zk(auth="mallory:guess")
    with pytest.raises(AccessDeniedError):
        other.get("db/password")

    entry = owner.get("db/password")
    assert entry is not None and entry.value == b"hunter2", "denied writes wrote nothing"


@pytest.mark.parametrize("mode", ["persistent", "oneshot"])
def test_watch_skips_znodes_it_may_not_read(
    open_zk: OpenZK, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A readable prefix holding a znode with a stricter ACL (made by another identity):
    the watch keeps delivering the rest and never reports the unreadable one."""
    anonymous = open_zk()
    anonymous.put("mix/public", b"1")  # "mix" itself: open ACL
    owner = open_zk(auth=f"alice:{SECRET}")
    owner.put("mix/secret", b"s1")  # only this znode gets alice's ACL
    watcher = open_zk(f"?watch_mode={mode}")
    recorder = ChangeRecorder()
    watch = watcher.watch("mix", recorder)
    try:
        owner.put("mix/secret", b"s2")
        anonymous.put("mix/public", b"2")
        anonymous.put("mix/new", b"3")
        _wait_states(recorder, {("mix/public", b"2"), ("mix/new", b"3")})
        assert all(c.key != "mix/secret" for c in recorder.changes), recorder.states()
        assert watch.resyncs == 0  # no resync loop over the unreadable znode
        assert "cannot read" in caplog.text and SECRET not in caplog.text
    finally:
        watch.stop()


def test_bad_auth_variable_is_a_configuration_error(open_zk: OpenZK) -> None:
    with pytest.raises(ConfigurationError) as error:
        open_zk(auth="no-colon-" + SECRET)
    assert SECRET not in str(error.value)


# -- mapping ------------------------------------------------------------------------------


def test_parents_are_null_znodes_not_keys(open_zk: OpenZK, kazoo: KazooClient, chroot: str) -> None:
    backend = open_zk()
    backend.put("app/db/host", b"db1")
    backend.put("app/empty", b"")
    assert kazoo.get(f"{chroot}/app/db/host")[0] == b"db1"  # value = znode data, as is
    assert kazoo.get(f"{chroot}/app/db")[0] is None  # a parent created as needed
    assert kazoo.get(f"{chroot}/app/empty")[0] == b""
    assert backend.get("app/db") is None
    assert [e.key for e in backend.list("app")] == ["app/db/host", "app/empty"]

    # A key whose znode has children becomes a null parent when deleted.
    backend.put("app/db", b"parent-value")
    assert backend.delete("app/db") is True
    assert backend.get("app/db") is None
    assert kazoo.exists(f"{chroot}/app/db") is not None
    assert backend.delete("app/db") is False
    # Null parents left without children are pruned.
    assert backend.delete("app/db/host") is True
    assert kazoo.exists(f"{chroot}/app/db") is None
    assert kazoo.exists(f"{chroot}/app") is not None  # still holds app/empty


def test_reads_znodes_written_by_other_tools(
    open_zk: OpenZK, kazoo: KazooClient, chroot: str
) -> None:
    kazoo.create(f"{chroot}/ext/flag", b"on", makepath=True)
    backend = open_zk()
    entry = backend.get("ext/flag")
    assert entry is not None and entry.value == b"on"
    assert entry.source.endswith(f"{chroot}/ext/flag")
    _, stat = kazoo.get(f"{chroot}/ext/flag")
    assert entry.version == str(stat.mzxid)
    # kazoo's makepath creates parents with empty (not null) data: those are keys.
    assert backend.get("ext") is not None


def test_versions_differ_across_delete_and_recreate(open_zk: OpenZK) -> None:
    backend = open_zk()
    v1 = backend.put("aba/key", b"one")
    backend.delete("aba/key")
    v2 = backend.put("aba/key", b"one")
    assert v1 != v2  # the znode version counter restarted; the version token did not
    with pytest.raises(VersionConflictError):
        backend.put("aba/key", b"two", if_version=v1)
    with pytest.raises(VersionConflictError):
        backend.delete("aba/key", if_version=v1)
    assert backend.put("aba/key", b"two", if_version=v2) != v2


def test_create_only_fills_a_null_parent(open_zk: OpenZK) -> None:
    backend = open_zk()
    backend.put("p/child", b"c")
    backend.put("p", b"now-a-key", if_version=Absent)
    entry = backend.get("p")
    assert entry is not None and entry.value == b"now-a-key"
    with pytest.raises(VersionConflictError):
        backend.put("p", b"again", if_version=Absent)


def test_list_large_tree(open_zk: OpenZK) -> None:
    backend = open_zk()
    keys = [f"many/{i % 7}/k{i}" for i in range(300)]
    for key in keys:
        backend.put(key, key.encode())
    entries = list(backend.list("many"))
    assert [e.key for e in entries] == sorted(keys)
    assert all(e.value == e.key.encode() for e in entries)


def test_value_size_checked_before_sending(
    open_zk: OpenZK, kazoo: KazooClient, chroot: str
) -> None:
    backend = open_zk()
    assert backend.get("big/over") is None
    session = backend._client.client_id
    with pytest.raises(ValueTooLargeError):
        backend.put("big/over", b"x" * (1024 * 1024))
    assert kazoo.exists(f"{chroot}/big") is None, "nothing was written"
    # The server never saw the request (it drops the connection of an oversized one).
    assert backend.connected and backend._client.client_id == session
    assert MAX_VALUE_BYTES < 1024 * 1024


def test_reserved_zookeeper_node_without_chroot(zk_hosts: str) -> None:
    backend = open_backend(f"zookeeper://{zk_hosts}")
    try:
        with pytest.raises(InvalidKeyError):
            backend.get("zookeeper/config")
        # Listing from the real root skips ZooKeeper's own /zookeeper subtree.
        assert children("/", ["zookeeper", "app"]) == ["/app"]
    finally:
        backend.close()


# -- watch --------------------------------------------------------------------------------


def _wait_states(recorder: ChangeRecorder, expected: set[tuple[str, bytes | None]]) -> None:
    assert recorder.wait_for(
        lambda changes: expected <= {(c.key, c.entry and c.entry.value) for c in changes},
        timeout=20,
    ), f"missing {expected - set(recorder.states())}; got {recorder.states()}"


WATCH_MODES = pytest.mark.parametrize("mode", ["persistent", "oneshot"])


@WATCH_MODES
def test_watch_prefix_created_later_and_deleted_parent(open_zk: OpenZK, mode: str) -> None:
    backend = open_zk(f"?watch_mode={mode}")
    writer = open_zk()
    recorder = ChangeRecorder()
    watch = backend.watch("later/sub", recorder)
    assert watch.mode == mode
    try:
        writer.put("later/sub/a/b", b"1")
        writer.put("later/sub", b"root")
        _wait_states(recorder, {("later/sub/a/b", b"1"), ("later/sub", b"root")})
        writer.put("later/sub/a/c", b"2")
        writer.delete("later/sub")  # has children: becomes a null parent -> a delete
        _wait_states(recorder, {("later/sub/a/c", b"2"), ("later/sub", None)})
        writer.delete("later/sub/a/b")
        writer.delete("later/sub/a/c")  # prunes later/sub/a and later/sub
        writer.put("later/sub/x", b"3")  # re-creates the prefix's znode
        _wait_states(
            recorder, {("later/sub/a/b", None), ("later/sub/a/c", None), ("later/sub/x", b"3")}
        )
    finally:
        watch.stop()


@WATCH_MODES
def test_watch_resyncs_after_session_expiry(open_zk: OpenZK, zk_hosts: str, mode: str) -> None:
    watcher = open_zk(f"?session_timeout=4&watch_mode={mode}")
    writer = open_zk()
    writer.put("exp/keep", b"1")
    writer.put("exp/change", b"1")
    writer.put("exp/gone", b"1")
    recorder = ChangeRecorder()
    watch = watcher.watch("exp", recorder)
    try:
        # Expire the watcher's session: open it from a second client, then close it.
        session_id, password = watcher._client.client_id
        thief = KazooClient(hosts=zk_hosts, client_id=(session_id, password))
        thief.start(timeout=10)
        thief.stop()
        thief.close()
        # Changes made while the watcher has no session (or a brand-new one).
        writer.put("exp/change", b"2")
        writer.delete("exp/gone")
        writer.put("exp/new", b"3")
        _wait_states(recorder, {("exp/change", b"2"), ("exp/gone", None), ("exp/new", b"3")})
        deadline = time.monotonic() + 20
        while watch.resyncs < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watch.resyncs >= 1, "the watch never re-armed after the session expired"
        assert watcher._client.client_id[0] != session_id, "a new session was made"
        # The re-armed watch keeps delivering.
        writer.put("exp/keep", b"after")
        _wait_states(recorder, {("exp/keep", b"after")})
        assert [c.key for c in recorder.changes].count("exp/gone") == 1
    finally:
        watch.stop()


def test_persistent_watch_is_one_server_watch(open_zk: OpenZK, zk_hosts: str, chroot: str) -> None:
    """auto on ZooKeeper >= 3.6: one persistent recursive watch for the whole tree
    (one-shot mode needs one per znode), removed from the server on stop."""
    writer = open_zk()
    for i in range(20):
        writer.put(f"tree/n{i % 4}/k{i}", b"v")
    persistent, oneshot = open_zk(), open_zk("?watch_mode=oneshot")
    p_watch = persistent.watch("tree", ChangeRecorder())
    o_watch = oneshot.watch("tree", ChangeRecorder())
    try:
        assert p_watch.mode == "persistent" and o_watch.mode == "oneshot"
        p_session, o_session = persistent._client.client_id[0], oneshot._client.client_id[0]
        assert session_watches(zk_hosts, p_session) == [f"{chroot}/tree"]
        assert len(session_watches(zk_hosts, o_session)) == 1 + 4 + 20  # every znode
    finally:
        p_watch.stop()
        o_watch.stop()
    deadline = time.monotonic() + 5
    while session_watches(zk_hosts, p_session) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_watches(zk_hosts, p_session) == []


def test_persistent_watch_burst_and_overlapping_prefixes(open_zk: OpenZK) -> None:
    """A burst of writes is read back pipelined; final states all arrive, and two
    watches on nested prefixes of one client each get their own subtree only."""
    watcher, writer = open_zk(), open_zk()
    outer, inner = ChangeRecorder(), ChangeRecorder()
    outer_watch = watcher.watch("burst", outer)
    inner_watch = watcher.watch("burst/in", inner)
    try:
        for round_ in range(5):
            writer.put_many(
                {f"burst/{'in/' if i % 2 else ''}k{i}": f"{round_}".encode() for i in range(100)}
            )
        writer.delete("burst/k0")
        writer.put("burstier/k", b"not below the prefix")
        expected = {(f"burst/{'in/' if i % 2 else ''}k{i}", b"4") for i in range(1, 100)}
        _wait_states(outer, expected | {("burst/k0", None)})
        _wait_states(inner, {(k, v) for k, v in expected if k.startswith("burst/in/")})
        assert all(c.key.startswith("burst/in/") for c in inner.changes)
        assert not any(c.key.startswith("burstier") for c in outer.changes)
        final = {}
        for change in outer.changes:
            final[change.key] = change.entry and change.entry.value
        assert final == dict(expected | {("burst/k0", None)})
    finally:
        inner_watch.stop()
        outer_watch.stop()


def test_watch_mode_option(zk_hosts: str) -> None:
    with pytest.raises(ConfigurationError, match="watch_mode"):
        open_backend(f"zookeeper://{zk_hosts}/x?watch_mode=recursive")
    backend = open_backend(f"zookeeper://{zk_hosts}/x?watch_mode=persistent")
    assert isinstance(backend, ZooKeeperBackend)
    backend.close()


# -- TLS ----------------------------------------------------------------------------------


@pytest.fixture
def tls_hosts() -> str:
    return server_env("VELTRIX_TEST_ZOOKEEPER_TLS", "ZooKeeper TLS port")


def test_tls_refuses_an_unknown_server_certificate(tls_hosts: str) -> None:
    # The system's CAs do not know the test CA: the handshake fails, and says so.
    backend = open_backend(f"zookeeper://{tls_hosts}/x?tls=true&connect_timeout=1.5")
    try:
        with pytest.raises(BackendUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            backend.get("a")
    finally:
        backend.close()


def test_plain_client_on_the_tls_port_is_unavailable(tls_hosts: str) -> None:
    backend = open_backend(f"zookeeper://{tls_hosts}/x?connect_timeout=1")
    try:
        with pytest.raises(BackendUnavailableError, match="not connected"):
            backend.put("a", b"never written")
    finally:
        backend.close()


# -- options and errors ----------------------------------------------------------------


def test_unknown_option_has_a_hint(zk_hosts: str) -> None:
    with pytest.raises(ConfigurationError, match="session_timeout"):
        open_backend(f"zookeeper://{zk_hosts}/x?session_timout=3")


def test_credentials_in_url_rejected(zk_hosts: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        open_backend(f"zookeeper://alice:{SECRET}@{zk_hosts}/x")
    assert SECRET not in str(error.value)


def test_bad_chroot_rejected(zk_hosts: str) -> None:
    with pytest.raises(ConfigurationError):
        open_backend(f"zookeeper://{zk_hosts}/a//b c")
    with pytest.raises(ConfigurationError):
        open_backend(f"zookeeper://{zk_hosts}/zookeeper/quota")
    with pytest.raises(ConfigurationError):
        open_backend(f"zookeeper://{zk_hosts}/x?tls_ca=/tmp/ca.pem")


def test_ensemble_url_and_nothing_listening() -> None:
    # Two members, neither listening: operations fail fast as unavailable.
    backend = open_backend("zookeeper://127.0.0.1:1,127.0.0.1:2/app?connect_timeout=0.3")
    assert isinstance(backend, ZooKeeperBackend)
    try:
        assert repr(backend) == "ZooKeeperBackend('zookeeper://127.0.0.1:1,127.0.0.1:2/app')"
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            backend.get("a/b")
        with pytest.raises(BackendUnavailableError):
            backend.put("a/b", b"x")
        assert time.monotonic() - started < 5
    finally:
        backend.close()
    with pytest.raises(BackendUnavailableError, match="closed"):
        backend.get("a/b")
