"""Parameter Manager's native asyncio reads (``aget`` through ``grpc.aio``) beyond the
conformance suite: documents read as ``get`` reads them, and the same errors (server
down, denied, unauthenticated, a broken secret reference)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from google.cloud.parametermanager_v1.types import ParameterFormat

from tests.integration.test_gcp_parameter_manager import open_gcppm, server_url
from tests.integration.test_gcp_parameter_manager_behaviour import parameter
from tests.integration.test_gcp_secret_manager_aio import _messages, _same_error
from tests.support import server_env, unique_name, unused_port
from veltrix.adapters.gcp_parameter_manager import ParameterManagerBackend
from veltrix.errors import AccessDeniedError, BackendUnavailableError, SecretReferenceError


def _aget_all(backend: ParameterManagerBackend, keys: list[str]) -> list[Any]:
    async def read() -> list[Any]:
        try:
            return [await backend.aget(key) for key in keys]
        finally:
            await backend.aclose()

    return asyncio.run(read())


def test_documents_read_as_get_reads_them() -> None:
    project = unique_name("aio")
    b = open_gcppm(server_url("grpc", project))
    try:
        parameter(
            b, "app", ParameterFormat.JSON, json.dumps({"db": {"host": "h"}, "n": 1}).encode()
        )
        parameter(b, "plain", ParameterFormat.UNFORMATTED, b"raw text")
        keys = ["app/db/host", "app/n", "app/absent", "plain", "nothing/here"]
        found = _aget_all(b, keys)
        assert found == [b.get(key) for key in keys]
        assert [e and e.value for e in found] == [b"h", b"1", None, b"raw text", None]
        missing = f"projects/{project}/secrets/absent/versions/1"
        reference = f"__REF__(//secretmanager.googleapis.com/{missing})"
        parameter(b, "gone", ParameterFormat.JSON, json.dumps({"p": reference}).encode())

        async def broken() -> Any:
            try:
                return await b.aget("gone/p")
            finally:
                await b.aclose()

        error = _same_error(lambda: b.get("gone/p"), broken)
        assert isinstance(error, SecretReferenceError) and error.status == "NOT_FOUND"
    finally:
        b.close()


def test_dead_endpoint_is_unavailable_as_for_get() -> None:
    port = unused_port()
    b = open_gcppm(f"gcppm://p?endpoint=127.0.0.1:{port}&insecure=true&timeout=0.5&deadline=1")
    try:

        async def read() -> Any:
            return await b.aget("a/b")

        assert isinstance(_same_error(lambda: b.get("a/b"), read), BackendUnavailableError)
    finally:
        b.close()


@pytest.mark.parametrize(
    ("token", "status"),
    [("denied", "PERMISSION_DENIED"), ("not-a-known-token", "UNAUTHENTICATED"), ("", "UNAUTH")],
)
def test_denied_is_access_denied_as_for_get(
    token: str, status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = server_env("VELTRIX_TEST_GCPPM_AUTH_GRPC", "Parameter Manager test server with a token")
    if token == "denied":
        token = server_env("VELTRIX_TEST_GCPPM_DENIED_TOKEN", "token without access")
    monkeypatch.setenv("MY_PM_TOKEN", token)
    b = open_gcppm(
        f"gcppm://{unique_name('auth')}?endpoint={auth}&insecure=true&deadline=3&timeout=2"
        "&token_env=MY_PM_TOKEN"
    )
    try:

        async def read() -> Any:
            return await b.aget("a/b")

        error = _same_error(lambda: b.get("a/b"), read)
        assert isinstance(error, AccessDeniedError) and status in str(error)
        assert not token or token not in _messages(error)
    finally:
        b.close()


def test_right_token_on_the_asyncio_channel() -> None:
    auth = server_env("VELTRIX_TEST_GCPPM_AUTH_GRPC", "Parameter Manager test server with a token")
    server_env("VELTRIX_TEST_GCPPM_TOKEN", "Parameter Manager test token")
    b = open_gcppm(
        f"gcppm://{unique_name('auth')}?endpoint={auth}&insecure=true&deadline=3"
        "&token_env=VELTRIX_TEST_GCPPM_TOKEN"
    )
    try:
        b.put("a/b", b"1")
        assert _aget_all(b, ["a/b", "a/c"]) == [b.get("a/b"), None]
    finally:
        b.close()
