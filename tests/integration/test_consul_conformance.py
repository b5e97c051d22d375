"""The Consul adapter passes the shared conformance suite against the Consul test
server process (``scripts/services up consul``) and, when
``VELTRIX_TEST_CONSUL_URL`` points at one, against a real Consul agent."""

from __future__ import annotations

import os
from collections.abc import Iterator

import consul
import pytest

from tests.support import missing_server, port_open, server_env, unique_name
from veltrix.adapters.consul import ConsulBackend
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance


def _fresh_backend(base_url: str, root: str) -> Iterator[ConsulBackend]:
    """A backend on a fresh random prefix; the prefix is removed afterwards.
    ``base_url`` is ``consul://host:port`` with an optional ``?query``."""
    base, _, query = base_url.partition("?")
    prefix = f"{root}/{unique_name('c')}"
    backend = open_backend(f"{base.rstrip('/')}/{prefix}" + (f"?{query}" if query else ""))
    assert isinstance(backend, ConsulBackend)
    if not port_open(backend.host, backend.port):
        missing_server(f"no Consul agent listening on {backend.host}:{backend.port}")
    yield backend
    backend.close()
    # py-consul reads CONSUL_HTTP_TOKEN itself, so this works with ACLs on too.
    cleanup = consul.Consul(host=backend.host, port=backend.port, scheme=backend.scheme)
    cleanup.kv.delete(prefix + "/", recurse=True)


class TestConsulTestServerConformance(BackendConformance):
    watch_may_coalesce = True  # blocking queries report state, not every intermediate write
    watch_timeout = 15.0

    @pytest.fixture
    def backend(self) -> Iterator[ConsulBackend]:
        address = server_env("VELTRIX_TEST_CONSUL_ADDR", "Consul test server")
        yield from _fresh_backend(f"consul://{address}", "veltrix-conformance")


def real_consul_url() -> str | None:
    url = os.environ.get("VELTRIX_TEST_CONSUL_URL")
    if not url:
        return None
    for scheme in ("http://", "https://"):
        if url.startswith(scheme):
            host = url[len(scheme) :].rstrip("/")
            return f"consul://{host}" + ("?scheme=https" if scheme == "https://" else "")
    return url


@pytest.mark.live
class TestRealConsulConformance(BackendConformance):
    """Runs only with VELTRIX_TEST_CONSUL_URL (e.g. consul://127.0.0.1:8500); never in
    CI, where no Consul binary exists. CONSUL_HTTP_TOKEN is used when ACLs are on."""

    watch_may_coalesce = True
    watch_timeout = 15.0

    @pytest.fixture
    def backend(self) -> Iterator[ConsulBackend]:
        url = real_consul_url()
        if url is None:
            pytest.skip("VELTRIX_TEST_CONSUL_URL is not set (no real Consul agent)")
        yield from _fresh_backend(url, "veltrix-conformance")
