"""HTTP front of the Consul test server: ``/v1/kv``, ``/v1/txn``, ``/v1/status``.

Speaks the wire format of Consul's HTTP API as py-consul and the Veltrix adapter
use it: JSON bodies shaped like Consul's (``Value`` base64 or ``null``),
``X-Consul-Index`` / ``X-Consul-KnownLeader`` / ``X-Consul-LastContact`` on KV
reads (404s included, as Consul sets them before answering "not found"),
``true``/``false`` answers to writes, blocking queries, and Consul's status codes
and error texts (400, 403, 404, 405, 409, 413, 500).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from tests.servers.consul.store import WRITE_VERBS, DirEntry, KVStore

log = logging.getLogger("consul-test-server")

KV_MAX_VALUE_SIZE = 512 * 1024
TXN_MAX_REQ_LEN = 512 * 1024
MAX_TXN_OPS = 64
DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
JITTER_FRACTION = 16

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` for the non-negative durations Consul takes."""
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            raise ValueError(text)
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(text)
    return total


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConsulServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        *,
        acl_token: str | None = None,
        datacenter: str = "dc1",
        kv_max_value_size: int = KV_MAX_VALUE_SIZE,
        txn_max_ops: int = MAX_TXN_OPS,
    ) -> None:
        super().__init__(address, ConsulHandler)
        self.store = KVStore()
        self.acl_token = acl_token
        self.datacenter = datacenter
        self.kv_max_value_size = kv_max_value_size
        self.txn_max_req_len = max(TXN_MAX_REQ_LEN, kv_max_value_size)
        self.txn_max_ops = txn_max_ops


