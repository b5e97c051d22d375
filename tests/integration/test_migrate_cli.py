"""``veltrix export/import/diff/migrate`` as real processes, including a migration killed
with SIGKILL mid-way and resumed from its state file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_migrate import contents, dataset, seed
from veltrix.adapters.sqlite import SQLiteBackend
from veltrix.backend import Entry
from veltrix.snapshot import save_snapshot


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "VELTRIX_URL"}
    return subprocess.run(
        [sys.executable, "-m", "veltrix.cli", *args],
        check=False,
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
    )


def store(tmp_path: Path, name: str, data: dict[str, bytes] | None = None) -> str:
    backend = SQLiteBackend(tmp_path / f"{name}.db")
    if data:
        seed(backend, data)
    backend.close()
    return f"sqlite:///{tmp_path}/{name}.db"


def read(url: str) -> dict[str, bytes]:
    backend = SQLiteBackend(url.removeprefix("sqlite:///"))
    try:
        return contents(backend)
    finally:
        backend.close()


def writes_logged(url: str) -> int:
    """How many writes the SQLite store ever committed (its change log)."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0])


def test_export_import_round_trip(tmp_path: Path) -> None:
    data = dataset()
    src = store(tmp_path, "src", data)
    snap = tmp_path / "snap.jsonl"
    result = run("export", src, "-o", str(snap))
    assert result.returncode == 0, result.stderr
    assert b"exported 14 keys" in result.stderr
    dst = store(tmp_path, "dst")
    result = run("import", dst, str(snap), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["written"] == len(data) and report["verified"] == len(data)
    assert read(dst) == data
    again = json.loads(run("import", dst, str(snap), "--json").stdout)
    assert again["written"] == 0  # idempotent
    piped = run("export", src, "--prefix", "app/db")
    assert piped.returncode == 0 and piped.stdout.count(b"\n") == 2 + 4


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_snapshot_is_refused_and_nothing_written(tmp_path: Path, damage: str) -> None:
    src = store(tmp_path, "src", dataset())
    snap = tmp_path / "snap.jsonl"
    assert run("export", src, "-o", str(snap)).returncode == 0
    data = snap.read_bytes()
    if damage == "truncated":
        data = data[: len(data) - 200]
    else:
        data = data.replace(b'"key":"app/db/port"', b'"key":"app/db/pork"')
    snap.write_bytes(data)
    dst = store(tmp_path, "dst")
    result = run("import", dst, str(snap))
    assert result.returncode == 10, result.stderr  # DecodeError
    message = result.stderr.decode()
    assert message.startswith("error: ") and message.count("\n") == 1
    assert damage in message and "Traceback" not in message
    assert read(dst) == {} and writes_logged(dst) == 0


def test_diff_masks_secrets_and_reports_each_kind(tmp_path: Path) -> None:
    src = store(
        tmp_path,
        "src",
        {"app/a": b"same", "app/b": b"new", "app/c": b"created", "secrets/pw": b"hunter2"},
    )
    dst = store(
        tmp_path,
        "dst",
        {"app/a": b"same", "app/b": b"old", "app/z": b"extra", "secrets/pw": b"hunter1"},
    )
    result = run("diff", src, dst, "--secret-prefix", "secrets", "--json")
    assert result.returncode == 1, result.stderr  # the stores differ, as diff(1) says it
    report = json.loads(result.stdout)
    assert report["counts"] == {
        "created": 1,
        "changed": 2,
        "unchanged": 1,
        "only_in_destination": 1,
    }
    rows = {r["key"]: r for r in report["differences"]}
    assert rows["app/b"] == {
        "status": "changed",
        "key": "app/b",
        "old": "old",
        "new": "new",
        "secret": False,
    }
    assert rows["secrets/pw"]["new"] == "********" and rows["secrets/pw"]["secret"]
    assert b"hunter" not in result.stdout
    table = run("diff", src, dst, "--secret-prefix", "secrets")
    assert table.returncode == 1
    assert b"hunter" not in table.stdout and b"only in destination" in table.stdout
    assert b"hunter2" in run("diff", src, dst, "--secret-prefix", "secrets", "--reveal").stdout


def test_migrate_dry_run_preflight_exit_code_and_delete_extraneous(tmp_path: Path) -> None:
    src = store(tmp_path, "src", {"a": b"1", "b": b"2"})
    dst = store(tmp_path, "dst", {"b": b"old", "z": b"extra"})
    dry = run("migrate", src, dst, "--dry-run", "--delete-extraneous", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert (plan["created"], plan["updated"], plan["deleted"]) == (["a"], ["b"], ["z"])
    assert read(dst) == {"b": b"old", "z": b"extra"}
    # a value larger than the destination holds (from a snapshot): exit 13, nothing written
    big = tmp_path / "big.jsonl"
    save_snapshot(
        big,
        [Entry("ok", b"1", "1"), Entry("huge", b"x" * (9 * 1024 * 1024), "2")],
        source="memory://",
    )
    refused = run("migrate", str(big), dst)
    assert refused.returncode == 13, refused.stderr
    assert b"huge" in refused.stderr and read(dst) == {"b": b"old", "z": b"extra"}
    skipped = run("migrate", str(big), dst, "--skip-unrepresentable", "--json")
    assert skipped.returncode == 0 and json.loads(skipped.stdout)["skipped"][0]["key"] == "huge"
    done = run("migrate", src, dst, "--delete-extraneous")
    assert done.returncode == 0, done.stderr
    assert read(dst) == {"a": b"1", "b": b"2"}  # "ok" and "z" were extraneous


def test_sigkill_mid_migration_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    total = 4000
    data = {f"svc/{i % 7}/k{i:05d}": (b"v%05d-" % i) * 100 for i in range(total)}
    src = store(tmp_path, "src", data)
    dst = store(tmp_path, "dst")
    state = tmp_path / "state.jsonl"
    args = ("migrate", src, dst, "--state", str(state), "--concurrency", "1")
    env = {k: v for k, v in os.environ.items() if k != "VELTRIX_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "veltrix.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 60
    recorded = 0
    try:
        while recorded < 500:
            assert proc.poll() is None, "the migration ended before it could be killed"
            assert time.monotonic() < deadline, "no progress recorded in the state file"
            time.sleep(0.002)
            recorded = state.read_bytes().count(b'"op":"put"') if state.exists() else 0
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = read(dst)
    assert 500 <= len(partial) < total, "killed mid-way"
    assert all(data[key] == value for key, value in partial.items())
    written_before = writes_logged(dst)
    assert written_before == len(partial)

    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["verified"] == total
    assert report["written"] == total - len(partial)
    # writes in flight (at most 2 per writer) may have landed without their state line
    assert len(partial) - 2 <= report["resumed"] <= len(partial)
    assert read(dst) == data  # nothing lost
    assert writes_logged(dst) == total  # every key written exactly once: nothing duplicated
    again = json.loads(run(*args, "--json").stdout)
    assert again["written"] == 0 and writes_logged(dst) == total
