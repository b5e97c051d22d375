"""Fault test: the Consul test server process dies during a watch and comes back.

The server is killed for real (SIGKILL) and restarted through ``scripts/services``.
It keeps its data in memory, so the restarted server is a fresh cluster whose
index starts again from 1: the watch must notice the index went backwards,
resynchronise (reporting the keys that vanished as deletes) and deliver a change
made after the restart.
"""

from __future__ import annotations

import time

import pytest

from tests.support import kill_service, port_open, server_env, start_service, unique_name
from veltrix.adapters.consul import ConsulBackend
from veltrix.errors import BackendUnavailableError
from veltrix.testing.conformance import ChangeRecorder


def _states(recorder: ChangeRecorder) -> list[tuple[str, bytes | None]]:
    return recorder.states()


@pytest.mark.slow
def test_watch_survives_server_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    address = server_env("VELTRIX_TEST_CONSUL_ADDR", "Consul test server")
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    host, _, port = address.rpartition(":")
    url = f"consul://{address}/fault/{unique_name()}?watch_max_backoff=0.5&timeout=5"
    backend = ConsulBackend.from_url(url)
    writer = ConsulBackend.from_url(url)
    recorder = ChangeRecorder()
    try:
        writer.put("cfg/before", b"1")
        watch = backend.watch("cfg", recorder)
        writer.put("cfg/live", b"2")
        assert recorder.wait_for(lambda ch: ("cfg/live", b"2") in _states(recorder), 15)

        kill_service("consul")  # the watch's blocking query is cut mid-flight
        assert not port_open(host, int(port))
        with pytest.raises(BackendUnavailableError):
            writer.get("cfg/live")
        time.sleep(0.5)  # let the watch fail and back off at least once
        start_service("consul")

        writer.put("cfg/after", b"3")
        assert recorder.wait_for(lambda ch: ("cfg/after", b"3") in _states(recorder), 30), (
            f"change after restart not delivered; got {_states(recorder)}"
        )
        # The fresh (in-memory) server lost the old keys: the resync reports them gone.
        assert ("cfg/before", None) in _states(recorder)
        assert ("cfg/live", None) in _states(recorder)
        # And the watch keeps following the new index.
        writer.put("cfg/after", b"4")
        assert recorder.wait_for(lambda ch: ("cfg/after", b"4") in _states(recorder), 15)
        watch.stop()
    finally:
        if not port_open(host, int(port)):
            start_service("consul")
        backend.close()
        writer.close()
