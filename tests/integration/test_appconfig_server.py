"""AppConfigData sessions, feature flags and deployments, over the wire.

boto3 against the AppConfig test server process (token chaining, empty bodies,
the BadRequestException details AWS uses), and the adapter's handling of them.
Tests needing a server with unusual limits (token lifetime, throttling, content
size) start their own server process on a free port.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support import (
    REPO_ROOT,
    fake_aws_credentials,
    port_open,
    server_env,
    unique_name,
    unused_port,
)
from veltrix import CachePolicy, Client
from veltrix.adapters.appconfig import AppConfigBackend
from veltrix.errors import (
    BackendUnavailableError,
    ConfigurationError,
    UnsupportedOperationError,
    ValueTooLargeError,
)

REGION = "us-east-1"
ZERO = {"DeploymentDurationInMinutes": 0, "GrowthFactor": 100.0, "FinalBakeTimeInMinutes": 0}


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


def clients(endpoint: str) -> tuple[Any, Any]:
    kw: dict[str, Any] = {"endpoint_url": endpoint, "region_name": REGION}
    return (
        boto3.client("appconfig", **kw),
        # below AWS's 15 s floor for fast tests: skip botocore's client-side range check
        boto3.client("appconfigdata", config=Config(parameter_validation=False), **kw),
    )


@pytest.fixture
def endpoint() -> str:
    return server_env("VELTRIX_TEST_APPCONFIG_ENDPOINT", "AppConfig test server")


class Profile:
    """A fresh application/environment/profile with helpers to publish documents."""

    def __init__(self, control: Any, kind: str = "AWS.Freeform") -> None:
        self.control = control
        self.app = control.create_application(Name=unique_name("app"))
        self.env = control.create_environment(ApplicationId=self.app["Id"], Name="prod")
        self.profile = control.create_configuration_profile(
            ApplicationId=self.app["Id"], Name="cfg", LocationUri="hosted", Type=kind
        )
        self.strategy = control.create_deployment_strategy(Name=unique_name("zero"), **ZERO)

    @property
    def names(self) -> tuple[str, str, str]:
        return self.app["Name"], self.env["Name"], self.profile["Name"]

    def publish(
        self, content: bytes, content_type: str = "application/json", strategy: str | None = None
    ) -> dict[str, Any]:
        version = self.control.create_hosted_configuration_version(
            ApplicationId=self.app["Id"],
            ConfigurationProfileId=self.profile["Id"],
            Content=content,
            ContentType=content_type,
        )
        deployment: dict[str, Any] = self.control.start_deployment(
            ApplicationId=self.app["Id"],
            EnvironmentId=self.env["Id"],
            DeploymentStrategyId=strategy or self.strategy["Id"],
            ConfigurationProfileId=self.profile["Id"],
            ConfigurationVersion=str(version["VersionNumber"]),
        )
        return deployment

    def url(self, endpoint: str, **options: str) -> str:
        app, env, profile = self.names
        query = "&".join(
            f"{k}={v}"
            for k, v in {
                "region": REGION,
                "poll_interval": "0",
                "endpoint_url": endpoint,
                **options,
            }.items()
        )
        return f"appconfig://{app}/{env}/{profile}?{query}"

    def cleanup(self) -> None:
        self.control.delete_application(ApplicationId=self.app["Id"])
        self.control.delete_deployment_strategy(DeploymentStrategyId=self.strategy["Id"])


@pytest.fixture
def control(endpoint: str) -> Iterator[Any]:
    control, data = clients(endpoint)
    yield control
    control.close()
    data.close()


@pytest.fixture
def data(endpoint: str) -> Iterator[Any]:
    _, data = clients(endpoint)
    yield data
    data.close()


@pytest.fixture
def freeform(control: Any) -> Iterator[Profile]:
    profile = Profile(control)
    yield profile
    profile.cleanup()


@pytest.fixture
def own_server() -> Iterator[Any]:
    """Start AppConfig test server processes with extra flags; yields a starter."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> str:
        port = unused_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.servers.appconfig",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *flags,
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            assert process.poll() is None, "test server exited"
            assert time.monotonic() < deadline, "test server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


# -- AppConfigData over the wire ---------------------------------------------------------------


