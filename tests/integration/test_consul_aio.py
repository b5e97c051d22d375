"""``AsyncClient`` over ``consul://``: misses read through aiohttp on the loop.

Against the Consul test server processes (``scripts/services up consul``): the one
without ACLs, and the one with ACLs for refusals. Failures are made without touching
the shared servers: a closed port, TLS spoken to a plain-HTTP server, an unknown
datacenter, a missing or wrong token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import server_env, unique_name, unused_port
from veltrix import CachePolicy
from veltrix.adapters.consul import ConsulBackend
from veltrix.aio import AsyncClient
from veltrix.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    ConfigurationError,
    VeltrixError,
)
from veltrix.health import HealthState


@pytest.fixture(scope="module")
def address() -> str:
    return server_env("VELTRIX_TEST_CONSUL_ADDR", "Consul test server")


@pytest.fixture
def backend(address: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ConsulBackend]:
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    url = f"consul://{address}/aio/{unique_name()}"
    store = ConsulBackend.from_url(url)
    yield store
    store.close()
    cleanup = ConsulBackend.from_url(url)
    cleanup.put_many({entry.key: None for entry in cleanup.list("")}, atomic=False)
    cleanup.close()


def _chain(error: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _sync_and_async_errors(store: ConsulBackend, key: str) -> tuple[VeltrixError, VeltrixError]:
    """What ``get`` and ``aget`` raise for ``key`` (both must raise)."""
    with pytest.raises(VeltrixError) as sync:
        store.get(key)

    async def read() -> None:
        try:
            await store.aget(key)
        finally:
            await store.aclose()

    with pytest.raises(VeltrixError) as native:
        asyncio.run(read())
    return sync.value, native.value


def test_misses_are_read_on_the_loop(backend: ConsulBackend) -> None:
    backend.put("app/text", b"hello")
    backend.put_many({f"many/{i}": str(i).encode() for i in range(60)})

    async def scenario() -> None:
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(backend, cache=policy, native_reads=True) as client:
            assert await client.get("app/text") == "hello"
            assert await client.get("app/absent", "fallback") == "fallback"
            # 200 tasks on one key share one read; 60 keys at once, one read each.
            assert set(
                await asyncio.gather(*(client.get("app/shared", 0) for _ in range(200)))
            ) == {0}
            values = await asyncio.gather(*(client.get(f"many/{i}") for i in range(60)))
            assert values == [str(i) for i in range(60)]
            assert client.native_misses == 63 and client._pool.submitted == 0
            assert client.stats()["store_calls"] == 63

    asyncio.run(scenario())


def test_consistency_and_datacenter_are_those_of_get(address: str) -> None:
    prefix = f"aio/{unique_name()}"
    writer = ConsulBackend.from_url(f"consul://{address}/{prefix}")
    writer.put("k", b"v")
    try:
        for query in ("consistency=stale", "consistency=consistent&dc=dc1"):
            store = ConsulBackend.from_url(f"consul://{address}/{prefix}?{query}")

            async def read(store: ConsulBackend = store) -> Any:
                try:
                    return await store.aget("k")
                finally:
                    await store.aclose()

            assert asyncio.run(read()) == store.get("k") == writer.get("k")
            store.close()
        elsewhere = ConsulBackend.from_url(f"consul://{address}/{prefix}?dc=nowhere")
        sync, native = _sync_and_async_errors(elsewhere, "k")
        assert type(sync) is type(native) is BackendUnavailableError
        assert str(sync) == str(native) and "No path to datacenter" in str(native)
        elsewhere.close()
    finally:
        writer.delete("k")
        writer.close()


def test_server_down_is_unavailable_and_marks_the_store_down() -> None:
    url = f"consul://127.0.0.1:{unused_port()}/x?timeout=1"
    store = ConsulBackend.from_url(url)
    sync, native = _sync_and_async_errors(store, "some/key")
    assert type(sync) is type(native) is BackendUnavailableError
    # The same words; each names its own client's exception class last.
    assert str(sync).rsplit(":", 1)[0] == str(native).rsplit(":", 1)[0]
    assert "unreachable" in str(native)
    assert native.__cause__ is not None and "aiohttp" in type(native.__cause__).__module__

    async def scenario() -> None:
        policy = CachePolicy(ttl=60, watch=False, retries=2)
        async with AsyncClient(store, cache=policy, native_reads=True) as client:
            with pytest.raises(BackendUnavailableError, match="unreachable"):
                await client.get("some/key")
            assert client.native_misses == 0 and client._pool.submitted == 0
            stats = client.stats()
            assert stats["store_calls"] == 3 and stats["errors"] == 3  # two retries
            assert client.health().state is HealthState.DOWN

    asyncio.run(scenario())
    store.close()


def test_tls_to_a_plain_server_fails_as_get_does(address: str) -> None:
    store = ConsulBackend.from_url(f"consul://{address}/x?scheme=https&timeout=2")
    sync, native = _sync_and_async_errors(store, "k")
    assert type(sync) is type(native) is BackendUnavailableError
    assert "unreachable" in str(native)
    store.close()
    insecure = ConsulBackend.from_url(f"consul://{address}/x?scheme=https&verify=false&timeout=2")
    sync, native = _sync_and_async_errors(insecure, "k")  # no certificate check: still no TLS
    assert type(sync) is type(native) is BackendUnavailableError
    insecure.close()
    with pytest.raises(ConfigurationError, match="no CA bundle"):
        ConsulBackend.from_url(f"consul://{address}/x?scheme=https&verify=/no/such/ca.pem")


class TestACL:
    @pytest.fixture
    def acl(self, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
        monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
        return (
            server_env("VELTRIX_TEST_CONSUL_ACL_ADDR", "Consul test server with ACLs"),
            server_env("VELTRIX_TEST_CONSUL_ACL_TOKEN", "Consul test server ACL token"),
        )

    @pytest.mark.parametrize("token", [None, "wrong-token"])
    def test_refused_as_get_is(self, acl: tuple[str, str], token: str | None) -> None:
        address, good = acl
        prefix = f"aio-acl/{unique_name()}"
        writer = ConsulBackend.from_url(f"consul://{address}/{prefix}", token=good)
        writer.put("k", b"v")
        store = ConsulBackend.from_url(f"consul://{address}/{prefix}", token=token)
        try:
            sync, native = _sync_and_async_errors(store, "k")
            assert type(sync) is type(native) is AccessDeniedError
            assert str(sync) == str(native)
            for error in _chain(native):
                assert good not in str(error) and good not in repr(error)

            async def scenario() -> None:
                policy = CachePolicy(ttl=60, watch=False, retries=2)
                async with AsyncClient(store, cache=policy, native_reads=True) as client:
                    with pytest.raises(AccessDeniedError):
                        await client.get("k")
                    assert client.stats()["store_calls"] == 1  # never retried
                    assert client.health().state is HealthState.UP  # the store answered

            asyncio.run(scenario())
        finally:
            store.close()
            writer.delete("k")
            writer.close()

    def test_token_from_environment(
        self, acl: tuple[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        address, good = acl
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", good)
        store = ConsulBackend.from_url(f"consul://{address}/aio-acl/{unique_name()}")
        store.put("k", b"v")

        async def read() -> Any:
            try:
                return await store.aget("k")
            finally:
                await store.aclose()

        try:
            assert asyncio.run(read()) == store.get("k")
        finally:
            store.delete("k")
            store.close()


def test_the_session_belongs_to_one_loop(backend: ConsulBackend) -> None:
    """The session is opened by the first loop that reads and refused to others until
    aclose(); AsyncClient used from another loop meanwhile reads on threads there;
    aclose() on the session's loop closes it, close() refuses later reads."""
    backend.put("loops/a", b"1")
    backend.put("loops/b", b"2")
    client = AsyncClient(backend, cache=CachePolicy(ttl=60, watch=False), native_reads=True)
    seen: dict[str, Any] = {}

    async def first_loop() -> None:
        assert await client.get("loops/a") == "1"
        session = backend._asession.value
        assert session is not None and not session.closed

        def other_loop() -> None:
            seen["value"] = asyncio.run(client.get("loops/b"))
            with pytest.raises(ConfigurationError, match="another event loop"):
                asyncio.run(backend.aget("loops/b"))

        await asyncio.to_thread(other_loop)
        await client.aclose()
        assert session.closed and backend._asession.value is None

    asyncio.run(first_loop())
    assert seen["value"] == "2"
    assert client.native_misses == 1 and client._pool.submitted == 1
    backend.close()  # the client did not open it: its aclose() left it open
    with pytest.raises(BackendUnavailableError, match="closed"):
        asyncio.run(backend.aget("loops/a"))


def test_aclose_from_another_loop_closes_the_session_on_its_own() -> None:
    store = ConsulBackend.from_url(
        f"consul://{server_env('VELTRIX_TEST_CONSUL_ADDR', 'Consul test server')}/x"
    )
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        assert asyncio.run_coroutine_threadsafe(store.aget("absent"), loop).result(10) is None
        session = store._asession.value
        assert session is not None
        asyncio.run(store.aclose())  # from this thread's own loop
        deadline = loop.time() + 5
        while not session.closed and loop.time() < deadline:
            threading.Event().wait(0.01)
        assert session.closed and store._asession.value is None
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
        store.close()
