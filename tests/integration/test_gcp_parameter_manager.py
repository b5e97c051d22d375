"""The Parameter Manager adapter against the test server over gRPC and REST (and live GCP
when VELTRIX_TEST_GCPPM_PROJECT and credentials are present)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.gcp_targets import (
    GCPPM,
    GcpLiveConformance,
    GcpServerConformance,
    open_as,
)
from tests.support import unique_name
from veltrix.adapters.gcp_parameter_manager import ParameterManagerBackend


def endpoint(transport: str) -> str:
    return GCPPM.endpoint(transport)


def server_url(transport: str, project: str, prefix: str = "", **options: object) -> str:
    return GCPPM.url(transport, project, prefix, **options)


def open_gcppm(url: str) -> ParameterManagerBackend:
    return open_as(url, ParameterManagerBackend)


class TestConformance(GcpServerConformance):
    server = GCPPM
    backend_class = ParameterManagerBackend
    own_write_rounds = 3
    versions_shared_by_keys = True  # a parameter holds every key under its first segment


@pytest.mark.live
class TestLiveConformance(GcpLiveConformance):
    server = GCPPM
    backend_class = ParameterManagerBackend
    own_write_rounds = 2
    versions_shared_by_keys = True

    def live_prefix(self) -> str:
        return unique_name("vt").replace("-", "")

    def remove_all(self, backend: Any) -> None:
        # delete the parameters themselves (deleting keys leaves empty documents)
        for parameter_key in backend._parameter_keys("cleanup"):
            backend._delete_parameter(backend._parameter_name(parameter_key), "cleanup")
