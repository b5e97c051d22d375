"""Targeting: multi-variant flags evaluated against the OpenFeature evaluation context.

Through the OpenFeature SDK's client API, over real stores (SQLite, and AppConfig:
a freeform profile holding Veltrix's ``flags/<name>/_variants`` layout, and a
feature-flag profile whose variants AWS keeps to its Agent). Each test names the
requirements of the OpenFeature specification it covers: 3.1 (evaluation context,
targeting key), 2.2.4/2.2.5 (variant and reason in the resolution details), 2.2.7
(error codes), 1.4.10 (errors become the default value, never an exception).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import ErrorCode, Reason

from benchmarks._stores import store_url
from tests.integration.test_appconfig_reference import ZERO, Server
from tests.support import fake_aws_credentials, server_env, unique_name
from veltrix import CachePolicy, Client
from veltrix.aio import AsyncClient
from veltrix.openfeature import VeltrixProvider

REGION = "us-east-1"

CHECKOUT = [
    {"name": "beta", "rule": '(ends_with $accountId "123")', "enabled": True, "value": "new"},
    {
        "name": "eu-seniors",
        "rule": '(and (in $region ["eu-west-1", "eu-central-1"]) (gte $age 65))',
        "enabled": True,
        "value": "large-print",
    },
    {"name": "staff", "rule": '(eq $targetingKey "alice")', "enabled": True, "value": "staff"},
    {"name": "Default", "enabled": False, "value": "classic"},
]
LIMIT = [
    {"name": "gold", "rule": '(eq $tier "gold")', "value": 100, "color": "gold"},
    {"name": "Default", "value": 10, "color": "grey"},
]

ROLLOUT = [
    {"name": "early", "rule": "(lt $signedUp 2020-01-01T00:00:00Z)", "value": "loyal"},
    {
        "name": "canary",
        "rule": '(split by::$targetingKey pct::25 seed::"new-search")',
        "value": "v2",
    },
    {"name": "Default", "value": "v1"},
]

THEME = [
    {"name": "dark", "rule": "(eq $dark true)", "enabled": True, "color": "black"},
    {"name": "Default", "enabled": True, "color": "white"},
]


def _variants(variants: list[dict[str, Any]]) -> str:
    return json.dumps(variants)


def _flags(client: Client) -> OpenFeatureClient:
    domain = f"targeting-{uuid.uuid4().hex[:8]}"
    api.set_provider_and_wait(VeltrixProvider(client), domain)
    return api.get_client(domain)


def _seed(client: Client) -> None:
    client.put("flags/checkout/_variants", _variants(CHECKOUT))
    client.put("flags/limit/_variants", _variants(LIMIT))
    client.put("flags/theme/_variants", _variants(THEME))
    client.put("flags/search/_variants", _variants(ROLLOUT))
    client.put("flags/plain/enabled", "true")


def _check_targeting(flags: OpenFeatureClient) -> None:
    """3.1.1/3.1.2 (targeting key and attributes reach the provider), 2.2.4 (variant),
    2.2.5 (reason TARGETING_MATCH for a rule match, DEFAULT for the default variant)."""
    beta = flags.get_boolean_details(
        "checkout", False, EvaluationContext(attributes={"accountId": "9-123"})
    )
    assert (beta.value, beta.variant, beta.reason) == (True, "beta", Reason.TARGETING_MATCH)
    senior = flags.get_string_details(
        "checkout", "x", EvaluationContext(attributes={"region": "eu-west-1", "age": 70})
    )
    assert (senior.value, senior.variant) == ("large-print", "eu-seniors")
    assert senior.reason == Reason.TARGETING_MATCH
    young = flags.get_string_details(
        "checkout", "x", EvaluationContext(attributes={"region": "eu-west-1", "age": 30})
    )
    # The default variant is disabled: a string flag gives the caller's default.
    assert (young.value, young.variant, young.reason) == ("x", "Default", Reason.DISABLED)
    assert flags.get_boolean_details("checkout", True).value is False  # no context: Default
    staff = flags.get_string_details("checkout", "x", EvaluationContext(targeting_key="alice"))
    assert (staff.value, staff.variant) == ("staff", "staff")
    gold = flags.get_integer_details("limit", 0, EvaluationContext(attributes={"tier": "gold"}))
    assert (gold.value, gold.variant, gold.reason) == (100, "gold", Reason.TARGETING_MATCH)
    other = flags.get_integer_details("limit", 0, EvaluationContext(attributes={"tier": "tin"}))
    assert (other.value, other.variant, other.reason) == (10, "Default", Reason.DEFAULT)
    mismatch = flags.get_object_details("limit", {}, EvaluationContext(attributes={"tier": "gold"}))
    assert mismatch.error_code == ErrorCode.TYPE_MISMATCH  # its value is a number
    theme = flags.get_object_details("theme", {}, EvaluationContext(attributes={"dark": True}))
    assert (theme.value, theme.variant) == ({"enabled": True, "color": "black"}, "dark")
    # A percentage rollout by targeting key: about a quarter of users, the same ones
    # on every evaluation; a timestamp rule before it (a string or a datetime value).
    answers = [
        flags.get_string_details("search", "x", EvaluationContext(targeting_key=f"u{i}"))
        for i in range(400)
    ]
    canary = {i for i, details in enumerate(answers) if details.variant == "canary"}
    assert 0.18 < len(canary) / 400 < 0.32
    assert {answers[i].value for i in canary} == {"v2"}
    assert {d.reason for d in answers} == {Reason.TARGETING_MATCH, Reason.DEFAULT}
    again = flags.get_string_value("search", "x", EvaluationContext(targeting_key="u7"))
    assert again == answers[7].value
    loyal = EvaluationContext("u7", {"signedUp": "2019-05-01T12:00:00+02:00"})
    assert flags.get_string_details("search", "x", loyal).variant == "early"
    # A flag without variants is untouched by the context (reason STATIC or CACHED).
    plain = flags.get_boolean_details("plain", False, EvaluationContext(attributes={"a": 1}))
    assert plain.value is True and plain.reason in (Reason.STATIC, Reason.CACHED)


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[Client]:
    url = store_url("sqlite", tmp_path, [])
    assert url is not None
    with Client(url, cache=CachePolicy(ttl=60)) as client:
        _seed(client)
        yield client


def test_sqlite_variants_follow_the_context(sqlite_client: Client) -> None:
    _check_targeting(_flags(sqlite_client))


def test_changed_variants_are_reparsed(sqlite_client: Client) -> None:
    """2.2.x: a new set of variants is served once the store holds it (the parsed
    rules are reused only while the stored text is the same)."""
    flags = _flags(sqlite_client)
    context = EvaluationContext(attributes={"tier": "gold"})
    assert flags.get_integer_value("limit", 0, context) == 100
    sqlite_client.put(
        "flags/limit/_variants",
        _variants([{"name": "gold", "rule": '(eq $tier "platinum")', "value": 500}, LIMIT[1]]),
    )
    sqlite_client.invalidate("flags/limit/_variants")
    details = flags.get_integer_details("limit", 0, context)
    assert (details.value, details.reason) == (10, Reason.DEFAULT)


def test_bad_rules_are_typed_errors_without_values(sqlite_client: Client) -> None:
    """2.2.7 and 1.4.10: a malformed rule (a bad split, a bad timestamp) is
    PARSE_ERROR; the caller gets its default, the message quotes neither rule nor value."""
    sqlite_client.put(
        "flags/broken/_variants",
        _variants([{"name": "a", "rule": '(eq $pin "hunter2"', "value": 1}, {"name": "d"}]),
    )
    sqlite_client.put(
        "flags/rollout/_variants",
        _variants(
            [{"name": "a", "rule": "(split by::$targetingKey pct::120)", "value": 1}, {"name": "d"}]
        ),
    )
    sqlite_client.put(
        "flags/dated/_variants",
        _variants([{"name": "a", "rule": "(gt $at 2024-02-30)", "value": 1}, {"name": "d"}]),
    )
    sqlite_client.put("flags/garbled/_variants", "[{not json")
    flags = _flags(sqlite_client)
    broken = flags.get_integer_details("broken", 7, EvaluationContext(attributes={"pin": "x"}))
    assert (broken.value, broken.reason, broken.error_code) == (
        7,
        Reason.ERROR,
        ErrorCode.PARSE_ERROR,
    )
    assert "hunter2" not in (broken.error_message or "")
    rollout = flags.get_integer_details("rollout", 7, EvaluationContext(targeting_key="u1"))
    assert (rollout.value, rollout.error_code) == (7, ErrorCode.PARSE_ERROR)
    assert "pct" in (rollout.error_message or "")
    dated = flags.get_integer_details("dated", 7, EvaluationContext(attributes={"at": "x"}))
    assert (dated.value, dated.error_code) == (7, ErrorCode.PARSE_ERROR)
    assert flags.get_boolean_details("garbled", True).error_code == ErrorCode.PARSE_ERROR


def test_async_api_evaluates_the_same_rules(tmp_path: Path) -> None:
    """The SDK's async evaluation (provider ``*_async`` methods) with an AsyncClient."""
    url = store_url("sqlite", tmp_path, [])
    assert url is not None

    async def run() -> None:
        async with AsyncClient(url) as client:
            _seed(client.client)
            domain = f"targeting-{uuid.uuid4().hex[:8]}"
            api.set_provider_and_wait(VeltrixProvider(client), domain)
            flags = api.get_client(domain)
            gold = await flags.get_integer_details_async(
                "limit", 0, EvaluationContext(attributes={"tier": "gold"})
            )
            assert (gold.value, gold.variant, gold.reason) == (100, "gold", Reason.TARGETING_MATCH)
            beta = await flags.get_boolean_details_async(
                "checkout", False, EvaluationContext(attributes={"accountId": "123"})
            )
            assert (beta.value, beta.variant) == (True, "beta")

    asyncio.run(run())


