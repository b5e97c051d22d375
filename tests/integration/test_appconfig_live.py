"""The conformance suites against real AWS, only when asked for.

``VELTRIX_TEST_APPCONFIG=app/env/profile`` (a hosted freeform profile the tests may
overwrite; it is emptied after each test) and ``VELTRIX_TEST_SSM_PREFIX=/some/path``
(tests work under a random sub-path and delete what they wrote), with AWS
credentials and a region from the usual places (environment, ~/.aws).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest

from veltrix.adapters.appconfig import AppConfigBackend
from veltrix.testing.conformance import BackendConformance

pytestmark = pytest.mark.live


def _live(variable: str) -> str:
    value = os.environ.get(variable, "").strip("/")
    if not value:
        pytest.skip(f"{variable} is not set: no live AWS test")
    if boto3.session.Session().get_credentials() is None:
        pytest.skip("no AWS credentials: no live AWS test")
    return value


class TestLiveAppConfig(BackendConformance):
    watch_may_coalesce = True
    watch_timeout = 60.0

    @pytest.fixture
    def backend(self) -> Iterator[AppConfigBackend]:
        target = _live("VELTRIX_TEST_APPCONFIG")
        backend = AppConfigBackend.from_url(f"appconfig://{target}?poll_interval=15")
        yield backend
        for entry in list(backend.list("")):
            backend.delete(entry.key)
        backend.close()
