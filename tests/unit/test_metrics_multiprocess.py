"""veltrix.metrics under prometheus-client's multiprocess mode, with real processes.

Three worker processes share one ``PROMETHEUS_MULTIPROC_DIR`` (as gunicorn
workers do); each reads through its own client and writes its values at a sync
(two explicitly, one only at exit). The parent reads the directory with
prometheus-client's ``MultiProcessCollector``, as the process serving
``/metrics`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

WORKER = textwrap.dedent(
    """
    import sys
    import veltrix
    from veltrix import metrics

    db, explicit = sys.argv[1], sys.argv[2] == "sync"
    installation = metrics.install(sync_interval=60)
    assert installation.multiprocess
    client = veltrix.Client(f"sqlite:///{db}", name="workers",
                            cache=veltrix.CachePolicy(ttl=60, watch=False))
    client.put("app/k", "v")          # write-through: the reads below are hits
    for _ in range(4):
        assert client.get("app/k") == "v"
    assert client.get("app/absent", None) is None   # one miss
    if explicit:
        metrics.sync()
        metrics.sync()                # a second sync adds nothing
    # otherwise the values are written at exit
    """
)


def test_three_processes_add_up(tmp_path: Path) -> None:
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(multiproc))
    root = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "config.db"), mode],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for mode in ("sync", "sync", "exit")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err.decode()
    assert len(list(multiproc.glob("counter_*.db"))) == 3

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiproc))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"client": "workers", **labels})

    assert sample("veltrix_cache_requests_total", result="hit") == 12
    assert sample("veltrix_cache_requests_total", result="miss") == 3
    assert sample("veltrix_store_requests_total", op="put", outcome="ok") == 3
    assert sample("veltrix_store_requests_total", op="get", outcome="ok") == 3
    assert sample("veltrix_store_request_duration_seconds_count", op="get") == 3
    assert sample("veltrix_store_request_duration_seconds_bucket", op="get", le="+Inf") == 3
    duration_sum = sample("veltrix_store_request_duration_seconds_sum", op="get")
    assert duration_sum is not None and 0 < duration_sum < 30
    assert sample("veltrix_store_up") == 1  # livemin over the three
    assert sample("veltrix_cached_keys") == 6  # livesum: two keys in each process
