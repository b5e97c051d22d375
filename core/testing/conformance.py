"""The shared adapter test-suite.

Every adapter subclasses :class:`BackendConformance` once and provides a
``backend`` pytest fixture that yields an *empty* store (a fresh chroot or
prefix is fine) and closes it afterwards::

    class TestMyStore(BackendConformance):
        @pytest.fixture
        def backend(self, my_server):
            b = MyBackend.from_url(my_server.url + "/" + unique_prefix())
            yield b
            b.close()

Class attributes tune the suite to what a store can promise (see below); they
never skip a behaviour the contract requires.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from itertools import groupby
from typing import Any, ClassVar

import pytest

from veltrix.backend import (
    Absent,
    Change,
    HasUrl,
    SupportsAsyncGet,
    SupportsBatch,
    SupportsBatchPreflight,
    SupportsContentType,
    SupportsList,
    SupportsOrderedVersions,
    SupportsPreflight,
    SupportsSecrets,
    SupportsWatch,
    SupportsWrite,
    supports,
)
from veltrix.errors import (
    ConfigurationError,
    InvalidKeyError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VersionConflictError,
)
from veltrix.testing.blocking_aio import (
    CLIENT_APIS,
    BlockingAsyncClient,
    ClientApi,
    open_client,
)

INVALID_KEYS = ["", "/a", "a/", "a//b", "a/./b", "../a", "a b", "a\x00b", "ä", "a" * 256]


class ChangeRecorder:
    """A watch callback that records changes and lets a test wait for them."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self._cond = threading.Condition()

    def __call__(self, change: Change) -> None:
        with self._cond:
            self.changes.append(change)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Change]], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.changes), timeout=timeout)

    def states(self) -> list[tuple[str, bytes | None]]:
        return [(c.key, None if c.entry is None else c.entry.value) for c in self.changes]


