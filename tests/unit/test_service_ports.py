"""scripts/services.d/*: a port held by another program fails at once, naming the
variable that moves the server elsewhere (instead of a readiness time-out later)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO_ROOT


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port that something other than our servers listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def run_bash(script: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "VELTRIX_SERVICES_DIR": str(tmp_path), **env},
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )


def test_require_free_port(taken_port: int, tmp_path: Path) -> None:
    script = 'source scripts/lib.sh; require_free_port "$1" SOME_PORT_VAR; echo free'
    taken = run_bash(f"{script.replace('$1', str(taken_port))}", tmp_path, {})
    assert taken.returncode == 1 and "free" not in taken.stdout
    assert f"port {taken_port}" in taken.stderr and "set SOME_PORT_VAR" in taken.stderr
    with socket.socket() as probe:  # a port nobody listens on passes
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    free = run_bash(script.replace("$1", str(free_port)), tmp_path, {})
    assert free.returncode == 0 and free.stdout.strip() == "free", free.stderr


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("appconfig", "VELTRIX_APPCONFIG_PORT"),
        ("consul", "VELTRIX_CONSUL_PORT"),
        ("gcppm", "VELTRIX_GCPPM_REST_PORT"),
        ("kubernetes", "VELTRIX_K8S_PORT"),
    ],
)
def test_a_service_on_a_taken_port_fails_in_seconds(
    service: str, variable: str, taken_port: int, tmp_path: Path
) -> None:
    started = time.monotonic()
    result = run_bash(f"scripts/services.d/{service} up", tmp_path, {variable: str(taken_port)})
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    assert f"set {variable} to a free port" in result.stderr
    assert not (tmp_path / service / "pid").exists()  # nothing was started
