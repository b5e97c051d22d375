"""State of the Kubernetes test server: core/v1 ConfigMaps and Secrets.

One global ``resourceVersion`` counter (as etcd's revision), an event history for
watches (events older than the retained window answer 410 Gone), validation as
the API server does it (DNS-1123 names, ConfigMap/Secret data keys, the 1 MiB
object size limit), and the optimistic-concurrency rules of updates, patches and
deletes (409 Conflict on a stale ``resourceVersion``).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import copy
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: Kinds served: resource name -> (kind, list kind).
KINDS = {"configmaps": "ConfigMap", "secrets": "Secret"}
#: The API server refuses a ConfigMap or Secret whose data is larger than this.
MAX_DATA_BYTES = 1024 * 1024
#: ... and annotations (names and values together) larger than this.
MAX_ANNOTATION_BYTES = 256 * 1024
DNS1123_SUBDOMAIN_MAX = 253
DNS1123_LABEL_MAX = 63
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_RE = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_LABEL_RE = re.compile(_DNS1123_LABEL)
_DATA_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


class ApiError(Exception):
    """An answer other than success: rendered as a ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{resource} "{name}" not found',
        details={"name": name, "kind": resource},
    )


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 as the API server words it: ``causes`` are ``(reason, field, message)``."""
    text = ", ".join(f"{field}: {message}" for _, field, message in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {text}',
        details={
            "name": name,
            "kind": kind,
            "causes": [
                {"reason": reason, "message": message, "field": field}
                for reason, field, message in causes
            ],
        },
    )


def conflict(resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details={"name": name, "kind": resource},
    )


def is_subdomain(name: str) -> bool:
    return len(name) <= DNS1123_SUBDOMAIN_MAX and _SUBDOMAIN_RE.fullmatch(name) is not None


def is_dns_label(name: str) -> bool:
    return len(name) <= DNS1123_LABEL_MAX and _LABEL_RE.fullmatch(name) is not None


def data_key_errors(key: str) -> list[str]:
    """Why ``key`` is not a valid ConfigMap/Secret key (``IsConfigMapKey``)."""
    errors = []
    if len(key) > DNS1123_SUBDOMAIN_MAX:
        errors.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _DATA_KEY_RE.fullmatch(key):
        errors.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
            "is '[-._a-zA-Z0-9]+')"
        )
    if key == ".":
        errors.append("must not be '.'")
    elif key == "..":
        errors.append("must not be '..'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def label_errors(labels: dict[str, Any]) -> list[tuple[str, str, str]]:
    causes = []
    for name, value in labels.items():
        field = f"metadata.labels: Invalid value: {name!r}"
        prefix, _, short = name.rpartition("/")
        if (
            not short
            or len(short) > DNS1123_LABEL_MAX
            or not _LABEL_NAME_RE.fullmatch(short)
            or (prefix and not is_subdomain(prefix))
        ):
            causes.append(("FieldValueInvalid", field, "name part must be a qualified name"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE_RE.fullmatch(value):
            causes.append(("FieldValueInvalid", field, "a valid label value is required"))
    return causes


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    revision: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: str
    namespace: str
    object: dict[str, Any]
    #: The object before a MODIFIED event (label selectors see objects leave and enter).
    previous: dict[str, Any] | None = None


# -- label selectors ---------------------------------------------------------------------

_REQUIREMENT_RE = re.compile(
    r"\s*(?P<not>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[A-Za-z0-9._-]*))?\s*$"
)

Selector = Callable[[dict[str, str]], bool]


@dataclass(frozen=True)
class Requirement:
    """One requirement of a selector: ``key op values``."""

    key: str
    op: str  # exists | !exists | in | notin (=, == and != are in/notin of one value)
    values: frozenset[str] = frozenset()

    def __call__(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "in":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def _all(requirements: list[Requirement]) -> Selector:
    return lambda labels: all(requirement(labels) for requirement in requirements)


def parse_selector(text: str) -> Selector:
    """A label selector (``a=b,c!=d,e in (f,g),!h``) as a predicate; 400 when malformed."""
    requirements: list[Requirement] = []
    for text_part in _split_requirements(text):
        match = _REQUIREMENT_RE.fullmatch(text_part)
        if match is None:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {text_part!r}")
        key, op, value = match["key"], (match["op"] or "").strip(), match["value"]
        if match["not"]:
            if op:
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {text_part!r}")
            requirements.append(Requirement(key, "!exists"))
        elif not op:
            requirements.append(Requirement(key, "exists"))
        elif op in ("=", "==", "!="):
            requirements.append(
                Requirement(key, "notin" if op == "!=" else "in", frozenset([value]))
            )
        else:
            if not value.startswith("("):
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {text_part!r}")
            values = frozenset(v.strip() for v in value[1:-1].split(",") if v.strip())
            requirements.append(Requirement(key, op, values))
    return _all(requirements)


def parse_field_selector(text: str) -> Selector:
    """Field selectors on ``metadata.name``, ``metadata.namespace`` (and ``type`` for
    Secrets), applied to :func:`object_fields`."""
    requirements: list[Requirement] = []
    for text_part in _split_requirements(text):
        for op in ("!=", "==", "="):
            field, found, value = text_part.partition(op)
            if found:
                break
        else:
            raise ApiError(400, "BadRequest", f"invalid field selector: {text_part!r}")
        field = field.strip()
        if field not in ("metadata.name", "metadata.namespace", "type"):
            raise ApiError(
                400,
                "BadRequest",
                f'"{field}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"',
            )
        values = frozenset([value.strip()])
        requirements.append(Requirement(field, "notin" if op == "!=" else "in", values))
    return _all(requirements)


def object_fields(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj["metadata"]
    fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"]}
    if obj.get("kind") == "Secret":
        fields["type"] = obj.get("type", "Opaque")
    return fields


# -- patches -----------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge patch as it applies to ConfigMaps and Secrets: maps merge
    (``null`` deletes), lists are replaced (these kinds have no merge-keyed lists
    outside ``metadata``), ``$patch: replace``/``delete`` directives are honoured and
    ``$setElementOrder``/``$retainKeys`` directives are accepted."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {
        k: v
        for k, v in patch.items()
        if k != "$patch" and not k.startswith("$setElementOrder/") and k != "$retainKeys"
    }
    if directive == "replace":
        return {k: v for k, v in body.items() if v is not None}
    if directive is not None:
        raise ApiError(400, "BadRequest", f"unknown patch directive {directive!r}")
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in body.items():
        if value is None:
            result.pop(key, None)
            continue
        merged = strategic_merge_patch(result.get(key), value)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, test, copy, move)."""
    if not isinstance(operations, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    doc = copy.deepcopy(target)

    def walk(path: str) -> tuple[Any, str]:
        if not path.startswith("/"):
            raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, parts[-1]

    try:
        for op in operations:
            kind, path = op["op"], op["path"]
            parent, last = walk(path)
            if kind in ("add", "replace"):
                if isinstance(parent, list):
                    index = len(parent) if last == "-" else int(last)
                    if kind == "add":
                        parent.insert(index, op["value"])
                    else:
                        parent[index] = op["value"]
                else:
                    if kind == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            elif kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif kind == "test":
                current = parent[int(last)] if isinstance(parent, list) else parent[last]
                if current != op["value"]:
                    raise ApiError(422, "Invalid", f"test operation failed at {path}")
            elif kind in ("copy", "move"):
                source_parent, source_last = walk(op["from"])
                value = source_parent[source_last]
                if kind == "move":
                    del source_parent[source_last]
                parent[last] = copy.deepcopy(value)
            else:
                raise ApiError(400, "BadRequest", f"unknown json patch op {kind!r}")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, "Invalid", f"json patch failed: {exc}") from exc
    return doc