class BackendConformance:
    """What every adapter must do. Subclass and provide a ``backend`` fixture."""

    #: Set when the store's watch is polling and may merge quick successive writes.
    watch_may_coalesce: ClassVar[bool] = False
    #: Set when keys share a version (several keys live in one stored document, as in
    #: GCP Parameter Manager): a write to one moves the others' version, and a watch
    #: may deliver a key again, with the same value at its new version.
    versions_shared_by_keys: ClassVar[bool] = False
    #: Seconds a watch may take to deliver (poll interval plus slack).
    watch_timeout: ClassVar[float] = 10.0
    #: Seconds to let a new watch settle before writing (stores that arm lazily).
    watch_settle: ClassVar[float] = 0.0
    #: Rounds of put/overwrite/delete in the read-your-own-writes test (slow stores: fewer).
    own_write_rounds: ClassVar[int] = 10

    @pytest.fixture
    def backend(self) -> Any:  # pragma: no cover - always overridden
        raise NotImplementedError("subclasses provide a backend fixture")

    @pytest.fixture(params=CLIENT_APIS)
    def client_api(self, request: pytest.FixtureRequest) -> ClientApi:
        """The client-level scenarios run through ``veltrix.Client`` and again through
        ``veltrix.aio.AsyncClient`` (driven by :class:`BlockingAsyncClient`)."""
        return request.param  # type: ignore[no-any-return]

    # -- reads -------------------------------------------------------------------------

    def test_absent_key_is_none(self, backend: Any) -> None:
        assert backend.get("conformance/absent") is None
        assert backend.get("conformance/absent/deeper") is None

    def test_binary_round_trip(self, backend: Any) -> None:
        value = bytes(range(256)) * 4
        version = backend.put("bin/all-bytes", value)
        entry = backend.get("bin/all-bytes")
        assert entry is not None
        assert entry.value == value
        assert entry.version == version
        assert entry.key == "bin/all-bytes"

    def test_empty_value_round_trip(self, backend: Any) -> None:
        backend.put("bin/empty", b"")
        entry = backend.get("bin/empty")
        assert entry is not None, "an empty value is a value, not an absence"
        assert entry.value == b""

    def test_overwrite_gives_new_version(self, backend: Any) -> None:
        v1 = backend.put("ow/key", b"one")
        v2 = backend.put("ow/key", b"two")
        assert v1 != v2
        entry = backend.get("ow/key")
        assert entry is not None and (entry.value, entry.version) == (b"two", v2)

    # -- list --------------------------------------------------------------------------

    def test_list_by_prefix_has_no_leakage(self, backend: Any) -> None:
        if not supports(backend, SupportsList):
            pytest.skip("store does not list")
        for key in ["a/b", "a/b/c", "a/b/d/e", "a/bc", "a/bc/d", "a/c", "b/b"]:
            backend.put(key, key.encode())
        expected = {"a/b", "a/b/c", "a/b/d/e"}
        assert {e.key for e in backend.list("a/b")} == expected
        assert {e.key for e in backend.list("a/b/")} == expected
        assert {e.key for e in backend.list("a")} == expected | {"a/bc", "a/bc/d", "a/c"}
        assert {e.key for e in backend.list("")} >= expected | {"b/b"}
        assert list(backend.list("zzz")) == []
        for entry in backend.list("a/b"):
            assert entry.value == entry.key.encode()
            fetched = backend.get(entry.key)
            assert fetched is not None and fetched.version == entry.version

    # -- writes and compare-and-set ------------------------------------------------------

    def test_cas_success_and_conflict(self, backend: Any) -> None:
        v1 = backend.put("cas/key", b"one")
        v2 = backend.put("cas/key", b"two", if_version=v1)
        with pytest.raises(VersionConflictError):
            backend.put("cas/key", b"three", if_version=v1)
        entry = backend.get("cas/key")
        assert entry is not None and (entry.value, entry.version) == (b"two", v2)

    def test_cas_on_absent_key_conflicts(self, backend: Any) -> None:
        v1 = backend.put("cas/gone", b"x")
        backend.delete("cas/gone")
        with pytest.raises(VersionConflictError):
            backend.put("cas/gone", b"y", if_version=v1)
        assert backend.get("cas/gone") is None

    def test_create_only(self, backend: Any) -> None:
        backend.put("cas/new", b"first", if_version=Absent)
        with pytest.raises(VersionConflictError):
            backend.put("cas/new", b"second", if_version=Absent)
        entry = backend.get("cas/new")
        assert entry is not None and entry.value == b"first"

    def test_delete(self, backend: Any) -> None:
        backend.put("del/key", b"x")
        assert backend.delete("del/key") is True
        assert backend.get("del/key") is None
        assert backend.delete("del/key") is False

    def test_delete_with_cas(self, backend: Any) -> None:
        v1 = backend.put("del/cas", b"one")
        v2 = backend.put("del/cas", b"two")
        with pytest.raises(VersionConflictError):
            backend.delete("del/cas", if_version=v1)
        assert backend.get("del/cas") is not None
        assert backend.delete("del/cas", if_version=v2) is True
        assert backend.get("del/cas") is None

    def test_delete_leaves_children(self, backend: Any) -> None:
        backend.put("tree/parent", b"p")
        backend.put("tree/parent/child", b"c")
        backend.delete("tree/parent")
        assert backend.get("tree/parent") is None
        child = backend.get("tree/parent/child")
        assert child is not None and child.value == b"c"

    # -- bad input ---------------------------------------------------------------------

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_keys_rejected(self, backend: Any, key: str) -> None:
        with pytest.raises(InvalidKeyError):
            backend.get(key)
        with pytest.raises(InvalidKeyError):
            backend.put(key, b"x")
        with pytest.raises(InvalidKeyError):
            backend.delete(key)

    def test_invalid_keys_rejected_before_io(self, backend: Any) -> None:
        """A closed backend cannot do I/O, so a key error here was raised before any."""
        backend.close()
        for key in INVALID_KEYS:
            with pytest.raises(InvalidKeyError):
                backend.get(key)
            with pytest.raises(InvalidKeyError):
                backend.put(key, b"x")

    def test_value_too_large(self, backend: Any) -> None:
        limit = backend.max_value_bytes
        if limit is None:
            pytest.skip("store has no value size limit")
        with pytest.raises(ValueTooLargeError):
            backend.put("big/key", b"x" * (limit + 1))
        assert backend.get("big/key") is None, "a failed put must write nothing"

    def test_value_at_limit_accepted(self, backend: Any) -> None:
        limit = backend.max_value_bytes
        if limit is None:
            pytest.skip("store has no value size limit")
        backend.put("big/exact", b"y" * limit)
        entry = backend.get("big/exact")
        assert entry is not None and len(entry.value) == limit

    def test_repr_has_no_values(self, backend: Any) -> None:
        backend.put("repr/secret", b"hunter2-secret-value")
        entry = backend.get("repr/secret")
        assert "hunter2" not in repr(entry)
        assert "hunter2" not in repr(backend)

    # -- watch -------------------------------------------------------------------------

    def test_watch_delivers_puts_and_deletes_in_order(self, backend: Any) -> None:
        if not supports(backend, SupportsWatch):
            pytest.skip("store does not watch")
        recorder = ChangeRecorder()
        watch = backend.watch("w", recorder)
        try:
            time.sleep(self.watch_settle)
            writes: list[tuple[str, bytes | None]] = [
                ("w/a", b"1"),
                ("w/a", b"2"),
                ("w/a", None),
                ("w/b/c", b"3"),
            ]
            backend.put("wx/outside", b"no")  # must never be delivered
            for key, value in writes:
                if value is None:
                    backend.delete(key)
                else:
                    backend.put(key, value)
                if self.watch_may_coalesce:
                    assert recorder.wait_for(
                        lambda ch, k=key, v=value: any(  # type: ignore[misc]
                            (c.key, None if c.entry is None else c.entry.value) == (k, v)
                            for c in ch
                        ),
                        self.watch_timeout,
                    ), f"change {key}={value!r} not delivered; got {recorder.states()}"
            assert recorder.wait_for(
                lambda ch: ("w/b/c", b"3") in [(c.key, c.entry and c.entry.value) for c in ch],
                self.watch_timeout,
            ), f"got {recorder.states()}"
            assert recorder.states() == writes
            assert all(c.key != "wx/outside" for c in recorder.changes)
            last = recorder.changes[-1]
            assert last.entry is not None and last.entry.version
        finally:
            watch.stop()
        watch.stop()  # idempotent

    def test_watch_delivers_the_final_state_of_a_burst(self, backend: Any) -> None:
        """Writes with no pause between them, as a deploy or a migration makes them.

        A store may merge quick successive writes to one key (``watch_may_coalesce``),
        but what it delivers of each key is a subsequence of the writes in their order
        (never an older state after a newer one), ending with the key's final state;
        deletes included. A store that does not coalesce delivers every state.
        """
        if not supports(backend, SupportsWatch):
            pytest.skip("store does not watch")
        burst: list[tuple[str, bytes | None]] = [("wb/a", str(i).encode()) for i in range(8)]
        burst += [("wb/b", b"x"), ("wb/a", None), ("wb/b", b"y"), ("wb/a", b"last")]
        final = {"wb/a": b"last", "wb/b": b"y"}
        recorder = ChangeRecorder()
        watch = backend.watch("wb", recorder)
        try:
            time.sleep(self.watch_settle)
            for key, value in burst:
                if value is None:
                    backend.delete(key)
                else:
                    backend.put(key, value)

            def settled(changes: list[Change]) -> bool:
                last = {c.key: None if c.entry is None else c.entry.value for c in changes}
                return last == final

            assert recorder.wait_for(settled, self.watch_timeout), (
                f"final states not delivered; got {recorder.states()}"
            )
            time.sleep(min(0.5, self.watch_timeout))  # nothing may follow the final states
            states = recorder.states()
            for key in final:
                written = [value for k, value in burst if k == key]
                delivered = [value for k, value in states if k == key]
                if not self.watch_may_coalesce:
                    assert delivered == written
                    continue
                if self.versions_shared_by_keys:  # a value again, at a newer version
                    delivered = [value for value, _ in groupby(delivered)]
                rest = iter(written)  # a subsequence: each state found after the one before
                assert all(any(value == w for w in rest) for value in delivered), (
                    f"{key}: delivered {delivered} out of the order written {written}"
                )
                assert delivered[-1] == written[-1]
        finally:
            watch.stop()

    def test_watch_stops_delivering(self, backend: Any) -> None:
        if not supports(backend, SupportsWatch):
            pytest.skip("store does not watch")
        recorder = ChangeRecorder()
        watch = backend.watch("ws", recorder)
        time.sleep(self.watch_settle)
        backend.put("ws/a", b"1")
        assert recorder.wait_for(lambda ch: len(ch) >= 1, self.watch_timeout)
        watch.stop()
        backend.put("ws/a", b"2")
        time.sleep(min(1.0, self.watch_timeout))
        assert recorder.states() == [("ws/a", b"1")]

    # -- optional abilities (each test runs for the adapters that declare it) -----------

    def test_put_many_writes_all_and_returns_versions(self, backend: Any) -> None:
        if not supports(backend, SupportsBatch):
            pytest.skip("store has no put_many")
        assert isinstance(backend.max_batch_ops, int) and backend.max_batch_ops > 0
        written = backend.put_many({"batch/a": b"1", "batch/b": b"2"})
        assert set(written) == {"batch/a", "batch/b"}
        for key, value in (("batch/a", b"1"), ("batch/b", b"2")):
            entry = backend.get(key)
            assert entry is not None and entry.value == value
            assert entry.version == written[key]
        old_a = written["batch/a"]
        changed = backend.put_many(
            [("batch/a", None), ("batch/c", b"3")],
            if_versions={"batch/a": old_a, "batch/c": Absent},
        )
        assert changed["batch/a"] is None, "a delete's version is None"
        assert backend.get("batch/a") is None
        entry = backend.get("batch/c")
        assert entry is not None and entry.value == b"3" and entry.version == changed["batch/c"]

    def test_put_many_lost_compare_writes_nothing(self, backend: Any) -> None:
        if not supports(backend, SupportsBatch):
            pytest.skip("store has no put_many")
        stale = backend.put("batch/x", b"1")
        current = backend.put("batch/x", b"2")
        with pytest.raises(VersionConflictError):
            backend.put_many(
                {"batch/x": b"3", "batch/y": b"4"}, atomic=True, if_versions={"batch/x": stale}
            )
        with pytest.raises(VersionConflictError):
            backend.put_many({"batch/x": b"3"}, if_versions={"batch/x": Absent})
        entry = backend.get("batch/x")
        assert entry is not None and (entry.value, entry.version) == (b"2", current)
        assert backend.get("batch/y") is None, "an atomic batch with a lost compare wrote"

    def test_preflight_checks_without_writing(self, backend: Any) -> None:
        if not supports(backend, SupportsPreflight):
            pytest.skip("store has no check_key/check_value")
        backend.check_key("pre/ok")
        backend.check_value("pre/ok", b"small")
        limit = backend.max_value_bytes
        if limit is not None:
            with pytest.raises(ValueTooLargeError):
                backend.check_value("pre/big", b"x" * (limit + 1))
        assert backend.get("pre/ok") is None and backend.get("pre/big") is None

    def test_batch_preflight_checks_without_writing(self, backend: Any) -> None:
        if not supports(backend, SupportsBatchPreflight):
            pytest.skip("store has no check_batch")
        backend.check_batch([("pre/a", b"1"), ("pre/b", None)])
        limit = backend.max_value_bytes
        if limit is not None:
            with pytest.raises(ValueTooLargeError):
                backend.check_batch({"pre/a": b"1", "pre/big": b"x" * (limit + 1)})
        assert backend.get("pre/a") is None and backend.get("pre/big") is None

    def test_content_type_is_kept(self, backend: Any) -> None:
        if not supports(backend, SupportsContentType):
            pytest.skip("store does not keep content types")
        assert backend.keeps_content_type is True
        backend.put("ct/doc", b'{"a": 1}', content_type="application/json")
        entry = backend.get("ct/doc")
        assert entry is not None and entry.content_type == "application/json"
        backend.put("ct/plain", b"x")
        plain = backend.get("ct/plain")
        assert plain is not None and plain.content_type is None

    def test_secret_flag_matches_holds_secrets(self, backend: Any) -> None:
        if not supports(backend, SupportsSecrets):
            pytest.skip("store does not say whether it holds secrets")
        assert isinstance(backend.holds_secrets, bool)
        backend.put("sec/value", b"hunter2")
        entry = backend.get("sec/value")
        assert entry is not None
        if backend.holds_secrets:
            assert entry.secret, "a store that holds secrets must flag what it holds"

    def test_versions_increase_when_the_store_says_so(self, backend: Any) -> None:
        if not (supports(backend, SupportsOrderedVersions) and backend.versions_increase):
            pytest.skip("store does not promise increasing versions")
        versions = [int(backend.put("ov/a", b"1"))]
        versions.append(int(backend.put("ov/b", b"other key")))
        versions.append(int(backend.put("ov/a", b"2")))
        backend.delete("ov/a")
        versions.append(int(backend.put("ov/a", b"re-created")))  # not reset by the delete
        entry = backend.get("ov/a")
        assert entry is not None and int(entry.version) == versions[-1]
        assert versions == sorted(versions) and len(set(versions)) == len(versions), versions

    def test_url_names_one_of_its_schemes(self, backend: Any) -> None:
        if not supports(backend, HasUrl):
            pytest.skip("store has no url")
        url = backend.url
        assert isinstance(url, str)
        assert url.split(":", 1)[0].lower() in backend.schemes

    # -- through the caching client -------------------------------------------------------

    def test_client_reads_its_own_writes_and_deletes(
        self, backend: Any, client_api: ClientApi
    ) -> None:
        """A client never serves a value it deleted or overwrote, also when its watch
        delivers the older changes after the write (with or without a watch)."""
        from veltrix.cache import CachePolicy

        watching = supports(backend, SupportsWatch)
        with open_client(client_api, backend, cache=CachePolicy(ttl=60)) as client:
            recorder = ChangeRecorder()
            if watching:
                client.watch("own", recorder)
                time.sleep(self.watch_settle)
            keys = [f"own/k{i}" for i in range(3)]
            for round_ in range(self.own_write_rounds):
                for key in keys:
                    client.put(key, f"a{round_}")
                    client.put(key, f"b{round_}")
                    assert client.get(key) == f"b{round_}"
                    assert client.delete(key) is True
                    assert client.get(key, default=None) is None, f"{key} came back"
            if watching:  # once the marker is delivered, every older change has been too
                client.put("own/marker", b"end")
                assert recorder.wait_for(
                    lambda ch: any(c.key == "own/marker" for c in ch), self.watch_timeout
                ), f"marker not delivered; got {recorder.states()[-5:]}"
            for key in keys:
                assert client.get(key, default=None) is None, f"{key} resurrected by a late change"

    # -- native asyncio reads (SupportsAsyncGet) --------------------------------------

    def _native(self, backend: Any) -> Any:
        if not (supports(backend, SupportsAsyncGet) and backend.native_async):
            pytest.skip("store has no native asyncio reads")
        return backend

    def test_async_get_matches_get(self, backend: Any) -> None:
        """``aget`` answers as ``get`` does (entry, absence, invalid keys), on the loop
        that opened its connection only."""
        native = self._native(backend)
        backend.put("async/text", b"hello")
        backend.put("async/binary", b"\x00\xff")

        async def reads() -> list[Any]:  # leaves the connection open: see elsewhere()
            found = [await native.aget(k) for k in ("async/text", "async/binary", "async/no")]
            for bad in INVALID_KEYS[:4]:
                with pytest.raises(InvalidKeyError):
                    await native.aget(bad)
            return found

        assert asyncio.run(reads()) == [
            backend.get("async/text"),
            backend.get("async/binary"),
            None,
        ]

        async def elsewhere() -> None:
            await native.aget("async/text")

        with pytest.raises(ConfigurationError, match="another event loop"):
            asyncio.run(elsewhere())

        async def reopened() -> Any:
            await native.aclose()  # from here on, the connection is free to move
            try:
                return await native.aget("async/text")
            finally:
                await native.aclose()

        assert asyncio.run(reopened()) == backend.get("async/text")

    def test_async_client_misses_without_threads(self, backend: Any) -> None:
        """``AsyncClient`` reads a miss through ``aget`` on the loop: no worker thread
        (one starts the watch, once), the client's counts as for any miss."""
        from veltrix.cache import CachePolicy

        self._native(backend)
        for i in range(3):
            backend.put(f"native/k{i}", f"v{i}".encode())
        with BlockingAsyncClient(backend, cache=CachePolicy(ttl=60), native_reads=True) as client:
            assert [client.get(f"native/k{i}") for i in range(3)] == ["v0", "v1", "v2"]
            assert client.get("native/absent", None) is None
            assert client.get("native/k0") == "v0"  # a hit
            aclient = client.aclient
            watching = supports(backend, SupportsWatch)
            assert aclient._pool.submitted == (1 if watching else 0)  # the watch's start
            assert aclient.native_misses == 4
            stats = client.stats()
            assert (stats["misses"], stats["store_calls"], stats["errors"]) == (4, 4, 0)

    def test_async_client_on_another_loop_reads_on_threads(self, backend: Any) -> None:
        """The store's asyncio connection belongs to the first loop that misses; the
        same ``AsyncClient`` used from another loop meanwhile reads on its threads."""
        from veltrix.aio import AsyncClient
        from veltrix.cache import CachePolicy

        self._native(backend)
        backend.put("loops/a", b"1")
        backend.put("loops/b", b"2")
        client = AsyncClient(backend, cache=CachePolicy(ttl=60, watch=False), native_reads=True)
        second: dict[str, Any] = {}

        async def first_loop() -> None:
            assert await client.get("loops/a") == "1"

            def other() -> None:
                second["value"] = asyncio.run(client.get("loops/b"))

            await asyncio.to_thread(other)
            await client.aclose()

        asyncio.run(first_loop())
        assert second["value"] == "2"
        assert client.native_misses == 1 and client._pool.submitted == 1

    # -- lifecycle ---------------------------------------------------------------------

    def test_close_is_idempotent(self, backend: Any) -> None:
        backend.close()
        backend.close()

    def test_has_contract_attributes(self, backend: Any) -> None:
        assert backend.schemes and all(isinstance(s, str) for s in backend.schemes)
        assert isinstance(backend.transient_errors, tuple)
        assert supports(backend, SupportsWrite), "the conformance suite needs a writable store"


