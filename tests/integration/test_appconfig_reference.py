"""The AppConfig test server against the current API reference, where clients disagree.

Each test drives the server with boto3 (current botocore, which no longer checks the
old ``[a-z0-9]{4,7}`` id pattern client-side) and pins what the reference says:

* control-plane operations take ids ("The ID of the application you want to get"),
  only AppConfigData sessions and the legacy GetConfiguration take names too;
* the feature-flag data-plane view carries a flag's attributes only when it is enabled;
* a flag value may leave ``enabled`` out (the current schema does not require it);
* CreateHostedConfigurationVersion has no idempotency token: an SDK retry after a lost
  reply meets the ``LatestVersionNumber`` precondition (409) when the caller set one,
  and creates a second version when it did not, as on AWS; every 5xx is logged.

The server runs as a process of this checkout (not the shared one), on a free port.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support import REPO_ROOT, fake_aws_credentials, port_open, unique_name
from veltrix.adapters.appconfig import AppConfigBackend

REGION = "us-east-1"
ZERO = {"DeploymentDurationInMinutes": 0, "GrowthFactor": 100.0, "FinalBakeTimeInMinutes": 0}


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


class Server:
    """One test server process; its log (stderr) goes to a file the test can read."""

    def __init__(self, log_path: Path, *flags: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.servers.appconfig", "--port", str(self.port), *flags],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", self.port):
            assert self.process.poll() is None, "test server exited"
            assert time.monotonic() < deadline, "test server did not start"
            time.sleep(0.05)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(*flags: str) -> Server:
        server = Server(tmp_path / f"server-{len(servers)}.log", *flags)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


def control_client(endpoint: str, **config: Any) -> Any:
    return boto3.client(
        "appconfig", endpoint_url=endpoint, region_name=REGION, config=Config(**config)
    )


def data_client(endpoint: str) -> Any:
    return boto3.client(
        "appconfigdata",
        endpoint_url=endpoint,
        region_name=REGION,
        config=Config(parameter_validation=False),  # poll intervals below AWS's 15 s floor
    )


class Setup:
    """application 'app-…' / environment 'prod' / profile 'cfg' (or flags) on one server."""

    def __init__(self, control: Any, kind: str = "AWS.Freeform") -> None:
        self.control = control
        self.app = control.create_application(Name=unique_name("app"))
        self.app_id = self.app["Id"]
        self.env = control.create_environment(ApplicationId=self.app_id, Name="prod")
        self.profile = control.create_configuration_profile(
            ApplicationId=self.app_id, Name="cfg", LocationUri="hosted", Type=kind
        )
        self.profile_id = self.profile["Id"]
        self.strategy = control.create_deployment_strategy(Name=unique_name("zero"), **ZERO)

    def create(self, content: bytes, **extra: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.control.create_hosted_configuration_version(
            ApplicationId=self.app_id,
            ConfigurationProfileId=self.profile_id,
            Content=content,
            ContentType="application/json",
            **extra,
        )
        return created

    def deploy(self, version: int) -> None:
        self.control.start_deployment(
            ApplicationId=self.app_id,
            EnvironmentId=self.env["Id"],
            DeploymentStrategyId=self.strategy["Id"],
            ConfigurationProfileId=self.profile_id,
            ConfigurationVersion=str(version),
        )

    def versions(self) -> list[int]:
        items = self.control.list_hosted_configuration_versions(
            ApplicationId=self.app_id, ConfigurationProfileId=self.profile_id
        )["Items"]
        return sorted(int(item["VersionNumber"]) for item in items)

    def served(self, data: Any) -> Any:
        token = data.start_configuration_session(
            ApplicationIdentifier=self.app["Name"],
            EnvironmentIdentifier="prod",
            ConfigurationProfileIdentifier=self.profile["Name"],
            RequiredMinimumPollIntervalInSeconds=0,
        )["InitialConfigurationToken"]
        return json.loads(
            data.get_latest_configuration(ConfigurationToken=token)["Configuration"].read()
        )


# -- 1. which identifiers take names ------------------------------------------------------------


def test_control_plane_takes_ids_and_the_data_plane_takes_names(server: Server) -> None:
    control, data = control_client(server.endpoint), data_client(server.endpoint)
    setup = Setup(control)
    setup.deploy(setup.create(b'{"a": 1}')["VersionNumber"])
    app_name, profile_name = setup.app["Name"], setup.profile["Name"]

    # by id: found
    assert control.get_application(ApplicationId=setup.app_id)["Name"] == app_name
    assert (
        control.get_configuration_profile(
            ApplicationId=setup.app_id, ConfigurationProfileId=setup.profile_id
        )["Name"]
        == profile_name
    )
    # by name: "The ID of the application ..." -- a name is no id, whatever botocore lets through
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_application(ApplicationId=app_name)
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_configuration_profile(
            ApplicationId=app_name, ConfigurationProfileId=setup.profile_id
        )
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_configuration_profile(
            ApplicationId=setup.app_id, ConfigurationProfileId=profile_name
        )
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.get_environment(ApplicationId=setup.app_id, EnvironmentId="prod")
    with pytest.raises(control.exceptions.ResourceNotFoundException):
        control.list_hosted_configuration_versions(
            ApplicationId=setup.app_id, ConfigurationProfileId=profile_name
        )

    # "The application ID or the application name": sessions take either
    assert setup.served(data) == {"a": 1}
    # the legacy GetConfiguration: "Specify either the application name or the application ID"
    legacy = control.get_configuration(
        Application=app_name, Environment="prod", Configuration=setup.profile_id, ClientId="c1"
    )
    assert json.loads(legacy["Content"].read()) == {"a": 1}


def test_adapter_finds_ids_for_the_control_plane_and_passes_names_to_sessions(
    server: Server,
) -> None:
    control = control_client(server.endpoint)
    setup = Setup(control)
    setup.deploy(setup.create(b'{"a": 1}')["VersionNumber"])
    query = f"region={REGION}&poll_interval=0&endpoint_url={server.endpoint}"
    for app, profile in ((setup.app["Name"], "cfg"), (setup.app_id, setup.profile_id)):
        backend = AppConfigBackend.from_url(f"appconfig://{app}/prod/{profile}?{query}")
        try:
            entry = backend.get("a")
            assert entry is not None and entry.value == b"1"
            backend.put("b", b"2")  # the control plane, by the ids the adapter looked up
            written = backend.get("b")
            assert written is not None and written.value == b"2"
        finally:
            backend.close()
    assert setup.versions() == [1, 2, 3]


# -- 2 and 3. feature flags ------------------------------------------------------------------------

FLAGS = {
    "version": "1",
    "flags": {
        "ui_refresh": {
            "name": "UI refresh",
            "attributes": {"color": {"constraints": {"type": "string"}}},
        },
        "dark_mode": {
            "name": "Dark mode",
            "attributes": {"level": {"constraints": {"type": "number", "maximum": 10}}},
        },
        "beta": {"name": "Beta", "attributes": {"tier": {"constraints": {"type": "string"}}}},
    },
    "values": {
        "ui_refresh": {"enabled": True, "color": "blue"},
        "dark_mode": {"enabled": False, "level": 3},
        "beta": {"tier": "gold"},  # no "enabled": the current schema does not require it
    },
}


def test_disabled_flags_are_served_without_their_attributes(server: Server) -> None:
    control, data = control_client(server.endpoint), data_client(server.endpoint)
    setup = Setup(control, kind="AWS.AppConfig.FeatureFlags")
    setup.deploy(setup.create(json.dumps(FLAGS).encode())["VersionNumber"])
    assert setup.served(data) == {
        "ui_refresh": {"enabled": True, "color": "blue"},
        "dark_mode": {"enabled": False},
        "beta": {"enabled": False},
    }
    query = f"region={REGION}&poll_interval=0&endpoint_url={server.endpoint}"
    backend = AppConfigBackend.from_url(f"appconfig://{setup.app['Name']}/prod/cfg?{query}")
    try:
        assert [e.key for e in backend.list("flags/dark_mode")] == ["flags/dark_mode/enabled"]
        color = backend.get("flags/ui_refresh/color")
        assert color is not None and color.value == b"blue"
    finally:
        backend.close()


def test_flag_value_without_enabled_is_valid_but_a_wrong_type_is_not(server: Server) -> None:
    control = control_client(server.endpoint)
    setup = Setup(control, kind="AWS.AppConfig.FeatureFlags")
    assert setup.create(json.dumps(FLAGS).encode())["VersionNumber"] == 1
    bad = json.loads(json.dumps(FLAGS))
    bad["values"]["beta"]["enabled"] = "yes"
    bad["values"]["dark_mode"]["level"] = 11  # attributes of disabled flags are still checked
    with pytest.raises(control.exceptions.BadRequestException) as info:
        setup.create(json.dumps(bad).encode())
    problems = info.value.response["Details"]["InvalidConfiguration"]
    assert {p["Location"] for p in problems} == {
        "$.values.beta.enabled",
        "$.values.dark_mode.level",
    }


def test_malformed_attribute_constraints_are_a_bad_request_not_a_5xx(server: Server) -> None:
    control = control_client(server.endpoint, retries={"max_attempts": 1})
    setup = Setup(control, kind="AWS.AppConfig.FeatureFlags")
    document = {
        "version": "1",
        "flags": {
            "a": {"attributes": {"x": {"constraints": "string"}}},
            "b": {"attributes": {"y": {"constraints": {"type": "string", "pattern": "("}}}},
        },
        "values": {"a": {"enabled": True, "x": "1"}, "b": {"enabled": True, "y": "z"}},
    }
    with pytest.raises(control.exceptions.BadRequestException) as info:
        setup.create(json.dumps(document).encode())
    locations = {p["Location"] for p in info.value.response["Details"]["InvalidConfiguration"]}
    assert {"$.flags.a.attributes.x", "$.values.b.y"} <= locations
    assert setup.versions() == []
    assert " answered 5" not in server.log()


# -- retries of CreateHostedConfigurationVersion, and 5xx logging --------------------------------


def _retrying(server: Server) -> Any:
    return control_client(server.endpoint, retries={"mode": "standard", "max_attempts": 3})


def test_retry_with_latest_version_number_cannot_create_a_second_version(
    start_server: Callable[..., Server],
) -> None:
    server = start_server("--fail-create-call", "2")
    setup = Setup(_retrying(server))
    assert setup.create(b'{"n": 0}')["VersionNumber"] == 1
    # call 2 stores version 2, then its reply is a 500; the SDK retries the identical
    # request, whose precondition now fails: "specify the version number of the latest
    # hosted configuration version" -- it is 2, not 1
    with pytest.raises(setup.control.exceptions.ConflictException):
        setup.create(b'{"n": 1}', LatestVersionNumber=1)
    assert setup.versions() == [1, 2]
    log = server.log()
    assert "POST /applications/" in log
    assert "answered 500 InternalServerException" in log


def test_retry_without_a_precondition_creates_a_second_version_as_aws_does(
    start_server: Callable[..., Server],
) -> None:
    server = start_server("--fail-create-call", "1")
    setup = Setup(_retrying(server))
    # no idempotency token in the API: the retried request is a new version
    assert setup.create(b'{"n": 1}')["VersionNumber"] == 2
    assert setup.versions() == [1, 2]
    assert server.log().count("answered 500") == 1


def test_adapter_write_survives_a_lost_create_reply(start_server: Callable[..., Server]) -> None:
    server = start_server("--fail-create-call", "2")
    setup = Setup(control_client(server.endpoint))
    setup.deploy(setup.create(b'{"a": 1}')["VersionNumber"])
    query = f"region={REGION}&poll_interval=0&endpoint_url={server.endpoint}&max_attempts=3"
    backend = AppConfigBackend.from_url(f"appconfig://{setup.app['Name']}/prod/cfg?{query}")
    try:
        before = backend.get("a")
        assert before is not None
        # the create is stored, its reply lost, the retry gets a 409 against its own
        # version: the adapter recognises the version as its write and deploys it
        backend.put("a", b"2", if_version=before.version)
        assert setup.versions() == [1, 2]
        after = backend.get("a")
        assert after is not None and after.value == b"2"
        backend.put("a", b"3", if_version=after.version)
        assert setup.versions() == [1, 2, 3]
    finally:
        backend.close()
    assert server.log().count("answered 500") == 1


def test_invalid_tags_start_no_deployment(server: Server) -> None:
    control = control_client(server.endpoint)
    setup = Setup(control)
    version = setup.create(b"{}")["VersionNumber"]
    with pytest.raises(control.exceptions.BadRequestException):
        control.start_deployment(
            ApplicationId=setup.app_id,
            EnvironmentId=setup.env["Id"],
            DeploymentStrategyId=setup.strategy["Id"],
            ConfigurationProfileId=setup.profile_id,
            ConfigurationVersion=str(version),
            Tags={"aws:reserved": "x"},
        )
    deployments = control.list_deployments(
        ApplicationId=setup.app_id, EnvironmentId=setup.env["Id"]
    )
    assert deployments["Items"] == []
    with pytest.raises(control.exceptions.BadRequestException):
        control.create_deployment_strategy(Name="tagged", Tags={"aws:reserved": "x"}, **ZERO)
    names = [s["Name"] for s in control.list_deployment_strategies()["Items"]]
    assert "tagged" not in names
