"""The programs in examples/ run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT


def test_asyncio_consumer_sees_the_change_and_the_flag(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "examples" / "asyncio_consumer.py"),
            "--events",
            "2000",
            "--url",
            f"sqlite:///{tmp_path}/config.db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2,000 events" in result.stdout
    assert "new checkout on 2,000" in result.stdout
    assert "timeout changed 1 time(s)" in result.stdout
