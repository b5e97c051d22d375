"""The Secret Manager v1 state machine shared by the REST and gRPC front ends.

Every method takes the request as the client package's own protobuf message and
returns the response message, or raises :class:`ApiError` with the canonical status
code and a one-line message, the way the real service answers. Written from the
public Secret Manager v1 API reference; see docs/stores/gcp-secret-manager.md for
what is not reproduced.
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.cloud.secretmanager_v1.types import resources, service
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import empty_pb2, timestamp_pb2

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

SecretPb: Any = resources.Secret.pb()
SecretVersionPb: Any = resources.SecretVersion.pb()
SecretPayloadPb: Any = resources.SecretPayload.pb()

ENABLED = int(resources.SecretVersion.State.ENABLED)
DISABLED = int(resources.SecretVersion.State.DISABLED)
DESTROYED = int(resources.SecretVersion.State.DESTROYED)
STATE_NAMES = {ENABLED: "ENABLED", DISABLED: "DISABLED", DESTROYED: "DESTROYED"}

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PAGE_SIZE = 25_000
MAX_LABELS = 64
MAX_ANNOTATIONS_BYTES = 16 * 1024

_PROJECT = r"[a-z0-9][a-z0-9.:-]{0,62}"
_LOCATION = r"[a-z0-9][a-z0-9-]{0,62}"
PARENT_RE = re.compile(
    rf"projects/(?P<project>{_PROJECT})(?:/locations/(?P<location>{_LOCATION}))?"
)
SECRET_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")
SECRET_RE = re.compile(rf"(?P<parent>{PARENT_RE.pattern})/secrets/(?P<id>[^/]+)")
VERSION_RE = re.compile(rf"(?P<secret>{SECRET_RE.pattern})/versions/(?P<version>[^/]+)")
LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")
ANNOTATION_KEY_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
UPDATABLE_PATHS = {"labels", "annotations", "version_aliases", "ttl", "expire_time"}
ALIAS_RE = re.compile(r"[A-Za-z0-9_-]{1,63}")
MAX_ALIASES = 50


@dataclass
class _Version:
    pb: Any
    data: bytes | None
    crc: int | None


@dataclass
class _Secret:
    pb: Any
    versions: list[_Version] = field(default_factory=list)
    policy: Any = None  # a google.iam.v1 Policy once SetIamPolicy was called


class SecretStore:
    """All projects' secrets, in memory, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}
        self._etags = itertools.count(1_700_000_000_000_000)

    # -- helpers -----------------------------------------------------------------------

    def _etag(self) -> str:
        return f'"{next(self._etags):x}"'

    @staticmethod
    def _parent(parent: str) -> re.Match[str]:
        match = PARENT_RE.fullmatch(parent)
        if match is None:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid resource field value in the request: parent {parent!r}",
            )
        return match

    def _secret(self, name: str) -> _Secret:
        if SECRET_RE.fullmatch(name) is None:
            raise ApiError(
                "INVALID_ARGUMENT", f"Invalid resource field value in the request: name {name!r}"
            )
        secret = self._secrets.get(name)
        if (
            secret is not None
            and secret.pb.HasField("expire_time")
            and secret.pb.expire_time.ToNanoseconds() <= now().ToNanoseconds()
        ):
            del self._secrets[name]  # expired: the service deletes it
            secret = None
        if secret is None:
            raise ApiError("NOT_FOUND", f"Secret [{name}] not found or has no versions.")
        return secret

    def _version(self, name: str) -> tuple[_Secret, _Version]:
        match = VERSION_RE.fullmatch(name)
        if match is None:
            raise ApiError(
                "INVALID_ARGUMENT", f"Invalid resource field value in the request: name {name!r}"
            )
        secret = self._secret(match["secret"])
        ref = match["version"]
        if ref == "latest":
            if not secret.versions:
                raise ApiError(
                    "NOT_FOUND", f"Secret [{match['secret']}] not found or has no versions."
                )
            return secret, secret.versions[-1]
        if not ref.isdigit():
            if ref not in secret.pb.version_aliases:
                raise ApiError("NOT_FOUND", f"Secret Version [{name}] not found.")
            ref = str(secret.pb.version_aliases[ref])
        if int(ref) < 1:
            raise ApiError("INVALID_ARGUMENT", f"Invalid version id {ref!r}")
        number = int(ref)
        if number > len(secret.versions):
            raise ApiError("NOT_FOUND", f"Secret Version [{name}] not found.")
        return secret, secret.versions[number - 1]

    @staticmethod
    def _check_etag(given: str, current: str) -> None:
        if given and given != current:
            raise ApiError(
                "ABORTED",
                f"The etag provided in the request ({given}) does not match the current etag",
            )

    @staticmethod
    def _validate_labels(labels: Any) -> None:
        if len(labels) > MAX_LABELS:
            raise ApiError("INVALID_ARGUMENT", f"A secret can have at most {MAX_LABELS} labels")
        for key, value in labels.items():
            if LABEL_KEY_RE.fullmatch(key) is None:
                raise ApiError("INVALID_ARGUMENT", f"Invalid label key {key!r}")
            if LABEL_VALUE_RE.fullmatch(value) is None:
                raise ApiError("INVALID_ARGUMENT", f"Invalid label value {value!r} for key {key!r}")

    @staticmethod
    def _validate_aliases(aliases: Any, versions: int) -> None:
        if len(aliases) > MAX_ALIASES:
            raise ApiError("INVALID_ARGUMENT", f"A secret can have at most {MAX_ALIASES} aliases")
        for alias, number in aliases.items():
            if ALIAS_RE.fullmatch(alias) is None or alias == "latest" or alias.isdigit():
                raise ApiError("INVALID_ARGUMENT", f"Invalid version alias {alias!r}")
            if not 1 <= number <= versions:
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"Version alias {alias!r} refers to version {number}, which does not exist",
                )

    @staticmethod
    def _expiration(secret: Any, given: Any) -> None:
        """``ttl`` is input only: the secret keeps (and answers with) ``expire_time``."""
        if given.HasField("ttl"):
            ttl = given.ttl.ToNanoseconds()
            if ttl <= 0:
                raise ApiError("INVALID_ARGUMENT", "ttl must be positive")
            stamp = timestamp_pb2.Timestamp()
            stamp.FromNanoseconds(now().ToNanoseconds() + ttl)
            secret.expire_time.CopyFrom(stamp)
        elif given.HasField("expire_time"):
            if given.expire_time.ToNanoseconds() <= now().ToNanoseconds():
                raise ApiError("INVALID_ARGUMENT", "expire_time must be in the future")
            secret.expire_time.CopyFrom(given.expire_time)
        else:
            secret.ClearField("expire_time")

    @staticmethod
    def _validate_annotations(annotations: Any) -> None:
        total = 0
        for key, value in annotations.items():
            if ANNOTATION_KEY_RE.fullmatch(key) is None:
                raise ApiError("INVALID_ARGUMENT", f"Invalid annotation key {key!r}")
            total += len(key.encode()) + len(value.encode())
        if total > MAX_ANNOTATIONS_BYTES:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Annotations are {total} bytes; keys and values together may be at most "
                f"{MAX_ANNOTATIONS_BYTES}",
            )

    @staticmethod
    def _page(
        items: list[Any], page_size: int, page_token: str, key: Callable[[Any], str]
    ) -> tuple[list[Any], str]:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise ApiError("INVALID_ARGUMENT", f"page_size must be between 0 and {MAX_PAGE_SIZE}")
        size = page_size or MAX_PAGE_SIZE
        start = 0
        if page_token:
            try:
                after = base64.urlsafe_b64decode(page_token.encode()).decode()
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError("INVALID_ARGUMENT", "Invalid page token") from exc
            if not after.startswith("p:"):
                raise ApiError("INVALID_ARGUMENT", "Invalid page token")
            after = after[2:]
            start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
        page = items[start : start + size]
        more = start + size < len(items)
        token = (
            base64.urlsafe_b64encode(f"p:{key(page[-1])}".encode()).decode()
            if more and page
            else ""
        )
        return page, token

    # -- secrets -----------------------------------------------------------------------

    def create_secret(self, request: Any) -> Any:
        match = self._parent(request.parent)
        if not request.secret_id:
            raise ApiError("INVALID_ARGUMENT", "Field [secret_id] is required.")
        if SECRET_ID_RE.fullmatch(request.secret_id) is None:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Secret ID must match [a-zA-Z0-9_-]{{1,255}}; got {request.secret_id[:60]!r}",
            )
        given = request.secret
        regional = match["location"] is not None
        has_replication = given.HasField("replication") and (
            given.replication.HasField("automatic") or given.replication.HasField("user_managed")
        )
        if regional and has_replication:
            raise ApiError("INVALID_ARGUMENT", "Regional secrets do not take a replication policy")
        if not regional and not has_replication:
            raise ApiError("INVALID_ARGUMENT", "Field [secret.replication] is required.")
        if (
            given.replication.HasField("user_managed")
            and not given.replication.user_managed.replicas
        ):
            raise ApiError(
                "INVALID_ARGUMENT", "Field [secret.replication.user_managed.replicas] is required."
            )
        self._validate_labels(given.labels)
        self._validate_annotations(given.annotations)
        self._validate_aliases(given.version_aliases, 0)
        name = f"{request.parent}/secrets/{request.secret_id}"
        secret = SecretPb()
        secret.CopyFrom(given)
        self._expiration(secret, given)
        secret.name = name
        secret.create_time.CopyFrom(now())
        with self._lock:
            if name in self._secrets:
                raise ApiError("ALREADY_EXISTS", f"Secret [{name}] already exists.")
            secret.etag = self._etag()
            self._secrets[name] = _Secret(secret)
            return copy_message(secret)

    def get_secret(self, request: Any) -> Any:
        with self._lock:
            return copy_message(self._secret(request.name).pb)

    def list_secrets(self, request: Any) -> Any:
        self._parent(request.parent)
        matches = request_filter(request.filter, _secret_fields, _SECRET_FIELDS, _SECRET_MAPS)
        prefix = request.parent + "/secrets/"
        with self._lock:
            items = sorted(
                (copy_message(s.pb) for n, s in self._secrets.items() if n.startswith(prefix)),
                key=lambda pb: pb.name,
            )
        items = [pb for pb in items if matches(pb)]
        page, token = self._page(items, request.page_size, request.page_token, lambda pb: pb.name)
        response = service.ListSecretsResponse.pb()()
        response.secrets.extend(page)
        response.next_page_token = token
        response.total_size = len(items)
        return response

    def update_secret(self, request: Any) -> Any:
        given = request.secret
        paths = update_paths(request)
        for path in paths:
            if path not in UPDATABLE_PATHS:
                raise ApiError(
                    "INVALID_ARGUMENT",
                    f"update_mask path {path!r} is not supported by this test server "
                    f"(supported: {', '.join(sorted(UPDATABLE_PATHS))})",
                )
        if "labels" in paths:
            self._validate_labels(given.labels)
        if "annotations" in paths:
            self._validate_annotations(given.annotations)
        with self._lock:
            secret = self._secret(given.name)
            self._check_etag(given.etag, secret.pb.etag)
            if "labels" in paths:
                secret.pb.labels.clear()
                secret.pb.labels.update(given.labels)
            if "annotations" in paths:
                secret.pb.annotations.clear()
                secret.pb.annotations.update(given.annotations)
            if "version_aliases" in paths:
                self._validate_aliases(given.version_aliases, len(secret.versions))
                secret.pb.version_aliases.clear()
                secret.pb.version_aliases.update(given.version_aliases)
            if "ttl" in paths or "expire_time" in paths:
                self._expiration(secret.pb, given)
            secret.pb.etag = self._etag()
            return copy_message(secret.pb)

    def delete_secret(self, request: Any) -> Any:
        with self._lock:
            secret = self._secret(request.name)
            self._check_etag(request.etag, secret.pb.etag)
            del self._secrets[request.name]
        return empty_pb2.Empty()

    # -- versions ----------------------------------------------------------------------

    def add_secret_version(self, request: Any) -> Any:
        if SECRET_RE.fullmatch(request.parent) is None:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Invalid resource field value in the request: parent {request.parent!r}",
            )
        payload = request.payload
        if not request.HasField("payload") or not payload.data:
            raise ApiError("INVALID_ARGUMENT", "Field [payload] is required.")
        if len(payload.data) > MAX_PAYLOAD_BYTES:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Secret payload is {len(payload.data)} bytes; the maximum is {MAX_PAYLOAD_BYTES}",
            )
        checksum = crc32c(payload.data)
        given_crc = payload.data_crc32c if payload.HasField("data_crc32c") else None
        if given_crc is not None and given_crc != checksum:
            raise ApiError(
                "INVALID_ARGUMENT", "Checksum mismatch: data_crc32c does not match the payload"
            )
        with self._lock:
            secret = self._secret(request.parent)
            version = SecretVersionPb()
            version.name = f"{request.parent}/versions/{len(secret.versions) + 1}"
            version.create_time.CopyFrom(now())
            version.state = ENABLED
            version.etag = self._etag()
            version.client_specified_payload_checksum = given_crc is not None
            if secret.pb.replication.HasField("automatic"):
                version.replication_status.automatic.SetInParent()
            secret.versions.append(_Version(version, bytes(payload.data), checksum))
            return copy_message(version)

    def get_secret_version(self, request: Any) -> Any:
        with self._lock:
            return copy_message(self._version(request.name)[1].pb)

    def access_secret_version(self, request: Any) -> Any:
        with self._lock:
            _, version = self._version(request.name)
            state = version.pb.state
            if state != ENABLED:
                raise ApiError(
                    "FAILED_PRECONDITION",
                    f"Secret Version [{version.pb.name}] is in {STATE_NAMES[state]} state.",
                )
            response = service.AccessSecretVersionResponse.pb()()
            response.name = version.pb.name
            response.payload.data = version.data or b""
            if version.crc is not None:
                response.payload.data_crc32c = version.crc
            return response

    def list_secret_versions(self, request: Any) -> Any:
        matches = request_filter(request.filter, _version_fields, _VERSION_FIELDS)
        with self._lock:
            secret = self._secret(request.parent)
            items = [copy_message(v.pb) for v in reversed(secret.versions)]  # newest first
        items = [pb for pb in items if matches(pb)]
        page, token = self._page(
            items, request.page_size, request.page_token, lambda pb: f"{10**12 - _number(pb):013d}"
        )
        response = service.ListSecretVersionsResponse.pb()()
        response.versions.extend(page)
        response.next_page_token = token
        response.total_size = len(items)
        return response

    def _transition(self, request: Any, target: int) -> Any:
        with self._lock:
            _, version = self._version(request.name)
            pb = version.pb
            self._check_etag(request.etag, pb.etag)
            if pb.state == DESTROYED:
                raise ApiError(
                    "FAILED_PRECONDITION", f"Secret Version [{pb.name}] is in DESTROYED state."
                )
            pb.state = target
            if target == DESTROYED:
                version.data = None
                version.crc = None
                pb.destroy_time.CopyFrom(now())
            pb.etag = self._etag()
            return copy_message(pb)

    def enable_secret_version(self, request: Any) -> Any:
        return self._transition(request, ENABLED)

    def disable_secret_version(self, request: Any) -> Any:
        return self._transition(request, DISABLED)

    def destroy_secret_version(self, request: Any) -> Any:
        return self._transition(request, DESTROYED)

    # -- IAM (only what a secret reference needs) ----------------------------------------

    def set_iam_policy(self, request: Any) -> Any:
        with self._lock:
            secret = self._secret(request.resource)
            policy = policy_pb2.Policy()
            policy.CopyFrom(request.policy)
            policy.etag = self._etag().strip('"').encode()
            secret.policy = policy
            return copy_message(policy)

    def get_iam_policy(self, request: Any) -> Any:
        with self._lock:
            secret = self._secret(request.resource)
            return copy_message(secret.policy) if secret.policy is not None else policy_pb2.Policy()

    def reference_payload(self, version_name: str, member: str) -> bytes:
        """The payload of ``version_name`` as read on behalf of ``member`` (a principal
        such as ``principal://...``), for another service resolving a reference to it.

        A secret without an IAM policy set here counts as readable (the grant the real
        service would find at project level); one with a policy must grant ``member``
        an accessor role. Raises NOT_FOUND, PERMISSION_DENIED or FAILED_PRECONDITION.
        """
        with self._lock:
            match = VERSION_RE.fullmatch(version_name)
            secret = self._secrets.get(match["secret"]) if match else None
            if secret is not None and not _grants(secret.policy, member):
                raise ApiError(
                    "PERMISSION_DENIED",
                    f"Permission 'secretmanager.versions.access' denied for resource "
                    f"'{version_name}'",
                )
            _, version = self._version(version_name)
            if version.pb.state != ENABLED:
                raise ApiError(
                    "FAILED_PRECONDITION",
                    f"Secret Version [{version.pb.name}] is in "
                    f"{STATE_NAMES[version.pb.state]} state.",
                )
            return version.data or b""


