"""REST and gRPC front ends over one :class:`SecretStore`.

REST follows the HTTP bindings of the v1 API (``/v1/{name=projects/*/secrets/*}`` and
friends, JSON with camelCase field names, errors as ``{"error": {"code", "message",
"status"}}``); gRPC serves ``google.cloud.secretmanager.v1.SecretManagerService``
with generic method handlers that (de)serialize with the client package's messages.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import grpc
from google.protobuf import json_format

from tests.servers.gcp_secret_manager.store import ApiError, SecretStore, methods

log = logging.getLogger("gcpsm-test-server")

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"

#: Canonical status -> HTTP status, as Google's APIs map them.
HTTP_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


@dataclass(frozen=True)
class Tokens:
    """Who may call: ``allowed`` has access; each of ``denied`` is a known identity without
    it. With ``allowed`` None every request is let in."""

    allowed: str | None = None
    denied: tuple[str, ...] = ()


def check_token(tokens: Tokens | str | None, authorization: str | None) -> None:
    """As Google answers: no bearer token, or one that names nobody (an unknown or
    invalid token), is UNAUTHENTICATED (401); a known identity without access to the
    resource is PERMISSION_DENIED (403)."""
    if not isinstance(tokens, Tokens):
        tokens = Tokens(tokens)
    if tokens.allowed is None:
        return
    if not authorization or not authorization.lower().startswith("bearer "):
        raise ApiError(
            "UNAUTHENTICATED",
            "Request is missing required authentication credential. Expected OAuth 2 access token.",
        )
    given = authorization[7:].strip().encode()
    if hmac.compare_digest(given, tokens.allowed.encode()):
        return
    if any(hmac.compare_digest(given, denied.encode()) for denied in tokens.denied):
        raise ApiError(
            "PERMISSION_DENIED",
            "Permission denied on resource (or it may not exist) for the caller's credentials.",
        )
    raise ApiError(
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token.",
    )


# -- gRPC --------------------------------------------------------------------------------


def _grpc_handler(
    fn: Callable[[Any], Any], token: Tokens | str | None
) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        try:
            check_token(token, metadata.get("authorization"))
            return fn(request)
        except ApiError as exc:
            context.abort(grpc.StatusCode[exc.status], exc.message)
        except Exception:  # pragma: no cover - a server bug must not hang the client
            log.exception("internal error")
            context.abort(grpc.StatusCode.INTERNAL, "internal error in the test server")
        raise AssertionError("unreachable")  # context.abort raises

    return handle


#: gRPC method name -> (handler, request pb class, response pb class).
MethodTable = dict[str, tuple[Callable[[Any], Any], Any, Any]]
#: (HTTP method, path regex with one group = the resource, gRPC method, path field, body field)
Route = tuple[str, re.Pattern[str], str, str, str | None]


def grpc_server(
    services: dict[str, MethodTable], host: str, port: int, token: Tokens | str | None
) -> grpc.Server:
    """One gRPC server serving every service in ``services`` (name -> method table)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    for service_name, table in services.items():
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                _grpc_handler(fn, token),
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
            for name, (fn, request_type, response_type) in table.items()
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service_name, handlers),)
        )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC port {host}:{port}")
    return server


def make_grpc_server(
    store: SecretStore, host: str, port: int, token: Tokens | str | None
) -> grpc.Server:
    return grpc_server({SERVICE: methods(store)}, host, port, token)


# -- REST --------------------------------------------------------------------------------

_P = r"projects/[^/:]+(?:/locations/[^/:]+)?"
_S = rf"{_P}/secrets/[^/:]+"
_V = rf"{_S}/versions/[^/:]+"

