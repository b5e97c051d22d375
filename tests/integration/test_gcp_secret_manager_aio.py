"""Secret Manager's native asyncio reads (``aget`` through ``grpc.aio``) beyond the
conformance suite: the same errors as ``get`` (server down, denied, unauthenticated),
the token on the asyncio channel, loop ownership, and ``AsyncClient`` over REST
(threads) and gRPC (the loop)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.integration.test_gcp_secret_manager import open_gcpsm, server_url
from tests.integration.test_gcp_secret_manager_behaviour import auth_url
from tests.support import server_env, unique_name, unused_port
from veltrix import CachePolicy
from veltrix.adapters.gcp_secret_manager import SecretManagerBackend
from veltrix.aio import AsyncClient
from veltrix.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    ConfigurationError,
    VeltrixError,
)


@pytest.fixture
def backend() -> Iterator[SecretManagerBackend]:
    b = open_gcpsm(server_url("grpc", unique_name("aio"), "app"))
    yield b
    b.close()


def _aget(backend: SecretManagerBackend, key: str) -> Any:
    """``aget(key)`` on a fresh loop, the client closed on it afterwards."""

    async def read() -> Any:
        try:
            return await backend.aget(key)
        finally:
            await backend.aclose()

    return asyncio.run(read())


def _same_error(sync: Callable[[], Any], native: Callable[[], Awaitable[Any]]) -> VeltrixError:
    """The error ``native`` raises, checked to be the one ``sync`` raises."""
    with pytest.raises(VeltrixError) as expected:
        sync()
    with pytest.raises(VeltrixError) as got:
        asyncio.run(native())  # type: ignore[arg-type]
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)
    return got.value


def _messages(exc: BaseException | None) -> str:
    """Every message of ``exc`` and of its causes and contexts."""
    seen: list[str] = []
    while exc is not None and len(seen) < 10:
        seen.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(seen)


def test_aget_finds_the_newest_enabled_version(backend: SecretManagerBackend) -> None:
    backend.put("k", b"one")
    v2 = backend.put("k", b"two")
    assert _aget(backend, "k") == backend.get("k")
    name = backend._secret_name("app/k")
    backend._client.disable_secret_version(request={"name": f"{name}/versions/{v2}"})
    entry = _aget(backend, "k")
    assert entry is not None and (entry.value, entry.version, entry.secret) == (b"one", "1", True)
    assert entry == backend.get("k")
    backend._client.destroy_secret_version(request={"name": f"{name}/versions/1"})
    assert _aget(backend, "k") is None


def test_dead_endpoint_is_unavailable_as_for_get() -> None:
    url = f"gcpsm://p/app?endpoint=127.0.0.1:{unused_port()}&insecure=true&timeout=0.5&deadline=1"
    b = open_gcpsm(url)
    try:

        async def read() -> Any:
            return await b.aget("k")

        started = time.monotonic()
        error = _same_error(lambda: b.get("k"), read)
        assert isinstance(error, BackendUnavailableError) and time.monotonic() - started < 12
        assert "unreachable" in str(error)
    finally:
        b.close()

    async def through_the_client() -> None:
        policy = CachePolicy(ttl=60, watch=False, retries=1)
        async with AsyncClient(url, cache=policy, native_reads=True) as client:
            with pytest.raises(BackendUnavailableError):
                await client.get("some/key")
            assert client._pool.submitted == 0  # read (and failed) on the loop
            assert client.stats()["errors"] >= 1

    asyncio.run(through_the_client())


@pytest.mark.parametrize(
    ("token_env", "status"),
    [
        ("VELTRIX_TEST_GCPSM_DENIED_TOKEN", "PERMISSION_DENIED"),
        ("GCPSM_WRONG_TOKEN", "UNAUTHENTICATED"),
        ("GCPSM_NO_TOKEN", "UNAUTHENTICATED"),
    ],
)
def test_denied_is_access_denied_as_for_get(
    token_env: str, status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused identity (a known one without access, an unknown token, none) gives
    the same ``AccessDeniedError`` as ``get``; no token in any message of the chain."""
    server_env("VELTRIX_TEST_GCPSM_DENIED_TOKEN", "Secret Manager token without access")
    monkeypatch.setenv("GCPSM_WRONG_TOKEN", "not-the-token")
    monkeypatch.delenv("GCPSM_NO_TOKEN", raising=False)
    b = open_gcpsm(auth_url("grpc", token_env=token_env))
    try:

        async def read() -> Any:
            return await b.aget("k")

        error = _same_error(lambda: b.get("k"), read)
        assert isinstance(error, AccessDeniedError) and status in str(error)
        chain = _messages(error)
        for token in ("not-the-token", server_env("VELTRIX_TEST_GCPSM_DENIED_TOKEN", "")):
            assert token not in chain
    finally:
        b.close()


