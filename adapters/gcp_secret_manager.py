"""``gcpsm://project[/prefix]``: GCP Secret Manager through google-cloud-secret-manager.

Each key is one secret. Its id is a reversible, injective encoding of the full key
(URL prefix + key) into ``[A-Za-z0-9_-]``: ``_`` becomes ``__``, ``/`` becomes ``_s``
and ``.`` becomes ``_d`` (:mod:`veltrix.adapters.gcp_codec`); the original key is also
kept in the ``veltrix-key`` annotation. Labels mark the secrets Veltrix manages (``managed-by=veltrix``) and
the first segment of their key (``veltrix-top``, a hash), which ``list`` filters on.

The value is the newest *enabled* version (``latest`` is the newest version in any
state, so when it is disabled the adapter finds the newest enabled one); the entry
version is that version's number. ``put`` adds a version, creating the secret on the
first write. Compare-and-set checks the expected version before the write and again
after it (no other version may have appeared in between, else the new version is
destroyed and the write raises :class:`VersionConflictError`); a CAS delete passes
the secret's etag. Watches poll. Every entry is flagged ``secret=True``.

Options (query string or keyword arguments):

``location``        regional secrets in that location (endpoint
                    ``secretmanager.LOCATION.rep.googleapis.com``)
``transport``       ``grpc`` (default) or ``rest``
``endpoint``        ``host:port`` of the API (tests point this at the test server)
``insecure``        plaintext, no TLS; anonymous unless a token is configured
``token_env``       name of an environment variable holding a static OAuth access token
                    (default ``VELTRIX_GCPSM_ACCESS_TOKEN``; used when set)
``timeout``         seconds per attempt (default 5)
``deadline``        seconds for a call including retries (default 8)
``poll_interval``   seconds between watch polls (default 10)
``retain``          keep only the newest N enabled versions after a put (0 = keep all)
``retention``       ``destroy`` (default) or ``disable`` the older versions
``credentials``     (keyword only) a ``google.auth`` credentials object
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator
from typing import Any, ClassVar, Self

from google.auth.credentials import Credentials
from google.cloud.secretmanager_v1 import (
    SecretManagerServiceAsyncClient,
    SecretManagerServiceClient,
)
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcAsyncIOTransport,
    SecretManagerServiceGrpcTransport,
)

from veltrix.adapters._gcp import (
    TRANSIENT_ERRORS,
    ApiFailure,
    GcpStore,
    Steps,
    connection_options,
    crc32c,
    project_and_prefix,
    status_of,
)
from veltrix.adapters.gcp_codec import (
    EMPTY_MARKER,
    MAX_SECRET_ID_LENGTH,
    decode_secret_id,
    decode_value,
    encode_key,
    encode_value,
    secret_id_for,
    top_label,
)
from veltrix.backend import Absent, AbsentType, Entry
from veltrix.errors import (
    BackendError,
    ValueTooLargeError,
    VeltrixError,
    VersionConflictError,
)
from veltrix.keys import in_prefix, join, normalize_prefix, relative, validate_key
from veltrix.log_events import event
from veltrix.urls import Options, parse_url
from veltrix.values import check_value as check_size

log = logging.getLogger("veltrix.gcpsm")

MAX_VALUE_BYTES = 64 * 1024
MANAGED_LABEL = "managed-by"
MANAGED_VALUE = "veltrix"
TOP_LABEL = "veltrix-top"
KEY_ANNOTATION = "veltrix-key"
DEFAULT_TOKEN_ENV = "VELTRIX_GCPSM_ACCESS_TOKEN"

# -- the backend -------------------------------------------------------------------------


class SecretManagerBackend(GcpStore):
    schemes: ClassVar[tuple[str, ...]] = ("gcpsm",)
    scheme: ClassVar[str] = "gcpsm"
    service: ClassVar[str] = "Secret Manager"
    _client: SecretManagerServiceClient
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    max_value_bytes: ClassVar[int | None] = MAX_VALUE_BYTES
    #: Every entry is a secret (``SupportsSecrets``).
    holds_secrets: ClassVar[bool] = True

    def __init__(
        self,
        project: str,
        prefix: str = "",
        *,
        location: str | None = None,
        transport: str = "grpc",
        endpoint: str | None = None,
        insecure: bool = False,
        token_env: str = DEFAULT_TOKEN_ENV,
        timeout: float = 5.0,
        deadline: float = 8.0,
        poll_interval: float = 10.0,
        retain: int = 0,
        retention: str = "destroy",
        credentials: Credentials | None = None,
    ) -> None:
        self._open(
            project,
            prefix,
            location,
            transport=transport,
            timeout=timeout,
            deadline=deadline,
            poll_interval=poll_interval,
        )
        self._retain = retain
        self._retention = retention
        self._parent = f"projects/{project}" + (f"/locations/{location}" if location else "")
        self._client = self._connect(
            SecretManagerServiceClient,
            SecretManagerServiceGrpcTransport,
            default_endpoint=(
                f"secretmanager.{location}.rep.googleapis.com"
                if location
                else "secretmanager.googleapis.com"
            ),
            endpoint=endpoint,
            insecure=insecure,
            token_env=token_env,
            credentials=credentials,
            async_classes=(
                SecretManagerServiceAsyncClient,
                SecretManagerServiceGrpcAsyncIOTransport,
            ),
        )

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        credentials = options.pop("credentials", None)
        opts = Options(parsed.query, options, where=parsed.redacted)
        location = opts.str("location") or None
        connection = connection_options(opts, DEFAULT_TOKEN_ENV)
        retain = opts.int("retain", 0, minimum=0)
        retention = opts.choice("retention", "destroy", ("destroy", "disable"))
        opts.finish()
        project, prefix = project_and_prefix(parsed)
        return cls(
            project,
            prefix,
            location=location,
            **connection,
            retain=retain,
            retention=retention,
            credentials=credentials,
        )

    @property
    def url(self) -> str:
        path = f"/{self.prefix}" if self.prefix else ""
        query = f"?location={self.location}" if self.location else ""
        return f"gcpsm://{self.project}{path}{query}"

    def __repr__(self) -> str:
        return f"SecretManagerBackend({self.url!r}, transport={self.transport!r})"

    # -- calls -----------------------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        validate_key(key)
        full_key: str = join(self.prefix, key)
        return full_key

    def _secret_name(self, full_key: str) -> str:
        return f"{self._parent}/secrets/{secret_id_for(full_key)}"

    def check_key(self, key: str) -> None:
        """Raise :class:`InvalidKeyError` when ``key`` (with the URL's prefix) does not
        encode to a secret id Secret Manager accepts (the check every call makes first)."""
        self._secret_name(self._full_key(key))

    def _payload(self, key: str, value: bytes) -> bytes:
        """``value`` as stored (empty-value marker encoding), within the API's limit."""
        value = check_size(key, value, self.max_value_bytes)
        payload = encode_value(value)
        if len(payload) > MAX_VALUE_BYTES:
            raise ValueTooLargeError(
                f"value for {key!r} needs {len(payload)} bytes once encoded; "
                f"Secret Manager holds at most {MAX_VALUE_BYTES}"
            )
        return payload

    def check_value(self, key: str, value: bytes) -> None:
        """Raise :class:`ValueTooLargeError` when ``value`` does not fit a secret version
        once encoded (the check :meth:`put` makes before any I/O)."""
        self._payload(key, value)

    def _entry(self, full_key: str, data: bytes, version: str) -> Entry:
        return Entry(
            relative(full_key, self.prefix),
            decode_value(data),
            version,
            source=f"{self.url}#{full_key}"
            if self.location
            else f"gcpsm://{self.project}/{full_key}",
            secret=True,
        )

    # A read is written once, as steps (see ``veltrix.adapters._gcp.Steps``), which
    # ``get`` runs through the blocking client and ``aget`` through the asyncio one.

    def _access(self, name: str) -> Steps[tuple[bytes, str] | None]:
        """Payload and number of version ``name``; None when absent or not enabled."""
        try:
            response = yield "access_secret_version", {"name": name}
        except ApiFailure as exc:
            if exc.status in ("NOT_FOUND", "FAILED_PRECONDITION"):
                return None
            raise exc.veltrix() from exc
        return bytes(response.payload.data), str(response.name).rsplit("/", 1)[1]

    def _newest_enabled_steps(self, secret_name: str) -> Steps[int | None]:
        """Number of the newest enabled version; None when none (or no secret)."""
        request = {"parent": secret_name, "filter": "state:ENABLED", "page_size": 1}
        try:
            pager = yield "list_secret_versions", request
        except ApiFailure as exc:
            if exc.status == "NOT_FOUND":
                return None
            raise exc.veltrix() from exc
        for version in pager.versions:  # the first page's, already fetched
            return int(str(version.name).rsplit("/", 1)[1])
        return None

    def _newest_enabled(self, secret_name: str, what: str) -> int | None:
        return self._run(what, self._newest_enabled_steps(secret_name))

    def _read_steps(self, full_key: str, name: str) -> Steps[Entry | None]:
        found = yield from self._access(f"{name}/versions/latest")
        attempts = 0
        while found is None and attempts < 3:
            # ``latest`` is absent (no secret, no version) or not enabled: find the
            # newest enabled version, if any.
            attempts += 1
            number = yield from self._newest_enabled_steps(name)
            if number is None:
                return None
            found = yield from self._access(f"{name}/versions/{number}")
        if found is None:
            return None
        data, version = found
        return self._entry(full_key, data, version)

    def _read(self, full_key: str, name: str) -> Entry | None:
        return self._run(f"get {full_key!r}", self._read_steps(full_key, name))

    # -- Backend -----------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        full_key = self._full_key(key)
        return self._read(full_key, self._secret_name(full_key))

    async def aget(self, key: str) -> Entry | None:
        """As :meth:`get`, on the running event loop through the asyncio client
        (``grpc.aio``): the same calls, entries and errors. The client is opened on
        first use and belongs to that loop; from another loop this raises
        ConfigurationError until :meth:`aclose`. gRPC only (``native_async``): over
        REST the caching client reads on threads."""
        full_key = self._full_key(key)
        steps = self._read_steps(full_key, self._secret_name(full_key))
        return await self._arun(f"get {full_key!r}", steps)

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        full_prefix = join(self.prefix, prefix)
        return iter(self._list(full_prefix))

    def _list(self, full_prefix: str) -> builtins.list[Entry]:
        label_filter = f"labels.{MANAGED_LABEL}={MANAGED_VALUE}"
        if full_prefix:
            label_filter += f" AND labels.{TOP_LABEL}={top_label(full_prefix)}"
        what = f"list {full_prefix!r}"
        try:
            pager = self._call(
                what,
                self._client.list_secrets,
                {"parent": self._parent, "filter": label_filter, "page_size": 1000},
                retry=True,
            )
            secrets = [str(secret.name) for secret in self._pages(pager, what)]
        except ApiFailure as exc:
            raise exc.veltrix() from exc
        entries: builtins.list[Entry] = []
        for name in sorted(secrets):
            try:
                full_key = decode_secret_id(name.rsplit("/", 1)[1])
            except ValueError:
                continue
            if not in_prefix(full_key, full_prefix) or not in_prefix(full_key, self.prefix):
                continue
            if full_key == self.prefix:
                continue  # the root itself is not a key below it
            entry = self._read(full_key, name)
            if entry is not None:
                entries.append(entry)
        return entries

    # -- writes ------------------------------------------------------------------------------

    def _create(self, full_key: str, what: str) -> bool:
        """Create the secret; False if it already existed."""
        secret: dict[str, Any] = {
            "labels": {MANAGED_LABEL: MANAGED_VALUE, TOP_LABEL: top_label(full_key)},
            "annotations": {KEY_ANNOTATION: full_key},
        }
        if not self.location:
            secret["replication"] = {"automatic": {}}
        try:
            self._call(
                what,
                self._client.create_secret,
                {"parent": self._parent, "secret_id": secret_id_for(full_key), "secret": secret},
                retry=False,
            )
        except ApiFailure as exc:
            if exc.status == "ALREADY_EXISTS":
                return False
            raise exc.veltrix() from exc
        return True

    def _add(self, name: str, payload: bytes, what: str) -> int | None:
        """Add a version; its number, or None when the secret does not exist."""
        try:
            version = self._call(
                what,
                self._client.add_secret_version,
                {"parent": name, "payload": {"data": payload, "data_crc32c": crc32c(payload)}},
                retry=False,
            )
        except ApiFailure as exc:
            if exc.status == "NOT_FOUND":
                return None
            if (
                exc.status == "INVALID_ARGUMENT"
                and "payload" in str(exc).lower()
                and len(payload) > MAX_VALUE_BYTES
            ):
                raise ValueTooLargeError(f"{what}: value exceeds {MAX_VALUE_BYTES} bytes") from exc
            raise exc.veltrix() from exc
        return int(str(version.name).rsplit("/", 1)[1])

    def _versions_after(self, name: str, after: int, before: int, what: str) -> builtins.list[int]:
        """Enabled version numbers n with after < n < before."""
        pager = self._call(
            what,
            self._client.list_secret_versions,
            {"parent": name, "filter": "state:ENABLED", "page_size": 100},
            retry=True,
        )
        found: builtins.list[int] = []
        for version in self._pages(pager, what):
            number = int(str(version.name).rsplit("/", 1)[1])
            if number <= after:
                break
            if number < before:
                found.append(number)
        return found

    def _set_state(self, name: str, number: int, action: str, what: str) -> None:
        method = {
            "destroy": self._client.destroy_secret_version,
            "disable": self._client.disable_secret_version,
        }[action]
        try:
            self._call(what, method, {"name": f"{name}/versions/{number}"}, retry=True)
        except ApiFailure as exc:
            if exc.status not in ("NOT_FOUND", "FAILED_PRECONDITION"):
                raise exc.veltrix() from exc

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        full_key = self._full_key(key)
        name = self._secret_name(full_key)
        payload = self._payload(key, value)
        if isinstance(if_version, str) and not if_version.isdigit():
            raise VersionConflictError(f"{key!r}: {if_version!r} is not a Secret Manager version")
        what = f"put {full_key!r}"
        expected: int | None = None
        if if_version is Absent:
            if not self._create(full_key, what) and self._newest_enabled(name, what) is not None:
                raise VersionConflictError(f"{key!r} already exists (create-only write)")
        elif if_version is not None:
            expected = int(if_version)
            current = self._newest_enabled(name, what)
            if current is None:
                raise VersionConflictError(
                    f"{key!r} does not exist (expected version {if_version})"
                )
            if current != expected:
                raise VersionConflictError(f"{key!r} is at version {current}, not {if_version}")
        number = self._add(name, payload, what)
        if number is None:
            if if_version is not None:
                raise VersionConflictError(f"{key!r} was deleted during a compare-and-set write")
            self._create(full_key, what)
            number = self._add(name, payload, what)
            if number is None:
                raise BackendError(f"{what}: the secret vanished while it was being written")
        if if_version is not None:
            # Post-check: no other enabled version may have appeared between the one we
            # expected and ours; if one did, we lost the race: undo our version.
            between = self._versions_after(name, expected or 0, number, what)
            if between:
                self._set_state(name, number, "destroy", what)
                raise VersionConflictError(
                    f"{key!r} changed during the write (version {max(between)} appeared)"
                )
        if self._retain:
            self._apply_retention(name, number, what)
        return str(number)

    def _apply_retention(self, name: str, newest: int, what: str) -> None:
        try:
            older = self._versions_after(name, 0, newest, what)
            for number in sorted(older, reverse=True)[self._retain - 1 :]:
                self._set_state(name, number, self._retention, what)
        except VeltrixError as exc:
            log.warning(
                "%s: retention failed, older versions kept: %s",
                what,
                exc,
                extra=event("veltrix.gcpsm.retention_failed", store=self.url, error=exc),
            )

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        full_key = self._full_key(key)
        name = self._secret_name(full_key)
        what = f"delete {full_key!r}"
        request: dict[str, Any] = {"name": name}
        if if_version is not None:
            try:
                secret = self._call(what, self._client.get_secret, {"name": name}, retry=True)
            except ApiFailure as exc:
                if exc.status == "NOT_FOUND":
                    raise VersionConflictError(
                        f"{key!r} does not exist (expected version {if_version})"
                    ) from exc
                raise exc.veltrix() from exc
            current = self._newest_enabled(name, what)
            if current is None or str(current) != if_version:
                raise VersionConflictError(f"{key!r} is at version {current}, not {if_version}")
            request["etag"] = secret.etag
        try:
            self._call(what, self._client.delete_secret, request, retry=False)
        except ApiFailure as exc:
            if exc.status == "NOT_FOUND":
                if if_version is not None:
                    raise VersionConflictError(f"{key!r} was deleted concurrently") from exc
                return False
            if exc.status in ("ABORTED", "FAILED_PRECONDITION") and if_version is not None:
                raise VersionConflictError(f"{key!r} changed during the delete") from exc
            raise exc.veltrix() from exc
        return True


__all__ = [
    "EMPTY_MARKER",
    "MAX_SECRET_ID_LENGTH",
    "SecretManagerBackend",
    "crc32c",
    "decode_secret_id",
    "decode_value",
    "encode_key",
    "encode_value",
    "secret_id_for",
    "status_of",
    "top_label",
]
