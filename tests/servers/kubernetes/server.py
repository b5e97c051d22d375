"""HTTP front of the Kubernetes test server: discovery plus core/v1 ConfigMaps and Secrets.

Written from the Kubernetes API reference, for what the ``kubernetes`` Python client
and kubectl send: discovery (``/version``, ``/api``, ``/api/v1``, ``/apis``; the
OpenAPI documents are not served, so kubectl needs ``--validate=false``), list/get/
create/update/patch (merge, strategic merge and JSON patch)/delete, label and field
selectors, and watch streams (``resourceVersion``, ``allowWatchBookmarks``,
``timeoutSeconds``; an ``ERROR`` event with a 410 ``Status`` when the version is older
than the kept history). Errors are ``Status`` objects with the API's codes and
reasons: 401 without a valid bearer token, 403 when the read-only token writes,
404, 409 (``AlreadyExists``, ``Conflict``), 410, 415, 422 (``Invalid``).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from tests.servers.kubernetes.store import (
    KINDS,
    ApiError,
    Event,
    Store,
    is_dns_label,
    json_patch,
    merge_patch,
    object_fields,
    parse_field_selector,
    parse_selector,
    strategic_merge_patch,
)

log = logging.getLogger("kubernetes-test-server")

VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-veltrix-test",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
READ_VERBS = {"get", "list", "watch"}
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
DEFAULT_WATCH_TIMEOUT = 1800.0
SHORT_NAMES = {"configmaps": ["cm"], "secrets": []}
SINGULAR = {"configmaps": "configmap", "secrets": "secret"}


def api_resources() -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {
            "name": "namespaces",
            "singularName": "namespace",
            "namespaced": False,
            "kind": "Namespace",
            "verbs": ["get", "list"],
            "shortNames": ["ns"],
        }
    ]
    for resource, kind in KINDS.items():
        entry: dict[str, Any] = {
            "name": resource,
            "singularName": SINGULAR[resource],
            "namespaced": True,
            "kind": kind,
            "verbs": VERBS,
            "storageVersionHash": "",
        }
        if SHORT_NAMES[resource]:
            entry["shortNames"] = SHORT_NAMES[resource]
        resources.append(entry)
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}


class KubernetesServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        token: str | None = None,
        read_only_token: str | None = None,
        history: int = 1000,
        bookmark_interval: float = 5.0,
        tls: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(address, KubernetesHandler)
        if tls is not None:  # HTTPS: client-go sends bearer tokens only over TLS
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            # The handshake runs on the handler's thread (first read), not in accept().
            self.socket = context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self.store = Store(history=history)
        self.token = token
        self.read_only_token = read_only_token
        self.bookmark_interval = bookmark_interval
        #: Watches answered with a 410 ERROR event (tests check that clients relisted).
        self.expired_watches = 0
        self.stopping = threading.Event()

    def shutdown(self) -> None:
        """Stop serving, and drop open watch streams as a stopping API server does."""
        self.stopping.set()
        super().shutdown()


class KubernetesHandler(BaseHTTPRequestHandler):
    server: KubernetesServer
    protocol_version = "HTTP/1.1"
    server_version = "kubernetes-test-server"
    sys_version = ""
    _methods: ClassVar[tuple[str, ...]] = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # never logs tokens or bodies
        log.debug("%s %s", self.command, urlsplit(self.path).path)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- plumbing ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._body_read = False
        try:
            parts = urlsplit(self.path)
            self._query = parse_qs(parts.query, keep_blank_values=True)
            self._route([p for p in parts.path.split("/") if p])
        except ApiError as exc:
            self._discard_body()
            self._send_json(exc.code, exc.status())
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True

    def _param(self, name: str) -> str | None:
        values = self._query.get(name)
        return values[0] if values else None

    def _flag(self, name: str) -> bool:
        return (self._param(name) or "").lower() in ("true", "1")

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        self._body_read = True
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(
                400, "BadRequest", f"the body of the request is not JSON: {exc}"
            ) from exc

    def _discard_body(self) -> None:
        if self._body_read:
            return
        self._body_read = True
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    def _send_json(self, status: int, data: Any) -> None:
        body = json.dumps(data, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(body)

    # -- authentication and authorization ---------------------------------------------

    def _authenticate(self) -> str:
        """``"admin"``, ``"reader"`` or raise 401 (as the API server: no or a wrong token)."""
        if self.server.token is None:
            return "admin"
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            if token == self.server.token:
                return "admin"
            if self.server.read_only_token and token == self.server.read_only_token:
                return "reader"
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def _authorize(self, user: str, verb: str, resource: str, namespace: str, name: str) -> None:
        if user == "admin" or verb in READ_VERBS:
            return
        what = f'{resource} "{name}"' if name else resource
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "system:serviceaccount:veltrix:reader" cannot '
            f'{verb} resource "{resource}" in API group "" in the namespace "{namespace}"',
            details={"name": name, "kind": resource} if name else {"kind": resource},
        )

    # -- routing -----------------------------------------------------------------------

    def _route(self, parts: list[str]) -> None:
        user = self._authenticate()
        method = self.command
        if method == "GET" and parts == ["version"]:
            return self._send_json(200, VERSION)
        if method == "GET" and parts == ["api"]:
            host = self.headers.get("Host") or "127.0.0.1"
            return self._send_json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": host}
                    ],
                },
            )
        if method == "GET" and parts == ["apis"]:
            return self._send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if method == "GET" and parts == ["api", "v1"]:
            return self._send_json(200, api_resources())
        if parts[:2] != ["api", "v1"]:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rest = parts[2:]
        if len(rest) == 1 and rest[0] in KINDS:  # all namespaces: list and watch only
            if method != "GET":
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            return self._collection(user, rest[0], None)
        if len(rest) >= 2 and rest[0] == "namespaces":
            namespace = rest[1]
            if not is_dns_label(namespace):
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
            if len(rest) == 2:
                if method != "GET":
                    raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
                return self._send_json(200, namespace_object(namespace))
            resource = rest[2]
            if resource in KINDS and len(rest) == 3:
                return self._collection(user, resource, namespace)
            if resource in KINDS and len(rest) == 4:
                return self._item(user, resource, namespace, rest[3])
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _collection(self, user: str, resource: str, namespace: str | None) -> None:
        ns = namespace or ""
        if self.command == "GET":
            watching = self._flag("watch")
            self._authorize(user, "watch" if watching else "list", resource, ns, "")
            labels = parse_selector(self._param("labelSelector") or "")
            fields = parse_field_selector(self._param("fieldSelector") or "")
            if watching:
                return self._watch(resource, namespace, labels, fields)
            items, revision = self.server.store.list(resource, namespace, labels, fields)
            for item in items:  # list items carry no kind/apiVersion
                item.pop("kind", None)
                item.pop("apiVersion", None)
            return self._send_json(
                200,
                {
                    "kind": f"{KINDS[resource]}List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(revision)},
                    "items": items,
                },
            )
        if self.command == "POST" and namespace is not None:
            self._authorize(user, "create", resource, ns, "")
            self._refuse_dry_run()
            return self._send_json(
                201, self.server.store.create(resource, namespace, self._read_body())
            )
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _refuse_dry_run(self) -> None:
        """Server-side dry run is not implemented: refuse it rather than write."""
        if self._param("dryRun"):
            raise ApiError(400, "BadRequest", "dryRun is not supported by this test server")

    def _item(self, user: str, resource: str, namespace: str, name: str) -> None:
        store = self.server.store
        method = self.command
        if method == "GET":
            self._authorize(user, "get", resource, namespace, name)
            return self._send_json(200, store.get(resource, namespace, name))
        if method == "PUT":
            self._authorize(user, "update", resource, namespace, name)
            self._refuse_dry_run()
            return self._send_json(200, store.update(resource, namespace, name, self._read_body()))
        if method == "PATCH":
            self._authorize(user, "patch", resource, namespace, name)
            self._refuse_dry_run()
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type not in PATCH_TYPES:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media "
                    f"types include: {', '.join(PATCH_TYPES)}",
                )
            patch = self._read_body()
            if content_type == "application/json-patch+json":
                return self._send_json(
                    200, store.patch(resource, namespace, name, lambda o: json_patch(o, patch))
                )
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            apply = strategic_merge_patch if "strategic" in content_type else merge_patch
            return self._send_json(
                200, store.patch(resource, namespace, name, lambda o: apply(o, patch))
            )
        if method == "DELETE":
            self._authorize(user, "delete", resource, namespace, name)
            self._refuse_dry_run()
            options = self._read_body() or {}
            preconditions = options.get("preconditions") or {} if isinstance(options, dict) else {}
            gone = store.delete(
                resource,
                namespace,
                name,
                resource_version=preconditions.get("resourceVersion"),
                uid=preconditions.get("uid"),
            )
            return self._send_json(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "kind": resource, "uid": gone["metadata"]["uid"]},
                },
            )
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    # -- watch -------------------------------------------------------------------------

    def _watch(
        self,
        resource: str,
        namespace: str | None,
        labels: Any,
        fields: Any,
    ) -> None:
        store = self.server.store
        bookmarks = self._flag("allowWatchBookmarks")
        try:
            timeout = float(self._param("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", "timeoutSeconds must be a number") from exc
        since = self._param("resourceVersion") or ""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        deadline = time.monotonic() + timeout

        def matches(obj: dict[str, Any] | None) -> bool:
            return (
                obj is not None
                and (namespace is None or obj["metadata"]["namespace"] == namespace)
                and labels(obj["metadata"].get("labels") or {})
                and fields(object_fields(obj))
            )

        try:
            if since in ("", "0"):  # "from now", after the current state as ADDED events
                items, revision = store.list(resource, namespace, labels, fields)
                for item in items:
                    self._send_event("ADDED", item)
            else:
                try:
                    revision = int(since)
                except ValueError:
                    self._send_event(
                        "ERROR",
                        ApiError(400, "BadRequest", f"invalid resource version {since!r}").status(),
                    )
                    return self._end_chunks()
            last_bookmark = time.monotonic()
            while not self.server.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(
                    remaining, self.server.bookmark_interval if bookmarks else remaining, 1.0
                )
                try:
                    events = store.wait_for_events(revision, wait)
                except ApiError as exc:
                    if exc.code == 410:
                        self.server.expired_watches += 1
                    self._send_event("ERROR", exc.status())
                    break
                for event in events:
                    revision = event.revision
                    self._send_matching(event, resource, matches)
                if bookmarks and time.monotonic() - last_bookmark >= self.server.bookmark_interval:
                    self._send_event(
                        "BOOKMARK",
                        {
                            "kind": KINDS[resource],
                            "apiVersion": "v1",
                            "metadata": {
                                "resourceVersion": str(store.revision if not events else revision)
                            },
                        },
                    )
                    last_bookmark = time.monotonic()
            if self.server.stopping.is_set():  # dropped, not ended: no final chunk
                self.close_connection = True
                return
            self._end_chunks()
        except (ConnectionError, OSError):
            self.close_connection = True

    def _send_matching(self, event: Event, resource: str, matches: Any) -> None:
        if event.resource != resource:
            return
        now_in = matches(event.object)
        was_in = event.type == "MODIFIED" and matches(event.previous)
        if event.type == "MODIFIED":
            if now_in and was_in:
                self._send_event("MODIFIED", event.object)
            elif now_in:
                self._send_event("ADDED", event.object)
            elif was_in:
                self._send_event("DELETED", event.object)
        elif now_in:
            self._send_event(event.type, event.object)

    def _send_event(self, type_: str, obj: dict[str, Any]) -> None:
        line = json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def namespace_object(name: str) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


__all__ = ["KubernetesServer"]