ROUTES: list[Route] = [
    ("GET", re.compile(rf"/v1/({_P})/secrets"), "ListSecrets", "parent", None),
    ("POST", re.compile(rf"/v1/({_P})/secrets"), "CreateSecret", "parent", "secret"),
    ("GET", re.compile(rf"/v1/({_S})"), "GetSecret", "name", None),
    ("PATCH", re.compile(rf"/v1/({_S})"), "UpdateSecret", "secret.name", "secret"),
    ("DELETE", re.compile(rf"/v1/({_S})"), "DeleteSecret", "name", None),
    ("POST", re.compile(rf"/v1/({_S}):addVersion"), "AddSecretVersion", "parent", "*"),
    ("GET", re.compile(rf"/v1/({_S})/versions"), "ListSecretVersions", "parent", None),
    ("GET", re.compile(rf"/v1/({_V})"), "GetSecretVersion", "name", None),
    ("GET", re.compile(rf"/v1/({_V}):access"), "AccessSecretVersion", "name", None),
    ("POST", re.compile(rf"/v1/({_V}):enable"), "EnableSecretVersion", "name", "*"),
    ("POST", re.compile(rf"/v1/({_V}):disable"), "DisableSecretVersion", "name", "*"),
    ("POST", re.compile(rf"/v1/({_V}):destroy"), "DestroySecretVersion", "name", "*"),
    ("POST", re.compile(rf"/v1/({_S}):setIamPolicy"), "SetIamPolicy", "resource", "*"),
    ("GET", re.compile(rf"/v1/({_S}):getIamPolicy"), "GetIamPolicy", "resource", None),
]


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls
    server_version = "gcpsm-test-server"
    token: Tokens | str | None
    routes: list[Route]
    table: MethodTable

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, exc: ApiError) -> None:
        code = HTTP_CODES.get(exc.status, 500)
        self._send(
            code,
            json.dumps({"error": {"code": code, "message": exc.message, "status": exc.status}}),
        )

    def _handle(self, verb: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        try:
            check_token(self.token, self.headers.get("Authorization"))
            self._dispatch(verb, raw_body)
        except ApiError as exc:
            self._error(exc)
        except Exception:  # pragma: no cover - a server bug must still answer
            log.exception("internal error")
            self._error(ApiError("INTERNAL", "internal error in the test server"))

    def _dispatch(self, verb: str, raw_body: bytes) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        route = next(
            (r for r in self.routes if r[0] == verb and r[1].fullmatch(path) is not None), None
        )
        if route is None:
            if any(r[1].fullmatch(path) for r in self.routes):
                raise ApiError("UNIMPLEMENTED", f"HTTP method {verb} is not supported for {path}")
            raise ApiError("NOT_FOUND", f"The requested URL {path} was not found on this server.")
        _, pattern, method, path_field, body_field = route
        match = pattern.fullmatch(path)
        assert match is not None
        fn, request_type, _ = self.table[method]
        request = request_type()
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        alt = query.pop("$alt", "json")
        int_enums = "enum-encoding=int" in alt
        query.pop("alt", None)
        try:
            if body_field == "*":
                json_format.Parse(raw_body or b"{}", request)
            elif body_field is not None:
                json_format.Parse(raw_body or b"{}", getattr(request, body_field))
            if query:
                json_format.ParseDict(_nest(query), request)
        except json_format.ParseError as exc:
            raise ApiError("INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from exc
        target = request
        *owners, leaf = path_field.split(".")
        for owner in owners:
            target = getattr(target, owner)
        setattr(target, leaf, match.group(1))
        response = fn(request)
        self._send(
            200,
            json_format.MessageToJson(response, use_integers_for_enums=int_enums, indent=None),
        )

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def _nest(query: dict[str, str]) -> dict[str, Any]:
    """``{"a.b": "x"}`` -> ``{"a": {"b": "x"}}`` (query parameters name nested fields)."""
    result: dict[str, Any] = {}
    for name, value in query.items():
        target = result
        *owners, leaf = name.split(".")
        for owner in owners:
            target = target.setdefault(owner, {})
        target[leaf] = value
    return result


def rest_server(
    routes: list[Route], table: MethodTable, host: str, port: int, token: Tokens | str | None
) -> ThreadingHTTPServer:
    """One HTTP server answering ``routes`` with the handlers of ``table``."""
    handler = type(
        "RestHandler", (_RestHandler,), {"token": token, "routes": routes, "table": table}
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def make_rest_server(
    store: SecretStore, host: str, port: int, token: Tokens | str | None
) -> ThreadingHTTPServer:
    return rest_server(ROUTES, methods(store), host, port, token)


def serve(host: str, rest_port: int, grpc_port: int, token: Tokens | str | None) -> None:
    """Serve both transports until interrupted."""
    store = SecretStore()
    run_both(
        make_grpc_server(store, host, grpc_port, token),
        make_rest_server(store, host, rest_port, token),
    )
    log.info("stopped serving REST on %s:%d and gRPC on %s:%d", host, rest_port, host, grpc_port)


def run_both(grpc_srv: grpc.Server, rest_srv: ThreadingHTTPServer) -> None:
    """Serve a gRPC and a REST front end until interrupted."""
    grpc_srv.start()
    thread = threading.Thread(target=rest_srv.serve_forever, name="rest", daemon=True)
    thread.start()
    log.info("serving REST on %s and gRPC", rest_srv.server_address)
    try:
        grpc_srv.wait_for_termination()
    finally:
        rest_srv.shutdown()
        grpc_srv.stop(grace=1)


__all__ = [
    "HTTP_CODES",
    "ROUTES",
    "SERVICE",
    "MethodTable",
    "Route",
    "Tokens",
    "grpc_server",
    "make_grpc_server",
    "make_rest_server",
    "rest_server",
    "run_both",
    "serve",
]
