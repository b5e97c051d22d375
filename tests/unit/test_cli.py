"""The command line, run as a real process: outputs, masking and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(
    *args: str,
    url: str | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("VELTRIX_URL", None)
    if url is not None:
        full_env["VELTRIX_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "veltrix.cli", *args],
        check=False,
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=60,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def test_put_get_ls_delete(url: str, tmp_path: Path) -> None:
    assert run("put", "app/name", "veltrix", url=url).returncode == 0
    assert run("put", "app/stdin", url=url, stdin=b"from stdin").returncode == 0
    value_file = tmp_path / "v.bin"
    value_file.write_bytes(b"\x00\x01\xff")
    assert run("put", "app/bin", "--file", str(value_file), url=url).returncode == 0
    assert run("get", "app/name", url=url).stdout == b"veltrix\n"
    assert run("get", "app/stdin", url=url).stdout == b"from stdin\n"
    assert run("get", "app/bin", url=url).stdout == b"\x00\x01\xff"
    listed = json.loads(run("ls", "app", "--json", url=url).stdout)
    assert [e["key"] for e in listed] == ["app/bin", "app/name", "app/stdin"]
    assert listed[0]["encoding"] == "base64"
    as_json = json.loads(run("get", "app/name", "--json", url=url).stdout)
    assert as_json["value"] == "veltrix" and as_json["version"]
    assert run("delete", "app/name", url=url).returncode == 0
    assert run("get", "app/name", url=url).returncode == 5


def test_url_option_wins_and_memory_is_empty(url: str) -> None:
    run("put", "k", "v", url=url)
    assert run("get", "k", "--url", "memory://", url=url).returncode == 5


def test_cas_from_the_cli(url: str) -> None:
    version = json.loads(run("put", "c", "1", "--json", url=url).stdout)["version"]
    assert run("put", "c", "2", "--if-version", version, url=url).returncode == 0
    result = run("put", "c", "3", "--if-version", version, url=url)
    assert result.returncode == 6
    assert run("put", "c", "4", "--create-only", url=url).returncode == 6
    assert run("get", "c", url=url).stdout == b"2\n"


def test_secrets_are_masked(url: str) -> None:
    run("put", "secrets/db_password", "hunter2", url=url)
    for args in (
        ("get", "secrets/db_password", "--secret-prefix", "secrets"),
        ("get", "secrets/db_password", "--secret-prefix", "secrets", "--json"),
        ("ls", "--values", "--secret-prefix", "secrets"),
        ("ls", "--json", "--secret-prefix", "secrets"),
    ):
        result = run(*args, url=url)
        assert result.returncode == 0, result.stderr
        assert b"hunter2" not in result.stdout + result.stderr
        assert b"********" in result.stdout
    revealed = run("get", "secrets/db_password", "--secret-prefix", "secrets", "--reveal", url=url)
    assert revealed.stdout == b"hunter2\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("get", "k", "--url", "zookeepr://h:1/x"), 3, b"did you mean 'zookeeper'"),
        (("get", "k", "--url", "not a url"), 3, b"not a store URL"),
        (("get", "k", "--url", "memory://?bogus=1"), 3, b"unknown option"),
        (("get", "bad key", "--url", "memory://"), 4, b"invalid key"),
        (("get", "missing", "--url", "memory://"), 5, b"not found"),
        (
            ("put", "k", "v", "--if-version", "1", "--create-only", "--url", "memory://"),
            3,
            b"exclude",
        ),
        (("watch", "--url", "sqlite://host/x"), 3, b"no host"),
        (("get", "k", "--url", "consul://127.0.0.1:1/x"), 7, b"unreachable"),  # store down
        # No reconnect chatter from kazoo, and one connect timeout, not one per retry.
        (("get", "k", "--url", "zookeeper://127.0.0.1:1/x?connect_timeout=1"), 7, b"waited 1s"),
    ],
)
def test_errors_are_one_line_with_distinct_codes(
    args: tuple[str, ...], code: int, message: bytes
) -> None:
    result = run(*args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unopenable_store_exit_code() -> None:
    result = run("put", "k", "v", "--url", "sqlite:////proc/no/such/dir/x.db")
    assert result.returncode == 3
    assert b"Traceback" not in result.stderr


def test_value_too_large(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (8 * 1024 * 1024 + 1))
    result = run("put", "k", "--file", str(big), "--url", f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 9
    assert run("get", "k", "--url", f"sqlite:///{tmp_path}/x.db").returncode == 5


def test_watch_prints_changes(url: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "veltrix.cli",
            "watch",
            "w",
            "--count",
            "2",
            "--timeout",
            "30",
            "--json",
            "--url",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    proc.stderr.readline()  # "watching ..." once the watch is armed
    run("put", "w/a", "1", url=url)
    run("delete", "w/a", url=url)
    out, _ = proc.communicate(timeout=60)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["key"], x.get("value"), x.get("deleted", False)) for x in lines] == [
        ("w/a", "1", False),
        ("w/a", None, True),
    ]


def test_demo_runs_and_reports() -> None:
    result = run("demo", "--duration", "1", "--workers", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["events_per_second_veltrix"] > report["events_per_second_direct"] > 0
    assert report["change_seen_by_workers"] == "2/2"
    assert report["store_calls"] < 50
    assert report["cache_hit_ratio"] > 0.99


def test_help_and_backends() -> None:
    assert run("--help").returncode == 0
    listed = run("backends").stdout.decode()
    assert "zookeeper://" in listed and "veltrix[zookeeper]" in listed
    assert "gcppm://  (pip install 'veltrix[gcp]')" in listed
