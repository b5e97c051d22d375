"""``k8s://namespace/prefix``: ConfigMaps (or Secrets) through the ``kubernetes`` client.

Keys map losslessly onto objects and their data keys (see ``docs/stores/kubernetes.md``):
the *object* holds every key that shares a first segment below the URL prefix, and is
named ``vx-`` + the escaped path ``prefix/first-segment`` (lowercase letters and digits
stay, ``-X`` escapes the rest: ``-a``..``-z`` an uppercase letter, ``-0`` ``-``,
``-1`` ``_``, ``-2`` ``.``, ``-3`` ``/``); the *data key* is the rest of the key
(``_`` for none) with ``_`` written ``__``, ``/`` written ``_s`` and a leading ``.``
written ``_d``. Objects carry the labels ``app.kubernetes.io/managed-by=veltrix`` and
``veltrix.io/prefix=<hash of the URL prefix>``, which list and watch select on.

An entry's version is a random token written with the value in a per-key annotation
(``veltrix.io/v.<hash of the data key>``), so a write to a *sibling* key (same object)
leaves a key's version alone. Compare-and-set reads the object, compares the key's
token, and writes with the object's ``resourceVersion`` as precondition (409: read,
compare again). Keys written by other tools have the version ``rv<resourceVersion>``
of their object. UTF-8 values go
in ``data``, others in ``binaryData`` (base64); ``kind=secret`` stores Secrets
(``data`` base64, entries flagged secret). Watches list, then watch from the list's
``resourceVersion`` with bookmarks, and relist on 410 Gone.

Credentials come from the kubeconfig (``KUBECONFIG``, ``context=``) or, inside a
pod, the service account; never from the URL. API errors become typed errors whose
messages are built from the status code and reason only: an ``ApiException``'s body
can echo the object (values included), so it is never shown nor chained.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import json
import logging
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, NoReturn, Self

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from veltrix.adapters._k8s_keys import decode_data_key, encode_data_key
from veltrix.backend import Absent, AbsentType, Change, Entry
from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    ValueTooLargeError,
    VersionConflictError,
)
from veltrix.keys import SEPARATOR, in_prefix, join, normalize_prefix, relative, validate_key
from veltrix.log_redaction import protect_loggers
from veltrix.urls import Options, parse_url
from veltrix.values import check_value as check_size
from veltrix.watching import ChangeDispatcher, WatchSet

log = logging.getLogger("veltrix.kubernetes")

#: The API server's limit on a ConfigMap's or Secret's data (all keys together).
MAX_OBJECT_BYTES = 1024 * 1024
MAX_NAME_LENGTH = 253
MAX_DATA_KEY_LENGTH = 253
#: One value's limit: the object limit less room for the longest data key.
MAX_VALUE_BYTES = MAX_OBJECT_BYTES - MAX_DATA_KEY_LENGTH
MANAGED_LABEL = "app.kubernetes.io/managed-by"
MANAGED_VALUE = "veltrix"
PREFIX_LABEL = "veltrix.io/prefix"
PATH_ANNOTATION = "veltrix.io/path"
NAME_PREFIX = "vx-"
#: Attempts of a write whose object other writers keep changing between read and write.
WRITE_ATTEMPTS = 50
VERSION_ANNOTATION_PREFIX = "veltrix.io/v."

_NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAME_ESCAPES = {"-": "-0", "_": "-1", ".": "-2", "/": "-3"}
_NAME_UNESCAPES = {code[1]: char for char, code in _NAME_ESCAPES.items()}


# -- encodings ---------------------------------------------------------------------------


def encode_name(path: str) -> str:
    """The object name of ``path`` (URL prefix + first key segment); not length-checked."""
    out = [NAME_PREFIX]
    for char in path:
        if char.islower() or char.isdigit():
            out.append(char)
        elif char.isupper():
            out.append("-" + char.lower())
        else:
            out.append(_NAME_ESCAPES[char])
    return "".join(out)


def decode_name(name: str) -> str | None:
    """The path an object name encodes, ``None`` when it is not one of ours."""
    if not name.startswith(NAME_PREFIX):
        return None
    out: list[str] = []
    chars = iter(name[len(NAME_PREFIX) :])
    for char in chars:
        if char != "-":
            out.append(char)
            continue
        code = next(chars, "")
        if code.islower():
            out.append(code.upper())
        elif code in _NAME_UNESCAPES:
            out.append(_NAME_UNESCAPES[code])
        else:
            return None
    path = "".join(out)
    return path if encode_name(path) == name else None


def version_annotation(data_key: str) -> str:
    """The annotation holding a data key's version (annotation names are at most 63
    characters after the ``/``, so the data key is hashed)."""
    return VERSION_ANNOTATION_PREFIX + hashlib.sha256(data_key.encode()).hexdigest()[:40]


def new_version() -> str:
    """A fresh per-key version: random, so a key deleted and written again never
    repeats a version an old compare-and-set could match."""
    return secrets.token_hex(8)


def key_version(obj: Mapping[str, Any], data_key: str) -> str:
    """A data key's version: its annotation, else (a key written by other tools) the
    object's ``resourceVersion`` prefixed ``rv``."""
    meta = obj.get("metadata") or {}
    version = (meta.get("annotations") or {}).get(version_annotation(data_key))
    return str(version) if version else f"rv{meta.get('resourceVersion', '')}"


