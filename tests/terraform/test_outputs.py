"""``veltrix.terraform`` (outputs -> client) and ``veltrix check``, without Terraform.

Stores are real: the embedded SQLite store, and the Redis test server for the shared
cache when it runs. ``veltrix check`` runs as the installed console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import veltrix
from tests.integration.redis_targets import KINDS, redis_url
from tests.support import server_env
from veltrix.errors import ConfigurationError
from veltrix.terraform import client_from_terraform, read_outputs

VELTRIX = str(Path(sys.executable).with_name("veltrix"))
TOKEN = "s3cret-auth-token-0123456789"


def wrapped(**values: Any) -> dict[str, Any]:
    """The shape of ``terraform output -json``."""
    return {
        name: {"sensitive": "cache" in name, "type": "string", "value": value}
        for name, value in values.items()
    }


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/tf.db"
    with veltrix.Client(url) as client:
        client.put("payments/timeout_ms", "500")
        client.put("payments/retries", "3")
        client.put("features/new_checkout", "true")
    return url


def test_reads_a_terraform_output_file(tmp_path: Path, store: str) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(wrapped(veltrix_url=store, other="x")))
    outputs = read_outputs(path)
    assert outputs.url == store and outputs.cache_url is None and outputs.module is None
    with veltrix.Client.from_terraform(path) as client:
        assert client.get("payments/timeout_ms", type=int) == 500
    with veltrix.Client.from_terraform(str(path)) as client:
        assert client.get("payments/retries") == "3"


@pytest.mark.parametrize("form", ["json text", "bytes", "mapping", "plain mapping", "string"])
def test_source_forms(store: str, form: str) -> None:
    source: Any = {
        "json text": json.dumps(wrapped(veltrix_url=store)),
        "bytes": json.dumps(wrapped(veltrix_url=store)).encode(),
        "mapping": wrapped(veltrix_url=store),
        "plain mapping": {"veltrix_url": store},
        "string": json.dumps(store),  # terraform output -json veltrix_url
    }[form]
    assert read_outputs(source).url == store
    with client_from_terraform(source) as client:
        assert client.get("features/new_checkout") == "true"


def test_module_object_outputs(store: str) -> None:
    one = wrapped(store={"veltrix_url": store, "region": "x"}, name="n")
    assert read_outputs(one).module == "store"
    two = {"a": {"veltrix_url": store}, "b": {"veltrix_url": "memory://"}}
    with pytest.raises(ConfigurationError, match=r"several outputs.*a, b.*module="):
        read_outputs(two)
    assert read_outputs(two, module="b").url == "memory://"
    with pytest.raises(ConfigurationError, match="no output 'c'"):
        read_outputs(two, module="c")
    with pytest.raises(ConfigurationError, match="not an object"):
        read_outputs({"a": "text"}, module="a")


def test_client_options_pass_through(store: str) -> None:
    policy = veltrix.CachePolicy(ttl=1.0, watch=False)
    with client_from_terraform({"veltrix_url": store}, cache=policy, busy_timeout=2.0) as client:
        assert client.policy is policy
    with pytest.raises(ConfigurationError, match="did you mean"):
        client_from_terraform({"veltrix_url": store}, busy_timout=2.0)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"x": {"value": 1, "type": "number", "sensitive": False}}, "no 'veltrix_url'.*outputs: x"),
        ({}, "no 'veltrix_url'.*outputs: none"),
        ({"veltrix_url": None}, "is null: has the module been applied"),
        ({"veltrix_url": 42}, "must be a non-empty string, not int"),
        ({"veltrix_url": "  "}, "must be a non-empty string"),
        ({"veltrix_url": "memory://", "veltrix_cache_url": ["x"]}, "veltrix_cache_url"),
        ("[1, 2]", "must be a JSON object, not list"),
        ('{"veltrix_url": ', "not valid JSON"),
        (12, "path, JSON text or a mapping, not int"),
    ],
)
def test_bad_outputs_raise_configuration_errors(source: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        read_outputs(source)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"does not exist.*terraform output -json"):
        read_outputs(tmp_path / "nope.json")
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_outputs(tmp_path)  # a directory
    broken = tmp_path / "broken.json"
    broken.write_text('{"veltrix_cache_url": {"value": "rediss://:' + TOKEN + "@h:1/0")
    with pytest.raises(ConfigurationError) as caught:
        read_outputs(broken)
    assert TOKEN not in str(caught.value)  # no excerpt of a file that may hold secrets


def test_sensitive_values_never_shown(store: str) -> None:
    cache = f"rediss://:{TOKEN}@cache.internal:6379/0"
    outputs = read_outputs(wrapped(veltrix_url=store, veltrix_cache_url=cache))
    assert outputs.cache_url == cache
    assert outputs.sensitive == {"veltrix_cache_url"}
    assert TOKEN not in repr(outputs)
    assert "rediss://:***@cache.internal:6379/0" in repr(outputs)


def test_cache_url_goes_to_the_client(store: str) -> None:
    cache_url = server_env("VELTRIX_TEST_REDIS_URL", "Redis test server")
    source = wrapped(veltrix_url=store, veltrix_cache_url=cache_url)
    with client_from_terraform(source, cache=veltrix.CachePolicy(ttl=5, watch=False)) as client:
        assert client.get("payments/timeout_ms") == "500"
        assert "bus_invalidations" in client.stats()  # the shared cache is in use
    with client_from_terraform(source, cache_url=None) as client:  # the caller decides
        assert "bus_invalidations" not in client.stats()


# -- veltrix check ----------------------------------------------------------------------------


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("VELTRIX_URL", None)
    return subprocess.run(
        [VELTRIX, "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        check=False,
    )


def test_check_reports_what_it_found(tmp_path: Path, store: str) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(wrapped(veltrix_url=store)))
    result = check("--terraform-output", str(path), "--json", "--sample", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    health = report.pop("health")  # the client's health after the check's reads
    assert health["healthy"] is True and health["state"] == "up", health
    assert health["last_refresh"] is not None and health["oldest_stale_age"] == 0.0
    assert report == {
        "url": store,
        "store": "sqlite",
        "reachable": True,
        "keys": 3,
        "sample": ["features/new_checkout", "payments/retries"],
        "error": None,
    }
    table = check("-t", str(path))
    assert table.returncode == 0
    assert "reachable" in table.stdout and "3" in table.stdout
    assert "payments/timeout_ms" in table.stdout
    assert check("--url", store, "--json").returncode == 0


def test_check_exit_codes(tmp_path: Path, store: str) -> None:
    assert check().returncode == 2  # neither --terraform-output nor --url
    missing = check("-t", str(tmp_path / "nope.json"))
    assert missing.returncode == 3 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"veltrix_url": "nosuch://x"}')
    unknown = check("-t", str(bad))
    assert unknown.returncode == 3 and "nosuch" in unknown.stderr

    # A store that does not answer: exit 7 (BackendUnavailableError).
    down = tmp_path / "down.json"
    down.write_text(
        json.dumps(
            wrapped(
                veltrix_url="appconfig://app/env/profile?region=us-east-1"
                "&endpoint_url=http%3A%2F%2F127.0.0.1%3A9&max_attempts=1&timeout=1"
            )
        )
    )
    fake_aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    unreachable = check("-t", str(down), "--json", env=fake_aws)
    assert unreachable.returncode == 7, unreachable.stderr
    report = json.loads(unreachable.stdout)
    assert report["reachable"] is False and "BackendUnavailableError" in report["error"]

    # The store answers, the shared cache does not: exit 15, token redacted.
    cache = f"rediss://:{TOKEN}@127.0.0.1:9/0"
    no_cache = tmp_path / "nocache.json"
    no_cache.write_text(json.dumps(wrapped(veltrix_url=store, veltrix_cache_url=cache)))
    result = check("-t", str(no_cache), "--json")
    assert result.returncode == 15
    report = json.loads(result.stdout)
    assert report["reachable"] is True and report["cache_reachable"] is False
    assert report["cache_url"] == "rediss://:***@127.0.0.1:9/0"
    assert TOKEN not in result.stdout + result.stderr
    assert TOKEN not in check("-t", str(no_cache)).stdout


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_check_with_a_reachable_cache(tmp_path: Path, store: str, kind: str) -> None:
    """Every documented cache URL form (plain, TLS, Sentinel, Cluster) is probed as the
    L2 cache connects to it, against the running test deployment of that kind."""
    cache_url = redis_url(kind)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(wrapped(veltrix_url=store, veltrix_cache_url=cache_url)))
    result = check("-t", str(path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["cache_reachable"] is True and "cache_error" not in report


def test_check_accepts_several_sentinels(tmp_path: Path, store: str) -> None:
    """``redis+sentinel://s1,s2/...``: a dead Sentinel listed first is skipped."""
    parts = urlsplit(redis_url("sentinel"))
    cache_url = urlunsplit(parts._replace(netloc=f"127.0.0.1:9,{parts.netloc}"))
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(wrapped(veltrix_url=store, veltrix_cache_url=cache_url)))
    result = check("-t", str(path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["cache_reachable"] is True


@pytest.mark.parametrize(
    ("cache_url", "why"),
    [
        ("redis+sentinel://127.0.0.1:9/veltrix/0", "MasterNotFoundError"),
        ("redis+cluster://127.0.0.1:9,127.0.0.1:10/0", "RedisClusterException"),
        ("redis+sentinel://127.0.0.1:26379", "needs a service name"),
        ("redis+cluster://127.0.0.1:7000/1", "only database 0"),
    ],
)
def test_check_reports_an_unusable_sentinel_or_cluster_cache(
    tmp_path: Path, store: str, cache_url: str, why: str
) -> None:
    """Sentinel and Cluster URLs are understood (not "unparseable"): nothing listening,
    or a URL the L2 cache itself would refuse, is exit 15 with the reason."""
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(wrapped(veltrix_url=store, veltrix_cache_url=cache_url)))
    result = check("-t", str(path), "--json")
    assert result.returncode == 15, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["reachable"] is True and report["cache_reachable"] is False
    assert why in report["cache_error"] and "unparseable" not in report["cache_error"]
