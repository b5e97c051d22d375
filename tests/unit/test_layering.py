"""The dependency direction: the core (``veltrix``) never imports an adapter.

Adapters depend on the core; the core reaches an adapter only through the registry's
lazy ``importlib`` lookup by URL scheme (module names as strings, never an import).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

CORE = REPO_ROOT / "core"
CORE_MODULES = sorted(CORE.rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_no_adapter(path: Path) -> None:
    adapters = sorted(
        name for name in imported_modules(path) if name.startswith("veltrix.adapters")
    )
    assert adapters == [], f"{path.name} imports {adapters}"


def test_the_check_sees_function_level_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from veltrix import adapters\n    import veltrix.adapters.x\n")
    assert {"veltrix.adapters", "veltrix.adapters.x"} <= imported_modules(sample)
