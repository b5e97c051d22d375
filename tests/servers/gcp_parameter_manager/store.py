"""The Parameter Manager v1 state machine shared by the REST and gRPC front ends.

Methods take the client package's own protobuf request messages and return the
response messages, or raise :class:`ApiError` with the canonical status, the way the
real service answers (written from the public Parameter Manager v1 API reference).
Secret references in JSON/YAML versions are rendered against a Secret Manager test
state (:class:`SecretStore`) living in the same process.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from google.cloud.parametermanager_v1.types import service
from google.protobuf import empty_pb2

from tests.servers.gcp_common import (
    ApiError,
    MethodTable,
    copy_message,
    crc32c,
    method_table,
    now,
    request_filter,
    update_paths,
)
from tests.servers.gcp_secret_manager.filters import Predicate
from tests.servers.gcp_secret_manager.store import SecretStore

ParameterPb: Any = service.Parameter.pb()
VersionPb: Any = service.ParameterVersion.pb()

UNFORMATTED = int(service.ParameterFormat.UNFORMATTED)
YAML = int(service.ParameterFormat.YAML)
JSON = int(service.ParameterFormat.JSON)
FORMAT_NAMES = {UNFORMATTED: "UNFORMATTED", YAML: "YAML", JSON: "JSON"}
BASIC = int(service.View.BASIC)

#: One parameter version's payload may be at most 1 MiB.
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_PAGE_SIZE = 1000
PROJECT_NUMBER = "123456789012"

_PROJECT = r"[a-z0-9][a-z0-9.:-]{0,62}"
_LOCATION = r"[a-z0-9][a-z0-9-]{0,62}"
PARENT_RE = re.compile(rf"projects/(?P<project>{_PROJECT})/locations/(?P<location>{_LOCATION})")
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,63}")
PARAMETER_RE = re.compile(rf"(?P<parent>{PARENT_RE.pattern})/parameters/(?P<id>[^/]+)")
VERSION_RE = re.compile(rf"(?P<parameter>{PARAMETER_RE.pattern})/versions/(?P<version>[^/]+)")
#: ``__REF__(//secretmanager.googleapis.com/<secret version>)``, the resource optionally
#: in (JSON-escaped) double quotes.
REFERENCE_RE = re.compile(
    r'__REF__\((?:\\?")?//secretmanager\.googleapis\.com/'
    r'(?P<name>projects/[^/"\\)]+(?:/locations/[^/"\\)]+)?/secrets/[^/"\\)]+/versions/[^/"\\)]+)'
    r'(?:\\?")?\)'
)


@dataclass
class _Parameter:
    pb: Any
    versions: dict[str, Any] = field(default_factory=dict)  # version id -> ParameterVersion pb


class ParameterStore:
    """All projects' parameters in memory, behind one lock; renders against ``secrets``."""

    def __init__(self, secrets: SecretStore) -> None:
        self._lock = threading.Lock()
        self._secrets = secrets
        self._parameters: dict[str, _Parameter] = {}
        self._clock = itertools.count()

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _check_parent(parent: str) -> None:
        if PARENT_RE.fullmatch(parent) is None:
            raise ApiError(
                "INVALID_ARGUMENT", f"Invalid resource field value in the request: {parent!r}"
            )

    def _parameter(self, name: str) -> _Parameter:
        if PARAMETER_RE.fullmatch(name) is None:
            raise ApiError("INVALID_ARGUMENT", f"Invalid resource name {name!r}")
        found = self._parameters.get(name)
        if found is None:
            raise ApiError("NOT_FOUND", f"Parameter [{name}] not found.")
        return found

    def _version(self, name: str) -> tuple[_Parameter, Any]:
        match = VERSION_RE.fullmatch(name)
        if match is None:
            raise ApiError("INVALID_ARGUMENT", f"Invalid resource name {name!r}")
        parameter = self._parameter(match["parameter"])
        version = parameter.versions.get(match["version"])
        if version is None:
            raise ApiError("NOT_FOUND", f"ParameterVersion [{name}] not found.")
        return parameter, version

    def _listing(
        self, request: Any, items: list[Any], matches: Predicate, response: Any, field: str
    ) -> Any:
        """``response`` with one page of the ``items`` that match, in ``order_by`` order."""
        items = _ordered([pb for pb in items if matches(pb)], request.order_by)
        page, token = self._page(items, request.page_size, request.page_token)
        getattr(response, field).extend(page)
        response.next_page_token = token
        return response

    @staticmethod
    def _page(items: list[Any], page_size: int, page_token: str) -> tuple[list[Any], str]:
        if page_size < 0:
            raise ApiError("INVALID_ARGUMENT", "page_size must not be negative")
        size = min(page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        start = 0
        if page_token:
            if not page_token.startswith("o") or not page_token[1:].isdigit():
                raise ApiError("INVALID_ARGUMENT", "Invalid page token")
            start = int(page_token[1:])
        page = items[start : start + size]
        token = f"o{start + size}" if start + size < len(items) else ""
        return page, token

    @staticmethod
    def _validate_payload(data: bytes, fmt: int) -> None:
        if len(data) > MAX_PAYLOAD_BYTES:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Payload is {len(data)} bytes; a parameter version holds at most "
                f"{MAX_PAYLOAD_BYTES}",
            )
        if fmt == UNFORMATTED:
            return
        try:
            text = data.decode("utf-8")
            if fmt == JSON:
                json.loads(text)
            else:
                yaml.safe_load(text)
        except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Payload is not valid {FORMAT_NAMES[fmt]} for a {FORMAT_NAMES[fmt]} parameter",
            ) from exc

    # -- parameters --------------------------------------------------------------------

    def create_parameter(self, request: Any) -> Any:
        self._check_parent(request.parent)
        if not request.parameter_id:
            raise ApiError("INVALID_ARGUMENT", "Field [parameter_id] is required.")
        if ID_RE.fullmatch(request.parameter_id) is None:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Parameter ID must match [a-zA-Z0-9_-]{{1,63}}; got {request.parameter_id[:70]!r}",
            )
        fmt = request.parameter.format_ or UNFORMATTED
        if fmt not in FORMAT_NAMES:
            raise ApiError("INVALID_ARGUMENT", f"Unknown parameter format {fmt}")
        name = f"{request.parent}/parameters/{request.parameter_id}"
        parameter = ParameterPb()
        parameter.labels.update(request.parameter.labels)
        parameter.name = name
        parameter.format_ = fmt
        parameter.create_time.CopyFrom(now())
        parameter.update_time.CopyFrom(parameter.create_time)
        match = PARENT_RE.fullmatch(request.parent)
        assert match is not None
        location = match["location"]
        parameter.policy_member.iam_policy_uid_principal = (
            f"principal://parametermanager.googleapis.com/projects/{PROJECT_NUMBER}/uid/"
            f"locations/{location}/parameters/{uuid.uuid4()}"
        )
        parameter.policy_member.iam_policy_name_principal = (
            f"principal://parametermanager.googleapis.com/projects/{PROJECT_NUMBER}/name/"
            f"locations/{location}/parameters/{request.parameter_id}"
        )
        with self._lock:
            if name in self._parameters:
                raise ApiError("ALREADY_EXISTS", f"Parameter [{name}] already exists.")
            self._parameters[name] = _Parameter(parameter)
            return copy_message(parameter)

    def get_parameter(self, request: Any) -> Any:
        with self._lock:
            return copy_message(self._parameter(request.name).pb)

    def list_parameters(self, request: Any) -> Any:
        self._check_parent(request.parent)
        matches = request_filter(request.filter, _parameter_field, _PARAMETER_FIELDS, _MAPS)
        prefix = request.parent + "/parameters/"
        with self._lock:
            items = [
                copy_message(p.pb) for n, p in self._parameters.items() if n.startswith(prefix)
            ]
        response = service.ListParametersResponse.pb()()
        return self._listing(request, items, matches, response, "parameters")

    def update_parameter(self, request: Any) -> Any:
        paths = update_paths(request)
        for path in paths:
            if path != "labels":
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"update_mask path {path!r} cannot be updated (format is immutable; this "
                    "test server updates labels only)",
                )
        with self._lock:
            parameter = self._parameter(request.parameter.name)
            parameter.pb.labels.clear()
            parameter.pb.labels.update(request.parameter.labels)
            parameter.pb.update_time.CopyFrom(now())
            return copy_message(parameter.pb)

    def delete_parameter(self, request: Any) -> Any:
        with self._lock:
            parameter = self._parameter(request.name)
            if parameter.versions:
                raise ApiError(
                    "FAILED_PRECONDITION",
                    f"Parameter [{request.name}] has {len(parameter.versions)} versions; "
                    "delete them first.",
                )
            del self._parameters[request.name]
        return empty_pb2.Empty()

    # -- versions ----------------------------------------------------------------------

    def create_parameter_version(self, request: Any) -> Any:
        version_id = request.parameter_version_id
        if not version_id:
            raise ApiError("INVALID_ARGUMENT", "Field [parameter_version_id] is required.")
        if ID_RE.fullmatch(version_id) is None:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Version ID must match [a-zA-Z0-9_-]{{1,63}}; got {version_id[:70]!r}",
            )
        given = request.parameter_version
        if not given.HasField("payload") or not given.payload.data:
            raise ApiError(
                "INVALID_ARGUMENT", "Field [parameter_version.payload.data] is required."
            )
        data = bytes(given.payload.data)
        if given.payload.HasField("data_crc32c") and given.payload.data_crc32c != crc32c(data):
            raise ApiError("INVALID_ARGUMENT", "Checksum mismatch: data_crc32c does not match")
        with self._lock:
            parameter = self._parameter(request.parent)
            self._validate_payload(data, parameter.pb.format_)
            if version_id in parameter.versions:
                raise ApiError(
                    "ALREADY_EXISTS",
                    f"ParameterVersion [{request.parent}/versions/{version_id}] already exists.",
                )
            version = VersionPb()
            version.name = f"{request.parent}/versions/{version_id}"
            version.create_time.CopyFrom(now())
            version.update_time.CopyFrom(version.create_time)
            version.disabled = given.disabled
            version.payload.data = data
            parameter.versions[version_id] = version
            # creation order breaks ties between equal timestamps
            version.create_time.nanos = (version.create_time.nanos // 1000) * 1000 + (
                next(self._clock) % 1000
            )
            return _basic(version, full=True)

    def get_parameter_version(self, request: Any) -> Any:
        with self._lock:
            _, version = self._version(request.name)
            return _basic(version, full=request.view != BASIC)

    def list_parameter_versions(self, request: Any) -> Any:
        matches = request_filter(request.filter, _version_field, _VERSION_FIELDS)
        with self._lock:
            parameter = self._parameter(request.parent)
            items = [_basic(v, full=False) for v in parameter.versions.values()]
        response = service.ListParameterVersionsResponse.pb()()
        return self._listing(request, items, matches, response, "parameter_versions")

    def update_parameter_version(self, request: Any) -> Any:
        paths = update_paths(request)
        if any(path != "disabled" for path in paths):
            raise ApiError("INVALID_ARGUMENT", "Only 'disabled' of a version can be updated.")
        with self._lock:
            _, version = self._version(request.parameter_version.name)
            version.disabled = request.parameter_version.disabled
            version.update_time.CopyFrom(now())
            return _basic(version, full=True)

    def delete_parameter_version(self, request: Any) -> Any:
        with self._lock:
            parameter, version = self._version(request.name)
            del parameter.versions[version.name.rsplit("/", 1)[1]]
        return empty_pb2.Empty()

    def render_parameter_version(self, request: Any) -> Any:
        with self._lock:
            parameter, version = self._version(request.name)
            if version.disabled:
                raise ApiError(
                    "FAILED_PRECONDITION",
                    f"ParameterVersion [{request.name}] is disabled and cannot be rendered.",
                )
            fmt = parameter.pb.format_
            member = parameter.pb.policy_member.iam_policy_uid_principal
            data = bytes(version.payload.data)
        response = service.RenderParameterVersionResponse.pb()()
        response.parameter_version = request.name
        response.payload.data = data
        response.rendered_payload = data if fmt == UNFORMATTED else self._render(data, fmt, member)
        return response

    def _render(self, data: bytes, fmt: int, member: str) -> bytes:
        text = data.decode("utf-8")

        def substitute(match: re.Match[str]) -> str:
            reference = match["name"]
            try:
                secret = self._secrets.reference_payload(reference, member)
            except ApiError as exc:
                raise ApiError(
                    exc.status,
                    f"Failed to render secret reference "
                    f"//secretmanager.googleapis.com/{reference}: {exc.status}",
                ) from exc
            try:
                value = secret.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"Secret reference //secretmanager.googleapis.com/{reference} is not UTF-8",
                ) from exc
            return json.dumps(value)[1:-1] if fmt == JSON else value

        return REFERENCE_RE.sub(substitute, text).encode("utf-8")


