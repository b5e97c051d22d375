"""End to end: ``terraform apply`` the aws-ssm example against moto (SSM, KMS, IAM, STS),
read the seeded SecureStrings through ``veltrix.Client.from_terraform``, write one
through Veltrix (a SecureString under the module's KMS key, as the URL says), then
``terraform destroy``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

import veltrix
from tests.support import server_env, unique_name
from tests.terraform.conftest import AWS_REGION, Terraform, aws_override

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def example(
    terraform: Terraform, terraform_tree: Path, aws_env: dict[str, str]
) -> Iterator[tuple[Path, str]]:
    moto = server_env("VELTRIX_TEST_MOTO_ENDPOINT", "moto server (SSM, KMS, IAM, STS)")
    workdir = terraform_tree / "examples" / "aws-ssm"
    (workdir / "override.tf").write_text(aws_override(iam=moto, kms=moto, ssm=moto, sts=moto))
    terraform.init(workdir)
    yield workdir, moto
    if (workdir / "terraform.tfstate").exists() and not (workdir / "destroyed").exists():
        terraform.run(
            workdir,
            "destroy",
            "-auto-approve",
            "-input=false",
            "-no-color",
            f"-var-file={workdir / 'e2e.tfvars.json'}",
            check=False,
        )


def test_apply_read_write_destroy(terraform: Terraform, example: tuple[Path, str]) -> None:
    started = time.monotonic()
    workdir, moto = example
    path = "/" + unique_name("tf-e2e")
    var_file = workdir / "e2e.tfvars.json"
    var_file.write_text(
        json.dumps(
            {
                "path": path,
                "db_password": "correct horse battery staple",
                "veltrix_url_options": {"endpoint_url": moto},
            }
        )
    )
    args = ["-auto-approve", "-input=false", "-no-color", f"-var-file={var_file}"]
    terraform.run(workdir, "apply", *args)
    outputs_file = workdir / "outputs.json"
    outputs_file.write_text(terraform.run(workdir, "output", "-json").stdout)
    outputs = json.loads(outputs_file.read_text())
    assert outputs["veltrix_url"]["value"].startswith(f"ssm://{path}?")

    with veltrix.Client.from_terraform(
        outputs_file, cache=veltrix.CachePolicy(ttl=0, watch=False)
    ) as client:
        assert client.get("payments/timeout_ms", type=int) == 500
        assert client.get("db/password") == "correct horse battery staple"
        assert sorted(e.key for e in client.list("")) == [
            "db/password",
            "payments/retries",
            "payments/timeout_ms",
        ]
        client.put("payments/currency", "EUR")

    ssm = boto3.client("ssm", endpoint_url=moto, region_name=AWS_REGION)
    written = ssm.get_parameter(Name=f"{path}/payments/currency", WithDecryption=False)
    assert written["Parameter"]["Type"] == "SecureString"
    described = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": [f"{path}/payments/currency"]}]
    )["Parameters"][0]
    key_id = parse_qs(urlsplit(outputs["veltrix_url"]["value"]).query)["key_id"][0]
    assert key_id.startswith("arn:aws:kms:")
    assert described["KeyId"] in (key_id, key_id.split("/")[-1])

    # Veltrix's own parameter is not Terraform's: delete it, then destroy the rest.
    ssm.delete_parameter(Name=f"{path}/payments/currency")
    result = terraform.run(workdir, "destroy", *args)
    assert "Destroy complete" in result.stdout
    (workdir / "destroyed").touch()
    left = ssm.get_parameters_by_path(Path=path, Recursive=True)["Parameters"]
    assert left == []
    print(f"aws-ssm e2e (init excluded): {time.monotonic() - started:.1f} s")
