"""What a newcomer meets in the first hour with the command line (issue #22).

Read-only commands never create a store; secrets flagged by the store URL or
``VELTRIX_SECRET_PREFIXES`` are masked everywhere; ``diff`` exits like diff(1);
``migrate`` refuses what would do nothing useful; help, ``--version``, ``backends``
and messages read plainly. Command lines run through the real entry point in one
driver process (``tests/cli_driver.py``); each gets a fresh empty ``VELTRIX_HOME``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO_ROOT

Cli = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    workdir = tmp_path_factory.mktemp("cli-first-hour")
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO_ROOT)) if p)
    env = {**os.environ, "PYTHONPATH": path}
    for name in ("VELTRIX_URL", "VELTRIX_SECRET_PREFIXES"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cli_driver"],
        cwd=workdir,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    sent = itertools.count()

    def run(*argv: str, stdin: str = "", env: dict[str, str] | None = None) -> dict[str, Any]:
        assert process.stdin is not None and process.stdout is not None
        request = {
            "id": next(sent),
            "argv": list(argv),
            "stdin": stdin,
            "env": env or {},
            "time_limit": 60,  # none of these waits on anything: only a loaded machine is slow
        }
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        result: dict[str, Any] = json.loads(process.stdout.readline())
        assert result["escaped"] is None, result["escaped"]
        assert "Traceback" not in result["stderr"]
        return result

    yield run
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=30)


def one_error_line(result: dict[str, Any]) -> str:
    lines = result["stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
    return lines[0]


# -- item 3: read-only commands create nothing -------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "x", "--url", "{missing}"],
        ["ls", "--url", "{missing}"],
        ["delete", "x", "--url", "{missing}"],
        ["watch", "--url", "{missing}", "--timeout", "0.2"],
        ["export", "{missing}"],
        ["diff", "{missing}", "memory://"],
        ["diff", "memory://", "{missing}"],
        ["migrate", "{missing}", "sqlite:///{tmp}/dst.db"],
        ["check", "--url", "{missing}"],
    ],
)
def test_read_commands_on_a_missing_store_say_so_and_create_nothing(
    cli: Cli, tmp_path: Path, argv: list[str]
) -> None:
    missing = f"sqlite:///{tmp_path}/no/such/dir/c.db"
    result = cli(*(a.format(missing=missing, tmp=tmp_path) for a in argv))
    assert result["code"] == 16
    assert "no SQLite store at" in one_error_line(result)
    assert list(tmp_path.iterdir()) == []  # neither the folders nor the file nor dst.db


def test_default_store_missing_is_reported_and_the_first_put_creates_it(
    cli: Cli, tmp_path: Path
) -> None:
    # The driver's VELTRIX_HOME is a fresh directory: the default store does not exist.
    result = cli("ls")
    assert result["code"] == 16 and "config.db" in one_error_line(result)
    home = tmp_path / "fresh" / "home"  # the default store's folders do not exist either
    assert cli("put", "k", "v", env={"VELTRIX_HOME": str(home)})["code"] == 0
    assert (home / "config.db").is_file()
    assert cli("get", "k", env={"VELTRIX_HOME": str(home)})["stdout"] == "v\n"


def test_writes_create_the_file_only_in_an_existing_folder(cli: Cli, tmp_path: Path) -> None:
    nested = f"sqlite:///{tmp_path}/a/b/c.db"
    refused = cli("put", "k", "v", "--url", nested)
    assert refused["code"] == 16 and "?create=parents" in one_error_line(refused)
    assert list(tmp_path.iterdir()) == []
    assert cli("put", "k", "v", "--url", nested + "?create=parents")["code"] == 0
    assert (tmp_path / "a" / "b" / "c.db").is_file()
    flat = f"sqlite:///{tmp_path}/flat.db"
    assert cli("put", "k", "v", "--url", flat)["code"] == 0
    listed = cli("ls", "--url", flat)
    assert listed["code"] == 0 and "1 key" in listed["stdout"] and "1 keys" not in listed["stdout"]


# -- item 4: secret prefixes from the URL or the environment -----------------------------------


def test_url_secret_prefixes_mask_every_output(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db?secret_prefixes=secrets/"
    assert cli("put", "secrets/db_password", "hunter2", "--url", url)["code"] == 0
    assert cli("put", "app/name", "veltrix", "--url", url)["code"] == 0
    outputs = [
        cli("get", "secrets/db_password", "--url", url),
        cli("get", "secrets/db_password", "--json", "--url", url),
        cli("ls", "--values", "--url", url),
        cli("ls", "--json", "--values", "--url", url),
        cli("diff", url, "memory://"),
    ]
    for result in outputs:
        assert "hunter2" not in result["stdout"] + result["stderr"], result
        assert "********" in result["stdout"], result
    listed = json.loads(outputs[3]["stdout"])
    assert {e["key"]: e["secret"] for e in listed} == {
        "app/name": False,
        "secrets/db_password": True,
    }
    snapshot = tmp_path / "snap.jsonl"
    exported = cli("export", url, "-o", str(snapshot))
    assert "1 flagged secret" in exported["stderr"]  # the export warning
    entries = [json.loads(line) for line in snapshot.read_text().splitlines()]
    assert [e["key"] for e in entries if e.get("secret")] == ["secrets/db_password"]
    revealed = cli("get", "secrets/db_password", "--reveal", "--url", url)
    assert revealed["stdout"] == "hunter2\n"


def test_env_secret_prefixes_apply_to_every_command(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/e.db"
    env = {"VELTRIX_SECRET_PREFIXES": "creds,secrets"}
    cli("put", "creds/token", "t0ken", "--url", url)
    shown = cli("get", "creds/token", "--url", url, env=env)
    assert shown["stdout"] == "********\n"
    assert cli("get", "creds/token", "--url", url)["stdout"] == "t0ken\n"  # not set: plain
    bad = cli("get", "creds/token", "--url", url, env={"VELTRIX_SECRET_PREFIXES": "a b"})
    assert bad["code"] == 3 and "VELTRIX_SECRET_PREFIXES" in one_error_line(bad)


def test_ls_json_shows_values_only_with_values(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/v.db"
    cli("put", "k", "plain", "--url", url)
    assert "value" not in json.loads(cli("ls", "--json", "--url", url)["stdout"])[0]
    with_values = json.loads(cli("ls", "--json", "--values", "--url", url)["stdout"])
    assert with_values[0]["value"] == "plain"


# -- item 7: diff exits like diff(1) -----------------------------------------------------------


def test_diff_exit_codes(cli: Cli, tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    cli("put", "k", "1", "--url", a)
    cli("put", "k", "1", "--url", b)
    assert cli("diff", a, b)["code"] == 0
    assert cli("diff", a, b, "--json")["code"] == 0
    cli("put", "k", "2", "--url", b)
    assert cli("diff", a, b)["code"] == 1
    assert cli("diff", a, b, "--json")["code"] == 1
    assert cli("diff", a, env={"VELTRIX_URL": b})["code"] == 1  # destination from VELTRIX_URL
    assert cli("diff", a, "nosuch://x")["code"] == 3  # an error is >= 2


# -- item 8: migrate refuses what would do nothing ---------------------------------------------


def test_migrate_refuses_the_same_store_and_a_private_memory_store(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    src = f"sqlite:///{tmp_path}/sub/src.db"
    cli("put", "k", "v", "--url", src)
    same = cli("migrate", src, f"sqlite:///{tmp_path}/sub/../sub/src.db")
    assert same["code"] == 3 and "same store" in one_error_line(same)
    for destination in ("memory://", "memory://named"):
        gone = cli("migrate", src, destination)
        assert gone["code"] == 3 and "nothing written there would be kept" in one_error_line(gone)


def test_migrate_warns_on_an_empty_prefix_and_dry_run_writes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    src, dst = f"sqlite:///{tmp_path}/src.db", f"sqlite:///{tmp_path}/dst.db"
    cli("put", "a/k", "v", "--url", src)
    cli("put", "b/k", "v", "--url", src)
    empty = cli("migrate", src, dst, "--prefix", "nothing")
    assert empty["code"] == 0
    assert "warning: no keys under 'nothing'" in empty["stderr"]
    assert "\n\n" not in "\n" + empty["stderr"]  # no stray blank line
    planned = cli("migrate", src, dst, "--dry-run", "--json")
    report = json.loads(planned["stdout"])
    assert report["written"] == 0 and report["would_write"] == 2
    assert json.loads(cli("ls", "--json", "--url", dst)["stdout"]) == []
    done = cli("migrate", src, env={"VELTRIX_URL": dst})  # destination from VELTRIX_URL
    assert done["code"] == 0 and "wrote 2" in done["stdout"]


def test_export_and_import_take_the_store_from_veltrix_url(cli: Cli, tmp_path: Path) -> None:
    src, dst = f"sqlite:///{tmp_path}/src.db", f"sqlite:///{tmp_path}/dst.db"
    cli("put", "k", "v", "--url", src)
    snapshot = str(tmp_path / "s.jsonl")
    exported = cli("export", "-o", snapshot, env={"VELTRIX_URL": src})
    assert exported["code"] == 0 and "exported 1 key from" in exported["stderr"]
    assert cli("import", snapshot, env={"VELTRIX_URL": dst})["code"] == 0
    assert cli("get", "k", "--url", dst)["stdout"] == "v\n"
    assert cli("import", dst, snapshot)["code"] == 0  # the explicit form still works
    nowhere = cli("export")
    assert nowhere["code"] == 3 and "VELTRIX_URL" in one_error_line(nowhere)


# -- item 10: polish ---------------------------------------------------------------------------


def test_version_and_plain_help(cli: Cli) -> None:
    from veltrix import __version__

    assert cli("--version")["stdout"] == f"veltrix {__version__}\n"
    for command in ("get", "put", "ls", "watch", "diff", "migrate", "import", "export"):
        shown = cli(command, "--help")["stdout"]
        for unreadable in ("<bool>", "<str>", "<list[str]>", "<float>", "{"):
            assert unreadable not in shown, (command, unreadable)
    assert "Usage: veltrix get [OPTIONS] KEY" in cli("get", "--help")["stdout"]
    assert "--install-completion" in cli("--help")["stdout"]


def test_put_reports_the_key_and_version_not_a_value(cli: Cli, tmp_path: Path) -> None:
    result = cli("put", "app/k", "v", "--url", f"sqlite:///{tmp_path}/p.db")
    assert result["stdout"] == "wrote app/k: version 1, 1 byte\n"


def test_backends_says_installed_or_what_to_install() -> None:
    # A Python where kazoo cannot be imported, as without the zookeeper extra.
    code = (
        "import sys; sys.modules['kazoo'] = None\n"
        "from veltrix.cli import main; main(['backends', '--json'])"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    rows = {row["scheme"]: row for row in json.loads(process.stdout)}
    assert rows["zookeeper"]["installed"] is False
    assert "pip install 'veltrix[zookeeper]'" in rows["zookeeper"]["install"]
    assert "pip install -e '.[zookeeper]'" in rows["zookeeper"]["install"]
    assert rows["sqlite"]["installed"] is True and "install" not in rows["sqlite"]
    for scheme in ("redis", "consul", "ssm", "appconfig", "gcpsm"):  # the test extras
        assert rows[scheme]["installed"] is True, scheme
    table = subprocess.run(
        [sys.executable, "-c", code.replace(", '--json'", "")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # one line per scheme
    ).stdout
    line = next(line for line in table.splitlines() if "zookeeper://" in line)
    assert "missing" in line and "pip install 'veltrix[zookeeper]'" in line


def test_values_that_look_like_markup_are_printed_as_they_are(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    cli("put", "k", "[bold]x[/bold]", "--url", url)
    assert "[bold]x[/bold]" in cli("ls", "--values", "--url", url)["stdout"]
    assert "[bold]x[/bold]" in cli("diff", url, "memory://")["stdout"]


# -- item 2: every network store, unreachable, is one line within its timeout ----------------


UNREACHABLE = {
    "zookeeper": "zookeeper://127.0.0.1:1/x?connect_timeout=1",
    "consul": "consul://127.0.0.1:1/x",
    "redis": "redis://127.0.0.1:1/0",
    "ssm": "ssm:///app?region=us-east-1&endpoint_url=http://127.0.0.1:1&timeout=1",
    "appconfig": (
        "appconfig://a/e/p?region=us-east-1&endpoint_url=http://127.0.0.1:1"
        "&data_endpoint_url=http://127.0.0.1:1&timeout=1"
    ),
    "gcpsm": "gcpsm://proj/app?endpoint=127.0.0.1:1&insecure=true&timeout=1&deadline=2",
}


def test_unreachable_stores_fail_in_one_line_within_seconds(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "VELTRIX_HOME": str(tmp_path),
    }
    env.pop("VELTRIX_URL", None)
    started = time.monotonic()
    processes = {  # all at once: the test takes as long as the slowest store
        name: subprocess.Popen(
            [sys.executable, "-m", "veltrix", "get", "k", "--url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, url in UNREACHABLE.items()
    }
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=60)
        lines = stderr.strip().splitlines()
        assert process.returncode == 7, (name, stderr)
        assert len(lines) == 1 and "unreachable" in lines[0], (name, stderr)
    # Connect timeouts of 1-2 s, a few bounded retries, and interpreter start-up on a
    # loaded machine; a client library's own retry policy (60 s for GCP) would exceed it.
    assert time.monotonic() - started < 30


def test_demo_shows_the_whole_url_and_explains_oversubscription(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / ("a-folder-name-long-enough-to-wrap-" * 2)
    folder.mkdir()
    workers = (os.cpu_count() or 1) + 1
    result = cli(
        "demo", "--url", f"sqlite:///{folder}/demo.db", "--duration", "0.6",
        "--workers", str(workers),
    )  # fmt: skip
    assert result["code"] == 0, result["stderr"]
    lines = result["stdout"].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("│ store "))
    shown = ""
    for line in lines[first:]:
        label, value = line.split("│")[1:3]
        if label.strip() not in ("", "store"):
            break
        shown += value.strip()
    assert shown == f"sqlite:///{folder}/demo.db"  # wrapped over lines, not cut
    assert f"{workers} / {os.cpu_count()}" in result["stdout"]
    assert "holding Python's GIL" in result["stdout"]


# -- item 5: where the command is after scripts/demo -------------------------------------------


def test_scripts_demo_says_how_to_run_veltrix() -> None:
    if not (REPO_ROOT / ".venv" / "bin" / "veltrix").exists():
        pytest.skip("no .venv in this checkout (scripts/demo would install one)")
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "demo"), "--duration", "0.5", "--workers", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["workers"] == 1
    assert ".venv/bin/veltrix" in result.stderr
    assert "source .venv/bin/activate" in result.stderr
