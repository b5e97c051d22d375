"""Stores that talk HTTP through requests read the environment's proxy settings once,
when they are built (``veltrix.adapters._requests_env``), not at every request: a
proxy that does not exist fails their reads, ``NO_PROXY`` naming the server bypasses
it, and a change of the environment after the store is built changes nothing.

Against the Consul test server and the Secret Manager and Parameter Manager test
servers over REST.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.integration.gcp_targets import GCPPM, GCPSM, GcpTestServer
from tests.support import server_env, unique_name, unused_port
from veltrix.errors import BackendUnavailableError
from veltrix.registry import open_backend

PROXY_VARIABLES = ("ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def _consul() -> str:
    address = server_env("VELTRIX_TEST_CONSUL_ADDR", "Consul test server")
    return f"consul://{address}/proxy/{unique_name()}?timeout=2"


def _gcp(server: GcpTestServer) -> Callable[[], str]:
    def url() -> str:
        endpoint = server.endpoint("rest")
        return (
            f"{server.scheme}://{unique_name('proxy')}?endpoint={endpoint}"
            "&transport=rest&insecure=true&timeout=1&deadline=1"
        )

    return url


STORES = {"consul": _consul, "gcpsm-rest": _gcp(GCPSM), "gcppm-rest": _gcp(GCPPM)}


@pytest.mark.parametrize("store", sorted(STORES))
def test_the_environment_proxy_is_honoured_and_read_once(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{unused_port()}")
    url = STORES[store]
    proxied = open_backend(url())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    bypassing = open_backend(url())
    monkeypatch.delenv("NO_PROXY")  # read once: the store built with it keeps bypassing
    try:
        with pytest.raises(BackendUnavailableError):
            proxied.get("k")
        assert bypassing.get("k") is None
    finally:
        proxied.close()
        bypassing.close()
