"""Fuzzing the command line: any argv ends with a documented exit code and clean output.

Command lines run in a separate process through the real entry point, many per
process (see ``tests/cli_driver.py``), and a few as fresh ``python -m veltrix``
processes. Every run must exit with a documented code, print no traceback,
write one-line error messages, and never print the password planted in a URL.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import fuzz_settings, is_one_line
from tests.support import REPO_ROOT
from veltrix.cli import EXIT_CODES
from veltrix.cli_check import CACHE_UNREACHABLE
from veltrix.cli_migrate import EXIT_CONFLICTS, EXIT_FAILED, EXIT_UNREPRESENTABLE

PLANTED = "Pl4nted-PW-7731"
#: 0 success, 2 usage error, 130 interrupted, the error codes, check's and migrate's own.
DOCUMENTED_CODES = {
    0,
    2,
    130,
    CACHE_UNREACHABLE,
    EXIT_UNREPRESENTABLE,
    EXIT_FAILED,
    EXIT_CONFLICTS,
} | {code for _, code in EXIT_CODES}

COMMANDS = [
    "get",
    "put",
    "delete",
    "ls",
    "watch",
    "backends",
    "check",
    "export",
    "import",
    "diff",
    "migrate",
    "nosuch",
    "--help",
]
OPTIONS = [
    "--url",
    "-u",
    "--json",
    "--reveal",
    "--secret-prefix",
    "--values",
    "--file",
    "-f",
    "--if-version",
    "--create-only",
    "--count",
    "--timeout",
    "--prefix",
    "--output",
    "--dry-run",
    "--force",
    "--state",
    "-j",
    "--sample",
    "--cache-url",
    "--terraform",
    "--",
    "-",
    "--bogus",
]
URLS = st.sampled_from(
    [
        "memory://",
        "memory://fuzz",
        "sqlite:///fuzz.db",
        f"redis://:{PLANTED}@127.0.0.1:1/0",
        f"redis://user:{PLANTED}@127.0.0.1:1/0",
        f"rediss://127.0.0.1:1/0?password={PLANTED}",
        f"zookeeper://u:{PLANTED}@127.0.0.1:1/app",
        f"consul://127.0.0.1:1/app?token={PLANTED}",
        "zookeeper://" + "a" * 64 + ":2181/app",
        "memory://x\n\x1b[31mINJECTED",
        "nosuch://x",
        "not a url",
    ]
)
WORDS = st.one_of(
    st.sampled_from(["a", "a/b", "app/name", "0", "-1", "1e999", "fuzz.db", "snap.jsonl", "-"]),
    st.text(max_size=20),
)
ARGUMENT = st.one_of(st.sampled_from(OPTIONS), URLS, WORDS)


@st.composite
def command_lines(draw: Any) -> list[str]:
    argv = [draw(st.sampled_from(COMMANDS)), *draw(st.lists(ARGUMENT, max_size=6))]
    if argv[0] == "watch":
        argv += ["--timeout", "0.2", "--count", "1"]  # bounded, unless fuzzed options eat these
    return [arg.replace("\x00", "") for arg in argv]  # argv cannot hold NUL


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A driver process running command lines in a scratch directory."""
    workdir = tmp_path_factory.mktemp("cli-fuzz")
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO_ROOT)) if p)
    env = {**os.environ, "VELTRIX_HOME": str(workdir), "PYTHONPATH": path}
    env.pop("VELTRIX_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cli_driver"],
        cwd=workdir,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert process.stdin is not None and process.stdout is not None

    sent = itertools.count()

    def run(argv: list[str], stdin: str = "") -> dict[str, Any]:
        assert process.stdin is not None and process.stdout is not None
        # An unbounded watch runs until Ctrl-C: the driver sends it one after 1 s.
        limit = 1.0 if argv[0] == "watch" else 5.0
        request = {"id": next(sent), "argv": argv, "stdin": stdin, "time_limit": limit}
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        assert line, f"the driver died on {argv!r}"
        try:
            result: dict[str, Any] = json.loads(line)
        except ValueError:
            raise AssertionError(f"output escaped the command's streams: {line!r}") from None
        assert result.get("id") == request["id"], f"out of step: {request!r} got {result!r}"
        return result

    yield run
    process.stdin.close()
    process.wait(timeout=30)


def check_result(argv: list[str], result: dict[str, Any]) -> None:
    shown = f"argv={argv!r} result={result!r}"
    assert result["escaped"] is None, shown
    # Only a watch may run until interrupted (as by Ctrl-C, after which it exits 0).
    assert not result["timed_out"] or argv[0] == "watch", shown
    assert result["code"] in DOCUMENTED_CODES, shown
    output = result["stdout"] + result["stderr"]
    assert "Traceback" not in output, shown
    assert "a bug in veltrix" not in output, shown
    assert PLANTED not in output, shown
    for line in result["stderr"].splitlines():
        if line.startswith("error:"):
            assert is_one_line(line), shown
    if result["code"] != 0:
        assert result["stderr"].strip(), shown  # a failure always says why


@fuzz_settings(400)
@given(argv=command_lines(), stdin=st.sampled_from(["", "value", "\x00\xff", "v\nalue"]))
def test_any_command_line_exits_with_a_documented_code(
    cli: Any, argv: list[str], stdin: str
) -> None:
    check_result(argv, cli(argv, stdin))


def test_usage_error_masks_the_url_password(cli: Any) -> None:
    argv = ["delete", "X", "--url", "--", f"redis://:{PLANTED}@host/0"]
    result = cli(argv)
    check_result(argv, result)
    assert result["code"] == 2
    assert "redis://:***@host/0" in result["stderr"]


def test_control_characters_in_a_url_are_escaped(cli: Any) -> None:
    result = cli(["get", "a", "--url", "memory://x/y\n\x1bINJECTED"])
    first, *rest = result["stderr"].splitlines()
    assert first.startswith("error:") and "\\n" in first and "\\x1b" in first
    assert not any("INJECTED" in line for line in rest)


def test_demo_on_an_empty_private_memory_store_runs(cli: Any) -> None:
    result = cli(["demo", "--url", "memory://", "--duration", "0.6", "--json"])
    check_result(["demo"], result)
    assert result["code"] == 0
    summary = json.loads(result["stdout"])
    assert summary["events_per_second_veltrix"] > 0 and summary["events_per_second_direct"] > 0


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["delete", "X", "--url", "--", f"redis://:{PLANTED}@host/0"], 2),
        (["get", "a", "--url", f"redis://:{PLANTED}@127.0.0.1:1/0"], 3),
        (["get", "a", "--url", "memory://"], 5),
        (["get", "a b", "--url", "memory://"], 4),
    ],
)
def test_the_real_process_behaves_the_same(argv: list[str], code: int, tmp_path: Path) -> None:
    env = {**os.environ, "VELTRIX_HOME": str(tmp_path)}
    env.pop("VELTRIX_URL", None)
    process = subprocess.run(
        [sys.executable, "-m", "veltrix", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert process.returncode == code, process.stderr
    assert PLANTED not in process.stdout + process.stderr
    assert "Traceback" not in process.stderr
