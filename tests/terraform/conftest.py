"""Fixtures for the Terraform tests: the CLI, the offline provider mirror, a scratch tree.

The Terraform CLI and the ``hashicorp/aws`` provider mirror come with this machine
kind; ``scripts/terraform-env.sh`` finds the mirror and writes a CLI config. Without
them these tests skip, except under ``VELTRIX_REQUIRE_SERVERS=1`` (CI), where they fail.
Every test works on a copy of ``terraform/`` in a temporary directory, so no
``.terraform`` directory, lock file or state ever lands in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, SERVICES_DIR, missing_server

TERRAFORM_DIR = REPO_ROOT / "terraform"
MODULES = sorted(p.name for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir())
EXAMPLES = sorted(p.name for p in (TERRAFORM_DIR / "examples").iterdir() if p.is_dir())
#: Modules (and their examples) that use only the AWS provider, which is mirrored offline.
AWS_MODULES = ["aws-appconfig", "aws-ssm", "redis-cache", "zookeeper"]


CHECKOV_SCRIPT = REPO_ROOT / "scripts" / "checkov.sh"
CHECKOV_VENV = Path(os.environ.get("VELTRIX_CHECKOV_VENV", SERVICES_DIR / "venv-checkov"))
CHECKOV = CHECKOV_VENV / "bin" / "checkov"
_installer: list[subprocess.Popen[bytes]] = []


def checkov_installer() -> subprocess.Popen[bytes] | None:
    """The background ``scripts/checkov.sh --version`` started for this session, if any."""
    return _installer[0] if _installer else None


@pytest.fixture(scope="session", autouse=True)
def _install_checkov_early(request: pytest.FixtureRequest) -> Iterator[None]:
    """Create checkov's venv in the background while the other Terraform tests run
    (only when the session will run the checkov tests and the venv is missing)."""
    wanted = any(item.path.name == "test_checkov.py" for item in request.session.items)
    if wanted and not CHECKOV.exists():
        _installer.append(
            subprocess.Popen(
                [str(CHECKOV_SCRIPT), "--version"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    yield
    for process in _installer:
        try:
            process.wait(timeout=600)  # an interrupted pip would leave a broken venv
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Terraform:
    """The terraform CLI with an offline environment."""

    binary: str
    plugin_dir: str
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, workdir: Path, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            check=False,
            cwd=workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"terraform {' '.join(args)} in {workdir.name} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def init(self, workdir: Path, *, backend: bool = True) -> None:
        args = ["init", "-input=false", "-no-color", f"-plugin-dir={self.plugin_dir}"]
        if not backend:
            args.append("-backend=false")
        self.run(workdir, *args)


def _offline_env() -> dict[str, str]:
    """Run scripts/terraform-env.sh and return its exports ({} when it cannot)."""
    script = REPO_ROOT / "scripts" / "terraform-env.sh"
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        return {}
    env: dict[str, str] = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            env[name] = value
    return env


@pytest.fixture(scope="session")
def terraform() -> Terraform:
    binary = shutil.which("terraform")
    if binary is None:
        missing_server(
            "terraform CLI not on PATH (the package registries scripts/bootstrap uses do not "
            "carry it: install it from HashiCorp to run the Terraform tests)"
        )
        raise AssertionError("unreachable")
    exports = _offline_env()
    if "VELTRIX_TF_PLUGIN_DIR" not in exports:
        missing_server("no offline hashicorp/aws provider mirror (scripts/terraform-env.sh)")
    env = {**os.environ, **exports}
    # Never pick up credentials or settings of whoever runs the tests.
    for name in list(env):
        if name.startswith(("AWS_", "TF_VAR_", "TF_WORKSPACE", "TF_DATA_DIR")):
            del env[name]
    return Terraform(binary=binary, plugin_dir=exports["VELTRIX_TF_PLUGIN_DIR"], env=env)


@pytest.fixture
def terraform_tree(tmp_path: Path) -> Iterator[Path]:
    """A copy of terraform/ (modules keep their relative paths from the examples)."""
    tree = tmp_path / "terraform"
    shutil.copytree(
        TERRAFORM_DIR,
        tree,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"),
    )
    yield tree


AWS_REGION = "us-east-1"
FAKE_AWS_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def aws_override(**endpoints: str) -> str:
    """An ``override.tf`` pointing the AWS provider at local test servers, fake keys."""
    lines = "\n".join(f'    {service} = "{url}"' for service, url in sorted(endpoints.items()))
    return f"""
provider "aws" {{
  region                      = "{AWS_REGION}"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {{
{lines}
  }}
}}
"""


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake AWS credentials for the Python side (boto3 in the adapters and the tests)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    env = {**FAKE_AWS_KEYS, "AWS_DEFAULT_REGION": AWS_REGION}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
