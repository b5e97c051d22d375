"""A real ZooKeeper outage: kill -9 the server while a caching client watches and reads.

Stops and restarts the server started by ``scripts/services up zookeeper`` (for
real: SIGKILL, then the service script again), so it runs in a few seconds but
must not share the server with tests running in parallel.
"""

from __future__ import annotations

import time

import pytest

from tests.support import kill_service, server_env, start_service, unique_name
from veltrix import CachePolicy, Client
from veltrix.errors import BackendUnavailableError
from veltrix.testing.conformance import ChangeRecorder

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["persistent", "oneshot"])
def test_kill9_outage_serves_stale_and_watch_catches_up(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    hosts = server_env("VELTRIX_TEST_ZOOKEEPER", "ZooKeeper server")
    monkeypatch.delenv("VELTRIX_ZK_AUTH", raising=False)
    chroot = f"/veltrix-tests/{unique_name('fault')}"
    url = f"zookeeper://{hosts}{chroot}"
    policy = CachePolicy(ttl=0.5, stale_if_error=True, error_backoff=1.0, retries=0, watch=True)
    # The reader gives up on a disconnected store quickly, so stale values are served fast.
    reader = Client(
        url + f"?connect_timeout=0.3&reconnect_max_delay=0.5&watch_mode={mode}", cache=policy
    )
    try:
        with Client(url, cache=CachePolicy(ttl=0)) as seeder:
            seeder.put("svc/timeout_ms", "100")
            seeder.put("svc/retired", "yes")
        assert reader.get("svc/timeout_ms") == "100"
        assert reader.get("svc/retired") == "yes"
        recorder = ChangeRecorder()
        subscription = reader.watch("svc", recorder)

        kill_service("zookeeper")
        before = reader.stats()
        outage_ends = time.monotonic() + 1.5
        reads = 0
        while time.monotonic() < outage_ends:  # well past the TTL
            assert reader.get("svc/timeout_ms") == "100"
            assert reader.get("svc/retired") == "yes"
            reads += 1
            time.sleep(0.02)
        during = reader.stats()
        assert during["stale_served"] > before["stale_served"], "stale-if-error never served"
        assert during["errors"] > before["errors"], "the store was never asked during the outage"
        with pytest.raises(BackendUnavailableError):
            reader.put("svc/during_outage", "lost")  # fails at once: not queued for later
        assert reads > 10  # most reads were answered from the cache, not blocked

        start_service("zookeeper")
        with Client(url, cache=CachePolicy(ttl=0)) as writer:  # another client, after the restart
            writer.put("svc/timeout_ms", "250")
            writer.delete("svc/retired")
            assert writer.get("svc/during_outage", default=None) is None, "a failed write wrote"

        assert recorder.wait_for(
            lambda changes: (
                {("svc/timeout_ms", b"250"), ("svc/retired", None)}
                <= {(c.key, c.entry and c.entry.value) for c in changes}
            ),
            timeout=30,
        ), f"the watch did not deliver after the restart: {recorder.states()}"
        assert reader.stats()["watch_updates"] >= 2
        assert reader.get("svc/timeout_ms") == "250"
        assert reader.get("svc/retired", default="gone") == "gone"
        subscription.stop()
    finally:
        reader.close()
        start_service("zookeeper")  # leave the server up even when an assertion failed
