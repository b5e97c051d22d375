"""``gcppm://project[/prefix]?location=global``: GCP Parameter Manager through
google-cloud-parametermanager.

The first key segment below the URL prefix names a parameter (its id is the prefix +
segment, encoded as Secret Manager ids are: ``_`` -> ``__``, ``/`` -> ``_s``,
``.`` -> ``_d``). The rest of the key is a path inside that parameter's document:

- a JSON or YAML parameter whose document is an object is a subtree of keys
  (``{"db": {"host": "h"}}`` in parameter ``app`` holds ``app/db/host``; the member
  ``""`` holds the parameter key's own value);
- an UNFORMATTED parameter, or a formatted one whose document is not an object, is one
  key: the parameter key itself.

The current value is the newest *enabled* version (by creation time; disabled versions
are skipped), read through ``RenderParameterVersion`` so secret references
(``__REF__(//secretmanager.googleapis.com/...)``) come back resolved; a key whose raw
value holds a reference is flagged ``secret``. An entry's version is the id of the
version it was read from. Writes read the raw (unrendered) newest version, change the
document and create version ``v<N+1>`` (N the highest ``v<number>`` id so far): two
writers based on the same version race for the same id and one gets ALREADY_EXISTS,
which is the compare-and-set. A new parameter is UNFORMATTED for a one-segment key and
JSON otherwise. See docs/stores/gcp-parameter-manager.md.
"""

from __future__ import annotations

import builtins
import json
import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import yaml
from google.auth.credentials import Credentials
from google.cloud.parametermanager_v1 import ParameterManagerAsyncClient, ParameterManagerClient
from google.cloud.parametermanager_v1.services.parameter_manager.transports import (
    ParameterManagerGrpcAsyncIOTransport,
    ParameterManagerGrpcTransport,
)
from google.cloud.parametermanager_v1.types import service as pm

from veltrix.adapters._gcp import (
    TRANSIENT_ERRORS,
    ApiFailure,
    GcpStore,
    Steps,
    all_pages,
    connection_options,
    crc32c,
    project_and_prefix,
)
from veltrix.adapters.documents import (
    SELF,
    flatten,
    leaf_bytes,
    leaf_value,
    lookup,
    remove,
    set_path,
)
from veltrix.adapters.gcp_codec import decode_secret_id, decode_value, encode_key, encode_value
from veltrix.backend import AbsentType, Entry
from veltrix.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    DecodeError,
    InvalidKeyError,
    SecretReferenceError,
    UnsupportedOperationError,
    ValueTooLargeError,
)
from veltrix.keys import SEPARATOR, in_prefix, join, normalize_prefix, validate_key
from veltrix.urls import Options, parse_url
from veltrix.values import check_expected_version, check_value

log = logging.getLogger("veltrix.gcppm")

#: A parameter version's payload holds at most 1 MiB.
MAX_PAYLOAD_BYTES = 1024 * 1024
#: One value leaves room for the document around it (the payload limit bounds the whole).
MAX_VALUE_BYTES = MAX_PAYLOAD_BYTES - 4096
MAX_PARAMETER_ID_LENGTH = 63
DEFAULT_TOKEN_ENV = "VELTRIX_GCPPM_ACCESS_TOKEN"
WRITE_ATTEMPTS = 16
REFERENCE_MARK = b"__REF__("
_REFERENCE_RE = re.compile(
    r"//secretmanager\.googleapis\.com/projects/[^/\s\"'\\)]+(?:/locations/[^/\s\"'\\)]+)?"
    r"/secrets/[^/\s\"'\\)]+/versions/[^/\s\"'\\):]+"
)
_VERSION_ID_RE = re.compile(r"v(\d{1,18})")

UNFORMATTED = int(pm.ParameterFormat.UNFORMATTED)
YAML = int(pm.ParameterFormat.YAML)
JSON = int(pm.ParameterFormat.JSON)
_FORMATS = {"unformatted": UNFORMATTED, "json": JSON, "yaml": YAML}


def parameter_id_for(parameter_key: str) -> str:
    """The parameter id of a parameter key (prefix + first segment); InvalidKeyError if
    it does not fit the API's 63 characters."""
    parameter_id = encode_key(parameter_key)
    if len(parameter_id) > MAX_PARAMETER_ID_LENGTH:
        raise InvalidKeyError(
            f"{parameter_key[:60]!r} encodes to a {len(parameter_id)}-character parameter id; "
            f"Parameter Manager allows {MAX_PARAMETER_ID_LENGTH}"
        )
    return parameter_id