def _pause(attempt: int) -> None:
    """Jittered backoff between attempts of a write that lost a race on its object."""
    if attempt:
        time.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.05)))


def prefix_label(prefix: str) -> str:
    """The ``veltrix.io/prefix`` label value: a hash of the URL prefix (label values
    are at most 63 characters of a narrower alphabet than keys)."""
    return hashlib.sha256(prefix.encode()).hexdigest()[:32]


# -- errors ------------------------------------------------------------------------------


class KubernetesApiFailure(Exception):
    """What is kept of an ``ApiException``: status and reasons, never its body."""


def _status_of(exc: ApiException) -> tuple[int, str, list[str]]:
    """HTTP status, the ``Status`` reason and its causes' reasons, from the body."""
    reason, causes = str(exc.reason or ""), []
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (ValueError, TypeError):
        body = {}
    if isinstance(body, dict):
        reason = str(body.get("reason") or reason)
        details = body.get("details")
        if isinstance(details, dict):
            causes = [
                str(cause.get("reason"))
                for cause in details.get("causes") or []
                if isinstance(cause, dict) and cause.get("reason")
            ]
    return int(exc.status or 0), reason, causes


def _raise_api(exc: ApiException, what: str) -> NoReturn:
    status, reason, causes = _status_of(exc)
    cause = KubernetesApiFailure(
        f"HTTP {status} {reason}" + (f" ({', '.join(causes)})" if causes else "")
    )
    text = f"{what}: Kubernetes API answered {status} {reason}"
    if status in (401, 403):
        raise AccessDeniedError(text) from cause
    if status == 409:
        raise VersionConflictError(text) from cause
    if status == 413 or "FieldValueTooLong" in causes:
        raise ValueTooLargeError(
            f"{what}: the object would exceed the API server's size limits ({MAX_OBJECT_BYTES} "
            "bytes of data, 256 KiB of annotations)"
        ) from cause
    if status in {0, 429} or status >= 500:
        raise BackendUnavailableError(text) from cause
    raise BackendError(text) from cause


_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


# -- the backend -------------------------------------------------------------------------


