"""Migration between real stores: every store at least once as source and as destination,
SQLite to and from each, over the fixture dataset (nested keys, a key that is also a
parent, binary/empty/JSON/unicode values, secrets) plus a value exactly at the smaller of
the two stores' limits. Each pair: migrate, compare contents byte for byte, a second run
writes nothing, and diff says everything is unchanged."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.test_migrate import contents, dataset, seed
from tests.support import fake_aws_credentials, missing_server, port_open, server_env, unique_name
from veltrix.backend import Backend
from veltrix.migration import diff, migrate
from veltrix.registry import open_backend

REGION = "us-east-1"

#: The largest text value each store holds (after its own encoding, for a plain ASCII value).
LIMITS = {
    "memory": 8 * 1024 * 1024,
    "sqlite": 8 * 1024 * 1024,
    "redis": 4 * 1024 * 1024,
    "zookeeper": 1024 * 1024 - 4096,
    "consul": 512 * 1024,
    "appconfig": 1024 * 1024,
    "ssm": 4096,
    "gcpsm": 64 * 1024,
    "gcppm": 1024 * 1024 - 4096,
    "k8s": 1024 * 1024 - 253,
}

PAIRS = [
    ("sqlite", "memory"),
    ("memory", "sqlite"),
    ("sqlite", "zookeeper"),
    ("zookeeper", "sqlite"),
    ("sqlite", "consul"),
    ("consul", "sqlite"),
    ("sqlite", "appconfig"),
    ("appconfig", "sqlite"),
    ("sqlite", "ssm"),
    ("ssm", "sqlite"),
    ("sqlite", "gcpsm"),
    ("gcpsm", "sqlite"),
    ("sqlite", "redis"),
    ("redis", "sqlite"),
    ("zookeeper", "consul"),
    ("consul", "appconfig"),
    ("appconfig", "ssm"),
    ("ssm", "gcpsm"),
    ("gcpsm", "redis"),
    ("redis", "zookeeper"),
    ("sqlite", "gcppm"),
    ("gcppm", "sqlite"),
    ("gcpsm", "gcppm"),
    ("sqlite", "k8s"),
    ("k8s", "sqlite"),
    ("zookeeper", "k8s"),
]

Opener = Callable[[str], Backend]


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)
    monkeypatch.delenv("VELTRIX_ZK_AUTH", raising=False)
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)


def _appconfig(cleanups: list[Callable[[], None]]) -> str:
    import boto3

    endpoint = server_env("VELTRIX_TEST_APPCONFIG_ENDPOINT", "AppConfig test server")
    control = boto3.client("appconfig", endpoint_url=endpoint, region_name=REGION)
    app = control.create_application(Name=unique_name("mig"))
    control.create_environment(ApplicationId=app["Id"], Name="test")
    control.create_configuration_profile(
        ApplicationId=app["Id"], Name="config", LocationUri="hosted", Type="AWS.Freeform"
    )

    def drop() -> None:
        control.delete_application(ApplicationId=app["Id"])
        control.close()

    cleanups.append(drop)
    return (
        f"appconfig://{app['Name']}/test/config?region={REGION}&poll_interval=0.1"
        f"&endpoint_url={endpoint}"
    )


def store_url(kind: str, tmp_path: Path, cleanups: list[Callable[[], None]]) -> str:
    """The URL of a fresh, empty store of ``kind`` (everything in the URL, as the CLI takes it)."""
    name = unique_name("mig")
    if kind == "memory":
        return f"memory://{name}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/{name}.db"
    if kind == "zookeeper":
        hosts = server_env("VELTRIX_TEST_ZOOKEEPER", "ZooKeeper server")
        return f"zookeeper://{hosts}/veltrix-tests/{name}"
    if kind == "consul":
        address = server_env("VELTRIX_TEST_CONSUL_ADDR", "Consul test server")
        host, _, port = address.rpartition(":")
        if not port_open(host, int(port)):
            missing_server(f"no Consul test server on {address}")
        return f"consul://{address}/veltrix-migrate/{name}"
    if kind == "appconfig":
        return _appconfig(cleanups)
    if kind == "ssm":
        endpoint = server_env("VELTRIX_TEST_MOTO_ENDPOINT", "moto server")
        return f"ssm:///veltrix/{name}?region={REGION}&endpoint_url={endpoint}"
    if kind == "gcpsm":
        endpoint = server_env("VELTRIX_TEST_GCPSM_GRPC", "Secret Manager test server (grpc)")
        return (
            f"gcpsm://{name}/app?endpoint={endpoint}&transport=grpc&insecure=true"
            "&timeout=5&deadline=5"
        )
    if kind == "gcppm":
        endpoint = server_env("VELTRIX_TEST_GCPPM_GRPC", "Parameter Manager test server (grpc)")
        return (
            f"gcppm://{name}/app?endpoint={endpoint}&transport=grpc&insecure=true"
            "&timeout=5&deadline=5"
        )
    if kind == "redis":
        if importlib.util.find_spec("veltrix.adapters.redis") is None:
            pytest.skip("the redis adapter is not in this build")
        url = server_env("VELTRIX_TEST_REDIS_URL", "Redis").rstrip("/")
        return f"{url}/{name}?timeout=5"
    if kind == "k8s":
        kubeconfig = server_env("VELTRIX_TEST_K8S_KUBECONFIG", "Kubernetes test server")
        return f"k8s://default/veltrix-migrate/{name}?kubeconfig={kubeconfig}"
    raise AssertionError(kind)


@pytest.fixture
def opener(tmp_path: Path) -> Iterator[Opener]:
    cleanups: list[Callable[[], None]] = []
    opened: list[Backend] = []

    def open_store(kind: str) -> Backend:
        backend = open_backend(store_url(kind, tmp_path, cleanups))
        opened.append(backend)
        return backend

    yield open_store
    for backend in opened:
        try:  # leave the shared servers clean
            for entry in list(backend.list("")):  # type: ignore[attr-defined]
                backend.delete(entry.key)  # type: ignore[attr-defined]
        except Exception:
            pass
        backend.close()
    for cleanup in cleanups:
        cleanup()


def _limit(kind: str) -> int:
    return LIMITS[kind]


@pytest.mark.parametrize(("source_kind", "dest_kind"), PAIRS, ids=[f"{s}-{d}" for s, d in PAIRS])
def test_pair(opener: Opener, source_kind: str, dest_kind: str) -> None:
    source = opener(source_kind)
    destination = opener(dest_kind)
    data = dataset(limit=min(_limit(source_kind), _limit(dest_kind)))
    seed(source, data)
    assert contents(source) == data, "the source holds the dataset"

    report = migrate(source, destination, secret_prefixes=["secrets"])
    assert report.ok, (report.conflicts, report.failed, report.verify_failures)
    assert sorted(report.created) == sorted(data)
    assert report.verified == len(data)
    assert contents(destination) == data
    if dest_kind in ("consul", "appconfig", "zookeeper", "redis"):  # batched through put_many
        assert report.write_calls < len(data)
    if dest_kind != "gcpsm":
        assert any("secret" in warning for warning in report.warnings)

    again = migrate(source, destination)
    assert again.written == 0 and again.unchanged == len(data) and again.ok
    plan = diff(source, destination)
    assert (plan.created, plan.updated, plan.extraneous) == ([], [], [])


@pytest.mark.parametrize("secure", [False, True])
def test_secret_warning_follows_whether_ssm_writes_securestring(
    opener: Opener, tmp_path: Path, secure: bool
) -> None:
    """``holds_secrets``: an SSM destination opened with ``secure=true`` writes
    SecureString, which reads back flagged secret, so only the plain one warns."""
    source = opener("sqlite")
    seed(source, {"secrets/db_password": b"hunter2", "plain/name": b"payments"})
    url = store_url("ssm", tmp_path, []) + f"&secure={str(secure).lower()}"
    destination = open_backend(url)
    try:
        report = migrate(source, destination, secret_prefixes=["secrets"])
        assert report.ok and sorted(report.created) == ["plain/name", "secrets/db_password"]
        warned = any("secret" in warning for warning in report.warnings)
        assert warned is not secure
        entry = destination.get("secrets/db_password")
        assert entry is not None and entry.secret is secure
    finally:
        for entry in list(destination.list("")):  # type: ignore[attr-defined]
            destination.delete(entry.key)  # type: ignore[attr-defined]
        destination.close()


def test_update_delete_and_conflict_against_a_batching_store(opener: Opener) -> None:
    """CAS through Consul's transactions: a key changed after planning is a conflict."""
    source, destination = opener("sqlite"), opener("consul")
    seed(source, {"a": b"1", "b": b"2", "c": b"3"})
    seed(destination, {"a": b"old", "b": b"old", "z": b"extra"})
    from veltrix.migration import make_plan

    plan = make_plan(source, destination, delete_extraneous=True)
    assert (plan.created, plan.updated, plan.deleted) == (["c"], ["a", "b"], ["z"])
    destination.put("b", b"changed-meanwhile")  # type: ignore[attr-defined]
    # a fresh migrate re-plans, so make the conflict with a stale plan applied directly
    from veltrix.migration import MigrationReport, _apply

    report = MigrationReport(plan.source, plan.destination, plan.prefix, dry_run=False)
    _apply(
        destination,
        plan,
        report,
        None,
        force=False,
        concurrency=4,  # type: ignore[arg-type]
        notify=lambda _event: None,
    )
    assert [p.key for p in report.conflicts] == ["b"]
    assert sorted(report.created + report.updated + report.deleted) == ["a", "c", "z"]
    assert contents(destination) == {"a": b"1", "b": b"changed-meanwhile", "c": b"3"}
    assert migrate(source, destination, force=True).updated == ["b"]
    assert contents(destination) == {"a": b"1", "b": b"2", "c": b"3"}


