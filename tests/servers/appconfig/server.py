"""An AWS AppConfig + AppConfigData test server speaking restJson1.

Written from the AWS API references and botocore's service models
(``appconfig`` 2019-10-09, ``appconfigdata`` 2021-11-11): same URIs, status
codes, header-bound members, error types (``x-amzn-ErrorType``) and error bodies,
so boto3 clients and the Terraform AWS provider work against it unmodified.
Both services share one port (the URIs do not overlap). State is in memory.
Requests are not signature-checked; the region is read from the SigV4
credential scope to build ARNs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.servers.appconfig import flags as feature_flags

log = logging.getLogger("appconfig-test-server")

ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
FREEFORM = "AWS.Freeform"
FEATURE_FLAGS = "AWS.AppConfig.FeatureFlags"
DEFAULT_POLL_INTERVAL = 60
TOKEN_TTL = 24 * 3600.0
MAX_CONTENT_BYTES = 2 * 1024 * 1024
POLL_TOLERANCE = 0.05

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_TAG_KEY_RE = re.compile(r"^(?!aws:)[\w\s.:/=+\-@]{1,128}$")
_STRATEGY_ID_RE = re.compile(r"(^[a-z0-9]{4,7}$|^AppConfig\.[A-Za-z0-9]{9,40}$)")
_VERSION_LABEL_RE = re.compile(r".*[^0-9].*")


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.extra = extra


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, "BadRequestException", message, **extra)


def not_found(message: str, **extra: Any) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", message, **extra)


def conflict(message: str) -> ApiError:
    return ApiError(409, "ConflictException", message)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Application:
    id: str
    name: str
    description: str | None = None


@dataclass
class Environment:
    application_id: str
    id: str
    name: str
    description: str | None = None
    monitors: list[dict[str, str]] = field(default_factory=list)


@dataclass
class HostedVersion:
    number: int
    content: bytes
    content_type: str
    description: str | None
    label: str | None


@dataclass
class Profile:
    application_id: str
    id: str
    name: str
    location_uri: str
    type: str
    description: str | None = None
    retrieval_role_arn: str | None = None
    validators: list[dict[str, str]] = field(default_factory=list)
    kms_key_identifier: str | None = None
    versions: dict[int, HostedVersion] = field(default_factory=dict)
    next_version: int = 1


@dataclass
class Strategy:
    id: str
    name: str
    duration: int
    growth_factor: float
    growth_type: str
    bake: int
    replicate_to: str = "NONE"
    description: str | None = None
    predefined: bool = False


@dataclass
class Deployment:
    application_id: str
    environment_id: str
    number: int
    profile_id: str
    profile_name: str
    location_uri: str
    version: int
    label: str | None
    strategy_id: str
    duration: int
    growth_factor: float
    growth_type: str
    bake: int
    description: str | None
    started: float
    previous: int | None  # the version served before this deployment
    stopped: float | None = None
    superseded: float | None = None
    revert: bool = False


@dataclass
class Token:
    session: str
    app: str
    env: str
    profile: str
    interval: int
    issued: float
    not_before: float
    delivered: int | None  # version the holder of this token already has


PREDEFINED = [
    Strategy(
        "AppConfig.AllAtOnce",
        "AppConfig.AllAtOnce",
        0,
        100.0,
        "LINEAR",
        10,
        description="Quick",
        predefined=True,
    ),
    Strategy(
        "AppConfig.Linear50PercentEvery30Seconds",
        "AppConfig.Linear50PercentEvery30Seconds",
        1,
        50.0,
        "LINEAR",
        1,
        description="Test/Demo",
        predefined=True,
    ),
    Strategy(
        "AppConfig.Canary10Percent20Minutes",
        "AppConfig.Canary10Percent20Minutes",
        20,
        10.0,
        "EXPONENTIAL",
        10,
        description="AWS Recommended",
        predefined=True,
    ),
    Strategy(
        "AppConfig.Linear20PercentEvery6Minutes",
        "AppConfig.Linear20PercentEvery6Minutes",
        30,
        20.0,
        "LINEAR",
        30,
        description="AWS Recommended",
        predefined=True,
    ),
]


def _steps(growth_type: str, growth: float) -> int:
    if growth >= 100:
        return 1
    if growth_type == "EXPONENTIAL":
        return math.ceil(math.log2(100.0 / growth)) + 1
    return math.ceil(100.0 / growth)


def progress(d: Deployment, now: float) -> tuple[str, float, float | None]:
    """(state, percentage, completed_at) of a deployment at ``now``."""
    duration_s, bake_s = d.duration * 60.0, d.bake * 60.0
    if d.stopped is not None:
        elapsed = d.stopped - d.started
    elif d.superseded is not None:
        return "COMPLETE", 100.0, d.superseded
    else:
        elapsed = now - d.started
    if elapsed >= duration_s:
        pct = 100.0
    else:
        steps = _steps(d.growth_type, d.growth_factor)
        step = int(elapsed // (duration_s / steps))
        if d.growth_type == "EXPONENTIAL":
            pct = min(100.0, d.growth_factor * (2**step))
        else:
            pct = min(100.0, d.growth_factor * (step + 1))
    if d.stopped is not None:
        return ("REVERTED" if d.revert else "ROLLED_BACK"), pct, d.stopped
    if elapsed < duration_s:
        return "DEPLOYING", pct, None
    if elapsed < duration_s + bake_s:
        return "BAKING", 100.0, None
    return "COMPLETE", 100.0, d.started + duration_s + bake_s


def event_log(d: Deployment, now: float) -> list[dict[str, Any]]:
    state, pct, completed = progress(d, now)
    events: list[dict[str, Any]] = [
        {
            "EventType": "DEPLOYMENT_STARTED",
            "TriggeredBy": "USER",
            "Description": "Deployment started",
            "OccurredAt": iso(d.started),
        }
    ]
    duration_s = d.duration * 60.0
    end = d.stopped or d.superseded or now
    if duration_s > 0:
        steps = _steps(d.growth_type, d.growth_factor)
        for step in range(steps):
            at = d.started + step * duration_s / steps
            if at > end:
                break
            value = (
                d.growth_factor * (2**step)
                if d.growth_type == "EXPONENTIAL"
                else d.growth_factor * (step + 1)
            )
            events.append(
                {
                    "EventType": "PERCENTAGE_UPDATED",
                    "TriggeredBy": "APPCONFIG",
                    "Description": f"Percentage updated to {min(100.0, value):g}",
                    "OccurredAt": iso(at),
                }
            )
    if d.stopped is None and d.bake > 0 and end >= d.started + duration_s:
        events.append(
            {
                "EventType": "BAKE_TIME_STARTED",
                "TriggeredBy": "APPCONFIG",
                "Description": "Bake time started",
                "OccurredAt": iso(d.started + duration_s),
            }
        )
    if d.stopped is not None:
        events.append(
            {
                "EventType": "ROLLBACK_STARTED",
                "TriggeredBy": "USER",
                "Description": "Rollback initiated by user",
                "OccurredAt": iso(d.stopped),
            }
        )
        events.append(
            {
                "EventType": "REVERT_COMPLETED" if d.revert else "ROLLBACK_COMPLETED",
                "TriggeredBy": "APPCONFIG",
                "Description": "Rollback completed",
                "OccurredAt": iso(d.stopped),
            }
        )
    elif state == "COMPLETE" and completed is not None:
        events.append(
            {
                "EventType": "DEPLOYMENT_COMPLETED",
                "TriggeredBy": "APPCONFIG",
                "Description": "Deployment completed",
                "OccurredAt": iso(completed),
            }
        )
    del pct
    return list(reversed(events))  # newest first, as the service lists them


class State:
    """Everything the server knows; one lock serialises all requests."""

    def __init__(
        self,
        *,
        token_ttl: float = TOKEN_TTL,
        max_data_rps: float = 0.0,
        max_content_bytes: int = MAX_CONTENT_BYTES,
        fail_create_call: int = 0,
    ) -> None:
        self.lock = threading.RLock()
        self.applications: dict[str, Application] = {}
        self.environments: dict[tuple[str, str], Environment] = {}
        self.profiles: dict[tuple[str, str], Profile] = {}
        self.strategies: dict[str, Strategy] = {s.id: s for s in PREDEFINED}
        self.deployments: dict[tuple[str, str], list[Deployment]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, Token] = {}
        self.account_settings: dict[str, Any] = {
            "DeletionProtection": {"Enabled": False, "ProtectionPeriodInMinutes": 60}
        }
        self.token_ttl = token_ttl
        self.max_data_rps = max_data_rps
        self.max_content_bytes = max_content_bytes
        #: Fault injection: the n-th CreateHostedConfigurationVersion call (from 1; 0 for
        #: none) stores its version and then answers 500, as when a reply is lost after
        #: the commit; the SDK retries the same request, which tests of retries need.
        self.fail_create_call = fail_create_call
        self.create_calls = 0
        self._data_calls: list[float] = []

    def new_id(self) -> str:
        while True:
            candidate = "".join(secrets.choice(_ID_ALPHABET) for _ in range(7))
            if (
                candidate not in self.applications
                and candidate not in self.strategies
                and not any(candidate == key[1] for key in (*self.environments, *self.profiles))
            ):
                return candidate

    def throttle(self) -> None:
        if self.max_data_rps <= 0:
            return
        now = time.monotonic()
        self._data_calls = [t for t in self._data_calls if now - t < 1.0]
        if len(self._data_calls) >= self.max_data_rps:
            raise ApiError(429, "ThrottlingException", "Rate exceeded")
        self._data_calls.append(now)


# -- request helpers -------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    segments: list[str]
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    region: str

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, "SerializationException", "Request body is not valid JSON") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "SerializationException", "Request body must be a JSON object")
        return data

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


def _string(
    body: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    minimum: int = 0,
    maximum: int = 1 << 30,
    pattern: re.Pattern[str] | None = None,
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError(400, "SerializationException", f"{name} must be a string")
    if not minimum <= len(value) <= maximum:
        raise bad_request(
            f"1 validation error detected: Value at '{name[0].lower() + name[1:]}' failed to "
            f"satisfy constraint: Member must have length between {minimum} and {maximum}"
        )
    if pattern is not None and not pattern.fullmatch(value):
        raise bad_request(
            f"1 validation error detected: Value at '{name[0].lower() + name[1:]}' failed to "
            f"satisfy constraint: Member must satisfy regular expression pattern: {pattern.pattern}"
        )
    return value


def _number(
    body: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    minimum: float,
    maximum: float,
    integer: bool = True,
) -> float | int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"{name} is required")
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not float(value).is_integer())
    ):
        raise ApiError(400, "SerializationException", f"{name} must be a number")
    if not minimum <= value <= maximum:
        raise bad_request(
            f"1 validation error detected: Value at '{name[0].lower() + name[1:]}' failed to "
            f"satisfy constraint: Member must have value between {minimum:g} and {maximum:g}"
        )
    return int(value) if integer else float(value)


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 50:
        raise bad_request("Tags must be a map of at most 50 entries")
    for key, tag_value in value.items():
        if not isinstance(key, str) or not _TAG_KEY_RE.match(key):
            raise bad_request(f"Invalid tag key {key!r}")
        if not isinstance(tag_value, str) or len(tag_value) > 256:
            raise bad_request(f"Invalid value for tag {key!r}")
    return dict(value)


def _paginate(items: list[dict[str, Any]], req: Request, limit: int = 50) -> dict[str, Any]:
    raw_max = req.q("max_results")
    try:
        max_results = int(raw_max) if raw_max is not None else limit
    except ValueError as exc:
        raise bad_request("MaxResults must be an integer") from exc
    if not 1 <= max_results <= 50:
        raise bad_request("MaxResults must be between 1 and 50")
    start = 0
    token = req.q("next_token")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request("The next token is invalid") from exc
        if not 0 <= start <= len(items):
            raise bad_request("The next token is invalid")
    page = items[start : start + max_results]
    result: dict[str, Any] = {"Items": page}
    if start + max_results < len(items):
        result["NextToken"] = base64.urlsafe_b64encode(f"o:{start + max_results}".encode()).decode()
    return result


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


# -- the service ---------------------------------------------------------------------------


class AppConfigService:
    def __init__(self, state: State) -> None:
        self.s = state
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("POST", "applications", self.create_application),
            ("GET", "applications", self.list_applications),
            ("GET", "applications/*", self.get_application),
            ("PATCH", "applications/*", self.update_application),
            ("DELETE", "applications/*", self.delete_application),
            ("POST", "applications/*/environments", self.create_environment),
            ("GET", "applications/*/environments", self.list_environments),
            ("GET", "applications/*/environments/*", self.get_environment),
            ("PATCH", "applications/*/environments/*", self.update_environment),
            ("DELETE", "applications/*/environments/*", self.delete_environment),
            ("POST", "applications/*/configurationprofiles", self.create_profile),
            ("GET", "applications/*/configurationprofiles", self.list_profiles),
            ("GET", "applications/*/configurationprofiles/*", self.get_profile),
            ("PATCH", "applications/*/configurationprofiles/*", self.update_profile),
            ("DELETE", "applications/*/configurationprofiles/*", self.delete_profile),
            ("POST", "applications/*/configurationprofiles/*/validators", self.validate_config),
            (
                "POST",
                "applications/*/configurationprofiles/*/hostedconfigurationversions",
                self.create_hosted_version,
            ),
            (
                "GET",
                "applications/*/configurationprofiles/*/hostedconfigurationversions",
                self.list_hosted_versions,
            ),
            (
                "GET",
                "applications/*/configurationprofiles/*/hostedconfigurationversions/*",
                self.get_hosted_version,
            ),
            (
                "DELETE",
                "applications/*/configurationprofiles/*/hostedconfigurationversions/*",
                self.delete_hosted_version,
            ),
            ("POST", "deploymentstrategies", self.create_strategy),
            ("GET", "deploymentstrategies", self.list_strategies),
            ("GET", "deploymentstrategies/*", self.get_strategy),
            ("PATCH", "deploymentstrategies/*", self.update_strategy),
            ("DELETE", "deployementstrategies/*", self.delete_strategy),  # sic: the real URI
            ("POST", "applications/*/environments/*/deployments", self.start_deployment),
            ("GET", "applications/*/environments/*/deployments", self.list_deployments),
            ("GET", "applications/*/environments/*/deployments/*", self.get_deployment),
            ("DELETE", "applications/*/environments/*/deployments/*", self.stop_deployment),
            ("GET", "applications/*/environments/*/configurations/*", self.get_configuration),
            ("GET", "tags/*", self.list_tags),
            ("POST", "tags/*", self.tag_resource),
            ("DELETE", "tags/*", self.untag_resource),
            ("GET", "settings", self.get_account_settings),
            ("PATCH", "settings", self.update_account_settings),
            ("POST", "configurationsessions", self.start_session),
            ("GET", "configuration", self.get_latest_configuration),
        ]
        self.routes = [(m, p.split("/"), h) for m, p, h in routes]

    def dispatch(self, req: Request) -> Response:
        for method, pattern, handler in self.routes:
            if len(pattern) != len(req.segments):
                continue
            if any(p not in ("*", s) for p, s in zip(pattern, req.segments, strict=True)):
                continue
            if method != req.method:
                continue
            args = [s for p, s in zip(pattern, req.segments, strict=True) if p == "*"]
            with self.s.lock:
                return handler(req, *args)
        raise ApiError(404, "UnknownOperationException", "Unknown operation")

    # -- lookups --------------------------------------------------------------------------

    def arn(self, req: Request, resource: str) -> str:
        return f"arn:aws:appconfig:{req.region}:{ACCOUNT}:{resource}"

    def app(self, app_id: str) -> Application:
        found = self.s.applications.get(app_id)
        if found is None:
            raise not_found(f"Application {app_id} not found", ResourceName=app_id)
        return found

    def env(self, app_id: str, env_id: str) -> Environment:
        self.app(app_id)
        found = self.s.environments.get((app_id, env_id))
        if found is None:
            raise not_found(f"Environment {env_id} not found", ResourceName=env_id)
        return found

    def profile(self, app_id: str, profile_id: str) -> Profile:
        self.app(app_id)
        found = self.s.profiles.get((app_id, profile_id))
        if found is None:
            raise not_found(f"ConfigurationProfile {profile_id} not found", ResourceName=profile_id)
        return found

    def strategy(self, strategy_id: str) -> Strategy:
        found = self.s.strategies.get(strategy_id)
        if found is None:
            raise not_found(f"DeploymentStrategy {strategy_id} not found", ResourceName=strategy_id)
        return found

    # -- applications ---------------------------------------------------------------------

    def app_json(self, a: Application) -> dict[str, Any]:
        return _drop_none({"Id": a.id, "Name": a.name, "Description": a.description})

    def create_application(self, req: Request) -> Response:
        body = req.json()
        name = _string(body, "Name", required=True, minimum=1, maximum=64)
        description = _string(body, "Description", maximum=1024)
        tags = _tags(body.get("Tags"))
        a = Application(self.s.new_id(), str(name), description)
        self.s.applications[a.id] = a
        self.s.tags[self.arn(req, f"application/{a.id}")] = tags
        return json_response(201, self.app_json(a))

    def list_applications(self, req: Request) -> Response:
        items = [self.app_json(a) for a in self.s.applications.values()]
        return json_response(200, _paginate(items, req))

    def get_application(self, req: Request, app_id: str) -> Response:
        return json_response(200, self.app_json(self.app(app_id)))

    def update_application(self, req: Request, app_id: str) -> Response:
        a = self.app(app_id)
        body = req.json()
        name = _string(body, "Name", minimum=1, maximum=64)
        description = _string(body, "Description", maximum=1024)
        if name is not None:
            a.name = name
        if description is not None:
            a.description = description
        return json_response(200, self.app_json(a))

    def delete_application(self, req: Request, app_id: str) -> Response:
        self.app(app_id)
        for key in [k for k in self.s.environments if k[0] == app_id]:
            self._drop_environment(req, *key)
        for key in [k for k in self.s.profiles if k[0] == app_id]:
            del self.s.profiles[key]
            self.s.tags.pop(
                self.arn(req, f"application/{app_id}/configurationprofile/{key[1]}"), None
            )
        del self.s.applications[app_id]
        self.s.tags.pop(self.arn(req, f"application/{app_id}"), None)
        return Response(204)

    # -- environments ---------------------------------------------------------------------

    def env_state(self, e: Environment) -> str:
        now = time.time()
        deployments = self.s.deployments.get((e.application_id, e.id), [])
        if not deployments:
            return "READY_FOR_DEPLOYMENT"
        state, _, _ = progress(deployments[-1], now)
        if state in ("DEPLOYING", "BAKING"):
            return "DEPLOYING"
        if state in ("ROLLED_BACK", "REVERTED"):
            return state
        return "READY_FOR_DEPLOYMENT"

    def env_json(self, e: Environment) -> dict[str, Any]:
        return _drop_none(
            {
                "ApplicationId": e.application_id,
                "Id": e.id,
                "Name": e.name,
                "Description": e.description,
                "State": self.env_state(e),
                "Monitors": e.monitors,
            }
        )

    @staticmethod
    def _monitors(value: Any) -> list[dict[str, str]]:
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > 5:
            raise bad_request("Monitors must be a list of at most 5 monitors")
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("AlarmArn"), str):
                raise bad_request("Each monitor needs an AlarmArn")
        return [dict(item) for item in value]

    def create_environment(self, req: Request, app_id: str) -> Response:
        self.app(app_id)
        body = req.json()
        name = _string(body, "Name", required=True, minimum=1, maximum=64)
        description = _string(body, "Description", maximum=1024)
        e = Environment(
            app_id, self.s.new_id(), str(name), description, self._monitors(body.get("Monitors"))
        )
        tags = _tags(body.get("Tags"))
        self.s.environments[(app_id, e.id)] = e
        self.s.tags[self.arn(req, f"application/{app_id}/environment/{e.id}")] = tags
        return json_response(201, self.env_json(e))

    def list_environments(self, req: Request, app_id: str) -> Response:
        self.app(app_id)
        items = [self.env_json(e) for k, e in self.s.environments.items() if k[0] == app_id]
        return json_response(200, _paginate(items, req))

    def get_environment(self, req: Request, app_id: str, env_id: str) -> Response:
        return json_response(200, self.env_json(self.env(app_id, env_id)))

    def update_environment(self, req: Request, app_id: str, env_id: str) -> Response:
        e = self.env(app_id, env_id)
        body = req.json()
        name = _string(body, "Name", minimum=1, maximum=64)
        description = _string(body, "Description", maximum=1024)
        if name is not None:
            e.name = name
        if description is not None:
            e.description = description
        if "Monitors" in body:
            e.monitors = self._monitors(body["Monitors"])
        return json_response(200, self.env_json(e))

    def _drop_environment(self, req: Request, app_id: str, env_id: str) -> None:
        del self.s.environments[(app_id, env_id)]
        self.s.deployments.pop((app_id, env_id), None)
        prefix = self.arn(req, f"application/{app_id}/environment/{env_id}")
        for arn in [a for a in self.s.tags if a == prefix or a.startswith(prefix + "/")]:
            del self.s.tags[arn]

    def delete_environment(self, req: Request, app_id: str, env_id: str) -> Response:
        e = self.env(app_id, env_id)
        if self.env_state(e) == "DEPLOYING":
            raise conflict(f"Environment {env_id} has a deployment in progress")
        self._drop_environment(req, app_id, env_id)
        return Response(204)

    # -- configuration profiles -------------------------------------------------------------

    def profile_json(self, p: Profile, summary: bool = False) -> dict[str, Any]:
        if summary:
            return _drop_none(
                {
                    "ApplicationId": p.application_id,
                    "Id": p.id,
                    "Name": p.name,
                    "LocationUri": p.location_uri,
                    "Type": p.type,
                    "ValidatorTypes": [v["Type"] for v in p.validators],
                }
            )
        return _drop_none(
            {
                "ApplicationId": p.application_id,
                "Id": p.id,
                "Name": p.name,
                "Description": p.description,
                "LocationUri": p.location_uri,
                "RetrievalRoleArn": p.retrieval_role_arn,
                "Validators": p.validators,
                "Type": p.type,
                "KmsKeyIdentifier": p.kms_key_identifier,
            }
        )

    @staticmethod
    def _validators(value: Any) -> list[dict[str, str]]:
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > 2:
            raise bad_request("Validators must be a list of at most 2 validators")
        result = []
        for item in value:
            if not isinstance(item, dict) or item.get("Type") not in ("JSON_SCHEMA", "LAMBDA"):
                raise bad_request("Validator Type must be JSON_SCHEMA or LAMBDA")
            content = item.get("Content")
            if not isinstance(content, str) or len(content) > 32768:
                raise bad_request("Validator Content is required (at most 32768 characters)")
            if item["Type"] == "JSON_SCHEMA":
                try:
                    json.loads(content)
                except json.JSONDecodeError as exc:
                    raise bad_request("The JSON schema validator is not valid JSON") from exc
            result.append({"Type": item["Type"], "Content": content})
        return result

    def create_profile(self, req: Request, app_id: str) -> Response:
        self.app(app_id)
        body = req.json()
        name = _string(body, "Name", required=True, minimum=1, maximum=128)
        location = _string(body, "LocationUri", required=True, minimum=1, maximum=2048)
        kind = _string(body, "Type") or FREEFORM
        if kind not in (FREEFORM, FEATURE_FLAGS):
            raise bad_request(f"Invalid configuration profile type {kind}")
        if kind == FEATURE_FLAGS and location != "hosted":
            raise bad_request("Feature flag configuration profiles must use the hosted location")
        role = _string(body, "RetrievalRoleArn", minimum=20, maximum=2048)
        if location != "hosted" and not re.match(
            r"^(s3|ssm-parameter|ssm-document|"
            r"secretsmanager|codepipeline|arn):",
            location,
        ):
            raise bad_request(f"Invalid LocationUri {location}")
        p = Profile(
            app_id,
            self.s.new_id(),
            str(name),
            str(location),
            kind,
            _string(body, "Description", maximum=1024),
            role,
            self._validators(body.get("Validators")),
            _string(body, "KmsKeyIdentifier", minimum=1, maximum=2048),
        )
        tags = _tags(body.get("Tags"))
        self.s.profiles[(app_id, p.id)] = p
        self.s.tags[self.arn(req, f"application/{app_id}/configurationprofile/{p.id}")] = tags
        return json_response(201, self.profile_json(p))

    def list_profiles(self, req: Request, app_id: str) -> Response:
        self.app(app_id)
        wanted = req.q("type")
        items = [
            self.profile_json(p, summary=True)
            for k, p in self.s.profiles.items()
            if k[0] == app_id and (wanted is None or p.type == wanted)
        ]
        return json_response(200, _paginate(items, req))

    def get_profile(self, req: Request, app_id: str, profile_id: str) -> Response:
        return json_response(200, self.profile_json(self.profile(app_id, profile_id)))

    def update_profile(self, req: Request, app_id: str, profile_id: str) -> Response:
        p = self.profile(app_id, profile_id)
        body = req.json()
        name = _string(body, "Name", minimum=1, maximum=128)
        description = _string(body, "Description", maximum=1024)
        role = _string(body, "RetrievalRoleArn", minimum=20, maximum=2048)
        if name is not None:
            p.name = name
        if description is not None:
            p.description = description
        if role is not None:
            p.retrieval_role_arn = role
        if "Validators" in body:
            p.validators = self._validators(body["Validators"])
        if "KmsKeyIdentifier" in body:
            p.kms_key_identifier = _string(body, "KmsKeyIdentifier", maximum=2048) or None
        return json_response(200, self.profile_json(p))

    def delete_profile(self, req: Request, app_id: str, profile_id: str) -> Response:
        self.profile(app_id, profile_id)
        now = time.time()
        for (a, _), deployments in self.s.deployments.items():
            if a == app_id and any(
                d.profile_id == profile_id and progress(d, now)[0] in ("DEPLOYING", "BAKING")
                for d in deployments
            ):
                raise conflict(f"ConfigurationProfile {profile_id} has a deployment in progress")
        del self.s.profiles[(app_id, profile_id)]
        self.s.tags.pop(
            self.arn(req, f"application/{app_id}/configurationprofile/{profile_id}"), None
        )
        return Response(204)

    # -- hosted configuration versions -------------------------------------------------------

    def version_headers(self, p: Profile, v: HostedVersion) -> dict[str, str]:
        headers = {
            "Application-Id": p.application_id,
            "Configuration-Profile-Id": p.id,
            "Version-Number": str(v.number),
            "Content-Type": v.content_type,
        }
        if v.description is not None:
            headers["Description"] = v.description
        if v.label is not None:
            headers["VersionLabel"] = v.label
        return headers

    def _check_document(self, p: Profile, content: bytes, content_type: str) -> None:
        if p.type != FEATURE_FLAGS:
            return
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            raise bad_request(
                "Feature flag configurations must have content type application/json",
                Reason="InvalidConfiguration",
                Details={
                    "InvalidConfiguration": [
                        {
                            "Location": "Content-Type",
                            "Reason": "must be application/json",
                            "Type": "Validation",
                            "Constraint": "enum",
                            "Value": content_type,
                        }
                    ]
                },
            )
        problems = feature_flags.validate(content)
        if problems:
            raise bad_request(
                "Error validating configuration: the feature flag document is invalid",
                Reason="InvalidConfiguration",
                Details={"InvalidConfiguration": problems},
            )

    def create_hosted_version(self, req: Request, app_id: str, profile_id: str) -> Response:
        self.s.create_calls += 1
        p = self.profile(app_id, profile_id)
        if p.location_uri != "hosted":
            raise bad_request(
                "Hosted configuration versions need a profile with the hosted location"
            )
        content_type = req.headers.get("Content-Type")
        if not content_type or len(content_type) > 255:
            raise bad_request("ContentType is required")
        content = req.body
        if len(content) > self.s.max_content_bytes:
            raise ApiError(
                413,
                "PayloadTooLargeException",
                "Configuration data is larger than the allowed size",
                Measure="KILOBYTES",
                Limit=self.s.max_content_bytes / 1024,
                Size=round(len(content) / 1024, 3),
            )
        description = req.headers.get("Description")
        if description is not None and len(description) > 1024:
            raise bad_request("Description is longer than 1024 characters")
        label = req.headers.get("VersionLabel")
        if label is not None and (
            not 1 <= len(label) <= 64 or not _VERSION_LABEL_RE.fullmatch(label)
        ):
            raise bad_request("VersionLabel must be 1-64 characters and not only digits")
        latest_raw = req.headers.get("Latest-Version-Number")
        if latest_raw is not None:
            try:
                expected = int(latest_raw)
            except ValueError as exc:
                raise bad_request("LatestVersionNumber must be an integer") from exc
            latest = max(p.versions, default=0)
            if expected != latest:
                raise conflict(
                    f"LatestVersionNumber {expected} does not match the latest version "
                    f"{latest} of configuration profile {profile_id}"
                )
        self._check_document(p, content, content_type)
        v = HostedVersion(p.next_version, content, content_type, description, label)
        p.versions[v.number] = v
        p.next_version += 1
        if self.s.create_calls == self.s.fail_create_call:
            raise ApiError(
                500, "InternalServerException", "Injected failure after the version was stored"
            )
        return Response(201, content, self.version_headers(p, v))

    def _version_number(self, raw: str) -> int:
        try:
            return int(raw)
        except ValueError as exc:
            raise bad_request("VersionNumber must be an integer") from exc

    def get_hosted_version(
        self, req: Request, app_id: str, profile_id: str, number: str
    ) -> Response:
        p = self.profile(app_id, profile_id)
        v = p.versions.get(self._version_number(number))
        if v is None:
            raise not_found(f"Hosted configuration version {number} not found", ResourceName=number)
        return Response(200, v.content, self.version_headers(p, v))

    def list_hosted_versions(self, req: Request, app_id: str, profile_id: str) -> Response:
        p = self.profile(app_id, profile_id)
        label = req.q("version_label")
        items = []
        for number in sorted(p.versions, reverse=True):
            v = p.versions[number]
            if label is not None and not (
                v.label == label or (label.endswith("*") and (v.label or "").startswith(label[:-1]))
            ):
                continue
            items.append(
                _drop_none(
                    {
                        "ApplicationId": app_id,
                        "ConfigurationProfileId": profile_id,
                        "VersionNumber": v.number,
                        "Description": v.description,
                        "ContentType": v.content_type,
                        "VersionLabel": v.label,
                    }
                )
            )
        return json_response(200, _paginate(items, req))

    def delete_hosted_version(
        self, req: Request, app_id: str, profile_id: str, number: str
    ) -> Response:
        p = self.profile(app_id, profile_id)
        n = self._version_number(number)
        if n not in p.versions:
            raise not_found(f"Hosted configuration version {number} not found", ResourceName=number)
        del p.versions[n]
        return Response(204)

    def validate_config(self, req: Request, app_id: str, profile_id: str) -> Response:
        p = self.profile(app_id, profile_id)
        raw = req.q("configuration_version")
        if raw is None:
            raise bad_request("ConfigurationVersion is required")
        v = self._resolve_version(p, raw)
        self._run_validators(p, v)
        return Response(204)

    # -- deployment strategies ---------------------------------------------------------------

    def strategy_json(self, st: Strategy) -> dict[str, Any]:
        return _drop_none(
            {
                "Id": st.id,
                "Name": st.name,
                "Description": st.description,
                "DeploymentDurationInMinutes": st.duration,
                "GrowthType": st.growth_type,
                "GrowthFactor": st.growth_factor,
                "FinalBakeTimeInMinutes": st.bake,
                "ReplicateTo": st.replicate_to,
            }
        )

    def create_strategy(self, req: Request) -> Response:
        body = req.json()
        name = _string(body, "Name", required=True, minimum=1, maximum=64)
        duration = _number(
            body, "DeploymentDurationInMinutes", required=True, minimum=0, maximum=1440
        )
        growth = _number(
            body, "GrowthFactor", required=True, minimum=1.0, maximum=100.0, integer=False
        )
        bake = _number(body, "FinalBakeTimeInMinutes", minimum=0, maximum=1440) or 0
        growth_type = _string(body, "GrowthType") or "LINEAR"
        if growth_type not in ("LINEAR", "EXPONENTIAL"):
            raise bad_request("GrowthType must be LINEAR or EXPONENTIAL")
        replicate = _string(body, "ReplicateTo") or "NONE"
        if replicate not in ("NONE", "SSM_DOCUMENT"):
            raise bad_request("ReplicateTo must be NONE or SSM_DOCUMENT")
        st = Strategy(
            self.s.new_id(),
            str(name),
            int(duration or 0),
            float(growth or 100.0),
            growth_type,
            int(bake),
            replicate,
            _string(body, "Description", maximum=1024),
        )
        tags = _tags(body.get("Tags"))  # every check before anything is stored
        self.s.strategies[st.id] = st
        self.s.tags[self.arn(req, f"deploymentstrategy/{st.id}")] = tags
        return json_response(201, self.strategy_json(st))

    def list_strategies(self, req: Request) -> Response:
        items = [self.strategy_json(st) for st in self.s.strategies.values()]
        return json_response(200, _paginate(items, req))

    def _strategy_id(self, raw: str) -> str:
        if not _STRATEGY_ID_RE.fullmatch(raw):
            raise bad_request(f"Invalid deployment strategy id {raw}")
        return raw

    def get_strategy(self, req: Request, strategy_id: str) -> Response:
        return json_response(200, self.strategy_json(self.strategy(self._strategy_id(strategy_id))))

    def update_strategy(self, req: Request, strategy_id: str) -> Response:
        st = self.strategy(self._strategy_id(strategy_id))
        if st.predefined:
            raise bad_request("Predefined deployment strategies cannot be updated")
        body = req.json()
        description = _string(body, "Description", maximum=1024)
        duration = _number(body, "DeploymentDurationInMinutes", minimum=0, maximum=1440)
        bake = _number(body, "FinalBakeTimeInMinutes", minimum=0, maximum=1440)
        growth = _number(body, "GrowthFactor", minimum=1.0, maximum=100.0, integer=False)
        growth_type = _string(body, "GrowthType")
        if growth_type is not None and growth_type not in ("LINEAR", "EXPONENTIAL"):
            raise bad_request("GrowthType must be LINEAR or EXPONENTIAL")
        if description is not None:
            st.description = description
        if duration is not None:
            st.duration = int(duration)
        if bake is not None:
            st.bake = int(bake)
        if growth is not None:
            st.growth_factor = float(growth)
        if growth_type is not None:
            st.growth_type = growth_type
        return json_response(200, self.strategy_json(st))

    def delete_strategy(self, req: Request, strategy_id: str) -> Response:
        st = self.strategy(self._strategy_id(strategy_id))
        if st.predefined:
            raise bad_request("Predefined deployment strategies cannot be deleted")
        del self.s.strategies[st.id]
        self.s.tags.pop(self.arn(req, f"deploymentstrategy/{st.id}"), None)
        return Response(204)

    # -- deployments -------------------------------------------------------------------------

    def deployment_json(self, d: Deployment, summary: bool = False) -> dict[str, Any]:
        now = time.time()
        state, pct, completed = progress(d, now)
        data: dict[str, Any] = {
            "DeploymentNumber": d.number,
            "ConfigurationName": d.profile_name,
            "ConfigurationVersion": str(d.version),
            "DeploymentDurationInMinutes": d.duration,
            "GrowthType": d.growth_type,
            "GrowthFactor": d.growth_factor,
            "FinalBakeTimeInMinutes": d.bake,
            "State": state,
            "PercentageComplete": pct,
            "StartedAt": iso(d.started),
            "CompletedAt": iso(completed) if completed else None,
            "VersionLabel": d.label,
        }
        if not summary:
            data.update(
                {
                    "ApplicationId": d.application_id,
                    "EnvironmentId": d.environment_id,
                    "DeploymentStrategyId": d.strategy_id,
                    "ConfigurationProfileId": d.profile_id,
                    "ConfigurationLocationUri": d.location_uri,
                    "Description": d.description,
                    "EventLog": event_log(d, now),
                    "AppliedExtensions": [],
                }
            )
        return _drop_none(data)

    def _resolve_version(self, p: Profile, raw: str) -> HostedVersion:
        if p.location_uri != "hosted":
            raise bad_request("Only hosted configurations can be deployed by this server")
        version = None
        if raw.isdigit():
            version = p.versions.get(int(raw))
        else:
            version = next((v for v in p.versions.values() if v.label == raw), None)
        if version is None:
            raise not_found(f"Hosted configuration version {raw} not found", ResourceName=raw)
        return version

    def _run_validators(self, p: Profile, v: HostedVersion) -> None:
        self._check_document(p, v.content, v.content_type)
        for validator in p.validators:
            if validator["Type"] != "JSON_SCHEMA":
                continue  # Lambda validators cannot run here
            try:
                import jsonschema
            except ImportError:  # pragma: no cover - jsonschema ships with moto[server]
                return
            try:
                document = json.loads(v.content)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise bad_request(
                    "Configuration is not valid JSON",
                    Reason="InvalidConfiguration",
                    Details={
                        "InvalidConfiguration": [
                            {"Location": "$", "Reason": "not valid JSON", "Type": "JSON_SCHEMA"}
                        ]
                    },
                ) from exc
            errors = list(
                jsonschema.Draft7Validator(json.loads(validator["Content"])).iter_errors(document)
            )
            if errors:
                raise bad_request(
                    "Configuration failed JSON schema validation",
                    Reason="InvalidConfiguration",
                    Details={
                        "InvalidConfiguration": [
                            {
                                "Location": "$" + "".join(f".{x}" for x in e.path),
                                "Reason": e.message[:300],
                                "Type": "JSON_SCHEMA",
                                "Constraint": str(e.validator),
                            }
                            for e in errors[:20]
                        ]
                    },
                )

    def served_version(
        self, app_id: str, env_id: str, profile_id: str, bucket: float
    ) -> int | None:
        """Which hosted version a caller in ``bucket`` (0-100) receives right now."""
        now = time.time()
        history = [
            d for d in self.s.deployments.get((app_id, env_id), []) if d.profile_id == profile_id
        ]
        if not history:
            return None
        d = history[-1]
        state, pct, _ = progress(d, now)
        if state in ("ROLLED_BACK", "REVERTED"):
            return d.previous
        if state == "DEPLOYING" and bucket >= pct:
            return d.previous
        return d.version

    def start_deployment(self, req: Request, app_id: str, env_id: str) -> Response:
        self.env(app_id, env_id)
        body = req.json()
        strategy_id = _string(body, "DeploymentStrategyId", required=True)
        profile_id = _string(body, "ConfigurationProfileId", required=True, minimum=1, maximum=128)
        raw_version = _string(body, "ConfigurationVersion", required=True, minimum=1, maximum=1024)
        description = _string(body, "Description", maximum=1024)
        tags = _tags(body.get("Tags"))  # every check before anything is changed
        st = self.strategy(self._strategy_id(str(strategy_id)))
        p = self.profile(app_id, str(profile_id))
        v = self._resolve_version(p, str(raw_version))
        self._run_validators(p, v)
        now = time.time()
        history = self.s.deployments.setdefault((app_id, env_id), [])
        for other in history:
            if other.profile_id != p.id:
                continue
            state = progress(other, now)[0]
            if state == "DEPLOYING":
                raise conflict(
                    f"Deployment {other.number} of configuration profile {p.id} to environment "
                    f"{env_id} is in progress"
                )
            if state == "BAKING":
                other.superseded = now
        d = Deployment(
            app_id,
            env_id,
            len(history) + 1,
            p.id,
            p.name,
            p.location_uri,
            v.number,
            v.label,
            st.id,
            st.duration,
            st.growth_factor,
            st.growth_type,
            st.bake,
            description,
            now,
            previous=self.served_version(app_id, env_id, p.id, 100.0),
        )
        history.append(d)
        self.s.tags[
            self.arn(req, f"application/{app_id}/environment/{env_id}/deployment/{d.number}")
        ] = tags
        return json_response(201, self.deployment_json(d))

    def _deployment(self, app_id: str, env_id: str, number: str) -> Deployment:
        self.env(app_id, env_id)
        try:
            n = int(number)
        except ValueError as exc:
            raise bad_request("DeploymentNumber must be an integer") from exc
        history = self.s.deployments.get((app_id, env_id), [])
        if not 1 <= n <= len(history):
            raise not_found(f"Deployment {number} not found", ResourceName=number)
        return history[n - 1]

    def get_deployment(self, req: Request, app_id: str, env_id: str, number: str) -> Response:
        return json_response(200, self.deployment_json(self._deployment(app_id, env_id, number)))

    def list_deployments(self, req: Request, app_id: str, env_id: str) -> Response:
        self.env(app_id, env_id)
        history = self.s.deployments.get((app_id, env_id), [])
        items = [self.deployment_json(d, summary=True) for d in reversed(history)]
        return json_response(200, _paginate(items, req))

    def stop_deployment(self, req: Request, app_id: str, env_id: str, number: str) -> Response:
        d = self._deployment(app_id, env_id, number)
        state = progress(d, time.time())[0]
        allow_revert = (req.headers.get("Allow-Revert") or "").lower() == "true"
        if state in ("DEPLOYING", "BAKING") or (allow_revert and state == "COMPLETE"):
            d.stopped = time.time()
            d.revert = state == "COMPLETE"
            d.superseded = None
        else:
            raise bad_request(f"Deployment {number} is {state} and cannot be stopped")
        return json_response(202, self.deployment_json(d))

    # -- the legacy GetConfiguration ----------------------------------------------------------

    def _by_name_or_id(
        self, app: str, env: str, profile: str
    ) -> tuple[Application, Environment, Profile]:
        a = self.s.applications.get(app) or next(
            (x for x in self.s.applications.values() if x.name == app), None
        )
        if a is None:
            raise not_found(
                f"Application {app} not found",
                ResourceType="Application",
                ReferencedBy={"ApplicationIdentifier": app},
            )
        e = self.s.environments.get((a.id, env)) or next(
            (x for k, x in self.s.environments.items() if k[0] == a.id and x.name == env), None
        )
        if e is None:
            raise not_found(
                f"Environment {env} not found",
                ResourceType="Environment",
                ReferencedBy={"EnvironmentIdentifier": env},
            )
        p = self.s.profiles.get((a.id, profile)) or next(
            (x for k, x in self.s.profiles.items() if k[0] == a.id and x.name == profile), None
        )
        if p is None:
            raise not_found(
                f"Configuration profile {profile} not found",
                ResourceType="ConfigurationProfile",
                ReferencedBy={"ConfigurationProfileIdentifier": profile},
            )
        return a, e, p

    def _served(self, p: Profile, number: int) -> tuple[bytes, str, str | None]:
        v = p.versions.get(number)
        if v is None:  # the deployed version was deleted from the store: still served
            return b"", "application/octet-stream", None
        if p.type == FEATURE_FLAGS:
            return feature_flags.evaluate(v.content), "application/json", v.label
        return v.content, v.content_type, v.label

    def get_configuration(self, req: Request, app: str, env: str, profile: str) -> Response:
        client_id = req.q("client_id")
        if not client_id or len(client_id) > 64:
            raise bad_request("ClientId is required")
        a, e, p = self._by_name_or_id(app, env, profile)
        bucket = int(hashlib.sha256(client_id.encode()).hexdigest(), 16) % 10000 / 100
        number = self.served_version(a.id, e.id, p.id, bucket)
        if number is None:
            raise not_found("Configuration not deployed", ResourceName=profile)
        content, content_type, _ = self._served(p, number)
        headers = {"Configuration-Version": str(number), "Content-Type": content_type}
        if req.q("client_configuration_version") == str(number):
            content = b""
        return Response(200, content, headers)

    # -- tags ------------------------------------------------------------------------------

    def _tag_target(self, arn: str) -> dict[str, str]:
        if not re.fullmatch(
            r"arn:(aws[a-zA-Z-]*)?:[a-z]+:[a-z0-9-]*:(\d{12})?:[a-zA-Z0-9-_/:.]+", arn
        ):
            raise bad_request(f"Invalid ARN {arn}")
        tags = self.s.tags.get(arn)
        if tags is None:
            raise not_found(f"Resource {arn} not found", ResourceName=arn)
        return tags

    def list_tags(self, req: Request, arn: str) -> Response:
        return json_response(200, {"Tags": self._tag_target(arn)})

    def tag_resource(self, req: Request, arn: str) -> Response:
        tags = self._tag_target(arn)
        body = req.json()
        if "Tags" not in body:
            raise bad_request("Tags is required")
        new = _tags(body["Tags"])
        if len({**tags, **new}) > 50:
            raise bad_request("A resource can have at most 50 tags")
        tags.update(new)
        return Response(204)

    def untag_resource(self, req: Request, arn: str) -> Response:
        tags = self._tag_target(arn)
        keys = req.query.get("tagKeys")
        if keys is None:
            raise bad_request("TagKeys is required")
        for key in keys:
            tags.pop(key, None)
        return Response(204)

    # -- account settings ------------------------------------------------------------------

    def get_account_settings(self, req: Request) -> Response:
        return json_response(200, self.s.account_settings)

    def update_account_settings(self, req: Request) -> Response:
        body = req.json()
        protection = body.get("DeletionProtection")
        if isinstance(protection, dict):
            self.s.account_settings["DeletionProtection"].update(protection)
        return json_response(200, self.s.account_settings)

    # -- AppConfigData ---------------------------------------------------------------------

    def _data_bad_request(self, message: str, parameter: str, problem: str) -> ApiError:
        return bad_request(
            message,
            Reason="InvalidParameters",
            Details={"InvalidParameters": {parameter: {"Problem": problem}}},
        )

    def _issue(self, token: Token) -> str:
        text = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
        self.s.tokens[text] = token
        return text

    def start_session(self, req: Request) -> Response:
        self.s.throttle()
        body = req.json()
        app = _string(body, "ApplicationIdentifier", required=True, minimum=1, maximum=128)
        env = _string(body, "EnvironmentIdentifier", required=True, minimum=1, maximum=128)
        prof = _string(
            body, "ConfigurationProfileIdentifier", required=True, minimum=1, maximum=128
        )
        # AWS's minimum is 15 s; this server accepts any value >= 0 so tests can poll fast.
        interval = _number(body, "RequiredMinimumPollIntervalInSeconds", minimum=0, maximum=86400)
        a, e, p = self._by_name_or_id(str(app), str(env), str(prof))
        now = time.time()
        token = Token(
            secrets.token_hex(16),
            a.id,
            e.id,
            p.id,
            DEFAULT_POLL_INTERVAL if interval is None else int(interval),
            issued=now,
            not_before=0.0,
            delivered=None,
        )
        return json_response(201, {"InitialConfigurationToken": self._issue(token)})

    def get_latest_configuration(self, req: Request) -> Response:
        self.s.throttle()
        raw = req.q("configuration_token")
        if not raw:
            raise bad_request("ConfigurationToken is required")
        token = self.s.tokens.get(raw)
        if token is None:
            raise self._data_bad_request(
                "Request parameter ConfigurationToken is corrupted",
                "ConfigurationToken",
                "Corrupted",
            )
        now = time.time()
        if now - token.issued > self.s.token_ttl:
            del self.s.tokens[raw]
            raise self._data_bad_request(
                "Request parameter ConfigurationToken has expired", "ConfigurationToken", "Expired"
            )
        if now + POLL_TOLERANCE < token.not_before:
            raise self._data_bad_request(
                "Poll interval not satisfied: wait before polling with this token",
                "ConfigurationToken",
                "PollIntervalNotSatisfied",
            )
        a = self.s.applications.get(token.app)
        e = self.s.environments.get((token.app, token.env))
        p = self.s.profiles.get((token.app, token.profile))
        if a is None or e is None or p is None:
            kind = (
                "Application"
                if a is None
                else "Environment"
                if e is None
                else ("ConfigurationProfile")
            )
            raise not_found(f"{kind} of this session no longer exists", ResourceType=kind)
        bucket = int(token.session, 16) % 10000 / 100
        number = self.served_version(a.id, e.id, p.id, bucket)
        if number is None:
            raise not_found(
                "No configuration has been deployed to this environment", ResourceType="Deployment"
            )
        content, content_type, label = self._served(p, number)
        following = Token(
            token.session,
            token.app,
            token.env,
            token.profile,
            token.interval,
            issued=now,
            not_before=now + token.interval,
            delivered=number,
        )
        headers = {
            "Next-Poll-Configuration-Token": self._issue(following),
            "Next-Poll-Interval-In-Seconds": str(token.interval),
            "Content-Type": content_type,
        }
        if label is not None:
            headers["Version-Label"] = label
        if token.delivered == number:
            content = b""
        del self.s.tokens[raw]  # a token is good for one poll
        self._expire_tokens(now)
        return Response(200, content, headers)

    def _expire_tokens(self, now: float) -> None:
        if len(self.s.tokens) > 10000:
            for key in [k for k, t in self.s.tokens.items() if now - t.issued > self.s.token_ttl]:
                del self.s.tokens[key]


# -- HTTP plumbing -----------------------------------------------------------------------------

_CREDENTIAL_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server_version = "AppConfigTestServer/1.0"
    service: AppConfigService

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _handle(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "Bad Content-Length")
            return
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        segments = (
            [unquote(s) for s in parts.path.strip("/").split("/")] if parts.path.strip("/") else []
        )
        match = _CREDENTIAL_RE.search(self.headers.get("Authorization") or "")
        req = Request(
            self.command,
            segments,
            parse_qs(parts.query, keep_blank_values=True),
            self.headers,
            body,
            match.group(1) if match else DEFAULT_REGION,
        )
        request_id = secrets.token_hex(16)
        try:
            response = self.service.dispatch(req)
        except ApiError as exc:
            payload = {"Message": exc.message, **exc.extra}
            response = Response(
                exc.status,
                json.dumps(payload).encode(),
                {
                    "Content-Type": "application/json",
                    "x-amzn-ErrorType": exc.error_type,
                },
            )
        except Exception:  # a bug here must still answer like the service does
            log.exception("internal error")
            response = Response(
                500,
                b'{"Message":"Internal server error"}',
                {
                    "Content-Type": "application/json",
                    "x-amzn-ErrorType": "InternalServerException",
                },
            )
        if response.status >= 500:
            # the path only: query strings can carry configuration tokens
            log.error(
                "%s /%s answered %d %s (request %s)",
                self.command,
                parts.path.strip("/"),
                response.status,
                response.headers.get("x-amzn-ErrorType", ""),
                request_id,
            )
        self.send_response(response.status, HTTPStatus(response.status).phrase)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle


def make_server(host: str, port: int, state: State | None = None) -> ThreadingHTTPServer:
    service = AppConfigService(state or State())
    handler = type("BoundHandler", (Handler,), {"service": service})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
