"""Contract of the Terraform modules, checked on their source with python-hcl2.

Registry layout, a ``veltrix_url`` output everywhere, described and typed variables,
bounded provider versions, no provider configuration inside modules, READMEs in
step with the code, and the secret-id encoding of the GCP module equal to the
adapter's (evaluated by ``terraform console``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO_ROOT, missing_server
from tests.terraform.conftest import EXAMPLES, MODULES, TERRAFORM_DIR

hcl2 = pytest.importorskip("hcl2")

REGISTRY_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md")
PROVIDER_OF_PREFIX = {"aws": "aws", "google": "google", "consul": "consul"}
CONFIGS = [TERRAFORM_DIR / "modules" / m for m in MODULES] + [
    TERRAFORM_DIR / "examples" / e for e in EXAMPLES
]


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse(config: Path) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for tf in sorted(config.glob("*.tf")):
        with tf.open(encoding="utf-8") as handle:
            for kind, items in hcl2.load(handle).items():
                merged.setdefault(kind, []).extend(items)
    return merged


def named(parsed: dict[str, list[Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {unquote(name): body for item in parsed.get(kind, []) for name, body in item.items()}


def config_id(config: Path) -> str:
    return f"{config.parent.name}/{config.name}"


@pytest.mark.parametrize("module", MODULES)
def test_registry_layout(module: str) -> None:
    directory = TERRAFORM_DIR / "modules" / module
    missing = [name for name in REGISTRY_FILES if not (directory / name).is_file()]
    assert not missing, f"{module} lacks {missing}"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_declares_veltrix_url(config: Path) -> None:
    outputs = named(parse(config), "output")
    assert "veltrix_url" in outputs
    if config.name == "redis-cache":
        assert "veltrix_cache_url" in outputs
        # it carries the AUTH token
        assert outputs["veltrix_cache_url"].get("sensitive") is True
        assert outputs["veltrix_url"].get("sensitive") is True


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_variables_have_description_and_type(config: Path) -> None:
    variables = named(parse(config), "variable")
    for name, body in variables.items():
        assert unquote(body.get("description", "")).strip(), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_outputs_have_descriptions(config: Path) -> None:
    for name, body in named(parse(config), "output").items():
        assert unquote(body.get("description", "")).strip(), f"output {name} has no description"


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_provider_versions_are_ranges(config: Path) -> None:
    parsed = parse(config)
    (terraform_block,) = parsed["terraform"]
    assert unquote(terraform_block.get("required_version", "")), "no required_version"
    providers: dict[str, Any] = {}
    for item in terraform_block["required_providers"]:
        providers.update({k: v for k, v in item.items() if k != "__is_block__"})
    used = {
        PROVIDER_OF_PREFIX[unquote(kind_name).split("_", 1)[0]]
        for kind in ("resource", "data")
        for item in parsed.get(kind, [])
        for kind_name in item
        if unquote(kind_name).split("_", 1)[0] in PROVIDER_OF_PREFIX
    }
    assert used <= set(providers), f"providers used but not required: {used - set(providers)}"
    for name, spec in providers.items():
        assert unquote(spec["source"]) == f"hashicorp/{name}"
        version = unquote(spec["version"])
        assert re.search(r">=\s*\d", version) and re.search(r"<\s*\d", version), (
            f"{name} version {version!r} is not a bounded range"
        )


@pytest.mark.parametrize("module", MODULES)
def test_modules_configure_no_provider(module: str) -> None:
    # Registry modules take their provider configuration from the caller.
    assert "provider" not in parse(TERRAFORM_DIR / "modules" / module)


@pytest.mark.parametrize("module", MODULES)
def test_readme_documents_every_input_and_output(module: str) -> None:
    directory = TERRAFORM_DIR / "modules" / module
    readme = (directory / "README.md").read_text(encoding="utf-8")
    parsed = parse(directory)
    for kind in ("variable", "output"):
        for name in named(parsed, kind):
            assert f"`{name}`" in readme, f"README of {module} does not mention {kind} {name}"


def test_readme_tables_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "terraform_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_use_their_module(example: str) -> None:
    modules = named(parse(TERRAFORM_DIR / "examples" / example), "module")
    sources = {unquote(body["source"]) for body in modules.values()}
    assert sources == {f"../../modules/{example}"}


def _console(expressions: list[str], tmp_path: Path) -> list[str]:
    """Evaluate HCL expressions with ``terraform console`` (no providers needed)."""
    binary = shutil.which("terraform")
    if binary is None:
        missing_server("terraform CLI not on PATH")
        raise AssertionError("unreachable")
    result = subprocess.run(
        [binary, "console"],
        input=f"jsonencode([{', '.join(expressions)}])\n",
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "CHECKPOINT_DISABLE": "1", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values: list[str] = json.loads(json.loads(result.stdout))
    return values


def test_gcp_secret_ids_and_labels_match_the_adapter(tmp_path: Path) -> None:
    from veltrix.adapters.gcp_codec import encode_key, top_label

    main = (TERRAFORM_DIR / "modules" / "gcp-secret-manager" / "main.tf").read_text()
    encode = re.search(r'key => (replace\(replace\(replace\(full, .*?"_d"\))', main)
    label = re.search(r'"veltrix-top" = (substr\(sha256\(.*?\), 0, 16\))', main)
    assert encode and label, "gcp-secret-manager no longer spells the encoding as expected"
    keys = ["app/db.host", "a_b/c_d", "x/_s/_d", "prod/payments/timeout_ms", "k"]
    expressions = [encode.group(1).replace("full", f'"{k}"') for k in keys]
    expressions += [label.group(1).replace("local.secret_keys[each.key]", f'"{k}"') for k in keys]
    got = _console(expressions, tmp_path)
    assert got[: len(keys)] == [encode_key(k) for k in keys]
    assert got[len(keys) :] == [top_label(k) for k in keys]


def test_zookeeper_node_script_renders(tmp_path: Path) -> None:
    template = TERRAFORM_DIR / "modules" / "zookeeper" / "templates" / "node.sh.tftpl"
    ips = ["10.0.0.11", "10.0.1.12", "10.0.2.13"]
    (script,) = _console(
        [
            f'templatefile("{template}", {{ my_id = 2, node_ips = {json.dumps(ips)}, client_port = 2181 }})'
        ],
        tmp_path,
    )
    assert "echo 2 > /var/lib/zookeeper/myid" in script
    assert "clientPort=2181" in script
    servers = [line for line in script.splitlines() if line.startswith("server.")]
    assert servers == [f"server.{n}={ip}:2888:3888" for n, ip in enumerate(ips, start=1)]
    syntax = subprocess.run(
        ["bash", "-n"], input=script, capture_output=True, text=True, timeout=30, check=False
    )
    assert syntax.returncode == 0, syntax.stderr


def test_gcp_parameter_ids_match_the_adapter(tmp_path: Path) -> None:
    from veltrix.adapters.gcp_parameter_manager import parameter_id_for

    main = (TERRAFORM_DIR / "modules" / "gcp-parameter-manager" / "main.tf").read_text()
    encode = re.search(r'name => (replace\(replace\(replace\(full, .*?"_d"\))', main)
    assert encode, "gcp-parameter-manager no longer spells the encoding as expected"
    keys = ["app/payments", "a_b/c.d", "x/_s/_d", "payments"]
    got = _console([encode.group(1).replace("full", f'"{k}"') for k in keys], tmp_path)
    assert got == [parameter_id_for(k) for k in keys]


def test_gcp_parameter_manager_grants_render_and_secret_access() -> None:
    parsed = parse(TERRAFORM_DIR / "modules" / "gcp-parameter-manager")
    resources = {
        (unquote(kind), unquote(name)): body
        for item in parsed["resource"]
        for kind, named_bodies in item.items()
        for name, body in named_bodies.items()
    }
    roles = {unquote(body["role"]) for (kind, _), body in resources.items() if "iam_member" in kind}
    assert {
        "roles/parametermanager.parameterViewer",
        "roles/parametermanager.parameterAccessor",
        "roles/secretmanager.secretAccessor",
    } <= roles
    grant = resources[("google_secret_manager_secret_iam_member", "parameter_reads_secret")]
    assert "policy_member[0].iam_policy_uid_principal" in str(grant["member"])
    version = resources[("google_parameter_manager_parameter_version", "initial")]
    assert unquote(version["parameter_version_id"]) == "v1", "Veltrix continues with v2"