def test_token_chaining_and_empty_body(freeform: Profile, data: Any) -> None:
    freeform.publish(b'{"a": 1}')
    app, env, profile = freeform.names
    token = data.start_configuration_session(
        ApplicationIdentifier=app,
        EnvironmentIdentifier=env,
        ConfigurationProfileIdentifier=profile,
        RequiredMinimumPollIntervalInSeconds=0,
    )["InitialConfigurationToken"]
    first = data.get_latest_configuration(ConfigurationToken=token)
    assert first["Configuration"].read() == b'{"a": 1}'
    assert first["ContentType"] == "application/json"
    assert first["NextPollIntervalInSeconds"] == 0
    second = data.get_latest_configuration(ConfigurationToken=first["NextPollConfigurationToken"])
    assert second["Configuration"].read() == b"", "unchanged configuration has an empty body"
    freeform.publish(b'{"a": 2}')
    third = data.get_latest_configuration(ConfigurationToken=second["NextPollConfigurationToken"])
    assert third["Configuration"].read() == b'{"a": 2}'
    # a token is good for one poll: the used one is now unknown
    with pytest.raises(data.exceptions.BadRequestException) as info:
        data.get_latest_configuration(ConfigurationToken=token)
    assert info.value.response["Reason"] == "InvalidParameters"
    assert info.value.response["Details"]["InvalidParameters"] == {
        "ConfigurationToken": {"Problem": "Corrupted"}
    }


def test_poll_interval_not_satisfied(freeform: Profile, endpoint: str) -> None:
    freeform.publish(b"{}")
    data = boto3.client("appconfigdata", endpoint_url=endpoint, region_name=REGION)
    app, env, profile = freeform.names
    token = data.start_configuration_session(
        ApplicationIdentifier=app,
        EnvironmentIdentifier=env,
        ConfigurationProfileIdentifier=profile,
        RequiredMinimumPollIntervalInSeconds=15,
    )["InitialConfigurationToken"]
    first = data.get_latest_configuration(ConfigurationToken=token)
    assert first["NextPollIntervalInSeconds"] == 15
    with pytest.raises(data.exceptions.BadRequestException) as info:
        data.get_latest_configuration(ConfigurationToken=first["NextPollConfigurationToken"])
    problem = info.value.response["Details"]["InvalidParameters"]["ConfigurationToken"]
    assert problem == {"Problem": "PollIntervalNotSatisfied"}
    assert info.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
        "BadRequestException"
    )


def test_missing_resources_are_resource_not_found(freeform: Profile, data: Any) -> None:
    app, env, _ = freeform.names
    with pytest.raises(data.exceptions.ResourceNotFoundException) as info:
        data.start_configuration_session(
            ApplicationIdentifier=app,
            EnvironmentIdentifier=env,
            ConfigurationProfileIdentifier="nope",
        )
    assert info.value.response["ResourceType"] == "ConfigurationProfile"
    assert info.value.response["ReferencedBy"] == {"ConfigurationProfileIdentifier": "nope"}


def test_expired_token_and_adapter_recovers(own_server: Any, control: Any) -> None:
    endpoint = own_server("--token-ttl", "1")
    ctl, data = clients(endpoint)
    profile = Profile(ctl)
    profile.publish(b'{"k": "v"}')
    app, env, name = profile.names
    token = data.start_configuration_session(
        ApplicationIdentifier=app,
        EnvironmentIdentifier=env,
        ConfigurationProfileIdentifier=name,
        RequiredMinimumPollIntervalInSeconds=0,
    )["InitialConfigurationToken"]
    backend = AppConfigBackend.from_url(profile.url(endpoint))
    try:
        entry = backend.get("k")
        assert entry is not None and entry.value == b"v"
        time.sleep(1.3)
        with pytest.raises(data.exceptions.BadRequestException) as info:
            data.get_latest_configuration(ConfigurationToken=token)
        assert info.value.response["Details"]["InvalidParameters"]["ConfigurationToken"] == {
            "Problem": "Expired"
        }
        sessions = backend.calls["sessions"]
        entry = backend.get("k")  # the adapter's token expired too: a new session
        assert entry is not None and entry.value == b"v"
        assert backend.calls["sessions"] == sessions + 1
    finally:
        backend.close()


def test_throttling_is_backend_unavailable(own_server: Any) -> None:
    endpoint = own_server("--max-data-rps", "2")
    ctl, _ = clients(endpoint)
    profile = Profile(ctl)
    profile.publish(b'{"k": "v"}')
    backend = AppConfigBackend.from_url(profile.url(endpoint, max_attempts="1"))
    try:
        with pytest.raises(BackendUnavailableError, match="ThrottlingException"):
            for _ in range(10):
                backend.get("k")
    finally:
        backend.close()


def test_server_size_limit_is_value_too_large(own_server: Any) -> None:
    endpoint = own_server("--max-content-bytes", "1000")
    ctl, _ = clients(endpoint)
    profile = Profile(ctl)
    backend = AppConfigBackend.from_url(profile.url(endpoint))
    try:
        backend.put("small", b"x" * 100)
        with pytest.raises(ValueTooLargeError):
            backend.put("big", b"x" * 2000)
        assert backend.get("big") is None
    finally:
        backend.close()