ACCESSOR_ROLES = frozenset(
    {"roles/secretmanager.secretAccessor", "roles/secretmanager.admin", "roles/owner"}
)


def _grants(policy: Any, member: str) -> bool:
    if policy is None:
        return True
    return any(
        binding.role in ACCESSOR_ROLES and member in binding.members for binding in policy.bindings
    )


def _number(version: Any) -> int:
    return int(version.name.rsplit("/", 1)[1])


_SECRET_FIELDS = frozenset({"name", "labels", "annotations"})
_SECRET_MAPS = frozenset({"labels", "annotations"})
_VERSION_FIELDS = frozenset({"name", "state"})


def _secret_fields(secret: Any, name: str) -> str | dict[str, str] | None:
    if name == "name":
        return str(secret.name)
    if name == "labels":
        return dict(secret.labels)
    if name == "annotations":
        return dict(secret.annotations)
    return None


def _version_fields(version: Any, name: str) -> str | dict[str, str] | None:
    if name == "name":
        return str(version.name)
    if name == "state":
        return STATE_NAMES.get(version.state, "STATE_UNSPECIFIED")
    return None


def methods(store: SecretStore) -> MethodTable:
    """gRPC method name -> (store method, request pb class, response pb class)."""
    table = method_table(
        store,
        service,
        {
            "CreateSecret": SecretPb,
            "GetSecret": SecretPb,
            "ListSecrets": None,
            "UpdateSecret": SecretPb,
            "DeleteSecret": empty_pb2.Empty,
            "AddSecretVersion": SecretVersionPb,
            "GetSecretVersion": SecretVersionPb,
            "AccessSecretVersion": None,
            "ListSecretVersions": None,
            "EnableSecretVersion": SecretVersionPb,
            "DisableSecretVersion": SecretVersionPb,
            "DestroySecretVersion": SecretVersionPb,
        },
    )
    table["SetIamPolicy"] = (
        store.set_iam_policy,
        iam_policy_pb2.SetIamPolicyRequest,
        policy_pb2.Policy,
    )
    table["GetIamPolicy"] = (
        store.get_iam_policy,
        iam_policy_pb2.GetIamPolicyRequest,
        policy_pb2.Policy,
    )
    return table


__all__ = ["ApiError", "SecretStore", "crc32c", "methods"]