def test_token_goes_on_the_asyncio_channel() -> None:
    token = server_env("VELTRIX_TEST_GCPSM_TOKEN", "Secret Manager token")
    b = open_gcpsm(auth_url("grpc", token_env="VELTRIX_TEST_GCPSM_TOKEN"))
    try:
        assert _aget(b, "k") is None
        version = b.put("k", b"v")
        entry = _aget(b, "k")
        assert entry is not None and (entry.value, entry.version) == (b"v", version)
        assert token not in repr(b) and token not in repr(b._connect_async)
    finally:
        b.close()


def test_loop_ownership_and_close(backend: SecretManagerBackend) -> None:
    backend.put("k", b"v")
    first = asyncio.new_event_loop()
    try:
        entry = first.run_until_complete(backend.aget("k"))
        assert entry == backend.get("k")

        async def elsewhere() -> Any:
            return await backend.aget("k")

        with pytest.raises(ConfigurationError, match="another event loop"):
            asyncio.run(elsewhere())

        async def drop_then_read() -> Any:
            await backend.aclose()  # from another loop: dropped, not awaited on its loop
            return await backend.aget("k")

        assert asyncio.run(drop_then_read()) == entry  # a new client, on this loop
    finally:
        first.close()
    backend.close()
    with pytest.raises(BackendUnavailableError, match="closed"):
        _aget(backend, "k")


def test_rest_reads_on_threads() -> None:
    url = server_url("rest", unique_name("aio"), "app")
    b = open_gcpsm(url)
    b.put("k", b"v")
    assert b.native_async is False

    async def scenario() -> None:
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(b, cache=policy, native_reads=True) as client:
            assert await client.get("k") == "v"
            assert client.native_misses == 0 and client._pool.submitted == 1

    try:
        asyncio.run(scenario())
    finally:
        b.close()


def test_async_client_misses_on_the_loop(backend: SecretManagerBackend) -> None:
    for i in range(20):
        backend.put(f"k/{i}", f"v{i}".encode())

    async def scenario() -> None:
        policy = CachePolicy(ttl=60, watch=False)
        async with AsyncClient(backend, cache=policy, native_reads=True) as client:
            keys = [f"k/{i}" for i in range(20)] + ["absent"]
            values = await asyncio.gather(*(client.get(k, None) for k in keys))
            assert values == [f"v{i}" for i in range(20)] + [None]
            assert client.native_misses == 21 and client._pool.submitted == 0

    asyncio.run(scenario())


def test_aclose_during_reads_ends_them_with_typed_errors(backend: SecretManagerBackend) -> None:
    """Reads in flight or waiting for a slot when ``aclose()`` comes end with a value or
    ``BackendUnavailableError``: never a gRPC error, nor a cancellation nobody asked for."""
    backend.put("k", b"v")

    async def scenario() -> list[Any]:
        reads = [asyncio.ensure_future(backend.aget("k")) for _ in range(40)]
        await asyncio.sleep(0)  # the first reads are on the wire, the others wait
        await backend.aclose()
        return await asyncio.gather(*reads, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert any(isinstance(o, BackendUnavailableError) for o in outcomes)
    entry = backend.get("k")
    assert all(o == entry or isinstance(o, BackendUnavailableError) for o in outcomes), outcomes
    assert _aget(backend, "k") == backend.get("k")  # a new client, on a new loop


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(repr(vars(record)))  # extras included (structured handlers log them)


@pytest.mark.parametrize("transport", ["grpc", "grpc_asyncio"])
def test_token_never_in_the_client_library_debug_log(transport: str) -> None:
    """The Google transports log each call's metadata at DEBUG (as record extras): the
    token is added by an interceptor after theirs, so it is not in what they log."""
    token = server_env("VELTRIX_TEST_GCPSM_TOKEN", "Secret Manager token")
    module = "google.cloud.secretmanager_v1.services.secret_manager_service.transports"
    logger = logging.getLogger(f"{module}.{transport}")
    records = _Records()
    old_level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.DEBUG)
    b = open_gcpsm(auth_url("grpc", token_env="VELTRIX_TEST_GCPSM_TOKEN"))
    try:
        if transport == "grpc":
            assert b.get("k") is None
        else:
            assert _aget(b, "k") is None
    finally:
        b.close()
        logger.removeHandler(records)
        logger.setLevel(old_level)
    assert any("metadata" in seen for seen in records.seen), "the transport logged no call"
    assert not any(token in seen for seen in records.seen)
