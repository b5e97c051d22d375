"""The conformance suites against real AWS, only when asked for.

``VELTRIX_TEST_APPCONFIG=app/env/profile`` (a hosted freeform profile the tests may
overwrite; it is emptied after each test) and ``VELTRIX_TEST_SSM_PREFIX=/some/path``
(tests work under a random sub-path and delete what they wrote), with AWS
credentials and a region from the usual places (environment, ~/.aws).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import live_aws_target
from veltrix.adapters.appconfig import AppConfigBackend
from veltrix.testing.conformance import BackendConformance

pytestmark = pytest.mark.live


class TestLiveAppConfig(BackendConformance):
    watch_may_coalesce = True
    watch_timeout = 60.0

    @pytest.fixture
    def backend(self) -> Iterator[AppConfigBackend]:
        target = live_aws_target("VELTRIX_TEST_APPCONFIG")
        backend = AppConfigBackend.from_url(f"appconfig://{target}?poll_interval=15")
        yield backend
        for entry in list(backend.list("")):
            backend.delete(entry.key)
        backend.close()