# -- AppConfig ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


class _Profile:
    def __init__(self, endpoint: str, kind: str) -> None:
        self.control = boto3.client("appconfig", endpoint_url=endpoint, region_name=REGION)
        self.app = self.control.create_application(Name=unique_name("targeting"))
        self.env = self.control.create_environment(ApplicationId=self.app["Id"], Name="prod")
        self.profile = self.control.create_configuration_profile(
            ApplicationId=self.app["Id"], Name="flags", LocationUri="hosted", Type=kind
        )
        self.strategy = self.control.create_deployment_strategy(Name=unique_name("zero"), **ZERO)
        self.url = (
            f"appconfig://{self.app['Name']}/prod/flags?region={REGION}"
            f"&poll_interval=0.05&endpoint_url={endpoint}"
        )

    def publish(self, document: dict[str, Any]) -> None:
        version = self.control.create_hosted_configuration_version(
            ApplicationId=self.app["Id"],
            ConfigurationProfileId=self.profile["Id"],
            Content=json.dumps(document).encode(),
            ContentType="application/json",
        )
        self.control.start_deployment(
            ApplicationId=self.app["Id"],
            EnvironmentId=self.env["Id"],
            DeploymentStrategyId=self.strategy["Id"],
            ConfigurationProfileId=self.profile["Id"],
            ConfigurationVersion=str(version["VersionNumber"]),
        )

    def close(self) -> None:
        self.control.delete_application(ApplicationId=self.app["Id"])
        self.control.close()


