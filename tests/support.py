"""Helpers for tests that need a real server started by ``scripts/services``.

A fixture asks for its server with :func:`server_env`; when the server's variable
is missing the test skips, except under ``VELTRIX_REQUIRE_SERVERS=1`` (CI), where
it fails. Fault tests kill and restart servers with :func:`kill_service` and
:func:`start_service`, for real.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = Path(os.environ.get("VELTRIX_SERVICES_DIR", REPO_ROOT / ".services"))


def servers_required() -> bool:
    return os.environ.get("VELTRIX_REQUIRE_SERVERS", "") not in ("", "0", "false")


def missing_server(message: str) -> None:
    """Skip, or fail when servers are required."""
    if servers_required():
        pytest.fail(f"{message} (VELTRIX_REQUIRE_SERVERS=1: run scripts/services up)")
    pytest.skip(message)


def server_env(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        missing_server(f"{what} not available: {variable} is not set")
        raise AssertionError("unreachable")
    return value


def live_aws_target(variable: str) -> str:
    """The real AWS target a live test may use, from ``variable``; skip without it
    or without AWS credentials (live tests are never required, also not in CI)."""
    value = os.environ.get(variable, "").strip("/")
    if not value:
        pytest.skip(f"{variable} is not set: no live AWS test")
    import boto3

    if boto3.session.Session().get_credentials() is None:
        pytest.skip("no AWS credentials: no live AWS test")
    return value


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, region: str = "us-east-1") -> None:
    """Credentials the local AWS servers (moto, the AppConfig test server) accept, and
    none from the machine's own profile."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unused_port() -> int:
    """A loopback port nothing listens on: free to bind, and refused to connect to
    (bound for a moment to pick it, then closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(stem: str = "t") -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def service_pid(name: str) -> int:
    return int((SERVICES_DIR / name / "pid").read_text().strip())


def kill_service(name: str) -> None:
    """SIGKILL a service started by scripts/services and wait until it is gone."""
    pid = service_pid(name)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def start_service(name: str) -> None:
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "services"), "up", name],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )


class ReadLoad:
    """Threads that keep reading ``keys`` through each of ``clients`` (``per_client``
    threads each) while the ``with`` block runs, checking every value against
    ``expected(key)``; ``reads`` counts good reads, ``failures`` keeps what failed."""

    def __init__(
        self,
        clients: Sequence[Any],
        keys: Sequence[str],
        expected: Callable[[str], str],
        *,
        per_client: int = 2,
    ) -> None:
        self.reads = 0
        self.failures: list[BaseException] = []
        self._keys, self._expected = keys, expected
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, args=(client,))
            for client in clients
            for _ in range(per_client)
        ]

    def _read(self, client: Any) -> None:
        while not self._stop.is_set():
            for key in self._keys:
                try:
                    assert client.get(key) == self._expected(key)
                    self.reads += 1
                except BaseException as exc:
                    self.failures.append(exc)

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
