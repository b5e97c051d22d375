"""The SSM Parameter Store adapter passes the conformance suite against moto's server.

Every test gets a fresh random path prefix on the moto process started by
``scripts/services up moto``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import fake_aws_credentials, server_env, unique_name
from veltrix.adapters.ssm import SSMBackend
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


@pytest.fixture
def moto_endpoint() -> str:
    return server_env("VELTRIX_TEST_MOTO_ENDPOINT", "moto server")


class TestSSMConformance(BackendConformance):
    watch_may_coalesce = True  # polled with GetParametersByPath
    watch_timeout = 10.0

    @pytest.fixture
    def backend(self, moto_endpoint: str) -> Iterator[SSMBackend]:
        backend = open_backend(
            f"ssm:///veltrix/{unique_name('conf')}?region={REGION}&poll_interval=0.2",
            endpoint_url=moto_endpoint,
        )
        assert isinstance(backend, SSMBackend)
        yield backend
        backend.close()