#: What a read-only suite's ``publish`` fixture takes: the store's whole new content.
Publish = Callable[[dict[str, bytes]], None]


class ReadOnlyConformance:
    """What every read-only store must do (no ``put``/``delete``: ``SupportsWrite`` is absent).

    Subclasses provide two fixtures: ``backend`` (the store, opened on an empty
    source) and ``publish``, a callable that replaces the *whole* content of that
    source the store's own way (a new volume version, a new document deployment...),
    as another process would. Keys published by this suite never have a key that is
    also the parent of another (a file cannot also be a directory)."""

    #: Seconds a watch may take to deliver (poll interval plus slack).
    watch_timeout: ClassVar[float] = 10.0
    #: Seconds to let a new watch settle before publishing.
    watch_settle: ClassVar[float] = 0.0

    @pytest.fixture
    def backend(self) -> Any:  # pragma: no cover - always overridden
        raise NotImplementedError("subclasses provide a backend fixture")

    @pytest.fixture(params=CLIENT_APIS)
    def client_api(self, request: pytest.FixtureRequest) -> ClientApi:
        """The client-level scenarios run through ``veltrix.Client`` and again through
        ``veltrix.aio.AsyncClient`` (driven by :class:`BlockingAsyncClient`)."""
        return request.param  # type: ignore[no-any-return]

    @pytest.fixture
    def publish(self) -> Publish:  # pragma: no cover - always overridden
        raise NotImplementedError("subclasses provide a publish fixture")

    def test_absent_key_is_none(self, backend: Any) -> None:
        assert backend.get("conformance/absent") is None
        assert backend.get("conformance/absent/deeper") is None

    def test_binary_and_empty_values(self, backend: Any, publish: Publish) -> None:
        value = bytes(range(256)) * 4
        publish({"bin/all-bytes": value, "bin/empty": b""})
        entry = backend.get("bin/all-bytes")
        assert entry is not None and entry.value == value and entry.key == "bin/all-bytes"
        assert isinstance(entry.version, str) and entry.version
        empty = backend.get("bin/empty")
        assert empty is not None and empty.value == b"", "an empty value is a value"

    def test_change_gives_new_version(self, backend: Any, publish: Publish) -> None:
        publish({"ow/key": b"one"})
        first = backend.get("ow/key")
        publish({"ow/key": b"two"})
        second = backend.get("ow/key")
        assert first is not None and second is not None
        assert (first.value, second.value) == (b"one", b"two")
        assert first.version != second.version
        publish({})
        assert backend.get("ow/key") is None, "a key gone from the source is absent"

    def test_list_by_prefix_has_no_leakage(self, backend: Any, publish: Publish) -> None:
        if not supports(backend, SupportsList):
            pytest.skip("store does not list")
        keys = ["a/b/x", "a/b/d/e", "a/bc/d", "a/c", "b/b"]
        publish({key: key.encode() for key in keys})
        expected = {"a/b/x", "a/b/d/e"}
        assert {e.key for e in backend.list("a/b")} == expected
        assert {e.key for e in backend.list("a/b/")} == expected
        assert {e.key for e in backend.list("a")} == expected | {"a/bc/d", "a/c"}
        assert {e.key for e in backend.list("")} == set(keys)
        assert list(backend.list("zzz")) == []
        for entry in backend.list(""):
            assert entry.value == entry.key.encode()
            fetched = backend.get(entry.key)
            assert fetched is not None and fetched.version == entry.version

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_keys_rejected(self, backend: Any, key: str) -> None:
        with pytest.raises(InvalidKeyError):
            backend.get(key)

    def test_invalid_keys_rejected_before_io(self, backend: Any) -> None:
        backend.close()
        for key in INVALID_KEYS:
            with pytest.raises(InvalidKeyError):
                backend.get(key)

    def test_writes_are_unsupported(
        self, backend: Any, publish: Publish, client_api: ClientApi
    ) -> None:
        assert not supports(backend, SupportsWrite)
        publish({"ro/key": b"kept"})
        with open_client(client_api, backend) as client:
            with pytest.raises(UnsupportedOperationError):
                client.put("ro/key", b"other")
            with pytest.raises(UnsupportedOperationError):
                client.delete("ro/key")
            assert client.get("ro/key") == "kept"

    def test_repr_has_no_values(self, backend: Any, publish: Publish) -> None:
        publish({"repr/secret": b"hunter2-secret-value"})
        entry = backend.get("repr/secret")
        assert entry is not None
        assert "hunter2" not in repr(entry)
        assert "hunter2" not in repr(backend)

    def test_secret_flag_matches_holds_secrets(self, backend: Any, publish: Publish) -> None:
        if not supports(backend, SupportsSecrets):
            pytest.skip("store does not say whether it holds secrets")
        publish({"sec/value": b"hunter2"})
        entry = backend.get("sec/value")
        assert entry is not None
        if backend.holds_secrets:
            assert entry.secret, "a store that holds secrets must flag what it holds"

    def test_watch_delivers_puts_and_deletes_in_order(self, backend: Any, publish: Publish) -> None:
        if not supports(backend, SupportsWatch):
            pytest.skip("store does not watch")
        outside = {"wx/outside": b"no"}
        publish(dict(outside))
        recorder = ChangeRecorder()
        watch = backend.watch("w", recorder)
        try:
            time.sleep(self.watch_settle)
            steps: list[tuple[dict[str, bytes], tuple[str, bytes | None]]] = [
                ({"w/a": b"1"}, ("w/a", b"1")),
                ({"w/a": b"2"}, ("w/a", b"2")),
                ({}, ("w/a", None)),
                ({"w/b/c": b"3"}, ("w/b/c", b"3")),
            ]
            for content, expected in steps:
                publish({**outside, **content})
                assert recorder.wait_for(_delivered(expected), self.watch_timeout), (
                    f"change {expected} not delivered; got {recorder.states()}"
                )
            assert recorder.states() == [expected for _, expected in steps]
            assert all(c.key != "wx/outside" for c in recorder.changes)
        finally:
            watch.stop()
        watch.stop()  # idempotent

    def test_watch_stops_delivering(self, backend: Any, publish: Publish) -> None:
        if not supports(backend, SupportsWatch):
            pytest.skip("store does not watch")
        recorder = ChangeRecorder()
        watch = backend.watch("ws", recorder)
        time.sleep(self.watch_settle)
        publish({"ws/a": b"1"})
        assert recorder.wait_for(lambda ch: len(ch) >= 1, self.watch_timeout)
        watch.stop()
        publish({"ws/a": b"2"})
        time.sleep(min(1.0, self.watch_timeout))
        assert recorder.states() == [("ws/a", b"1")]

    def test_client_sees_published_changes(
        self, backend: Any, publish: Publish, client_api: ClientApi
    ) -> None:
        """A client with a long TTL still sees new content: through the watch when the
        store has one (the TTL is the safety net), else on its next read."""
        from veltrix.cache import CachePolicy

        publish({"cl/key": b"old"})
        watching = supports(backend, SupportsWatch)
        policy = CachePolicy(ttl=60 if watching else 0)
        with open_client(client_api, backend, cache=policy) as client:
            recorder = ChangeRecorder()
            if watching:
                client.watch("cl", recorder)
                time.sleep(self.watch_settle)
            assert client.get("cl/key") == "old"
            publish({"cl/key": b"new"})
            if watching:
                assert recorder.wait_for(lambda ch: len(ch) >= 1, self.watch_timeout)
            assert client.get("cl/key") == "new"
            publish({})
            if watching:
                assert recorder.wait_for(lambda ch: len(ch) >= 2, self.watch_timeout)
            assert client.get("cl/key", default=None) is None

    def test_url_names_one_of_its_schemes(self, backend: Any) -> None:
        if not supports(backend, HasUrl):
            pytest.skip("store has no url")
        assert backend.url.split(":", 1)[0].lower() in backend.schemes

    def test_close_is_idempotent(self, backend: Any) -> None:
        backend.close()
        backend.close()

    def test_has_contract_attributes(self, backend: Any) -> None:
        assert backend.schemes and all(isinstance(s, str) for s in backend.schemes)
        assert isinstance(backend.transient_errors, tuple)
        assert not supports(backend, SupportsWrite), "a read-only store has no put/delete"


def _delivered(state: tuple[str, bytes | None]) -> Callable[[list[Change]], bool]:
    """A ``wait_for`` predicate: ``state`` (key, value or None) was delivered."""

    def check(changes: list[Change]) -> bool:
        return any((c.key, None if c.entry is None else c.entry.value) == state for c in changes)

    return check


__all__ = [
    "INVALID_KEYS",
    "BackendConformance",
    "ChangeRecorder",
    "Publish",
    "ReadOnlyConformance",
]