def parse(data: bytes, fmt: int) -> Any:
    """A formatted payload as a document (``DecodeError`` when it is not valid)."""
    try:
        text = data.decode("utf-8")
        return json.loads(text) if fmt == JSON else yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError):
        pass  # raised unchained below: parser errors quote the document around the problem
    raise DecodeError(f"a {'JSON' if fmt == JSON else 'YAML'} parameter holds an invalid document")


def dump(document: Any, fmt: int) -> bytes:
    if fmt == YAML:
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode("utf-8")
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def references_in(text: str) -> builtins.list[str]:
    """The Secret Manager references (``//secretmanager.googleapis.com/...``) in ``text``."""
    return sorted(set(_REFERENCE_RE.findall(text)))


@dataclass(frozen=True, slots=True)
class _Version:
    """The current version of one parameter."""

    fmt: int
    version_id: str | None  # None: the parameter exists but has no enabled version
    next_id: str


# -- the backend -------------------------------------------------------------------------


class ParameterManagerBackend(GcpStore):
    schemes: ClassVar[tuple[str, ...]] = ("gcppm",)
    scheme: ClassVar[str] = "gcppm"
    service: ClassVar[str] = "Parameter Manager"
    _client: ParameterManagerClient
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    max_value_bytes: ClassVar[int | None] = MAX_VALUE_BYTES
    #: Only values rendered from secret references are secret (flagged per entry).
    holds_secrets: ClassVar[bool] = False

    def __init__(
        self,
        project: str,
        prefix: str = "",
        *,
        location: str = "global",
        transport: str = "grpc",
        endpoint: str | None = None,
        insecure: bool = False,
        token_env: str = DEFAULT_TOKEN_ENV,
        timeout: float = 5.0,
        deadline: float = 8.0,
        poll_interval: float = 10.0,
        new_format: str = "json",
        credentials: Credentials | None = None,
    ) -> None:
        if not location or any(c in location for c in "/?#"):
            raise ConfigurationError(f"gcppm: invalid location {location!r}")
        self._open(
            project,
            prefix,
            location,
            transport=transport,
            timeout=timeout,
            deadline=deadline,
            poll_interval=poll_interval,
        )
        self._new_format = _FORMATS[new_format]
        self._formats: dict[str, int] = {}  # parameter name -> format (immutable)
        self._formats_lock = threading.Lock()
        self._parent = f"projects/{project}/locations/{location}"
        self._client = self._connect(
            ParameterManagerClient,
            ParameterManagerGrpcTransport,
            default_endpoint=(
                "parametermanager.googleapis.com"
                if location == "global"
                else f"parametermanager.{location}.rep.googleapis.com"
            ),
            endpoint=endpoint,
            insecure=insecure,
            token_env=token_env,
            credentials=credentials,
            async_classes=(ParameterManagerAsyncClient, ParameterManagerGrpcAsyncIOTransport),
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        credentials = options.pop("credentials", None)
        opts = Options(parsed.query, options, where=parsed.redacted)
        location = opts.str("location", "global") or "global"
        connection = connection_options(opts, DEFAULT_TOKEN_ENV)
        new_format = opts.choice("new_format", "json", tuple(_FORMATS))
        opts.finish()
        project, prefix = project_and_prefix(parsed)
        return cls(
            project,
            prefix,
            location=location,
            **connection,
            new_format=new_format,
            credentials=credentials,
        )

    @property
    def url(self) -> str:
        path = f"/{self.prefix}" if self.prefix else ""
        return f"gcppm://{self.project}{path}?location={self.location}"

    def __repr__(self) -> str:
        return f"ParameterManagerBackend({self.url!r}, transport={self.transport!r})"

    # -- calls -----------------------------------------------------------------------------

    def _refine_error(self, what: str, status: str, message: str) -> BackendError | None:
        """A secret reference that failed to render is a :class:`SecretReferenceError`."""
        return _reference_error(what, status, message)

    # -- keys ------------------------------------------------------------------------------

    def _split(self, key: str) -> tuple[str, str]:
        """(parameter key, path inside the parameter) of a relative key."""
        validate_key(key)
        first, _, rest = key.partition(SEPARATOR)
        parameter_key: str = join(self.prefix, first)
        return parameter_key, rest

    def _parameter_name(self, parameter_key: str) -> str:
        return f"{self._parent}/parameters/{parameter_id_for(parameter_key)}"

    def _relative(self, parameter_key: str, rest: str) -> str:
        own = parameter_key[len(self.prefix) + 1 :] if self.prefix else parameter_key
        return f"{own}{SEPARATOR}{rest}" if rest else own

    def check_key(self, key: str) -> None:
        """Raise :class:`InvalidKeyError` when ``key`` does not map to a parameter id."""
        self._parameter_name(self._split(key)[0])

    def check_value(self, key: str, value: bytes) -> None:
        """Raise :class:`ValueTooLargeError` when ``value`` cannot fit a version."""
        check_value(key, value, self.max_value_bytes)

    # -- reading ---------------------------------------------------------------------------

    # A read is written once, as steps (see ``veltrix.adapters._gcp.Steps``), which
    # ``get`` runs through the blocking client and ``aget`` through the asyncio one.

    def _format(self, name: str) -> Steps[int | None]:
        with self._formats_lock:
            known = self._formats.get(name)
        if known is not None:
            return known
        try:
            parameter = yield "get_parameter", {"name": name}
        except ApiFailure as exc:
            if exc.status == "NOT_FOUND":
                return None
            raise exc.veltrix() from exc
        fmt = int(parameter.format_) or UNFORMATTED
        with self._formats_lock:
            self._formats[name] = fmt
        return fmt

    def _forget(self, name: str) -> None:
        with self._formats_lock:
            self._formats.pop(name, None)

    def _current_steps(self, name: str) -> Steps[_Version | None]:
        """The parameter's format and newest enabled version; None without the parameter."""
        fmt = yield from self._format(name)
        if fmt is None:
            return None
        try:
            request = {"parent": name, "page_size": 1000}
            versions = yield from all_pages(
                "list_parameter_versions", request, "parameter_versions"
            )
        except ApiFailure as exc:
            if exc.status == "NOT_FOUND":
                self._forget(name)
                return None
            raise exc.veltrix() from exc
        numbers = [
            int(m[1])
            for v in versions
            if (m := _VERSION_ID_RE.fullmatch(str(v.name).rsplit("/", 1)[1]))
        ]
        enabled = [v for v in versions if not v.disabled]
        newest = max(
            enabled,
            key=lambda v: (v.create_time.timestamp(), str(v.name)),
            default=None,
        )
        return _Version(
            fmt,
            None if newest is None else str(newest.name).rsplit("/", 1)[1],
            f"v{max(numbers, default=0) + 1}",
        )

    def _current(self, name: str, what: str) -> _Version | None:
        return self._run(what, self._current_steps(name))

    def _render(self, name: str, version_id: str) -> Steps[tuple[bytes, bytes] | None]:
        """(raw, rendered) payload of a version; None when it vanished or was disabled."""
        try:
            response = yield "render_parameter_version", {"name": f"{name}/versions/{version_id}"}
        except ApiFailure as exc:
            if exc.status in ("NOT_FOUND", "FAILED_PRECONDITION"):
                return None
            raise exc.veltrix() from exc
        return bytes(response.payload.data), bytes(response.rendered_payload)

    def _raw(self, name: str, version_id: str, what: str) -> bytes | None:
        try:
            version = self._call(
                what,
                self._client.get_parameter_version,
                {"name": f"{name}/versions/{version_id}", "view": pm.View.FULL},
                retry=True,
            )
        except ApiFailure as exc:
            if exc.status == "NOT_FOUND":
                return None
            raise exc.veltrix() from exc
        return bytes(version.payload.data)

    def _entries(self, parameter_key: str, what: str) -> dict[str, Entry]:
        """Every key one parameter holds, rendered (relative key -> entry)."""
        return self._run(what, self._entries_steps(parameter_key))

    def _entries_steps(self, parameter_key: str) -> Steps[dict[str, Entry]]:
        name = self._parameter_name(parameter_key)
        for _ in range(3):
            current = yield from self._current_steps(name)
            if current is None or current.version_id is None:
                return {}
            payloads = yield from self._render(name, current.version_id)
            if payloads is not None:
                break
        else:
            return {}
        raw, rendered = payloads
        version = current.version_id
        source = f"gcppm://{self.project}/{parameter_key}?location={self.location}#{version}"

        def entry(rest: str, value: bytes, secret: bool) -> Entry:
            return Entry(
                self._relative(parameter_key, rest), value, version, source=source, secret=secret
            )

        if current.fmt == UNFORMATTED:
            return {entry("", decode_value(raw), False).key: entry("", decode_value(raw), False)}
        document = parse(rendered, current.fmt)
        if not isinstance(document, dict):
            made = entry("", rendered, REFERENCE_MARK in raw)
            return {made.key: made}
        raw_values = flatten(parse(raw, current.fmt))
        result: dict[str, Entry] = {}
        for rest, value in flatten(document).items():
            made = entry(rest, value, REFERENCE_MARK in raw_values.get(rest, REFERENCE_MARK))
            result[made.key] = made
        if SELF in document:
            raw_self = parse(raw, current.fmt).get(SELF)
            made = entry("", leaf_bytes(document[SELF]), REFERENCE_MARK in leaf_bytes(raw_self))
            result[made.key] = made
        return result

    def get(self, key: str) -> Entry | None:
        parameter_key, _ = self._split(key)
        return self._entries(parameter_key, f"get {join(self.prefix, key)!r}").get(key)

    async def aget(self, key: str) -> Entry | None:
        """As :meth:`get`, on the running event loop through the asyncio client
        (``grpc.aio``): the same calls, entries and errors. The client is opened on
        first use and belongs to that loop; from another loop this raises
        ConfigurationError until :meth:`aclose`. gRPC only (``native_async``): over
        REST the caching client reads on threads."""
        parameter_key, _ = self._split(key)
        what = f"get {join(self.prefix, key)!r}"
        found = await self._arun(what, self._entries_steps(parameter_key))
        return found.get(key)

    def list(self, prefix: str) -> Iterator[Entry]:
        return iter(self._list(normalize_prefix(prefix)))

    def _parameter_keys(self, what: str) -> builtins.list[str]:
        try:
            pager = self._call(
                what,
                self._client.list_parameters,
                {"parent": self._parent, "page_size": 1000},
                retry=True,
            )
            names = [str(p.name) for p in self._pages(pager, what)]
        except ApiFailure as exc:
            raise exc.veltrix() from exc
        keys: builtins.list[str] = []
        for name in names:
            try:
                parameter_key = decode_secret_id(name.rsplit("/", 1)[1])
            except ValueError:
                continue  # not a key encoding: not visible through Veltrix
            parent, _, _ = parameter_key.rpartition(SEPARATOR)
            if parent == self.prefix:
                keys.append(parameter_key)
        return sorted(keys)

    def _list(self, prefix: str) -> builtins.list[Entry]:
        what = f"list {join(self.prefix, prefix)!r}"
        first = prefix.split(SEPARATOR, 1)[0] if prefix else ""
        entries: builtins.list[Entry] = []
        for parameter_key in self._parameter_keys(what):
            if first and self._relative(parameter_key, "") != first:
                continue
            found = self._entries(parameter_key, what)
            entries.extend(found[k] for k in sorted(found) if in_prefix(k, prefix))
        return entries

    # -- writes ------------------------------------------------------------------------------

    def _create_parameter(self, name: str, fmt: int, what: str) -> None:
        parameter_id = name.rsplit("/", 1)[1]
        try:
            self._call(
                what,
                self._client.create_parameter,
                {
                    "parent": self._parent,
                    "parameter_id": parameter_id,
                    "parameter": {"format_": fmt, "labels": {"managed-by": "veltrix"}},
                },
                retry=False,
            )
        except ApiFailure as exc:
            if exc.status != "ALREADY_EXISTS":
                raise exc.veltrix() from exc

    def _create_version(self, name: str, version_id: str, payload: bytes, what: str) -> bool:
        """Create a version; False when that id was taken meanwhile (a concurrent write)."""
        _check_payload_size(payload, what)
        try:
            self._call(
                what,
                self._client.create_parameter_version,
                {
                    "parent": name,
                    "parameter_version_id": version_id,
                    "parameter_version": {
                        "payload": {"data": payload, "data_crc32c": crc32c(payload)}
                    },
                },
                retry=False,
            )
        except ApiFailure as exc:
            if exc.status == "ALREADY_EXISTS":
                return False
            if exc.status == "INVALID_ARGUMENT" and "bytes" in exc.message:
                raise ValueTooLargeError(f"{what}: Parameter Manager refused the size") from exc
            if exc.status == "INVALID_ARGUMENT" and "valid" in exc.message:
                raise DecodeError(
                    f"{what}: the value is not valid for the parameter's format"
                ) from exc
            raise exc.veltrix() from exc
        return True

    def _write(
        self,
        key: str,
        value: bytes | None,
        if_version: str | AbsentType | None,
    ) -> str | None:
        """Put (``value``) or delete (None) one key: the new version id, ``""`` when a
        delete removed the whole parameter, None when a delete found nothing."""
        parameter_key, rest = self._split(key)
        name = self._parameter_name(parameter_key)
        what = f"{'put' if value is not None else 'delete'} {join(self.prefix, key)!r}"
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            current = self._current(name, what)
            if current is None:
                check_expected_version(key, None, if_version)
                if value is None:
                    return None
                fmt = UNFORMATTED if not rest else self._new_format
                # the first version's payload is checked before the parameter is created
                first = self._change(_Version(fmt, None, "v1"), b"", rest, value, key, None)
                _check_payload_size(first, what)
                self._create_parameter(name, fmt, what)
                continue
            raw = b""
            if current.version_id is not None:
                found = self._raw(name, current.version_id, what)
                if found is None:
                    continue  # deleted meanwhile: look again
                raw = found
            payload = self._change(current, raw, rest, value, key, if_version)
            if payload is None:
                return None
            if payload is _DELETE_PARAMETER:
                self._delete_parameter(name, what)
                return ""
            if self._create_version(name, current.next_id, payload, what):
                return current.next_id
            # Another writer took that version id: start over from its version (a
            # compare-and-set is checked again against it).
            time.sleep(random.uniform(0.0, 0.02 * attempt))
        raise BackendUnavailableError(f"{what}: concurrent writers kept changing the parameter")

    def _change(
        self,
        current: _Version,
        raw: bytes,
        rest: str,
        value: bytes | None,
        key: str,
        if_version: str | AbsentType | None,
    ) -> bytes | None:
        """The new payload (``_DELETE_PARAMETER`` to drop the parameter; None: nothing to
        delete), after the compare-and-set check."""
        has_version = current.version_id is not None
        if current.fmt == UNFORMATTED or (has_version and not _is_object(raw, current.fmt)):
            present = has_version and not rest
            check_expected_version(key, current.version_id if present else None, if_version)
            if rest:
                if value is None:
                    return None
                raise UnsupportedOperationError(
                    f"{key!r}: its parameter holds a single value, not a JSON/YAML object"
                )
            if value is None:
                return _DELETE_PARAMETER if present else None
            return encode_value(value) if current.fmt == UNFORMATTED else value
        document: Any = parse(raw, current.fmt) if has_version else {}
        path = rest or SELF
        now = lookup(document, rest) if rest else _self_value(document)
        check_expected_version(key, current.version_id if now is not None else None, if_version)
        if value is None:
            if now is None:
                return None
            if rest:
                remove(document, rest)
            else:
                del document[SELF]
        elif rest:
            set_path(document, path, leaf_value(value))
        else:
            document[SELF] = leaf_value(value)
        return dump(document, current.fmt)

    def _delete_parameter(self, name: str, what: str) -> None:
        """Delete every version, then the parameter (the API wants it empty)."""
        try:
            pager = self._call(
                what, self._client.list_parameter_versions, {"parent": name}, retry=True
            )
            for version in builtins.list(self._pages(pager, what)):
                try:
                    self._call(
                        what,
                        self._client.delete_parameter_version,
                        {"name": str(version.name)},
                        retry=False,
                    )
                except ApiFailure as exc:
                    if exc.status != "NOT_FOUND":
                        raise
            self._call(what, self._client.delete_parameter, {"name": name}, retry=False)
        except ApiFailure as exc:
            if exc.status != "NOT_FOUND":
                raise exc.veltrix() from exc
        finally:
            self._forget(name)

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        value = check_value(key, value, self.max_value_bytes)
        written = self._write(key, value, if_version)
        if not written:  # pragma: no cover - a put always writes a version
            raise BackendError(f"put {key!r}: no version was written")
        return written

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        return self._write(key, None, if_version) is not None


_DELETE_PARAMETER = b"\x00delete-parameter\x00"


def _reference_error(what: str, status: str, message: str) -> SecretReferenceError | None:
    """A (non-transient) API error about a secret reference that failed to render."""
    references = references_in(message)
    if not references:
        return None
    return SecretReferenceError(
        f"{what}: secret reference {references[0]} cannot be rendered: {status}",
        references[0],
        status,
    )


def _check_payload_size(payload: bytes | None, what: str) -> None:
    if payload is not None and len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueTooLargeError(
            f"{what}: the parameter would hold {len(payload)} bytes; a version holds at "
            f"most {MAX_PAYLOAD_BYTES}"
        )


def _is_object(raw: bytes, fmt: int) -> bool:
    try:
        return isinstance(parse(raw, fmt), dict)
    except DecodeError:
        return False


def _self_value(document: Any) -> bytes | None:
    if isinstance(document, dict) and SELF in document:
        return leaf_bytes(document[SELF])
    return None


__all__ = [
    "MAX_PAYLOAD_BYTES",
    "ParameterManagerBackend",
    "dump",
    "parameter_id_for",
    "parse",
    "references_in",
]
