"""``terraform fmt`` and ``terraform validate`` (AWS modules, with the offline provider mirror)."""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import missing_server
from tests.terraform.conftest import AWS_MODULES, EXAMPLES, MODULES, TERRAFORM_DIR, Terraform

pytestmark = pytest.mark.timeout(180)


def test_fmt_check_recursive() -> None:
    binary = shutil.which("terraform")
    if binary is None:
        missing_server(
            "terraform CLI not on PATH (the package registries scripts/bootstrap uses do not "
            "carry it: install it from HashiCorp to run the Terraform tests)"
        )
        raise AssertionError("unreachable")
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", "-no-color", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def test_every_module_has_an_example() -> None:
    assert MODULES == EXAMPLES
    assert set(AWS_MODULES) <= set(MODULES)


CONFIGS = [f"modules/{name}" for name in AWS_MODULES] + [f"examples/{name}" for name in AWS_MODULES]


@pytest.fixture(scope="module")
def validations(
    terraform: Terraform, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[str]]:
    """init + validate of every AWS configuration, run side by side (each is mostly
    waiting for the provider to load its schema)."""
    tree = tmp_path_factory.mktemp("validate") / "terraform"
    shutil.copytree(TERRAFORM_DIR, tree, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))

    def one(config: str) -> subprocess.CompletedProcess[str]:
        workdir = tree / config
        terraform.init(workdir, backend=False)
        return terraform.run(workdir, "validate", "-json", "-no-color", check=False)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(CONFIGS, pool.map(one, CONFIGS), strict=True))


@pytest.mark.parametrize("config", CONFIGS)
def test_validate_aws(
    validations: dict[str, subprocess.CompletedProcess[str]], config: str
) -> None:
    result = validations[config]
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True, report["diagnostics"]
    assert report["warning_count"] == 0, report["diagnostics"]