# -- deployments ---------------------------------------------------------------------------------


def test_gradual_deployment_and_rollback(freeform: Profile, control: Any, data: Any) -> None:
    freeform.publish(b'{"v": 1}')
    slow = control.create_deployment_strategy(
        Name=unique_name("slow"),
        DeploymentDurationInMinutes=10,
        GrowthFactor=50.0,
        FinalBakeTimeInMinutes=5,
        GrowthType="LINEAR",
    )
    try:
        deployment = freeform.publish(b'{"v": 2}', strategy=slow["Id"])
        assert deployment["State"] == "DEPLOYING"
        assert deployment["PercentageComplete"] == 50.0
        with pytest.raises(control.exceptions.ConflictException):
            freeform.publish(b'{"v": 3}')
        environment = control.get_environment(
            ApplicationId=freeform.app["Id"], EnvironmentId=freeform.env["Id"]
        )
        assert environment["State"] == "DEPLOYING"
        stopped = control.stop_deployment(
            ApplicationId=freeform.app["Id"],
            EnvironmentId=freeform.env["Id"],
            DeploymentNumber=deployment["DeploymentNumber"],
        )
        assert stopped["State"] == "ROLLED_BACK"
        listed = control.list_deployments(
            ApplicationId=freeform.app["Id"], EnvironmentId=freeform.env["Id"]
        )["Items"]
        assert [d["State"] for d in listed] == ["ROLLED_BACK", "COMPLETE"]
        app, env, profile = freeform.names
        token = data.start_configuration_session(
            ApplicationIdentifier=app,
            EnvironmentIdentifier=env,
            ConfigurationProfileIdentifier=profile,
        )["InitialConfigurationToken"]
        served = data.get_latest_configuration(ConfigurationToken=token)
        assert served["Configuration"].read() == b'{"v": 1}', "rolled back to the previous one"
    finally:
        control.delete_deployment_strategy(DeploymentStrategyId=slow["Id"])


def test_latest_version_number_precondition(freeform: Profile, control: Any) -> None:
    args = {
        "ApplicationId": freeform.app["Id"],
        "ConfigurationProfileId": freeform.profile["Id"],
        "ContentType": "application/json",
    }
    control.create_hosted_configuration_version(Content=b"{}", **args)
    control.create_hosted_configuration_version(Content=b"{}", LatestVersionNumber=1, **args)
    with pytest.raises(control.exceptions.ConflictException):
        control.create_hosted_configuration_version(Content=b"{}", LatestVersionNumber=1, **args)


# -- feature flags ---------------------------------------------------------------------------------

FLAGS = {
    "version": "1",
    "flags": {
        "ui_refresh": {
            "name": "UI refresh",
            "attributes": {"color": {"constraints": {"type": "string", "enum": ["blue", "green"]}}},
        },
        "dark_mode": {"name": "Dark mode"},
    },
    "values": {"ui_refresh": {"enabled": True, "color": "blue"}, "dark_mode": {"enabled": False}},
}


@pytest.fixture
def flags_profile(control: Any) -> Iterator[Profile]:
    profile = Profile(control, kind="AWS.AppConfig.FeatureFlags")
    yield profile
    profile.cleanup()


def test_feature_flag_documents_are_validated(flags_profile: Profile, control: Any) -> None:
    bad = json.loads(json.dumps(FLAGS))
    bad["values"]["ui_refresh"]["color"] = "red"
    bad["flags"]["Bad Name"] = {}
    with pytest.raises(control.exceptions.BadRequestException) as info:
        flags_profile.publish(json.dumps(bad).encode())
    response = info.value.response
    assert response["Reason"] == "InvalidConfiguration"
    locations = {d["Location"] for d in response["Details"]["InvalidConfiguration"]}
    assert {"$.flags.Bad Name", "$.values.ui_refresh.color"} <= locations


