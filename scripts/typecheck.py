"""Run mypy --strict on the package as it is imported (``veltrix`` + ``veltrix.adapters``).

The source layout maps ``core/`` to ``veltrix`` and ``adapters/`` to
``veltrix.adapters``, which mypy cannot express; this builds a tree of symlinks
in ``.typecheck/`` with the import layout and checks that.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_tree() -> Path:
    tree = ROOT / ".typecheck"
    shutil.rmtree(tree, ignore_errors=True)
    package = tree / "veltrix"
    package.mkdir(parents=True)
    for item in (ROOT / "core").iterdir():
        if item.name != "__pycache__":
            (package / item.name).symlink_to(item)
    (package / "adapters").symlink_to(ROOT / "adapters")
    return tree


def main() -> int:
    tree = build_tree()
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        str(tree / "veltrix"),
        *sys.argv[1:],
    ]
    return subprocess.call(command, cwd=tree)


if __name__ == "__main__":
    raise SystemExit(main())
