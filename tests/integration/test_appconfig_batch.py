"""AppConfig ``put_many`` (one hosted version + one deployment per batch) and
``check_batch`` (the document-size pre-flight), against the AppConfig test server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from tests.support import fake_aws_credentials, server_env, unique_name
from veltrix.adapters.appconfig import AppConfigBackend
from veltrix.adapters.documents import version_of
from veltrix.backend import Absent
from veltrix.errors import InvalidKeyError, ValueTooLargeError, VersionConflictError
from veltrix.migration import UnrepresentableError, migrate
from veltrix.registry import open_backend

REGION = "us-east-1"

Open = Callable[..., AppConfigBackend]


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


@pytest.fixture
def endpoint() -> str:
    return server_env("VELTRIX_TEST_APPCONFIG_ENDPOINT", "AppConfig test server")


class Profile:
    def __init__(self, control: Any) -> None:
        self.control = control
        self.app = control.create_application(Name=unique_name("batch"))
        self.env = control.create_environment(ApplicationId=self.app["Id"], Name="test")
        self.profile = control.create_configuration_profile(
            ApplicationId=self.app["Id"],
            Name="config",
            LocationUri="hosted",
            Type="AWS.Freeform",
        )

    def versions(self) -> int:
        items = self.control.list_hosted_configuration_versions(
            ApplicationId=self.app["Id"], ConfigurationProfileId=self.profile["Id"]
        )["Items"]
        return len(items)

    def deployments(self) -> int:
        return len(
            self.control.list_deployments(
                ApplicationId=self.app["Id"], EnvironmentId=self.env["Id"]
            )["Items"]
        )


@pytest.fixture
def profile(endpoint: str) -> Iterator[Profile]:
    control = boto3.client("appconfig", endpoint_url=endpoint, region_name=REGION)
    made = Profile(control)
    yield made
    control.delete_application(ApplicationId=made.app["Id"])
    control.close()


@pytest.fixture
def open_store(endpoint: str, profile: Profile) -> Iterator[Open]:
    opened: list[AppConfigBackend] = []

    def factory(**options: Any) -> AppConfigBackend:
        backend = open_backend(
            f"appconfig://{profile.app['Name']}/test/config?region={REGION}&poll_interval=0.05",
            endpoint_url=endpoint,
            **options,
        )
        assert isinstance(backend, AppConfigBackend)
        opened.append(backend)
        return backend

    yield factory
    for backend in opened:
        backend.close()


def contents(store: AppConfigBackend) -> dict[str, bytes]:
    return {e.key: e.value for e in store.list("")}


def test_put_many_is_one_version_and_one_deployment(open_store: Open, profile: Profile) -> None:
    store = open_store()
    store.put("old", b"0")
    versions, deployments = profile.versions(), profile.deployments()
    written = store.put_many(
        [("a", b"1"), ("b/c", b"text"), ("b/d", b"\xff\x00"), ("old", None), ("never", None)]
    )
    assert written == {
        "a": version_of(b"1"),
        "b/c": version_of(b"text"),
        "b/d": version_of(b"\xff\x00"),
        "old": None,
        "never": None,
    }
    assert (profile.versions(), profile.deployments()) == (versions + 1, deployments + 1)
    assert contents(store) == {"a": b"1", "b/c": b"text", "b/d": b"\xff\x00"}
    other = open_store()  # another process reads the deployed document
    assert contents(other) == contents(store)
    entry = other.get("b/c")
    assert entry is not None and entry.version == written["b/c"]
    store.put_many({"a": b"2"}, atomic=False)  # one version whatever atomic says
    assert profile.versions() == versions + 2
    store.put_many({"missing": None})  # nothing to change: no version
    assert profile.versions() == versions + 2


def test_one_conflict_writes_nothing(open_store: Open, profile: Profile) -> None:
    store = open_store()
    store.put_many({"k": b"1", "gone": b"x"})
    stale = version_of(b"1")
    store.put("k", b"2")
    before = contents(store)
    versions, deployments = profile.versions(), profile.deployments()
    with pytest.raises(VersionConflictError, match="'k' is at version"):
        store.put_many({"new": b"n", "gone": None, "k": b"3"}, if_versions={"k": stale})
    with pytest.raises(VersionConflictError, match="already exists"):
        store.put_many([("new", b"n"), ("k", b"3")], if_versions={"k": Absent})
    with pytest.raises(VersionConflictError, match="does not exist"):
        store.put_many([("new", b"n"), ("missing", None)], if_versions={"missing": "abc"})
    assert (profile.versions(), profile.deployments()) == (versions, deployments)
    assert contents(store) == before, "nothing written"
    store.put_many(
        [("new", b"n"), ("k", b"3"), ("gone", None)],
        if_versions={"new": Absent, "k": version_of(b"2"), "gone": version_of(b"x")},
    )
    assert contents(store) == {"k": b"3", "new": b"n"}
    assert profile.versions() == versions + 1


def test_document_size_is_checked_before_any_version(open_store: Open, profile: Profile) -> None:
    store = open_store(max_document_bytes=200)
    store.put_many({"keep/a": b"x" * 60, "other/b": b"y" * 60})
    versions = profile.versions()
    grow = {"keep/c": b"z" * 60}
    with pytest.raises(ValueTooLargeError, match="the document would be") as checked:
        store.check_batch(grow)  # counts keys under every prefix, not only the batch's
    with pytest.raises(ValueTooLargeError) as written:
        store.put_many(grow)
    assert str(checked.value) == str(written.value), "one rule for the pre-flight and the write"
    assert profile.versions() == versions, "no version created"
    shrink_and_grow = {"other/b": None, "keep/c": b"z" * 60}
    store.check_batch(shrink_and_grow)
    store.put_many(shrink_and_grow)
    assert contents(store) == {"keep/a": b"x" * 60, "keep/c": b"z" * 60}


def test_batch_is_validated_before_any_io(open_store: Open, profile: Profile) -> None:
    store = open_store()
    limit = store.max_value_bytes
    assert limit is not None
    for items, if_versions, error in (
        ([("a", b"1"), ("a", b"2")], None, InvalidKeyError),
        ([("ok", b"1"), ("bad//key", b"2")], None, InvalidKeyError),
        ([("ok", b"1")], {"other": Absent}, InvalidKeyError),
        ([("ok", b"1"), ("huge", b"x" * (limit + 1))], None, ValueTooLargeError),
    ):
        with pytest.raises(error):
            store.put_many(items, if_versions=if_versions)
        if if_versions is None:
            with pytest.raises(error):
                store.check_batch(items)
    assert profile.versions() == 0
    assert store.put_many([]) == {}


def test_migration_preflight_uses_check_batch(open_store: Open, profile: Profile) -> None:
    from veltrix.adapters.memory import MemoryBackend

    source = MemoryBackend()
    for key, size in (("a", 40), ("b", 50), ("c", 120), ("d", 10)):
        source.put(f"app/{key}", b"v" * size)
    store = open_store(max_document_bytes=200)
    store.put("elsewhere/x", b"w" * 30)  # outside the prefix, still in the document
    with pytest.raises(UnrepresentableError, match=r"<document>: .*the document would be"):
        migrate(source, store, prefix="app")
    assert profile.versions() == 1, "nothing written"
    report = migrate(source, store, prefix="app", skip_unrepresentable=True)
    assert report.ok, report.verify_failures
    assert {p.key for p in report.skipped} == {"<document>", "app/c"}
    assert report.write_calls == 1 and profile.versions() == 2, "one version for the batch"
    assert contents(store) == {
        "app/a": b"v" * 40,
        "app/b": b"v" * 50,
        "app/d": b"v" * 10,
        "elsewhere/x": b"w" * 30,
    }
