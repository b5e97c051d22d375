"""``veltrix demo --metrics-port``: Prometheus metrics served while the demo runs, as a real
process scraped over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support import port_open


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _demo(*args: str, pythonpath: Path | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "VELTRIX_URL"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "veltrix.cli", "demo", "--workers", "2", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def _sample(text: str, prefix: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_demo_serves_its_clients_metrics_while_it_runs() -> None:
    port = _free_port()
    demo = _demo("--duration", "3", "--metrics-port", str(port), "--json")
    hits = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and demo.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                time.sleep(0.1)
                continue
            hits = _sample(text, 'veltrix_cache_requests_total{client="demo",result="hit"}')
            if hits:  # phase 2 has begun: the demo's client reads through its cache
                assert _sample(text, 'veltrix_store_up{client="demo"}') == 1.0
                break
            time.sleep(0.1)
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, err.decode()
    assert hits, f"no cache hits of client 'demo' on /metrics while the demo ran: {err.decode()}"
    assert b'"cache_hit_ratio"' in out  # the usual report, still on stdout
    assert not port_open("127.0.0.1", port)  # the server stops with the demo


def test_a_busy_metrics_port_is_a_configuration_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        demo = _demo("--duration", "1", "--metrics-port", str(port))
        out, err = demo.communicate(timeout=60)
    assert demo.returncode == 3, err.decode()
    message = err.decode().strip()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert out == b""  # nothing ran


def test_metrics_port_is_checked_by_the_command_line() -> None:
    demo = _demo("--metrics-port", "70000")
    _, err = demo.communicate(timeout=60)
    assert demo.returncode == 2
    assert b"--metrics-port" in err


def test_without_prometheus_client_the_error_names_the_extra(tmp_path: Path) -> None:
    """With prometheus-client not importable, one line says which extra to install."""
    shadow = tmp_path / "prometheus_client"
    shadow.mkdir()
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'prometheus_client'\","
        " name='prometheus_client')\n"
    )
    demo = _demo("--duration", "1", "--metrics-port", str(_free_port()), pythonpath=tmp_path)
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 3, err.decode()
    message = err.decode().strip()
    assert "pip install 'veltrix[metrics]'" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1
    assert out == b""


def test_run_demo_leaves_no_collector_behind() -> None:
    """In process, the demo's collector and hit counting end with the demo."""
    from prometheus_client import REGISTRY

    from veltrix import instruments
    from veltrix.demo import run_demo

    before = set(REGISTRY._collector_to_names)
    counting = instruments.counting_hits()
    report = run_demo(duration=0.6, workers=1, metrics_port=_free_port())
    assert report.reads > 0
    assert set(REGISTRY._collector_to_names) == before
    assert instruments.counting_hits() == counting