def test_feature_flags_through_the_adapter(
    flags_profile: Profile, endpoint: str, data: Any
) -> None:
    flags_profile.publish(json.dumps(FLAGS).encode())
    app, env, profile = flags_profile.names
    token = data.start_configuration_session(
        ApplicationIdentifier=app,
        EnvironmentIdentifier=env,
        ConfigurationProfileIdentifier=profile,
    )["InitialConfigurationToken"]
    served = json.loads(
        data.get_latest_configuration(ConfigurationToken=token)["Configuration"].read()
    )
    assert served == {
        "ui_refresh": {"enabled": True, "color": "blue"},
        "dark_mode": {"enabled": False},
    }
    backend = AppConfigBackend.from_url(flags_profile.url(endpoint))
    try:
        entry = backend.get("flags/ui_refresh/enabled")
        assert entry is not None and entry.value == b"true"
        color = backend.get("flags/ui_refresh/color")
        assert color is not None and color.value == b"blue"
        assert {e.key for e in backend.list("flags/dark_mode")} == {"flags/dark_mode/enabled"}
        with Client(backend, cache=CachePolicy(ttl=0, watch=False)) as client:
            assert client.flag("ui_refresh") is True
            assert client.flag("dark_mode", default=True) is False
            assert client.flag("missing") is False
            assert client.flag("missing", default=True) is True
        with pytest.raises(UnsupportedOperationError):
            backend.put("flags/dark_mode/enabled", b"true")
    finally:
        backend.close()


# -- the adapter's reading discipline ----------------------------------------------------------------


def test_adapter_chains_tokens_and_keeps_the_document(freeform: Profile, endpoint: str) -> None:
    freeform.publish(b'{"payments": {"timeout_ms": 500, "mode": "fast"}}')
    backend = AppConfigBackend.from_url(freeform.url(endpoint))
    try:
        for _ in range(3):
            entry = backend.get("payments/timeout_ms")
            assert entry is not None and entry.value == b"500"
        assert backend.calls["sessions"] == 1
        assert backend.calls["polls"] == 3
        assert backend.calls["empty_polls"] == 2, "unchanged polls return an empty body"
        assert [e.key for e in backend.list("payments")] == ["payments/mode", "payments/timeout_ms"]
    finally:
        backend.close()


def test_adapter_never_polls_early(freeform: Profile, endpoint: str) -> None:
    freeform.publish(b'{"a": "1"}')
    backend = AppConfigBackend.from_url(freeform.url(endpoint, poll_interval="30"))
    try:
        for _ in range(5):
            assert backend.get("a") is not None
        assert backend.calls["polls"] == 1, "reads between polls come from the kept document"
    finally:
        backend.close()


def test_yaml_profile_round_trip(freeform: Profile, endpoint: str) -> None:
    freeform.publish(b"db:\n  host: example\n  port: 5432\n", content_type="application/x-yaml")
    backend = AppConfigBackend.from_url(freeform.url(endpoint))
    try:
        port = backend.get("db/port")
        assert port is not None and port.value == b"5432"
        backend.put("db/user", b"app")
        latest = freeform.control.get_hosted_configuration_version(
            ApplicationId=freeform.app["Id"],
            ConfigurationProfileId=freeform.profile["Id"],
            VersionNumber=2,
        )
        assert latest["ContentType"] == "application/x-yaml"
        assert b"user: app" in latest["Content"].read()
        user = backend.get("db/user")
        assert user is not None and user.value == b"app"
    finally:
        backend.close()


def test_missing_profile_is_configuration_error(freeform: Profile, endpoint: str) -> None:
    app, env, _ = freeform.names
    backend = AppConfigBackend.from_url(
        f"appconfig://{app}/{env}/nope?region={REGION}&endpoint_url={endpoint}"
    )
    try:
        with pytest.raises(ConfigurationError, match="not found"):
            backend.get("a")
    finally:
        backend.close()


def test_unreachable_endpoint_is_backend_unavailable() -> None:
    port = unused_port()
    backend = AppConfigBackend.from_url(
        f"appconfig://a/b/c?region={REGION}&endpoint_url=http://127.0.0.1:{port}"
        "&max_attempts=1&timeout=1"
    )
    try:
        with pytest.raises(BackendUnavailableError):
            backend.get("a")
    finally:
        backend.close()


def test_tags_round_trip(freeform: Profile, control: Any) -> None:
    arn = f"arn:aws:appconfig:{REGION}:123456789012:application/{freeform.app['Id']}"
    control.tag_resource(ResourceArn=arn, Tags={"team": "payments", "env": "prod"})
    control.untag_resource(ResourceArn=arn, TagKeys=["env"])
    assert control.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "payments"}
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.list_tags_for_resource(
            ResourceArn=f"arn:aws:appconfig:{REGION}:123456789012:application/zzzzzzz"
        )


def test_delete_strategy_uses_the_real_uri(control: Any) -> None:
    strategy = control.create_deployment_strategy(Name=unique_name("s"), **ZERO)
    control.delete_deployment_strategy(DeploymentStrategyId=strategy["Id"])
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_deployment_strategy(DeploymentStrategyId=strategy["Id"])
    predefined = control.get_deployment_strategy(DeploymentStrategyId="AppConfig.AllAtOnce")
    assert predefined["FinalBakeTimeInMinutes"] == 10
