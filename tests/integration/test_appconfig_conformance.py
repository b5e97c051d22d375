"""The AppConfig adapter passes the conformance suite against the AppConfig test server.

Every test gets a fresh application, environment and hosted profile on the server
process started by ``scripts/services up appconfig``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.support import fake_aws_credentials, server_env, unique_name
from veltrix.adapters.appconfig import AppConfigBackend
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


@pytest.fixture
def appconfig_endpoint() -> str:
    return server_env("VELTRIX_TEST_APPCONFIG_ENDPOINT", "AppConfig test server")


@pytest.fixture
def control(appconfig_endpoint: str) -> Any:
    client = boto3.client("appconfig", endpoint_url=appconfig_endpoint, region_name=REGION)
    yield client
    client.close()


@pytest.fixture
def profile_names(control: Any) -> Iterator[tuple[str, str, str]]:
    """A fresh application/environment/profile (names), deleted afterwards."""
    app = control.create_application(Name=unique_name("app"))
    env = control.create_environment(ApplicationId=app["Id"], Name="test")
    control.create_configuration_profile(
        ApplicationId=app["Id"], Name="config", LocationUri="hosted", Type="AWS.Freeform"
    )
    yield app["Name"], env["Name"], "config"
    control.delete_application(ApplicationId=app["Id"])


class TestAppConfigConformance(BackendConformance):
    watch_may_coalesce = True  # a polled document: quick successive writes may merge
    watch_timeout = 10.0

    @pytest.fixture
    def backend(
        self, appconfig_endpoint: str, profile_names: tuple[str, str, str]
    ) -> Iterator[AppConfigBackend]:
        app, env, profile = profile_names
        backend = open_backend(
            f"appconfig://{app}/{env}/{profile}?region={REGION}&poll_interval=0.2",
            endpoint_url=appconfig_endpoint,
        )
        assert isinstance(backend, AppConfigBackend)
        yield backend
        backend.close()