class KubernetesBackend:
    schemes: ClassVar[tuple[str, ...]] = ("k8s",)
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (BackendUnavailableError,)
    max_value_bytes: ClassVar[int | None] = MAX_VALUE_BYTES

    def __init__(
        self,
        namespace: str,
        prefix: str = "",
        *,
        api_client: k8s_client.ApiClient,
        kind: str = "configmap",
        timeout: float = 10.0,
        watch_timeout: int = 300,
        context: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.prefix = normalize_prefix(prefix)
        self.kind = kind
        self._context = context
        self._api_client = api_client
        self._api = k8s_client.CoreV1Api(api_client)
        self._timeout = timeout
        self.watch_timeout = watch_timeout
        self._selector = (
            f"{MANAGED_LABEL}={MANAGED_VALUE},{PREFIX_LABEL}={prefix_label(self.prefix)}"
        )
        self._closed = False
        self._watches: WatchSet[_KubernetesWatch] = WatchSet()
        resource = "secret" if kind == "secret" else "config_map"
        self._read = getattr(self._api, f"read_namespaced_{resource}")
        self._list = getattr(self._api, f"list_namespaced_{resource}")
        self._create = getattr(self._api, f"create_namespaced_{resource}")
        self._patch = getattr(self._api, f"patch_namespaced_{resource}")
        self._delete = getattr(self._api, f"delete_namespaced_{resource}")
        protect_loggers("kubernetes", "urllib3")

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``k8s://namespace/prefix?context=NAME&kind=configmap``.

        Options: ``context`` (a kubeconfig context), ``kubeconfig`` (a path; default
        ``KUBECONFIG`` or ``~/.kube/config``), ``kind`` (``configmap`` or ``secret``),
        ``timeout`` (seconds per request), ``watch_timeout`` (seconds a watch request
        stays open before it is renewed). Inside a pod without a kubeconfig, the
        service account is used. ``api_client=`` (keyword only) injects a configured
        ``kubernetes.client.ApiClient``.
        """
        parsed = parse_url(url, cls.schemes)
        for name in ("token", "password", "client_key"):
            if name in parsed.query:
                raise ConfigurationError(
                    f"{parsed.redacted}: credentials do not belong in URLs; use a kubeconfig "
                    "(KUBECONFIG, context=) or the pod's service account"
                )
        api_client = options.pop("api_client", None)
        opts = Options(parsed.query, options, where=parsed.redacted)
        context = opts.str("context")
        kubeconfig = opts.str("kubeconfig")
        kind = opts.choice("kind", "configmap", ("configmap", "secret"))
        timeout = opts.float("timeout", 10.0, minimum=0.1)
        watch_timeout = opts.int("watch_timeout", 300, minimum=1)
        opts.finish()
        namespace = parsed.netloc
        if len(namespace) > 63 or not _NAMESPACE_RE.fullmatch(namespace):
            raise ConfigurationError(
                f"{parsed.redacted}: the URL's host part must be a namespace "
                "(lowercase letters, digits and '-', starting and ending alphanumeric)"
            )
        try:
            prefix = normalize_prefix(parsed.path[1:] if parsed.path.startswith("/") else "")
        except InvalidKeyError as exc:
            raise ConfigurationError(f"{parsed.redacted}: bad key prefix: {exc}") from exc
        if api_client is None:
            api_client = _load_client(kubeconfig, context, timeout)
        elif not isinstance(api_client, k8s_client.ApiClient):
            raise ConfigurationError("api_client must be a kubernetes.client.ApiClient")
        return cls(
            namespace,
            prefix,
            api_client=api_client,
            kind=kind,
            timeout=timeout,
            watch_timeout=watch_timeout,
            context=context,
        )

    @property
    def url(self) -> str:
        query = [f"kind={self.kind}"] if self.kind != "configmap" else []
        if self._context:
            query.append(f"context={self._context}")
        return f"k8s://{self.namespace}/{self.prefix}" + ("?" + "&".join(query) if query else "")

    @property
    def holds_secrets(self) -> bool:
        return self.kind == "secret"

    def __repr__(self) -> str:
        return f"KubernetesBackend({self.url!r})"

    # -- mapping -----------------------------------------------------------------------

    def _locate(self, key: str) -> tuple[str, str]:
        """``(object name, data key)`` of ``key``; raises InvalidKeyError before any I/O."""
        validate_key(key)
        first, _, rest = key.partition(SEPARATOR)
        name = encode_name(join(self.prefix, first))
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidKeyError(
                f"key {key[:60]!r}: its object name would be {len(name)} characters; "
                f"Kubernetes allows {MAX_NAME_LENGTH}"
            )
        data_key = encode_data_key(rest)
        if len(data_key) > MAX_DATA_KEY_LENGTH:
            raise InvalidKeyError(
                f"key {key[:60]!r}: its data key would be {len(data_key)} characters; "
                f"Kubernetes allows {MAX_DATA_KEY_LENGTH}"
            )
        return name, data_key

    def _first_segment(self, name: str) -> str | None:
        path = decode_name(name)
        if path is None or not in_prefix(path, self.prefix) or path == self.prefix:
            return None
        first = relative(path, self.prefix)
        return None if SEPARATOR in first else first

    def _values(self, obj: Mapping[str, Any]) -> dict[str, bytes]:
        """Data key -> value bytes of an object as the API returns it (JSON)."""
        values: dict[str, bytes] = {}
        try:
            if self.kind == "secret":
                for data_key, raw in (obj.get("data") or {}).items():
                    values[data_key] = base64.b64decode(raw or "")
            else:
                for data_key, text in (obj.get("data") or {}).items():
                    values[data_key] = (text or "").encode("utf-8")
                for data_key, raw in (obj.get("binaryData") or {}).items():
                    values[data_key] = base64.b64decode(raw or "")
        except (binascii.Error, ValueError, AttributeError) as exc:
            raise BackendError(f"{self!r}: an object's data is not what the API returns") from exc
        return values

    def _entries(self, obj: Mapping[str, Any]) -> dict[str, Entry]:
        """The entries of one of our objects, by canonical key."""
        meta = obj.get("metadata") or {}
        first = self._first_segment(str(meta.get("name", "")))
        if first is None:
            return {}
        entries = {}
        for data_key, value in self._values(obj).items():
            rest = decode_data_key(data_key)
            if rest is None:
                continue  # a key someone else added to the object: not ours
            key = join(first, rest)
            entries[key] = self._entry(key, value, key_version(obj, data_key))
        return entries

    def _entry(self, key: str, value: bytes, version: str) -> Entry:
        return Entry(
            key=key,
            value=value,
            version=version,
            source=f"k8s://{self.namespace}/{join(self.prefix, key)}",
            secret=self.kind == "secret",
        )

    def _body(self, data_key: str, value: bytes | None, token: str | None) -> dict[str, Any]:
        """A merge patch setting (``value``, with version ``token``) or removing a key."""
        patch: dict[str, Any] = {"metadata": {"annotations": {version_annotation(data_key): token}}}
        if self.kind == "secret":
            encoded = None if value is None else base64.b64encode(value).decode("ascii")
            return {**patch, "data": {data_key: encoded}}
        if value is None:
            return {**patch, "data": {data_key: None}, "binaryData": {data_key: None}}
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return {
                **patch,
                "data": {data_key: None},
                "binaryData": {data_key: base64.b64encode(value).decode("ascii")},
            }
        return {**patch, "data": {data_key: text}, "binaryData": {data_key: None}}

    def _new_object(
        self, name: str, key: str, data_key: str, value: bytes, token: str
    ) -> dict[str, Any]:
        body = self._body(data_key, value, token)
        first = key.split(SEPARATOR, 1)[0]
        data = {
            field: {dk: v for dk, v in body[field].items() if v is not None}
            for field in ("data", "binaryData")
            if field in body
        }
        return {
            "apiVersion": "v1",
            "kind": "Secret" if self.kind == "secret" else "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {MANAGED_LABEL: MANAGED_VALUE, PREFIX_LABEL: prefix_label(self.prefix)},
                "annotations": {
                    PATH_ANNOTATION: join(self.prefix, first),
                    version_annotation(data_key): token,
                },
            },
            **({"type": "Opaque"} if self.kind == "secret" else {}),
            **{field: values for field, values in data.items() if values},
        }

    # -- calls -------------------------------------------------------------------------

    def _call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call returning the response's JSON; typed errors only."""
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=self._timeout, **kwargs
            )
            return json.loads(response.data)
        except ApiException as exc:
            _raise_api(exc, what)
        except _TRANSPORT_ERRORS as exc:
            raise BackendUnavailableError(
                f"{what}: Kubernetes API unreachable ({type(exc).__name__})"
            ) from None
        except ValueError as exc:
            raise BackendError(f"{what}: the API's answer is not JSON") from exc

    def _read_object(self, name: str, what: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(what, self._read, name, self.namespace))
        except BackendError as exc:
            if str(exc.__cause__).startswith("HTTP 404"):
                return None
            raise

    @staticmethod
    def _is(exc: BaseException, status: int) -> bool:
        return str(exc.__cause__).startswith(f"HTTP {status} ")

    # -- reads -------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        name, data_key = self._locate(key)
        obj = self._read_object(name, f"get {key!r}")
        if obj is None:
            return None
        value = self._values(obj).get(data_key)
        if value is None:
            return None
        return self._entry(key, value, key_version(obj, data_key))

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        if prefix:
            name, _ = self._locate(prefix.split(SEPARATOR, 1)[0])
            obj = self._read_object(name, f"list {prefix!r}")
            objects = [] if obj is None else [obj]
        else:
            objects = self._list_objects(f"list {self.prefix or '/'!r}")[0]
        entries: dict[str, Entry] = {}
        for obj in objects:
            entries.update(self._entries(obj))
        for key in sorted(entries):
            if in_prefix(key, prefix):
                yield entries[key]

    def _list_objects(
        self, what: str, field_selector: str | None = None
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        kwargs: dict[str, Any] = {"label_selector": self._selector}
        if field_selector:
            kwargs["field_selector"] = field_selector
        answer = self._call(what, self._list, self.namespace, **kwargs)
        return builtins.list(answer.get("items") or []), str(
            (answer.get("metadata") or {}).get("resourceVersion", "")
        )

    # -- writes ------------------------------------------------------------------------

    def check_key(self, key: str) -> None:
        self._locate(key)

    def check_value(self, key: str, value: bytes) -> None:
        check_size(key, value, MAX_VALUE_BYTES)

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        name, data_key = self._locate(key)
        value = check_size(key, value, MAX_VALUE_BYTES)
        what = f"put {key!r}"
        token = new_version()
        for attempt in range(WRITE_ATTEMPTS):
            _pause(attempt)
            current: dict[str, Any] | None = None
            if if_version is not None:  # compare on this read; the patch's precondition
                current = self._read_object(name, what)  # makes it hold at the write
                present = current is not None and data_key in self._values(current)
                if if_version is Absent and present:
                    raise VersionConflictError(f"{key!r} already exists (create-only write)")
                if isinstance(if_version, str):
                    if current is None or not present:
                        raise VersionConflictError(
                            f"{key!r} does not exist (expected version {if_version})"
                        )
                    if key_version(current, data_key) != if_version:
                        raise VersionConflictError(
                            f"{key!r} is at version {key_version(current, data_key)}, "
                            f"not {if_version}"
                        )
            if if_version is None or current is not None:
                patch = self._body(data_key, value, token)
                if current is not None:
                    patch["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                try:
                    self._call(what, self._patch, name, self.namespace, patch)
                    return token
                except VersionConflictError:
                    continue  # a sibling key changed between our read and write
                except BackendError as exc:
                    if not self._is(exc, 404):
                        raise
                    if isinstance(if_version, str):
                        raise VersionConflictError(f"{key!r} was deleted meanwhile") from None
            try:
                self._call(
                    what,
                    self._create,
                    self.namespace,
                    self._new_object(name, key, data_key, value, token),
                )
                return token
            except VersionConflictError:
                continue  # created meanwhile by another writer: patch it
        raise BackendUnavailableError(
            f"{what}: its object kept changing; gave up after {WRITE_ATTEMPTS} attempts"
        )

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        name, data_key = self._locate(key)
        what = f"delete {key!r}"
        for attempt in range(WRITE_ATTEMPTS):
            _pause(attempt)
            current = self._read_object(name, what)
            if current is None:
                return False
            values = self._values(current)
            if data_key not in values:
                return False
            if if_version is not None and key_version(current, data_key) != if_version:
                raise VersionConflictError(
                    f"{key!r} is at version {key_version(current, data_key)}, not {if_version}"
                )
            object_version = str(current["metadata"]["resourceVersion"])
            try:
                if len(values) == 1:  # the last key: the object goes
                    self._call(
                        what,
                        self._delete,
                        name,
                        self.namespace,
                        body=k8s_client.V1DeleteOptions(
                            preconditions=k8s_client.V1Preconditions(
                                resource_version=object_version
                            )
                        ),
                    )
                else:
                    patch = self._body(data_key, None, None)
                    patch["metadata"]["resourceVersion"] = object_version
                    self._call(what, self._patch, name, self.namespace, patch)
                return True
            except VersionConflictError:
                continue  # a sibling changed: read again (and compare again)
            except BackendError as exc:
                if not self._is(exc, 404):
                    raise
        raise BackendUnavailableError(
            f"{what}: its object kept changing; gave up after {WRITE_ATTEMPTS} attempts"
        )

    # -- watch -------------------------------------------------------------------------

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> _KubernetesWatch:
        prefix = normalize_prefix(prefix)
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        return self._watches.add(_KubernetesWatch(self, prefix, on_change))

    def close(self) -> None:
        if self._closed:
            return
        self._watches.stop_all()
        self._closed = True
        try:
            self._api_client.close()  # type: ignore[no-untyped-call]
        except Exception:  # pragma: no cover - closing never matters
            log.debug("closing the API client failed", exc_info=True)


def _load_client(
    kubeconfig: str | None, context: str | None, timeout: float
) -> k8s_client.ApiClient:
    """An API client from the kubeconfig, or the pod's service account."""
    configuration = k8s_client.Configuration()
    in_cluster = (
        kubeconfig is None
        and context is None
        and not os.environ.get("KUBECONFIG")
        and os.environ.get("KUBERNETES_SERVICE_HOST")
    )
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        source = "the pod's service account" if in_cluster else "the kubeconfig"
        raise ConfigurationError(
            f"could not load Kubernetes credentials from {source}: {type(exc).__name__}"
        ) from None
    configuration.retries = False  # a read never waits on the library's own retries
    return k8s_client.ApiClient(configuration)


def _rewritten(old: Entry, new: Entry) -> bool:
    """A key written again (same value, new version); keys without a version annotation
    take their object's version, which a sibling's write changes: not a rewrite."""
    return old.version != new.version and not new.version.startswith("rv")


class _KubernetesWatch:
    """List, then a watch stream from the list's ``resourceVersion``.

    Each object event is turned into per-key changes by comparing the object's
    values with the last known ones (a sibling write does not re-deliver unchanged
    keys). Bookmarks advance the version; the stream is renewed when the server ends
    it; a 410 Gone (version too old) or a failure relists and emits the difference.
    """

    def __init__(
        self, backend: KubernetesBackend, prefix: str, on_change: Callable[[Change], None]
    ) -> None:
        self._backend = backend
        self._prefix = prefix
        self._field_selector = None
        if prefix:
            name, _ = backend._locate(prefix.split(SEPARATOR, 1)[0])
            self._field_selector = f"metadata.name={name}"
        self._stop = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._known, self._version = self._relist()
        self._dispatcher = ChangeDispatcher(on_change, name=f"veltrix-k8s-watch-{prefix}")
        self._thread = threading.Thread(
            target=self._run, name=f"veltrix-k8s-watch-{prefix}", daemon=True
        )
        self._thread.start()

    def _relist(self) -> tuple[dict[str, dict[str, Entry]], str]:
        objects, version = self._backend._list_objects(
            f"watch {self._prefix!r}", self._field_selector
        )
        known = {obj["metadata"]["name"]: self._mine(obj) for obj in objects}
        return known, version

    def _mine(self, obj: Mapping[str, Any]) -> dict[str, Entry]:
        return {k: e for k, e in self._backend._entries(obj).items() if in_prefix(k, self._prefix)}

    def _emit(self, before: Mapping[str, Entry], after: Mapping[str, Entry]) -> None:
        for key in sorted(set(before) | set(after)):
            old, new = before.get(key), after.get(key)
            if new is None:
                self._dispatcher.submit(Change(key, None))
            elif old is None or old.value != new.value or _rewritten(old, new):
                self._dispatcher.submit(Change(key, new))

    def _run(self) -> None:
        backoff = 0.0
        resync = False
        while not self._stop.is_set():
            if backoff and self._stop.wait(backoff):
                break
            try:
                if resync:
                    known, self._version = self._relist()
                    for name in sorted(set(self._known) | set(known)):
                        self._emit(self._known.get(name, {}), known.get(name, {}))
                    self._known = known
                    resync = False
                resync = self._stream()
                backoff = 0.0
            except Exception as exc:  # keep watching whatever went wrong; log it
                if self._stop.is_set():
                    break
                backoff = min(max(backoff * 2, 0.1), 5.0)
                resync = True
                log.warning("kubernetes watch on %r failed, retrying: %s", self._prefix, exc)

    def _stream(self) -> bool:
        """One watch request; True when a relist is needed (410 Gone)."""
        backend = self._backend
        kwargs: dict[str, Any] = {
            "label_selector": backend._selector,
            "watch": True,
            "resource_version": self._version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": backend.watch_timeout,
            "_preload_content": False,
            "_request_timeout": (backend._timeout, backend.watch_timeout + backend._timeout),
        }
        if self._field_selector:
            kwargs["field_selector"] = self._field_selector
        try:
            response = backend._list(backend.namespace, **kwargs)
        except ApiException as exc:
            status = _status_of(exc)[0]
            if status == 410:
                return True
            _raise_api(exc, f"watch {self._prefix!r}")
        with self._lock:
            if self._stop.is_set():
                response.release_conn()
                return False
            self._response = response
        try:
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip() and self._event(json.loads(line)):
                        return True
                if self._stop.is_set():
                    return False
        finally:
            with self._lock:
                self._response = None
            response.release_conn()
        return False

    def _event(self, event: Mapping[str, Any]) -> bool:
        """Apply one watch event; True when it says the version is too old (410)."""
        type_, obj = event.get("type"), event.get("object") or {}
        if type_ == "ERROR":
            if obj.get("code") == 410:
                return True
            raise BackendUnavailableError(f"watch error {obj.get('code')} {obj.get('reason')}")
        version = str((obj.get("metadata") or {}).get("resourceVersion", "")) or self._version
        if type_ == "BOOKMARK":
            self._version = version
            return False
        name = str(obj["metadata"]["name"])
        after = {} if type_ == "DELETED" else self._mine(obj)
        if not self._stop.is_set():
            self._emit(self._known.get(name, {}), after)
        if after:
            self._known[name] = after
        else:
            self._known.pop(name, None)
        self._version = version
        return False

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._backend._watches.discard(self)
        self._dispatcher.stop()
        with self._lock:
            response = self._response
        if response is not None:  # unblock the read the watch thread waits in
            shutdown = getattr(response, "shutdown", None)
            try:
                if shutdown is not None:
                    shutdown()
                else:  # urllib3 < 2.3
                    response.close()
            except Exception:  # pragma: no cover - already closed
                pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)


__all__ = [
    "MAX_VALUE_BYTES",
    "KubernetesBackend",
    "decode_data_key",
    "decode_name",
    "encode_data_key",
    "encode_name",
]
