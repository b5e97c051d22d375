"""Consul adapter behaviour beyond the conformance suite: URLs and options, the
batch writes over /v1/txn, error mapping, ACL tokens, and the watch loop.
Everything talks to the Consul test server processes over HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import consul
import pytest

from tests.support import server_env, unique_name, unused_port
from veltrix.adapters.consul import MAX_TXN_OPS, ConsulBackend
from veltrix.backend import Absent
from veltrix.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VersionConflictError,
)
from veltrix.registry import open_backend
from veltrix.testing.conformance import ChangeRecorder


@pytest.fixture(scope="module")
def address() -> str:
    return server_env("VELTRIX_TEST_CONSUL_ADDR", "Consul test server")


@pytest.fixture
def backend(address: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConsulBackend]:
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    prefix = f"adapter/{unique_name()}"
    backend = open_backend(f"consul://{address}/{prefix}?watch_min_interval=0.01")
    assert isinstance(backend, ConsulBackend)
    yield backend
    backend.close()
    host, _, port = address.rpartition(":")
    consul.Consul(host=host, port=int(port)).kv.delete(prefix + "/", recurse=True)


# -- URLs ------------------------------------------------------------------------------


def test_url_parts_and_options() -> None:
    backend = ConsulBackend.from_url(
        "consul://consul.example:8600/app/prod?dc=east&scheme=https&verify=false&timeout=3"
    )
    assert (backend.host, backend.port, backend.prefix) == ("consul.example", 8600, "app/prod")
    assert backend.dc == "east" and backend.scheme == "https"
    assert repr(backend) == "ConsulBackend('consul://consul.example:8600/app/prod?dc=east')"
    backend.close()
    assert ConsulBackend.from_url("consul://h").port == 8500


@pytest.mark.parametrize(
    "url",
    [
        "consul://h:8500/app?token=s3cr3t",
        "consul://h:8500/app?colour=blue",
        "consul://h:8500/app?scheme=ftp",
        "consul://h:8500/a//b",
        "consul://h1,h2/app",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ConsulBackend.from_url(url)
    assert "s3cr3t" not in str(info.value)


def test_token_never_shown(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "tok-from-env-123")
    backend = ConsulBackend.from_url(f"consul://{address}/x")
    assert "tok-from-env" not in repr(backend) and "tok-from-env" not in backend.url
    backend.close()


# -- batches over /v1/txn ----------------------------------------------------------------


def test_put_many_atomic(backend: ConsulBackend) -> None:
    backend.put("old", b"0")
    versions = backend.put_many({"a": b"1", "b/c": b"2", "old": None})
    assert versions["old"] is None
    assert versions["a"] == versions["b/c"]  # one transaction, one index
    entry = backend.get("a")
    assert entry is not None and entry.version == versions["a"]
    assert backend.get("old") is None


def test_put_many_atomic_rolls_back(backend: ConsulBackend) -> None:
    v1 = backend.put("k", b"1")
    backend.put("k", b"2")
    with pytest.raises(VersionConflictError):
        backend.put_many([("new", b"x"), ("k", b"3")], if_versions={"k": v1})
    assert backend.get("new") is None, "a failed atomic batch writes nothing"
    with pytest.raises(VersionConflictError):
        backend.put_many([("k", b"3")], if_versions={"k": Absent})
    created = backend.put_many([("fresh", b"x")], if_versions={"fresh": Absent})
    assert created["fresh"]


def test_put_many_limits_checked_before_io(backend: ConsulBackend) -> None:
    many = {f"k{i}": b"v" for i in range(MAX_TXN_OPS + 1)}
    with pytest.raises(UnsupportedOperationError):
        backend.put_many(many)
    assert backend.get("k0") is None
    with pytest.raises(ValueTooLargeError):
        backend.put_many({"big": b"x" * (512 * 1024 + 1)})
    with pytest.raises(InvalidKeyError):
        backend.put_many([("ok", b"1"), ("ok", b"2")])
    with pytest.raises(InvalidKeyError):
        backend.put_many({"bad//key": b"1"})
    assert list(backend.list("")) == []


def test_put_many_split(backend: ConsulBackend) -> None:
    items = {f"split/{i:03d}": str(i).encode() for i in range(150)}
    versions = backend.put_many(items, atomic=False)
    assert len(versions) == 150 and all(versions.values())
    assert len(set(versions.values())) == 3  # 64 + 64 + 22 operations
    assert {e.key for e in backend.list("split")} == set(items)


def test_large_value_outside_transaction(backend: ConsulBackend) -> None:
    value = bytes(range(256)) * 2048  # 512 KiB: too big for a /v1/txn body once base64
    version = backend.put("large", value)
    entry = backend.get("large")
    assert entry is not None and entry.value == value and entry.version == version
    with pytest.raises(VersionConflictError):
        backend.put("large", value, if_version=Absent)
    assert backend.put("large", value, if_version=version) != version


def test_folder_entries_and_foreign_keys_are_skipped(backend: ConsulBackend, address: str) -> None:
    host, _, port = address.rpartition(":")
    raw = consul.Consul(host=host, port=int(port))
    raw.kv.put(f"{backend.prefix}/dir/", None)
    raw.kv.put(f"{backend.prefix}/dir/sp ace", "x")
    backend.put("dir/ok", b"1")
    assert [e.key for e in backend.list("")] == ["dir/ok"]


# -- errors ------------------------------------------------------------------------------


def test_refused_is_unavailable() -> None:
    backend = ConsulBackend.from_url(f"consul://127.0.0.1:{unused_port()}/x?timeout=2")
    with pytest.raises(BackendUnavailableError) as info:
        backend.get("a")
    assert isinstance(info.value.__cause__, Exception)
    with pytest.raises(BackendUnavailableError):
        backend.put("a", b"1")
    backend.close()


def test_unknown_datacenter_is_unavailable(address: str) -> None:
    backend = ConsulBackend.from_url(f"consul://{address}/x?dc=nowhere")
    with pytest.raises(BackendUnavailableError, match="No path to datacenter"):
        backend.get("a")
    backend.close()


def test_bad_versions_conflict_without_io(backend: ConsulBackend) -> None:
    backend.put("v", b"1")
    for version in ("0", "-3", "abc"):
        with pytest.raises(VersionConflictError):
            backend.put("v", b"2", if_version=version)
        with pytest.raises(VersionConflictError):
            backend.delete("v", if_version=version)
    with pytest.raises(VersionConflictError):
        backend.delete("never-there", if_version="5")


# -- ACLs --------------------------------------------------------------------------------


class TestACL:
    @pytest.fixture
    def acl(self) -> tuple[str, str]:
        return (
            server_env("VELTRIX_TEST_CONSUL_ACL_ADDR", "Consul test server with ACLs"),
            server_env("VELTRIX_TEST_CONSUL_ACL_TOKEN", "Consul test server ACL token"),
        )

    def test_token_from_environment(
        self,
        acl: tuple[str, str],
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        address, token = acl
        caplog.set_level(logging.DEBUG)
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", token)
        prefix = f"acl/{unique_name()}"
        backend = ConsulBackend.from_url(f"consul://{address}/{prefix}")
        version = backend.put("a", b"1")
        entry = backend.get("a")
        assert entry is not None and entry.version == version
        assert [e.key for e in backend.list("")] == ["a"]
        assert backend.put_many({"b": b"2"})["b"]
        assert backend.delete("a") is True
        recorder = ChangeRecorder()
        watch = backend.watch("", recorder)
        backend.put("w", b"x")
        assert recorder.wait_for(lambda ch: ("w", b"x") in recorder.states(), 15)
        watch.stop()
        backend.delete("b")
        backend.delete("w")
        backend.close()
        assert token not in caplog.text
        assert token not in repr(backend)

    @pytest.mark.parametrize("token", [None, "wrong-token"])
    def test_refused(
        self, acl: tuple[str, str], monkeypatch: pytest.MonkeyPatch, token: str | None
    ) -> None:
        address, good = acl
        monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
        writer = ConsulBackend.from_url(f"consul://{address}/acl-refused", token=good)
        writer.put("k", b"v")
        backend = ConsulBackend.from_url(f"consul://{address}/acl-refused", token=token)
        for call in (
            lambda: backend.get("k"),
            lambda: backend.put("k", b"x"),
            lambda: backend.delete("k"),
            lambda: list(backend.list("")),
            lambda: backend.put_many({"k": b"x"}),
        ):
            with pytest.raises(AccessDeniedError) as info:
                call()
            assert good not in str(info.value)
            assert info.value.__cause__ is not None
        entry = writer.get("k")
        assert entry is not None and entry.value == b"v", "a refused write writes nothing"
        writer.delete("k")
        backend.close()
        writer.close()


# -- watch -------------------------------------------------------------------------------


def test_watch_sees_batch_and_prefix_only(backend: ConsulBackend) -> None:
    backend.put("w/pre", b"0")
    recorder = ChangeRecorder()
    watch = backend.watch("w", recorder)
    try:
        backend.put("wx", b"outside")
        backend.put_many({"w/a": b"1", "w/b": b"2", "w/pre": None})
        assert recorder.wait_for(lambda ch: len(ch) >= 3, 15), recorder.states()
        assert sorted(recorder.states(), key=str) == sorted(
            [("w/a", b"1"), ("w/b", b"2"), ("w/pre", None)], key=str
        )
    finally:
        watch.stop()


def test_watch_stop_is_prompt(backend: ConsulBackend) -> None:
    import time

    watch = backend.watch("", ChangeRecorder())
    started = time.monotonic()
    watch.stop()
    assert time.monotonic() - started < 2


def test_change_after_a_change_is_not_rate_limited(address: str) -> None:
    """watch_min_interval only spaces queries that came back with nothing: a change
    right after another is seen at once, not a min-interval later."""
    import time

    prefix = f"adapter/{unique_name()}"
    backend = ConsulBackend.from_url(f"consul://{address}/{prefix}?watch_min_interval=1")
    recorder = ChangeRecorder()
    watch = backend.watch("rl", recorder)
    try:
        backend.put("rl/a", b"1")
        assert recorder.wait_for(lambda ch: len(ch) == 1, timeout=5)
        time.sleep(0.1)
        started = time.monotonic()
        backend.put("rl/a", b"2")
        assert recorder.wait_for(lambda ch: len(ch) == 2, timeout=5)
        assert time.monotonic() - started < 0.5, "the second change waited for the rate limit"
    finally:
        watch.stop()
        backend.close()
        host, _, port = address.rpartition(":")
        consul.Consul(host=host, port=int(port)).kv.delete(prefix + "/", recurse=True)