class ConsulHandler(BaseHTTPRequestHandler):
    server: ConsulServer
    protocol_version = "HTTP/1.1"
    server_version = "consul-test-server"
    sys_version = ""
    _methods: ClassVar[tuple[str, ...]] = ("GET", "PUT", "DELETE")

    # -- plumbing ----------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # As Go's net/http (Consul): no Nagle delay between headers and body.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet; never logs tokens
        log.debug("%s %s", self.command, urlsplit(self.path).path)

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._headers: dict[str, str] = {}
        self._body_read = False
        try:
            parts = urlsplit(self.path)
            self._query = parse_qs(parts.query, keep_blank_values=True)
            path = unquote(parts.path)
            self._check_dc()
            if path.startswith("/v1/kv/") or path == "/v1/kv":
                self._kv(path[len("/v1/kv/") :])
            elif path == "/v1/txn":
                self._txn()
            elif path == "/v1/status/leader":
                self._only("GET")
                self._send_json(200, "127.0.0.1:8300")
            elif path == "/v1/status/peers":
                self._only("GET")
                self._send_json(200, ["127.0.0.1:8300"])
            else:
                self._discard_body()
                self._send_text(404, "404 page not found\n")
        except HTTPError as exc:
            self._discard_body()
            self._send_text(exc.status, exc.message)
        except (ConnectionError, TimeoutError):  # client went away
            self.close_connection = True

    def _param(self, name: str) -> str | None:
        values = self._query.get(name)
        return values[0] if values else None

    def _has(self, name: str) -> bool:
        return name in self._query

    def _only(self, *methods: str) -> None:
        if self.command not in methods:
            raise HTTPError(
                405, f"method {self.command} not allowed, allowed: {', '.join(methods)}"
            )

    def _check_dc(self) -> None:
        dc = self._param("dc")
        if dc and dc != self.server.datacenter:
            raise HTTPError(500, "No path to datacenter")

    def _body_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise HTTPError(400, "invalid Content-Length") from exc

    def _read_body(self) -> bytes:
        length = self._body_length()
        self._body_read = True
        return self.rfile.read(length) if length > 0 else b""

    def _discard_body(self) -> None:
        if self._body_read:
            return
        self._body_read = True
        length = self._body_length() if self.headers.get("Content-Length") else 0
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        for name, value in self._headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode(), "application/json")

    def _send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _set_meta(self, index: int) -> None:
        self._headers["X-Consul-Index"] = str(index)
        self._headers["X-Consul-KnownLeader"] = "true"
        self._headers["X-Consul-LastContact"] = "0"

    # -- ACLs --------------------------------------------------------------------------

    def _token(self) -> str | None:
        token = self._param("token")
        if token:
            return token
        token = self.headers.get("X-Consul-Token")
        if token:
            return token
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None

    def _acl(self) -> bool:
        """True when the request may do anything; False for the anonymous token.
        An unknown token is refused outright, as Consul does."""
        if self.server.acl_token is None:
            return True
        token = self._token()
        if token is None or token == "anonymous":
            return False
        if token != self.server.acl_token:
            raise HTTPError(403, "ACL not found")
        return True

    @staticmethod
    def _denied(permission: str, key: str) -> HTTPError:
        return HTTPError(
            403, f"Permission denied: anonymous token lacks permission '{permission}' on \"{key}\""
        )

    # -- /v1/kv ------------------------------------------------------------------------

    def _kv(self, key: str) -> None:
        self._only(*self._methods)
        if self.command == "GET":
            if self._has("keys"):
                self._kv_keys(key)
            else:
                self._kv_get(key)
        elif self.command == "PUT":
            self._kv_put(key)
        else:
            self._kv_delete(key)

    def _blocking(self) -> tuple[int, float]:
        if self._has("stale") and self._has("consistent"):
            raise HTTPError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        index_text = self._param("index")
        try:
            index = int(index_text) if index_text else 0
            if index < 0:
                raise ValueError(index_text)
        except ValueError as exc:
            raise HTTPError(400, "Invalid index") from exc
        wait_text = self._param("wait")
        try:
            wait = parse_duration(wait_text) if wait_text else 0.0
        except ValueError as exc:
            raise HTTPError(400, "Invalid wait time") from exc
        if index <= 0:
            return 0, 0.0
        if wait <= 0:
            wait = DEFAULT_WAIT
        wait = min(wait, MAX_WAIT)
        wait += random.uniform(0, wait / JITTER_FRACTION)
        return index, wait

    def _kv_get(self, key: str) -> None:
        recurse = self._has("recurse")
        if not recurse and not key:
            raise HTTPError(400, "Missing key name")
        min_index, wait = self._blocking()
        allowed = self._acl()
        store = self.server.store
        if not recurse and not allowed:
            raise self._denied("key:read", key)

        if recurse:

            def query() -> tuple[int, list[DirEntry]]:
                entries = store.list_prefix(key)
                return store.prefix_index(key, entries), entries

        else:

            def query() -> tuple[int, list[DirEntry]]:
                entry = store.get(key)
                return store.table_index(), [] if entry is None else [entry]

        index, entries = store.read(query, min_index=min_index, timeout=wait)
        self._set_meta(index)
        if not allowed and entries:
            entries = []
            self._headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
        if not entries:
            self._send(404, b"", "text/plain; charset=utf-8")
            return
        if self._has("raw") and not recurse:
            self._headers["X-Content-Type-Options"] = "nosniff"
            self._headers["Content-Security-Policy"] = "sandbox"
            self._send(200, entries[0].value or b"", "text/plain")
            return
        self._send_json(200, [e.to_json() for e in entries])

    def _kv_keys(self, prefix: str) -> None:
        separator = self._param("separator") or self._param("seperator") or ""
        min_index, wait = self._blocking()
        allowed = self._acl()
        store = self.server.store

        def query() -> tuple[int, list[str]]:
            entries = store.list_prefix(prefix)
            keys: list[str] = []
            for entry in entries:
                if separator:
                    cut = entry.key.find(separator, len(prefix))
                    if cut >= 0:
                        folded = entry.key[: cut + len(separator)]
                        if not keys or keys[-1] != folded:
                            keys.append(folded)
                        continue
                keys.append(entry.key)
            return store.prefix_index(prefix, entries), keys

        index, keys = store.read(query, min_index=min_index, timeout=wait)
        self._set_meta(index)
        if not allowed and keys:
            keys = []
            self._headers["X-Consul-Results-Filtered-By-ACLs"] = "true"
        if not keys and prefix:
            self._send(404, b"", "text/plain; charset=utf-8")
            return
        self._send_json(200, keys)

    def _uint_param(self, name: str) -> int | None:
        text = self._param(name)
        if text is None:
            return None
        try:
            value = int(text)
            if value < 0 or value >= 2**64:
                raise ValueError(text)
        except ValueError as exc:
            raise HTTPError(400, f'strconv.ParseUint: parsing "{text}": invalid syntax') from exc
        return value

    def _conflicting(self, *flags: str) -> None:
        if sum(1 for flag in flags if self._has(flag)) > 1:
            raise HTTPError(400, "Conflicting flags: " + "&".join(sorted(self._query)) + "\n")

    def _kv_put(self, key: str) -> None:
        if not key:
            raise HTTPError(400, "Missing key name")
        self._conflicting("cas", "acquire", "release")
        if self._has("acquire") or self._has("release"):
            raise HTTPError(500, "invalid session: this test server has no sessions")
        flags = self._uint_param("flags") or 0
        cas = self._uint_param("cas")
        length = self._body_length()
        limit = self.server.kv_max_value_size
        if length > limit:
            raise HTTPError(
                413,
                f"Request body({length} bytes) too large, max size: {limit} bytes. See "
                "https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
            )
        body = self._read_body()
        if not self._acl():
            raise self._denied("key:write", key)
        value = body or None
        store = self.server.store
        if cas is None:
            store.write(lambda index: store.set(index, key, value, flags))
            self._send_json(200, True)
        else:
            expected = cas
            self._send_json(
                200, store.write(lambda index: store.cas(index, key, value, flags, expected))
            )

    def _kv_delete(self, key: str) -> None:
        self._conflicting("recurse", "cas")
        recurse = self._has("recurse")
        if not recurse and not key:
            raise HTTPError(400, "Missing key name")
        cas = self._uint_param("cas")
        if not self._acl():
            raise self._denied("key:write", key)
        store = self.server.store
        if recurse:
            store.write(lambda index: store.delete_tree(index, key))
        elif cas is not None:
            expected = cas
            self._send_json(200, store.write(lambda index: store.delete_cas(index, key, expected)))
            return
        else:
            store.write(lambda index: store.delete(index, key))
        self._send_json(200, True)

    # -- /v1/txn -----------------------------------------------------------------------

    def _txn(self) -> None:
        self._only("PUT")
        limit = self.server.txn_max_req_len
        if self._body_length() > limit:
            raise HTTPError(413, f"Request body too large, max size: {limit} bytes")
        body = self._read_body()
        try:
            raw_ops = json.loads(body or b"null")
            if not isinstance(raw_ops, list):
                raise ValueError("expected a JSON array of operations")
        except ValueError as exc:
            raise HTTPError(400, f"Failed to parse body: {exc}") from exc
        if len(raw_ops) > self.server.txn_max_ops:
            raise HTTPError(
                413,
                f"Transaction contains too many operations ({len(raw_ops)} > "
                f"{self.server.txn_max_ops})",
            )
        ops = [self._txn_op(raw) for raw in raw_ops]
        allowed = self._acl()
        writes = sum(1 for op in ops if op["Verb"] in WRITE_VERBS)
        results, errors = self.server.store.transaction(ops, allowed=allowed)
        if writes == 0:
            self._headers["X-Consul-KnownLeader"] = "true"
            self._headers["X-Consul-LastContact"] = "0"
        if errors:
            self._send_json(409, {"Results": None, "Errors": errors})
        else:
            self._send_json(200, {"Results": results or None, "Errors": None})

    def _txn_op(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise HTTPError(400, "Failed to parse body: operation must be an object")
        fields = {name.lower(): value for name, value in raw.items()}
        kv = fields.get("kv")
        if kv is None:
            if fields:
                raise HTTPError(
                    400, "Failed to parse body: only KV operations are served by this test server"
                )
            raise HTTPError(400, "Failed to parse body: no operation specified")
        if not isinstance(kv, dict):
            raise HTTPError(400, "Failed to parse body: KV must be an object")
        kv = {name.lower(): value for name, value in kv.items()}
        key = kv.get("key", "")
        value = kv.get("value")
        if value is not None:
            if not isinstance(value, str):
                raise HTTPError(
                    400, f"Failed to parse body: unexpected value type: {type(value).__name__}"
                )
            try:
                value = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise HTTPError(
                    400, f"Failed to parse body: failed to decode value: {exc}"
                ) from exc
        limit = self.server.kv_max_value_size
        if value is not None and len(value) > limit:
            raise HTTPError(
                413, f'Value for key "{key}" is too large ({len(value)} > {limit} bytes)'
            )
        try:
            flags = int(kv.get("flags") or 0)
            index = int(kv.get("index") or 0)
        except (TypeError, ValueError) as exc:
            raise HTTPError(400, f"Failed to parse body: {exc}") from exc
        return {
            "Verb": str(kv.get("verb", "")),
            "Key": str(key),
            "Value": value or None,
            "Flags": flags,
            "Index": index,
        }


__all__ = ["ConsulServer", "parse_duration"]
