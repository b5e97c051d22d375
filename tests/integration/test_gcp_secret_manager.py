"""The Secret Manager adapter against the test server over gRPC and REST (and live GCP
when VELTRIX_TEST_GCPSM_PROJECT and credentials are present)."""

from __future__ import annotations

import pytest

from tests.integration.gcp_targets import (
    GCPSM,
    GcpLiveConformance,
    GcpServerConformance,
    open_as,
)
from veltrix.adapters.gcp_secret_manager import SecretManagerBackend


def server_url(transport: str, project: str, prefix: str = "", **options: object) -> str:
    return GCPSM.url(transport, project, prefix, **options)


def open_gcpsm(url: str) -> SecretManagerBackend:
    return open_as(url, SecretManagerBackend)


class TestConformance(GcpServerConformance):
    server = GCPSM
    backend_class = SecretManagerBackend


@pytest.mark.live
class TestLiveConformance(GcpLiveConformance):
    server = GCPSM
    backend_class = SecretManagerBackend