def test_appconfig_freeform_profile_holds_the_same_layout() -> None:
    """The shared AppConfig test server, a freeform profile written through Veltrix:
    the same ``flags/<name>/_variants`` layout, the same answers as SQLite."""
    endpoint = server_env("VELTRIX_TEST_APPCONFIG_ENDPOINT", "AppConfig test server")
    profile = _Profile(endpoint, "AWS.Freeform")
    try:
        with Client(profile.url, cache=CachePolicy(ttl=60)) as client:
            _seed(client)
            _check_targeting(_flags(client))
    finally:
        profile.close()


FEATURE_FLAGS = {
    "version": "1",
    "flags": {"checkout": {"name": "Checkout", "attributes": {"style": {"constraints": {"type": "string"}}}}},
    "values": {
        "checkout": {
            "enabled": True,
            "style": "classic",
            "_variants": [
                {"name": "beta", "rule": '(ends_with $accountId "123")', "enabled": True,
                 "attributeValues": {"style": "new"}},
                {"name": "Default", "enabled": True, "attributeValues": {"style": "classic"}},
            ],
        }
    },
}  # fmt: skip


def test_appconfig_feature_flag_variants_stay_with_aws(tmp_path: Path) -> None:
    """A feature-flag profile on a test server of this checkout: the default variant
    must be last and without a rule (BadRequestException otherwise), and AppConfigData,
    which the adapter reads, does not serve variant data (AWS: SDK calls do not
    retrieve it), so the provider answers the flag's base value, not a targeted one."""
    server = Server(tmp_path / "server.log")
    try:
        profile = _Profile(server.endpoint, "AWS.AppConfig.FeatureFlags")
        bad = json.loads(json.dumps(FEATURE_FLAGS))
        bad["values"]["checkout"]["_variants"].reverse()  # the default first, with no rule
        with pytest.raises(profile.control.exceptions.BadRequestException) as info:
            profile.publish(bad)
        locations = {d["Location"] for d in info.value.response["Details"]["InvalidConfiguration"]}
        assert "$.values.checkout._variants[1].rule" in locations
        profile.publish(FEATURE_FLAGS)
        with Client(profile.url, cache=CachePolicy(ttl=60)) as client:
            assert client.get("flags/checkout/_variants", None) is None
            flags = _flags(client)
            context = EvaluationContext(attributes={"accountId": "9-123"})
            style = flags.get_object_details("checkout", {}, context)
            assert style.value == {"enabled": True, "style": "classic"}
            assert style.reason in (Reason.STATIC, Reason.CACHED)
        profile.close()
    finally:
        server.stop()
