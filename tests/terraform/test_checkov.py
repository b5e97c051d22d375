"""checkov over every module and example: no failed check, every skip justified inline.

checkov runs from its own virtualenv (``scripts/checkov.sh`` creates it on first use:
it pins an old boto3 that must not reach .venv). Outside CI a failed install skips.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from typing import Any

import pytest

from tests.support import REPO_ROOT, missing_server
from tests.terraform.conftest import (
    CHECKOV,
    CHECKOV_SCRIPT,
    MODULES,
    TERRAFORM_DIR,
    checkov_installer,
)

pytestmark = pytest.mark.timeout(600)

#: checkov has no rules for the consul provider: nothing to pass or fail there.
NO_RULES = {"consul-kv"}


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    installer = checkov_installer()
    if installer is not None:
        installer.wait(timeout=540)
    if not CHECKOV.exists():
        install = subprocess.run(
            [str(CHECKOV_SCRIPT), "--version"],
            check=False,
            capture_output=True,
            text=True,
            timeout=540,
        )
        if install.returncode != 0 or not CHECKOV.exists():
            missing_server(f"checkov could not be installed: {install.stderr[-500:]}")
    command = [str(CHECKOV), "-d", str(TERRAFORM_DIR), "--framework", "terraform", "-o", "json"]
    result = subprocess.run(
        [*command, "--skip-path", ".terraform", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO_ROOT,
    )
    if result.returncode not in (0, 1) or not result.stdout.lstrip().startswith("{"):
        missing_server(f"checkov did not run (exit {result.returncode}): {result.stderr[-500:]}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _of(report: dict[str, Any], kind: str, directory: str) -> list[dict[str, Any]]:
    return [c for c in report["results"][kind] if c["file_path"].startswith(f"/{directory}/")]


def test_no_parsing_errors(checkov_report: dict[str, Any]) -> None:
    assert checkov_report["results"]["parsing_errors"] == []


@pytest.mark.parametrize("module", MODULES)
def test_module_has_no_failed_check(checkov_report: dict[str, Any], module: str) -> None:
    directory = f"modules/{module}"
    failed = _of(checkov_report, "failed_checks", directory)
    assert not failed, [(c["check_id"], c["resource"], c["check_name"]) for c in failed]
    passed = _of(checkov_report, "passed_checks", directory)
    if module not in NO_RULES:
        assert passed, f"checkov ran no check on {module}"
    skipped = Counter(c["check_id"] for c in _of(checkov_report, "skipped_checks", directory))
    print(
        f"{module}: passed {len(passed)}, failed 0, skipped {sum(skipped.values())} {dict(skipped)}"
    )


def test_examples_have_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = [
        c for c in checkov_report["results"]["failed_checks"] if "/examples/" in c["file_path"]
    ]
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]


def test_every_skip_is_justified(checkov_report: dict[str, Any]) -> None:
    for check in checkov_report["results"]["skipped_checks"]:
        comment = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(comment.strip()) >= 20 and comment != "No comment provided", (
            f"{check['check_id']} skipped without a justification in {check['file_path']}"
        )
