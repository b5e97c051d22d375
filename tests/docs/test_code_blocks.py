"""Every ```python and ```sh/```bash/```console block in README.md and docs/ runs as written.

Each block runs in a subprocess in a fresh temporary directory that is also ``HOME``
and holds ``VELTRIX_HOME`` (so the embedded default store starts empty), with this
interpreter's ``bin`` first on ``PATH`` (so ``veltrix`` resolves). Python blocks run
with this interpreter, shell blocks with ``bash`` under ``set -e``.

Blocks that talk to a local test server name it by the address ``scripts/services up``
gives it by default (ZooKeeper ``127.0.0.1:21810``, Consul ``127.0.0.1:18500``, Redis
``127.0.0.1:16379``). Such a block runs only when the server's ``VELTRIX_TEST_*``
variable is set (it skips otherwise, and fails under ``VELTRIX_REQUIRE_SERVERS=1``); the
address is replaced by the variable's value and a ZooKeeper chroot or Consul prefix
gets a fresh parent, so runs do not see each other's keys.

A block that cannot run here is marked on the line before its fence with
``<!-- not-run: REASON -->`` (one word). Those are listed as skipped tests with their
reason; keep them few (``MAX_NOT_RUN``).

All runnable blocks start together in threads the first time one is asked for, so
the whole file takes about as long as the slowest block.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, server_env

DOC_FILES = [
    REPO_ROOT / "README.md",
    *sorted((REPO_ROOT / "docs").rglob("*.md")),
    REPO_ROOT / "benchmarks" / "README.md",
]
LANGUAGES = {"python": "python", "sh": "sh", "bash": "sh", "console": "console"}
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>[^>]*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`]*)$")
MAX_NOT_RUN = 7
BLOCK_TIMEOUT = 45.0

# the default address in the docs -> (the variable with the running server's, what)
SERVERS = {  # the longest first: the ensemble's addresses contain no standalone one
    "127.0.0.1:21820,127.0.0.1:21821,127.0.0.1:21822": (
        "VELTRIX_TEST_ZOOKEEPER_ENSEMBLE",
        "ZooKeeper ensemble test servers",
    ),
    "127.0.0.1:21810": ("VELTRIX_TEST_ZOOKEEPER", "ZooKeeper test server"),
    "127.0.0.1:18500": ("VELTRIX_TEST_CONSUL_ADDR", "Consul test server"),
    "127.0.0.1:16379": ("VELTRIX_TEST_REDIS_URL", "Redis test server"),
}
NAMESPACED = {
    "127.0.0.1:21810",
    "127.0.0.1:18500",
    "127.0.0.1:21820,127.0.0.1:21821,127.0.0.1:21822",
}  # path = chroot / key prefix


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str  # python | sh | console
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def find_blocks() -> list[Block]:
    blocks = []
    for path in DOC_FILES:
        if not path.exists():
            continue
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if not match:
                i += 1
                continue
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            info = match["info"].strip().split()
            language = LANGUAGES.get(info[0]) if info else None
            if language:
                marker = NOT_RUN.match(lines[i - 1]) if i else None
                code = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
                blocks.append(
                    Block(path, i + 1, language, code, marker["reason"] if marker else None)
                )
            i = end + 1
    return blocks


BLOCKS = find_blocks()
RUNNABLE = [b for b in BLOCKS if b.not_run is None]
SKIPPED = [b for b in BLOCKS if b.not_run is not None]


def _host_port(value: str) -> str:
    return re.sub(r"^[a-z+]+://", "", value).split("/")[0]


def _prepare(block: Block) -> str:
    """The block's code with the default test-server addresses replaced by the
    running servers' (skips or fails when a server the block needs is missing)."""
    code = block.code
    for address, (variable, what) in SERVERS.items():
        if address not in code:
            continue
        actual = _host_port(server_env(variable, what))
        if address in NAMESPACED:
            fresh = f"/docs-{uuid.uuid4().hex[:10]}"
            code = re.sub(re.escape(address) + r"(?=[/\s\"'?]|$)", actual + fresh, code)
        else:
            code = code.replace(address, actual)
    return code


def _sandbox_env(tmp: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VELTRIX_") or k.startswith("VELTRIX_TEST_")
    }
    env.update(
        HOME=str(tmp),
        VELTRIX_HOME=str(tmp / ".veltrix"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("PYTHONPATH", None)
    return env


def _console_to_sh(code: str) -> str:
    """The commands of a console transcript: lines after ``$ ``, output dropped."""
    return "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ ")) + "\n"


def run_block(block: Block, code: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="veltrix-doc-") as name:
        tmp = Path(name)
        if block.language == "python":
            script = tmp / "block.py"
            script.write_text(code)
            argv = [sys.executable, str(script)]
        else:
            if block.language == "console":
                code = _console_to_sh(code)
            script = tmp / "block.sh"
            script.write_text("set -e\n" + code)
            argv = ["bash", str(script)]
        try:
            return subprocess.run(
                argv,
                check=False,
                cwd=tmp,
                env=_sandbox_env(tmp),
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            return subprocess.CompletedProcess(
                argv, -1, out, err + f"\n(timed out after {BLOCK_TIMEOUT}s)"
            )


class _Runner:
    """Starts every runnable block (whose servers are there) at once, in threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[str, Future[subprocess.CompletedProcess[str]]] = {}

    def start(self) -> None:
        with self._lock:
            if self._pool is not None:
                return
            self._pool = ThreadPoolExecutor(max_workers=8)
            for block in RUNNABLE:
                try:
                    code = _prepare(block)
                except BaseException:  # a missing server: the block's own test reports it
                    continue
                self._futures[block.id] = self._pool.submit(run_block, block, code)

    def result(self, block: Block) -> subprocess.CompletedProcess[str]:
        self.start()
        future = self._futures.get(block.id)
        if future is None:  # a server is missing: skip or fail as server_env says
            return run_block(block, _prepare(block))
        return future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def runner() -> Iterator[_Runner]:
    r = _Runner()
    yield r
    r.close()


def test_blocks_are_found() -> None:
    assert len(RUNNABLE) >= 10, [b.id for b in BLOCKS]


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_block_runs(block: Block, runner: _Runner) -> None:
    result = runner.result(block)
    assert result.returncode == 0, (
        f"{block.id} ({block.language}) exited {result.returncode}\n"
        f"--- code\n{block.code}--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


@pytest.mark.parametrize("block", SKIPPED, ids=[b.id for b in SKIPPED])
def test_not_run_block(block: Block) -> None:
    """Listed (as a skip, with its reason) so the blocks that are not run stay visible."""
    pytest.skip(f"not-run ({block.id}): {block.not_run}")


def test_not_run_blocks_have_a_reason_and_stay_few() -> None:
    listing = [f"{b.id}: {b.not_run}" for b in SKIPPED]
    print(f"{len(BLOCKS)} blocks: {len(RUNNABLE)} run, {len(SKIPPED)} not run", *listing, sep="\n")
    for block in SKIPPED:
        assert block.not_run and re.fullmatch(r"[a-z][a-z-]*", block.not_run), (
            f"{block.id}: a not-run block needs a one-word reason, got {block.not_run!r}"
        )
    assert len(SKIPPED) <= MAX_NOT_RUN, listing
