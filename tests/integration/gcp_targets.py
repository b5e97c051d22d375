"""The GCP test servers (tests/servers/gcp_*) the GCP adapter tests run against, URL
helpers for them, and the conformance fixtures the Secret Manager and Parameter Manager
tests share (against a test server over gRPC and REST, and against live GCP).

Each service is a real server started by ``scripts/services up <service>``; its
addresses come from ``VELTRIX_TEST_<NAME>_GRPC`` / ``_REST``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pytest

from tests.support import server_env, unique_name
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance

BackendT = TypeVar("BackendT")


@dataclass(frozen=True)
class GcpTestServer:
    """One GCP test service: its URL scheme, its name in messages and its variables."""

    scheme: str  # gcpsm, gcppm
    service: str  # "Secret Manager"
    variable: str  # VELTRIX_TEST_GCPSM

    def endpoint(self, transport: str) -> str:
        """``host:port`` of the server's ``grpc`` or ``rest`` port (fails or skips without)."""
        return server_env(
            f"{self.variable}_{transport.upper()}", f"{self.service} test server ({transport})"
        )

    def url(self, transport: str, project: str, prefix: str = "", **options: object) -> str:
        """A store URL for ``project`` on the test server over ``transport``."""
        query = "&".join(
            [
                f"endpoint={self.endpoint(transport)}",
                f"transport={transport}",
                "insecure=true",
                "timeout=5",
                "deadline=5",
            ]
            + [f"{name}={value}" for name, value in options.items()]
        )
        path = f"/{prefix}" if prefix else ""
        return f"{self.scheme}://{project}{path}?{query}"


GCPSM = GcpTestServer("gcpsm", "Secret Manager", "VELTRIX_TEST_GCPSM")
GCPPM = GcpTestServer("gcppm", "Parameter Manager", "VELTRIX_TEST_GCPPM")


def open_as(url: str, backend_class: type[BackendT]) -> BackendT:
    """``open_backend(url)``, checked to be a ``backend_class``."""
    backend = open_backend(url)
    assert isinstance(backend, backend_class)
    return backend


class GcpServerConformance(BackendConformance):
    """The conformance suite against a GCP test server, over gRPC and over REST
    (subclasses name the server and the backend class)."""

    server: ClassVar[GcpTestServer]
    backend_class: ClassVar[type[Any]]
    watch_may_coalesce = True  # polling: quick successive writes to one key may merge
    watch_timeout = 15.0

    @pytest.fixture(params=["grpc", "rest"])
    def backend(self, request: pytest.FixtureRequest) -> Iterator[Any]:
        url = self.server.url(request.param, unique_name("conf"), "app", poll_interval=0.1)
        backend = open_as(url, self.backend_class)
        yield backend
        backend.close()


class GcpLiveConformance(BackendConformance):
    """The conformance suite against live GCP, when ``<variable>_PROJECT`` names a
    project (and credentials are present); skips otherwise. Subclasses give the prefix
    and clean up in :meth:`remove_all`."""

    server: ClassVar[GcpTestServer]
    backend_class: ClassVar[type[Any]]
    watch_may_coalesce = True
    watch_timeout = 30.0

    def live_prefix(self) -> str:
        return unique_name("veltrix-test")

    def remove_all(self, backend: Any) -> None:
        for entry in backend.list(""):
            backend.delete(entry.key)

    @pytest.fixture
    def backend(self) -> Iterator[Any]:
        variable = f"{self.server.variable}_PROJECT"
        project = os.environ.get(variable)
        if not project:
            pytest.skip(f"live {self.server.service}: {variable} is not set")
        url = f"{self.server.scheme}://{project}/{self.live_prefix()}?poll_interval=2"
        backend = open_as(url, self.backend_class)
        yield backend
        try:
            self.remove_all(backend)
        finally:
            backend.close()
