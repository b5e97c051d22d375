"""The Secret Manager adapter against the test server over gRPC and REST (and live GCP
when VELTRIX_TEST_GCPSM_PROJECT and credentials are present)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import server_env, unique_name
from veltrix.adapters.gcp_secret_manager import SecretManagerBackend
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance

TRANSPORTS = {"grpc": "VELTRIX_TEST_GCPSM_GRPC", "rest": "VELTRIX_TEST_GCPSM_REST"}


def server_url(transport: str, project: str, prefix: str = "", **options: object) -> str:
    endpoint = server_env(TRANSPORTS[transport], f"Secret Manager test server ({transport})")
    query = "&".join(
        [
            f"endpoint={endpoint}",
            f"transport={transport}",
            "insecure=true",
            "timeout=5",
            "deadline=5",
        ]
        + [f"{name}={value}" for name, value in options.items()]
    )
    path = f"/{prefix}" if prefix else ""
    return f"gcpsm://{project}{path}?{query}"


def open_gcpsm(url: str) -> SecretManagerBackend:
    backend = open_backend(url)
    assert isinstance(backend, SecretManagerBackend)
    return backend


class _Conformance(BackendConformance):
    transport = "grpc"
    watch_may_coalesce = True  # polling: quick successive writes to one key may merge
    watch_timeout = 15.0

    @pytest.fixture
    def backend(self) -> Iterator[SecretManagerBackend]:
        backend = open_gcpsm(
            server_url(self.transport, unique_name("conf"), "app", poll_interval=0.1)
        )
        yield backend
        backend.close()


class TestGrpcConformance(_Conformance):
    transport = "grpc"


class TestRestConformance(_Conformance):
    transport = "rest"


@pytest.mark.live
class TestLiveConformance(BackendConformance):
    watch_may_coalesce = True
    watch_timeout = 30.0

    @pytest.fixture
    def backend(self) -> Iterator[SecretManagerBackend]:
        project = os.environ.get("VELTRIX_TEST_GCPSM_PROJECT")
        if not project:
            pytest.skip("live Secret Manager: VELTRIX_TEST_GCPSM_PROJECT is not set")
        prefix = unique_name("veltrix-test")
        backend = open_gcpsm(f"gcpsm://{project}/{prefix}?poll_interval=2")
        yield backend
        try:
            for entry in backend.list(""):
                backend.delete(entry.key)
        finally:
            backend.close()