def test_preflight_refuses_what_secret_manager_and_ssm_cannot_hold(opener: Opener) -> None:
    source = opener("sqlite")
    long_key = "_".join(["seg"] * 60)  # 239 characters; '_' doubles in a secret id
    seed(source, {"fine": b"1", long_key: b"2", "big": b"x" * (64 * 1024 + 1)})
    for kind, expected in (("gcpsm", {long_key, "big"}), ("ssm", {"big"})):
        destination = opener(kind)
        with pytest.raises(Exception, match="cannot be stored") as info:
            migrate(source, destination)
        assert {p.key for p in info.value.problems} == expected  # type: ignore[attr-defined]
        assert contents(destination) == {}, "nothing written"
        report = migrate(source, destination, skip_unrepresentable=True)
        assert report.ok and {p.key for p in report.skipped} == expected
        assert set(contents(destination)) == {"fine", long_key, "big"} - expected


def test_cli_migrates_between_server_stores(opener: Opener, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    cleanups: list[Callable[[], None]] = []
    src_url = store_url("zookeeper", tmp_path, cleanups)
    dst_url = store_url("consul", tmp_path, cleanups)
    source = open_backend(src_url)
    seed(source, dataset())
    env = {**os.environ}
    result = subprocess.run(
        [sys.executable, "-m", "veltrix.cli", "migrate", src_url, dst_url, "--json"],
        capture_output=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == len(dataset())
    destination = open_backend(dst_url)
    try:
        assert contents(destination) == dataset()
    finally:
        for store in (source, destination):
            for entry in list(store.list("")):  # type: ignore[attr-defined]
                store.delete(entry.key)  # type: ignore[attr-defined]
            store.close()


def test_live_mirror_between_server_stores(opener: Opener) -> None:
    """Dual-write -> backfill -> shadow-read -> switch, ZooKeeper to Consul, via a Client."""
    import veltrix
    from veltrix.mirror import MirrorBackend

    old, new = opener("zookeeper"), opener("consul")
    seed(old, {"app/a": b"1", "app/b": b"2"})
    mirror = MirrorBackend(old, new)
    policy = veltrix.CachePolicy(ttl=0, watch=False)
    with veltrix.Client(mirror, cache=policy) as client:
        client.put("app/c", "3")  # dual write
        assert contents(new) == {"app/c": b"3"}
        assert migrate(old, new).created == ["app/a", "app/b"]  # backfill
        mirror.shadow = True
        assert client.get("app/a") == "1"
        assert [e.key for e in client.list("app")] == ["app/a", "app/b", "app/c"]
        assert mirror.stats()["mismatches"] == 0 and mirror.stats()["shadow_reads"] == 2
        new.put("app/b", b"drifted")  # type: ignore[attr-defined]
        assert client.get("app/b") == "2"  # the primary's answer is served
        assert mirror.stats()["mismatched_keys"] == ["app/b"]
    switched = MirrorBackend(new, old, shadow=True)  # switch: Consul is primary now
    switched.put("app/b", b"2")
    entry = switched.get("app/b")
    assert entry is not None and entry.value == b"2"
    assert switched.stats()["mismatches"] == 0
    assert contents(old) == contents(new)