# -- the store ---------------------------------------------------------------------------


class Store:
    """ConfigMaps and Secrets of every namespace, with a bounded event history."""

    def __init__(self, *, history: int = 1000) -> None:
        self._lock = threading.Condition()
        self._revision = 1
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._events: deque[Event] = deque(maxlen=history)
        #: Events at or below this revision are gone from the history (410 Gone).
        self._compacted = 1

    # -- reads -------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        with self._lock:
            return self._revision

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            obj = self._objects.get((resource, namespace, name))
            if obj is None:
                raise not_found(resource, name)
            return copy.deepcopy(obj)

    def list(
        self,
        resource: str,
        namespace: str | None,
        labels: Selector,
        fields: Selector,
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (res, ns, _), obj in sorted(self._objects.items())
                if res == resource
                and (namespace is None or ns == namespace)
                and labels(obj["metadata"].get("labels") or {})
                and fields(object_fields(obj))
            ]
            return items, self._revision

    def events_after(self, revision: int) -> builtins.list[Event]:
        """Events after ``revision``; 410 Gone when the history no longer reaches back."""
        with self._lock:
            if revision < self._compacted:
                raise ApiError(
                    410,
                    "Expired",
                    f"too old resource version: {revision} ({self._compacted})",
                )
            return [event for event in self._events if event.revision > revision]

    def wait_for_events(self, revision: int, timeout: float) -> builtins.list[Event]:
        with self._lock:
            self._lock.wait_for(lambda: self._revision > revision, timeout=timeout)
            return self.events_after(revision)

    def compact(self) -> int:
        """Forget the event history (as etcd compaction does); returns the revision."""
        with self._lock:
            self._events.clear()
            self._compacted = self._revision
            return self._revision

    # -- writes ------------------------------------------------------------------------

    def _record(
        self,
        type_: str,
        resource: str,
        namespace: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> None:
        if len(self._events) == self._events.maxlen and self._events:
            self._compacted = self._events[0].revision
        self._events.append(
            Event(self._revision, type_, resource, namespace, copy.deepcopy(obj), previous)
        )
        self._lock.notify_all()

    def create(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            obj = normalize(resource, namespace, obj)
            name = obj["metadata"]["name"]
            if (resource, namespace, name) in self._objects:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{resource} "{name}" already exists',
                    details={"name": name, "kind": resource},
                )
            self._revision += 1
            meta = obj["metadata"]
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            meta["resourceVersion"] = str(self._revision)
            self._objects[(resource, namespace, name)] = obj
            self._record("ADDED", resource, namespace, obj)
            return copy.deepcopy(obj)

    def update(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT: replace; a given ``metadata.resourceVersion`` must be the current one."""
        with self._lock:
            current = self._objects.get((resource, namespace, name))
            if current is None:
                raise not_found(resource, name)
            return self._replace(resource, namespace, name, current, obj)

    def patch(
        self,
        resource: str,
        namespace: str,
        name: str,
        apply: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        with self._lock:
            current = self._objects.get((resource, namespace, name))
            if current is None:
                raise not_found(resource, name)
            patched = apply(copy.deepcopy(current))
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "patch did not produce an object")
            return self._replace(resource, namespace, name, current, patched)

    def _replace(
        self,
        resource: str,
        namespace: str,
        name: str,
        current: dict[str, Any],
        obj: dict[str, Any],
    ) -> dict[str, Any]:
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        assert isinstance(meta, dict)
        obj = {**obj, "metadata": meta}
        given = meta.get("resourceVersion")
        if given and given != current["metadata"]["resourceVersion"]:
            raise conflict(resource, name)
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on "
                f"the URL ({name})",
            )
        meta["name"] = name
        obj = normalize(resource, namespace, obj)
        for field in ("uid", "creationTimestamp"):
            obj["metadata"][field] = current["metadata"][field]
        if current.get("immutable") and (
            obj.get("data") != current.get("data")
            or obj.get("binaryData") != current.get("binaryData")
        ):
            raise invalid(
                KINDS[resource],
                name,
                [
                    (
                        "FieldValueForbidden",
                        "data",
                        "Forbidden: field is immutable when `immutable` is set",
                    )
                ],
            )
        unchanged = {k: v for k, v in obj.items() if k != "metadata"} == {
            k: v for k, v in current.items() if k != "metadata"
        } and {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"} == {
            k: v for k, v in current["metadata"].items() if k != "resourceVersion"
        }
        if unchanged:  # a no-op write does not bump the version (as the API server)
            return copy.deepcopy(current)
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        self._objects[(resource, namespace, name)] = obj
        self._record("MODIFIED", resource, namespace, obj, copy.deepcopy(current))
        return copy.deepcopy(obj)

    def delete(
        self,
        resource: str,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            current = self._objects.get((resource, namespace, name))
            if current is None:
                raise not_found(resource, name)
            meta = current["metadata"]
            if resource_version and resource_version != meta["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource} "{name}": Precondition '
                    f"failed: ResourceVersion in precondition: {resource_version}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}",
                    details={"name": name, "kind": resource},
                )
            if uid and uid != meta["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource} "{name}": Precondition '
                    f"failed: UID in precondition: {uid}, UID in object meta: {meta['uid']}",
                    details={"name": name, "kind": resource},
                )
            del self._objects[(resource, namespace, name)]
            self._revision += 1
            gone = copy.deepcopy(current)
            gone["metadata"]["resourceVersion"] = str(self._revision)
            self._record("DELETED", resource, namespace, gone)
            return gone


def normalize(resource: str, namespace: str, obj: Any) -> dict[str, Any]:
    """Validate ``obj`` as the API server would and return its stored form."""
    kind = KINDS[resource]
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", f"the body of the request was not a {kind} object")
    if obj.get("kind") not in (None, kind) or obj.get("apiVersion") not in (None, "v1"):
        raise ApiError(
            400,
            "BadRequest",
            f"the API version in the data ({obj.get('apiVersion')}) does not match the "
            f"expected API version (v1) or kind ({obj.get('kind')}) is not {kind}",
        )
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    name = meta.get("name")
    if not name and meta.get("generateName"):
        name = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
    causes: list[tuple[str, str, str]] = []
    if not isinstance(name, str) or not name:
        causes.append(
            (
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
        )
        name = ""
    elif not is_subdomain(name):
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of "
                "lower case alphanumeric characters, '-' or '.', and must start and end "
                "with an alphanumeric character",
            )
        )
    if meta.get("namespace", namespace) != namespace:
        raise ApiError(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        raise ApiError(400, "BadRequest", "metadata.labels and annotations must be maps")
    causes += label_errors(labels)
    annotation_bytes = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if annotation_bytes > MAX_ANNOTATION_BYTES:
        causes.append(
            (
                "FieldValueTooLong",
                "metadata.annotations",
                f"Too long: must have at most {MAX_ANNOTATION_BYTES} bytes",
            )
        )
    stored: dict[str, Any] = {"kind": kind, "apiVersion": "v1"}
    stored_meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        stored_meta["labels"] = dict(labels)
    if annotations:
        stored_meta["annotations"] = {str(k): str(v) for k, v in annotations.items()}
    for field in ("generateName", "finalizers", "ownerReferences"):
        if meta.get(field):
            stored_meta[field] = meta[field]
    stored["metadata"] = stored_meta
    size = 0
    if kind == "ConfigMap":
        data = obj.get("data") or {}
        binary = obj.get("binaryData") or {}
        if not isinstance(data, dict) or not isinstance(binary, dict):
            raise ApiError(400, "BadRequest", "data and binaryData must be maps of strings")
        for key, value in data.items():
            for message in data_key_errors(key):
                causes.append(("FieldValueInvalid", "data", f"Invalid value: {key!r}: {message}"))
            if not isinstance(value, str):
                raise ApiError(400, "BadRequest", f"data[{key!r}] must be a string")
            size += len(key) + len(value.encode())
        for key, value in binary.items():
            for message in data_key_errors(key):
                causes.append(
                    ("FieldValueInvalid", "binaryData", f"Invalid value: {key!r}: {message}")
                )
            if key in data:
                causes.append(
                    (
                        "FieldValueInvalid",
                        "binaryData",
                        f"Invalid value: {key!r}: duplicate of key present in data",
                    )
                )
            size += len(key) + len(_b64decode(value, f"binaryData[{key!r}]"))
        if data:
            stored["data"] = dict(data)
        if binary:
            stored["binaryData"] = dict(binary)
    else:
        data = obj.get("data") or {}
        string_data = obj.get("stringData") or {}
        if not isinstance(data, dict) or not isinstance(string_data, dict):
            raise ApiError(400, "BadRequest", "data and stringData must be maps of strings")
        merged = dict(data)
        for key, value in string_data.items():  # stringData wins, as documented
            merged[key] = base64.b64encode(str(value).encode()).decode()
        for key, value in merged.items():
            for message in data_key_errors(key):
                causes.append(("FieldValueInvalid", "data", f"Invalid value: {key!r}: {message}"))
            size += len(_b64decode(value, f"data[{key!r}]"))
        if merged:
            stored["data"] = merged
        stored["type"] = obj.get("type") or "Opaque"
    if size > MAX_DATA_BYTES:
        causes.append(
            ("FieldValueTooLong", "[]", f"Too long: must have at most {MAX_DATA_BYTES} bytes")
        )
    if obj.get("immutable") is not None:
        stored["immutable"] = bool(obj["immutable"])
    if causes:
        raise invalid(kind, name, causes)
    return stored


def _b64decode(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ApiError(400, "BadRequest", f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "BadRequest", f"{where}: illegal base64 data") from exc


__all__ = [
    "KINDS",
    "MAX_DATA_BYTES",
    "ApiError",
    "Event",
    "Store",
    "is_dns_label",
    "is_subdomain",
    "json_patch",
    "merge_patch",
    "parse_field_selector",
    "parse_selector",
    "strategic_merge_patch",
]