def _basic(version: Any, *, full: bool) -> Any:
    """A copy of ``version``; without its payload for the BASIC view (and when disabled)."""
    clone = copy_message(version)
    if not full or version.disabled:
        clone.ClearField("payload")
    return clone


def _ordered(items: list[Any], order_by: str) -> list[Any]:
    spec = " ".join(order_by.split()).lower()
    if spec in ("", "name", "name asc"):
        return sorted(items, key=lambda pb: pb.name)
    if spec == "name desc":
        return sorted(items, key=lambda pb: pb.name, reverse=True)
    stamp: Callable[[Any], tuple[int, int]] = lambda pb: (  # noqa: E731
        pb.create_time.seconds,
        pb.create_time.nanos,
    )
    if spec in ("create_time", "create_time asc"):
        return sorted(items, key=stamp)
    if spec == "create_time desc":
        return sorted(items, key=stamp, reverse=True)
    raise ApiError("INVALID_ARGUMENT", f"Unsupported order_by {order_by!r}")


_PARAMETER_FIELDS = frozenset({"name", "labels", "format"})
_MAPS = frozenset({"labels"})
_VERSION_FIELDS = frozenset({"name", "disabled"})


def _parameter_field(parameter: Any, name: str) -> str | dict[str, str] | None:
    if name == "name":
        return str(parameter.name)
    if name == "labels":
        return dict(parameter.labels)
    if name == "format":
        return FORMAT_NAMES.get(parameter.format_, "PARAMETER_FORMAT_UNSPECIFIED")
    return None


def _version_field(version: Any, name: str) -> str | dict[str, str] | None:
    if name == "name":
        return str(version.name)
    if name == "disabled":
        return "true" if version.disabled else "false"
    return None


SERVICE = "google.cloud.parametermanager.v1.ParameterManager"


def methods(store: ParameterStore) -> MethodTable:
    """gRPC method name -> (store method, request pb class, response pb class)."""
    return method_table(
        store,
        service,
        {
            "ListParameters": None,
            "GetParameter": ParameterPb,
            "CreateParameter": ParameterPb,
            "UpdateParameter": ParameterPb,
            "DeleteParameter": empty_pb2.Empty,
            "ListParameterVersions": None,
            "GetParameterVersion": VersionPb,
            "RenderParameterVersion": None,
            "CreateParameterVersion": VersionPb,
            "UpdateParameterVersion": VersionPb,
            "DeleteParameterVersion": empty_pb2.Empty,
        },
    )


__all__ = ["MAX_PAYLOAD_BYTES", "REFERENCE_RE", "SERVICE", "ParameterStore", "methods"]
