"""End to end: ``terraform apply`` the aws-appconfig example against the AppConfig test
server, read the deployed document through ``veltrix.Client.from_terraform``, change a
value with a second apply and see it through the same client, then ``terraform destroy``.

The AWS provider's ``endpoints`` point at the local servers (an ``override.tf`` in a
copy of the example): AppConfig at the AppConfig test server, IAM and STS at moto
(the read policy is a real ``CreatePolicy``; the provider asks STS for the account id,
which both servers agree is 123456789012). Credentials are fake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

import veltrix
from tests.support import server_env, unique_name
from tests.terraform.conftest import AWS_REGION as REGION
from tests.terraform.conftest import Terraform, aws_override

pytestmark = pytest.mark.timeout(300)

VELTRIX = str(Path(sys.executable).with_name("veltrix"))  # the installed console script


@pytest.fixture
def example(
    terraform: Terraform, terraform_tree: Path, aws_env: dict[str, str]
) -> Iterator[tuple[Path, str, str]]:
    appconfig = server_env("VELTRIX_TEST_APPCONFIG_ENDPOINT", "AppConfig test server")
    moto = server_env("VELTRIX_TEST_MOTO_ENDPOINT", "moto server (IAM, STS)")
    workdir = terraform_tree / "examples" / "aws-appconfig"
    (workdir / "override.tf").write_text(aws_override(appconfig=appconfig, iam=moto, sts=moto))
    terraform.init(workdir)
    yield workdir, appconfig, moto
    # Always clean up, also after a failed assertion (the servers are shared).
    if (workdir / "terraform.tfstate").exists() and not (workdir / "destroyed").exists():
        terraform.run(workdir, "destroy", "-auto-approve", "-input=false", "-no-color", check=False)


def write_vars(path: Path, name: str, appconfig: str, timeout_ms: int) -> Path:
    path.write_text(
        json.dumps(
            {
                "application_name": name,
                "environment_name": "e2e",
                "settings": {
                    "payments": {"timeout_ms": timeout_ms, "retries": 3},
                    "features": {"new_checkout": False},
                },
                # The endpoint goes into veltrix_url as the adapter's endpoint_url option.
                "veltrix_url_options": {"endpoint_url": appconfig},
            }
        )
    )
    return path


def apply(terraform: Terraform, workdir: Path, var_file: Path) -> dict[str, Any]:
    terraform.run(
        workdir, "apply", "-auto-approve", "-input=false", "-no-color", f"-var-file={var_file}"
    )
    raw = terraform.run(workdir, "output", "-json", "-no-color").stdout
    (workdir / "outputs.json").write_text(raw)
    outputs: dict[str, Any] = json.loads(raw)
    return outputs


def wait_for(read: Any, expected: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    value = read()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return str(value)


def test_apply_read_change_destroy(
    terraform: Terraform, example: tuple[Path, str, str], aws_env: dict[str, str]
) -> None:
    started = time.monotonic()
    workdir, appconfig, moto = example
    name = unique_name("tf-e2e")
    var_file = write_vars(workdir / "e2e.tfvars.json", name, appconfig, 500)

    outputs = apply(terraform, workdir, var_file)
    url = outputs["veltrix_url"]["value"]
    parts = urlsplit(url)
    assert parts.scheme == "appconfig"
    assert parse_qs(parts.query) == {"endpoint_url": [appconfig], "region": [REGION]}

    # The read policy: exactly the two data-plane actions on this profile only.
    app_id, env_id, profile_id = parts.netloc, *parts.path.strip("/").split("/")
    iam = boto3.client("iam", endpoint_url=moto, region_name=REGION)
    arn = outputs["read_policy_arn"]["value"]
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
    statements = document["Document"]["Statement"]
    if isinstance(document["Document"], str):  # pragma: no cover - moto version dependent
        statements = json.loads(document["Document"])["Statement"]
    assert len(statements) == 1
    assert statements[0]["Effect"] == "Allow"
    assert sorted(statements[0]["Action"]) == [
        "appconfig:GetLatestConfiguration",
        "appconfig:StartConfigurationSession",
    ]
    assert statements[0]["Resource"] == (
        f"arn:aws:appconfig:{REGION}:123456789012:application/{app_id}"
        f"/environment/{env_id}/configuration/{profile_id}"
    )

    policy = veltrix.CachePolicy(ttl=0.2, negative_ttl=0.2, watch=False)
    with veltrix.Client.from_terraform(
        workdir / "outputs.json", cache=policy, poll_interval=0.1
    ) as client:
        assert client.get("payments/timeout_ms", type=int) == 500
        assert client.get("features/new_checkout") == "false"
        assert sorted(e.key for e in client.list("")) == [
            "features/new_checkout",
            "payments/retries",
            "payments/timeout_ms",
        ]

        # `veltrix check` on the same outputs file.
        check = subprocess.run(
            [VELTRIX, "check", "--json", "--terraform-output", str(workdir / "outputs.json")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **aws_env},
            check=False,
        )
        assert check.returncode == 0, check.stderr
        report = json.loads(check.stdout)
        assert report["reachable"] is True
        assert report["keys"] == 3
        assert report["sample"] == [
            "features/new_checkout",
            "payments/retries",
            "payments/timeout_ms",
        ]

        # A second apply with a changed value: new hosted version, new deployment.
        write_vars(var_file, name, appconfig, 750)
        changed = apply(terraform, workdir, var_file)
        assert changed["veltrix_url"]["value"] == url
        # One more deployment, or more: a CI run on a loaded machine once saw two, most
        # likely the provider's AWS SDK retrying a StartDeployment whose answer it lost
        # (not idempotent, on AWS too). The served value below is what must change.
        assert changed["deployment_number"]["value"] > outputs["deployment_number"]["value"]
        assert wait_for(lambda: client.get("payments/timeout_ms"), "750") == "750"

    result = terraform.run(workdir, "destroy", "-auto-approve", "-input=false", "-no-color")
    assert "Destroy complete" in result.stdout
    (workdir / "destroyed").touch()
    control = boto3.client("appconfig", endpoint_url=appconfig, region_name=REGION)
    assert name not in {a["Name"] for a in control.list_applications()["Items"]}
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=arn)
    print(f"aws-appconfig e2e (init excluded): {time.monotonic() - started:.1f} s")
