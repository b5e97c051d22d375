"""Real faults: the Secret Manager test server is killed (SIGKILL) and started again."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

import veltrix
from tests.integration.test_gcp_secret_manager import open_gcpsm, server_url
from tests.support import kill_service, port_open, start_service, unique_name
from veltrix.adapters.gcp_secret_manager import SecretManagerBackend
from veltrix.errors import BackendUnavailableError

pytestmark = pytest.mark.slow


@pytest.fixture
def restart_afterwards() -> Iterator[None]:
    yield
    host, port = os.environ["VELTRIX_TEST_GCPSM_GRPC"].split(":")
    if not port_open(host, int(port)):  # the test failed before restarting it
        start_service("gcpsm")


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_outage_serves_stale_then_recovers(transport: str, restart_afterwards: None) -> None:
    url = server_url(transport, unique_name("fault"), "app")
    backend: SecretManagerBackend = open_gcpsm(
        url.replace("deadline=5", "deadline=1").replace("timeout=5", "timeout=1")
    )
    policy = veltrix.CachePolicy(ttl=0.2, stale_if_error=True, retries=0, watch=False)
    client = veltrix.Client(backend, cache=policy)
    try:
        backend.put("db/password", b"before-outage")
        assert client.get("db/password") == "before-outage"
        kill_service("gcpsm")
        time.sleep(0.3)  # let the cached value expire
        started = time.monotonic()
        assert client.get("db/password") == "before-outage", "stale-if-error serves last-known-good"
        # Served after at most refresh_deadline: the refresh goes on in the background.
        assert time.monotonic() - started < 1
        wait_until = time.monotonic() + 10
        while client.stats()["errors"] < 1 and time.monotonic() < wait_until:
            time.sleep(0.05)
        assert client.stats()["errors"] >= 1, "the background refresh never reached the store"
        assert client.health().state.value == "down"
        with pytest.raises(BackendUnavailableError):
            backend.get("db/password")
        start_service("gcpsm")
        # The test server keeps state in memory: after the restart the store is empty, and
        # the same backend (same channel/session) must work again within seconds.
        deadline = time.monotonic() + 15
        while True:
            try:
                backend.put("db/password", b"after-outage")
                break
            except BackendUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        entry = backend.get("db/password")
        assert entry is not None and entry.value == b"after-outage"
    finally:
        client.close()
        backend.close()
