"""The Parameter Manager adapter against the test server over gRPC and REST (and live GCP
when VELTRIX_TEST_GCPPM_PROJECT and credentials are present)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import server_env, unique_name
from veltrix.adapters.gcp_parameter_manager import ParameterManagerBackend
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance

TRANSPORTS = {"grpc": "VELTRIX_TEST_GCPPM_GRPC", "rest": "VELTRIX_TEST_GCPPM_REST"}


def endpoint(transport: str) -> str:
    return server_env(TRANSPORTS[transport], f"Parameter Manager test server ({transport})")


def server_url(transport: str, project: str, prefix: str = "", **options: object) -> str:
    query = "&".join(
        [
            f"endpoint={endpoint(transport)}",
            f"transport={transport}",
            "insecure=true",
            "timeout=5",
            "deadline=5",
        ]
        + [f"{name}={value}" for name, value in options.items()]
    )
    path = f"/{prefix}" if prefix else ""
    return f"gcppm://{project}{path}?{query}"


def open_gcppm(url: str) -> ParameterManagerBackend:
    backend = open_backend(url)
    assert isinstance(backend, ParameterManagerBackend)
    return backend


class _Conformance(BackendConformance):
    transport = "grpc"
    watch_may_coalesce = True  # polling: quick successive writes to one key may merge
    watch_timeout = 15.0
    own_write_rounds = 3

    @pytest.fixture
    def backend(self) -> Iterator[ParameterManagerBackend]:
        backend = open_gcppm(
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
    own_write_rounds = 2

    @pytest.fixture
    def backend(self) -> Iterator[ParameterManagerBackend]:
        project = os.environ.get("VELTRIX_TEST_GCPPM_PROJECT")
        if not project:
            pytest.skip("live Parameter Manager: VELTRIX_TEST_GCPPM_PROJECT is not set")
        prefix = unique_name("vt").replace("-", "")
        backend = open_gcppm(f"gcppm://{project}/{prefix}?poll_interval=2")
        yield backend
        try:  # delete the parameters themselves (deleting keys leaves empty documents)
            for parameter_key in backend._parameter_keys("cleanup"):
                backend._delete_parameter(backend._parameter_name(parameter_key), "cleanup")
        finally:
            backend.close()
