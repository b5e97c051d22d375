"""The conformance suites against real AWS, only when asked for.

``VELTRIX_TEST_APPCONFIG=app/env/profile`` (a hosted freeform profile the tests may
overwrite; it is emptied after each test) and ``VELTRIX_TEST_SSM_PREFIX=/some/path``
(tests work under a random sub-path and delete what they wrote), with AWS
credentials and a region from the usual places (environment, ~/.aws).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import live_aws_target, unique_name
from veltrix.adapters.ssm import SSMBackend
from veltrix.testing.conformance import BackendConformance

pytestmark = pytest.mark.live


class TestLiveSSM(BackendConformance):
    watch_may_coalesce = True
    watch_timeout = 30.0

    @pytest.fixture
    def backend(self) -> Iterator[SSMBackend]:
        prefix = live_aws_target("VELTRIX_TEST_SSM_PREFIX")
        backend = SSMBackend.from_url(f"ssm:///{prefix}/{unique_name('live')}?poll_interval=2")
        yield backend
        for entry in list(backend.list("")):
            backend.delete(entry.key)
        backend.close()
