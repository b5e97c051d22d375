"""``consul://host:8500/prefix``: Consul's KV store, through py-consul.

A canonical key ``a/b`` lives at the Consul key ``<prefix>/a/b``; an entry's
version is its ``ModifyIndex``. Compare-and-set uses Consul's ``cas`` (``0`` means
create-only); single puts and deletes go through ``/v1/txn`` so that the new
``ModifyIndex`` (or the absence of the key) is learnt atomically with the write.
Watches are blocking queries on the prefix, following Consul's guidance: reset
when the index goes backwards, never block on index 0, rate-limit the loop, and
resynchronise with a plain read after any failure; each result is diffed with
the last one to emit per-key changes, deletes included.

The ACL token comes from the ``token=`` keyword argument or ``CONSUL_HTTP_TOKEN``,
never from the URL, and is never shown in reprs, logs or error messages.

``aget`` (:class:`veltrix.backend.SupportsAsyncGet`) reads one key on the running
event loop for ``veltrix.aio.AsyncClient``'s misses: the same ``GET /v1/kv/<key>``
as :meth:`ConsulBackend.get` (URL, query, token header and answer handling are
shared), sent through an aiohttp session opened on first use and tied to that loop,
at most ``ASYNC_CONNECTIONS`` requests in flight. One request per miss: see
:meth:`ConsulBackend.aget` for why reads are not batched into ``/v1/txn``.
See ``docs/stores/consul.md``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import consul
import requests

from veltrix.adapters._requests_env import environment_verify, settle_environment
from veltrix.backend import Absent, AbsentType, Change, Entry
from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VersionConflictError,
)
from veltrix.keys import in_prefix, join, normalize_prefix, validate_key
from veltrix.log_events import FailureLog, event
from veltrix.log_redaction import protect_loggers
from veltrix.loop_bound import LoopBound
from veltrix.urls import Options, parse_url
from veltrix.values import check_value, prepare_batch
from veltrix.watching import ChangeDispatcher, WatchSet, diff_listings

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("veltrix.consul")

DEFAULT_PORT = 8500
#: Consul's default ``kv_max_value_size``.
MAX_VALUE_BYTES = 512 * 1024
#: Operations per ``/v1/txn`` request (Consul's limit before 1.15; later ones allow 128).
MAX_TXN_OPS = 64
#: Consul's default ``txn_max_req_len``: the whole request body of one transaction.
MAX_TXN_BODY = 512 * 1024
_TXN_BODY_BUDGET = MAX_TXN_BODY - 1024  # margin for the request's JSON framing
#: Requests in flight at once on the asyncio session (``aget``); more wait for one.
ASYNC_CONNECTIONS = 32

ItemValue = bytes | None
_KVOps = list[dict[str, Any]]
_KVBatches = list[_KVOps]  # (``list`` is shadowed inside ConsulBackend)


class _Response(Protocol):
    """What py-consul's HTTP client hands its callbacks (``consul.base.Response``)."""

    code: int
    headers: Mapping[str, str]
    body: Any


@dataclass(frozen=True)
class _Op:
    """One operation of a batch: a put (``value`` bytes) or a delete (``None``)."""

    key: str
    value: bytes | None
    if_version: str | AbsentType | None = None


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _decode_value(raw: Any) -> bytes:
    return base64.b64decode(raw) if raw else b""


def _short(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _cas_index(key: str, version: str) -> int:
    """A version given for compare-and-set, as Consul's index; a version that can
    never exist (not a positive integer) conflicts without any I/O."""
    try:
        index = int(version)
    except (TypeError, ValueError):
        index = 0
    if index <= 0:
        raise VersionConflictError(f"{key!r}: version {version!r} is not a Consul ModifyIndex")
    return index


class ConsulBackend:
    schemes: ClassVar[tuple[str, ...]] = ("consul",)
    #: Versions are a store-wide revision (``SupportsOrderedVersions``).
    versions_increase: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        requests.ConnectionError,
        requests.Timeout,
        BackendUnavailableError,
    )
    max_value_bytes: ClassVar[int | None] = MAX_VALUE_BYTES
    #: Operations one atomic :meth:`put_many` takes (a hint for callers batching writes).
    max_batch_ops: ClassVar[int] = MAX_TXN_OPS

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        prefix: str = "",
        *,
        token: str | None = None,
        dc: str | None = None,
        scheme: str = "http",
        verify: bool | str = True,
        timeout: float = 10.0,
        consistency: str = "default",
        watch_wait: float = 60.0,
        watch_min_interval: float = 0.05,
        watch_max_backoff: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.prefix = normalize_prefix(prefix)
        self.dc = dc or None
        self.scheme = scheme
        if isinstance(verify, str) and not os.path.isfile(verify):
            raise ConfigurationError(f"consul {host}:{port}: no CA bundle at verify={verify!r}")
        self._verify = verify
        self._timeout = timeout
        self._consistency = consistency
        self.watch_wait = watch_wait
        self.watch_min_interval = watch_min_interval
        self.watch_max_backoff = watch_max_backoff
        self._token = token if token is not None else (os.environ.get("CONSUL_HTTP_TOKEN") or None)
        self._closed = False
        self._watches: WatchSet[_ConsulWatch] = WatchSet()
        self._consul = self._new_client()
        # The aiohttp session of ``aget``, on the loop it belongs to (see aget).
        self._asession: LoopBound[aiohttp.ClientSession] = LoopBound(self, "session")

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``consul://host:8500/prefix?dc=dc1&scheme=https&verify=/path/ca.pem``.

        Options: ``dc``, ``scheme`` (http/https), ``verify`` (true/false or a CA
        bundle path), ``timeout`` (seconds), ``consistency`` (default/consistent/
        stale), ``watch_wait``, ``watch_min_interval``, ``watch_max_backoff``
        (seconds). The ACL token is the ``token=`` keyword argument or
        ``CONSUL_HTTP_TOKEN``; a token in the URL is refused.
        """
        parsed = parse_url(url, cls.schemes)
        if "token" in parsed.query:
            raise ConfigurationError(
                f"{parsed.redacted}: ACL tokens do not belong in URLs; "
                "set CONSUL_HTTP_TOKEN or pass token=..."
            )
        opts = Options(
            parsed.query, {k: v for k, v in options.items() if k != "token"}, where=parsed.redacted
        )
        dc = opts.str("dc")
        scheme = opts.choice("scheme", "http", ("http", "https"))
        verify_text = opts.str("verify", "true")
        timeout = opts.float("timeout", 10.0, minimum=0.1)
        consistency = opts.choice("consistency", "default", ("default", "consistent", "stale"))
        watch_wait = opts.float("watch_wait", 60.0, minimum=1.0)
        watch_min_interval = opts.float("watch_min_interval", 0.05, minimum=0.0)
        watch_max_backoff = opts.float("watch_max_backoff", 5.0, minimum=0.1)
        opts.finish()
        verify: bool | str
        lowered = (verify_text or "").strip().lower()
        if lowered in ("1", "true", "yes", "on", ""):
            verify = True
        elif lowered in ("0", "false", "no", "off"):
            verify = False
        else:
            verify = verify_text or True
        hosts = parsed.hosts(DEFAULT_PORT)
        if len(hosts) != 1:
            raise ConfigurationError(f"{parsed.redacted}: a consul:// URL names one agent")
        host, port = hosts[0]
        try:
            prefix = normalize_prefix(parsed.path[1:] if parsed.path.startswith("/") else "")
        except InvalidKeyError as exc:
            raise ConfigurationError(f"{parsed.redacted}: bad key prefix: {exc}") from exc
        token = options.get("token")
        if token is not None and not isinstance(token, str):
            raise ConfigurationError(f"{parsed.redacted}: token must be a string")
        return cls(
            host,
            port,
            prefix,
            token=token,
            dc=dc,
            scheme=scheme,
            verify=verify,
            timeout=timeout,
            consistency=consistency,
            watch_wait=watch_wait,
            watch_min_interval=watch_min_interval,
            watch_max_backoff=watch_max_backoff,
        )

    def _new_client(self) -> consul.Consul:
        client = consul.Consul(
            host=self.host,
            port=self.port,
            scheme=self.scheme,
            verify=self._verify,
            dc=self.dc,
            consistency=self._consistency,
            connections_timeout=self._timeout,
        )
        client.token = self._token  # py-consul would prefer CONSUL_HTTP_TOKEN over ours
        # The environment's proxies and CA bundle, read once (see _requests_env); py-consul
        # passes verify= with each request, so it takes the settled value too.
        settle_environment(client.http.session, client.http.base_uri)
        client.http.verify = environment_verify(self._verify)
        protect_loggers("consul", "urllib3", "requests")  # request lines carry ?token=
        return client

    @property
    def url(self) -> str:
        base = f"consul://{self.host}:{self.port}/{self.prefix}"
        return base + (f"?dc={self.dc}" if self.dc else "")

    def __repr__(self) -> str:
        return f"ConsulBackend({self.url!r})"

    def _consul_key(self, key: str) -> str:
        return join(self.prefix, key)

    def _entry(self, item: Mapping[str, Any], key: str) -> Entry:
        return Entry(
            key,
            _decode_value(item.get("Value")),
            str(item["ModifyIndex"]),
            source=f"consul://{self.host}:{self.port}/{item['Key']}",
        )

    def _canonical(self, consul_key: str) -> str | None:
        """The canonical key of a Consul key under our prefix, or None when it is
        outside the prefix, a folder entry (``a/``) or not representable."""
        if self.prefix:
            if not consul_key.startswith(self.prefix + "/"):
                return None
            consul_key = consul_key[len(self.prefix) + 1 :]
        try:
            return validate_key(consul_key)
        except InvalidKeyError:
            return None

    # -- HTTP --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, Any]] | None = None,
        data: bytes | str | None = None,
        client: consul.Consul | None = None,
        what: str,
    ) -> _Response:
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        client = client or self._consul
        params = self._query(method, params)
        headers = client.prepare_headers()
        http = client.http
        try:
            if method == "GET":
                response: _Response = http.get(lambda r: r, path, params=params, headers=headers)
            elif method == "PUT":
                response = http.put(
                    lambda r: r, path, params=params, data=data or b"", headers=headers
                )
            else:
                response = http.delete(lambda r: r, path, params=params, headers=headers)
        except requests.Timeout as exc:
            raise self._unreachable(what, exc, timed_out=True) from exc
        except requests.ConnectionError as exc:
            raise self._unreachable(what, exc, refused=True) from exc
        except requests.RequestException as exc:
            raise self._unreachable(what, exc) from exc
        return response

    def _query(self, method: str, params: list[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
        """A request's query: ``params`` plus the datacenter, and the consistency mode
        of reads."""
        query = list(params or [])
        if self.dc:
            query.append(("dc", self.dc))
        if method == "GET" and self._consistency in ("consistent", "stale"):
            query.append((self._consistency, "1"))
        return query

    def _unreachable(
        self, what: str, exc: BaseException, *, timed_out: bool = False, refused: bool = False
    ) -> BackendUnavailableError:
        """The error for a request that got no answer (no server, no TLS, no time left)."""
        if timed_out:
            return BackendUnavailableError(f"consul {self.host}:{self.port}: {what} timed out")
        if refused:
            return BackendUnavailableError(
                f"consul {self.host}:{self.port} is unreachable ({what}): {type(exc).__name__}"
            )
        return BackendUnavailableError(
            f"consul {self.host}:{self.port}: {what} failed: {type(exc).__name__}"
        )

    def _raise_for(self, response: _Response, what: str) -> None:
        """Map an unexpected status to the error tree (the caller handles 404/409)."""
        code = response.code
        body = response.body if isinstance(response.body, str) else ""
        where = f"consul {self.host}:{self.port}: {what}"
        if 200 <= code < 300:
            return
        error: Exception
        if code == 403:
            error = AccessDeniedError(f"{where}: permission denied ({_short(body)})")
        elif code == 401:
            error = AccessDeniedError(f"{where}: ACLs are disabled on this agent ({_short(body)})")
        elif code == 413:
            error = ValueTooLargeError(f"{where}: too large ({_short(body)})")
        elif code == 400 and "key" in body.lower():
            error = InvalidKeyError(f"{where}: rejected ({_short(body)})")
        elif code == 429 or code >= 500:
            error = BackendUnavailableError(f"{where}: HTTP {code} ({_short(body)})")
        else:
            error = BackendError(f"{where}: HTTP {code} ({_short(body)})")
        raise error from consul.ConsulException(f"{code} {_short(body)}")

    def _json(self, response: _Response, what: str) -> Any:
        try:
            return json.loads(response.body)
        except (TypeError, ValueError) as exc:
            raise BackendError(
                f"consul {self.host}:{self.port}: {what}: malformed response"
            ) from exc

    def _txn(self, ops: _KVOps, what: str) -> tuple[_KVOps, _KVOps]:
        """Run a transaction: ``(results, [])`` when applied, ``([], errors)`` when
        Consul rolled it back (409)."""
        body = json.dumps(ops, separators=(",", ":"))
        response = self._request("PUT", "/v1/txn", data=body, what=what)
        if response.code == 409:
            errors = self._json(response, what).get("Errors") or []
            for error in errors:
                if "permission denied" in str(error.get("What", "")).lower():
                    raise AccessDeniedError(
                        f"consul {self.host}:{self.port}: {what}: permission denied"
                    ) from consul.ACLPermissionDenied(_short(str(error.get("What"))))
            return [], errors
        self._raise_for(response, what)
        data = self._json(response, what)
        return [r["KV"] for r in (data.get("Results") or []) if "KV" in r], []

    # -- reads -------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        validate_key(key)
        response = self._request("GET", f"/v1/kv/{self._consul_key(key)}", what=f"get {key!r}")
        return self._got(response, key)

    def _got(self, response: _Response, key: str) -> Entry | None:
        """The answer to ``GET /v1/kv/<key>``: the entry, None when absent, else the
        typed error."""
        if response.code == 404:
            return None
        self._raise_for(response, f"get {key!r}")
        items = self._json(response, f"get {key!r}")
        return self._entry(items[0], key) if items else None

    @property
    def native_async(self) -> bool:
        """True when aiohttp can be imported (the ``consul`` extra brings it). Asked by
        ``AsyncClient(..., native_reads=True)`` when it is built, so aiohttp's import
        (a few hundred ms) happens then rather than on the event loop's first miss."""
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            return False
        return True

    async def aget(self, key: str) -> Entry | None:
        """As :meth:`get`, on the running event loop: the same request (URL, ``dc``,
        consistency mode, ``X-Consul-Token`` header, timeout) and the same answer
        handling and errors. The session is opened on first use and belongs to that
        loop; from another loop this raises ConfigurationError until :meth:`aclose`.

        Through aiohttp directly, not py-consul's ``consul.aio``: that module (1.8)
        builds its connector with ``ssl_context=`` and ``verify_ssl=``, deprecated
        in aiohttp 3 (a DeprecationWarning per client, and an error once removed);
        hushing them takes ``warnings.catch_warnings``, which swaps the process's
        warning filters under every other thread; and its ``verify=True`` trusts the
        system's CAs where the sync client (requests) trusts ``REQUESTS_CA_BUNDLE``
        or certifi's. Here ``ssl=`` carries the same CA choice as the sync client,
        and py-consul still builds the URL and the token header.

        One request per miss, not a ``/v1/txn`` of the reads of one loop iteration:
        Consul's ``get`` verb fails the whole transaction when a key is absent
        (``get-or-empty`` needs a recent Consul), and Consul drops the results a
        token may not read from a read-only transaction where a plain ``GET``
        answers 403, so a batch would differ from :meth:`get` in what absence and
        denial look like. The session keeps up to ``ASYNC_CONNECTIONS`` connections
        alive, so a burst of misses costs one round trip each on warm connections.
        """
        validate_key(key)
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        import aiohttp

        what = f"get {key!r}"
        http = self._consul.http
        url = http.uri(f"/v1/kv/{self._consul_key(key)}", self._query("GET", None))
        try:
            session = self._async_session()
            async with session.get(
                url, headers=self._consul.prepare_headers(), proxy=self._aproxy()
            ) as answer:
                body = await answer.read()
                response = consul.base.Response(
                    answer.status, answer.headers, body.decode("utf-8", "replace")
                )
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors
            raise self._unreachable(what, exc, timed_out=True) from exc
        except aiohttp.ClientConnectionError as exc:
            raise self._unreachable(what, exc, refused=True) from exc
        except aiohttp.ClientError as exc:
            raise self._unreachable(what, exc) from exc
        return self._got(response, key)

    def _async_session(self) -> aiohttp.ClientSession:
        return self._asession.get(self._open_session)

    def _open_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=ASYNC_CONNECTIONS, ssl=self._ssl())
        # As requests does with py-consul's one timeout: for the connection, and for
        # each wait on the socket (no limit on the whole exchange).
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=self._timeout
        )
        # No trust_env: aiohttp would then look for a .netrc on a thread at every
        # request. The proxy is the sync client's, read from the environment once.
        session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        protect_loggers("aiohttp")
        return session

    def _aproxy(self) -> str | None:
        """The sync client's proxy for the agent (None for most: no proxy, or NO_PROXY
        names the agent)."""
        proxies: dict[str, str] = self._consul.http.session.proxies
        return proxies.get(self.scheme) or proxies.get("all")

    def _ssl(self) -> ssl.SSLContext | bool:
        """TLS for ``aget`` as the sync client has it (its settled ``verify``): off with
        ``verify=false``, else the CA bundle ``verify=`` or the environment names, or
        requests' own."""
        if self.scheme != "https":
            return True  # aiohttp's default; unused on http://
        verify: bool | str = self._consul.http.verify
        if verify is False:
            return False
        cafile = verify if isinstance(verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH
        try:
            return ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"{self!r}: cannot load the CA bundle {cafile!r}: {type(exc).__name__}"
            ) from exc

    async def aclose(self) -> None:
        """Close the asyncio session; the next :meth:`aget` opens another, on its own
        loop. From another loop than the session's, the session is closed on its
        loop if that one still exists, else dropped (its sockets close when collected)."""
        session, loop = self._asession.release()
        if session is None or loop is None:
            return
        if loop is asyncio.get_running_loop():
            await session.close()
        else:
            _drop_session(session, loop)

    def _list_raw(
        self,
        prefix: str,
        *,
        index: int = 0,
        wait: float | None = None,
        client: consul.Consul | None = None,
    ) -> tuple[int, dict[str, Entry]]:
        """``(X-Consul-Index, {key: entry})`` for a (blocking when ``index``) list."""
        params: list[tuple[str, Any]] = [("recurse", "1")]
        if index > 0:
            params.append(("index", str(index)))
            if wait is not None:
                params.append(("wait", f"{max(1, int(wait))}s"))
        path = "/v1/kv/" + join(self.prefix, prefix)
        what = f"list {prefix!r}"
        response = self._request("GET", path, params=params, client=client, what=what)
        if response.code != 404:
            self._raise_for(response, what)
        try:
            new_index = int(response.headers.get("X-Consul-Index", "0"))
        except ValueError:
            new_index = 0
        if response.headers.get("X-Consul-Results-Filtered-By-ACLs", "").lower() == "true":
            # Consul hides what the token may not read instead of refusing: a list
            # with holes would look like deleted keys, so refuse it as a whole.
            raise AccessDeniedError(
                f"consul {self.host}:{self.port}: {what}: the token may not read every key"
            ) from consul.ACLPermissionDenied("X-Consul-Results-Filtered-By-ACLs: true")
        if response.code == 404:
            return new_index, {}
        entries: dict[str, Entry] = {}
        for item in self._json(response, what) or []:
            key = self._canonical(item["Key"])
            if key is not None and in_prefix(key, prefix):
                entries[key] = self._entry(item, key)
        return new_index, entries

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        _, entries = self._list_raw(prefix)
        return iter([entries[key] for key in sorted(entries)])

    # -- writes ------------------------------------------------------------------------

    def _kv_op(self, op: _Op) -> dict[str, Any]:
        full = self._consul_key(op.key)
        if op.value is None:
            if op.if_version is None:
                return {"KV": {"Verb": "delete", "Key": full}}
            if op.if_version is Absent:
                return {"KV": {"Verb": "check-not-exists", "Key": full}}
            return {
                "KV": {
                    "Verb": "delete-cas",
                    "Key": full,
                    "Index": _cas_index(op.key, op.if_version),
                }
            }
        kv: dict[str, Any] = {"Verb": "set", "Key": full, "Value": _b64(op.value)}
        if op.if_version is Absent:
            kv.update(Verb="cas", Index=0)
        elif op.if_version is not None:
            kv.update(Verb="cas", Index=_cas_index(op.key, op.if_version))
        return {"KV": kv}

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        validate_key(key)
        value = check_value(key, value, self.max_value_bytes)
        op = _Op(key, value, if_version)
        kv_op = self._kv_op(op)  # a bad version conflicts before any I/O
        if len(value) * 4 // 3 + len(kv_op["KV"]["Key"]) + 200 > _TXN_BODY_BUDGET:
            return self._put_large(op)
        results, errors = self._txn([kv_op], what=f"put {key!r}")
        if errors:
            raise VersionConflictError(self._conflict_message(key, if_version))
        return str(results[0]["ModifyIndex"])

    @staticmethod
    def _conflict_message(key: str, if_version: str | AbsentType | None) -> str:
        if if_version is Absent:
            return f"{key!r} already exists (create-only write)"
        return f"{key!r} is not at version {if_version} (changed or deleted)"

    def _put_large(self, op: _Op) -> str:
        """A value too large for a transaction body: ``PUT /v1/kv`` then read the
        new ModifyIndex back (the one place a concurrent writer can slip in between)."""
        assert op.value is not None
        params: list[tuple[str, Any]] = []
        if op.if_version is Absent:
            params.append(("cas", "0"))
        elif op.if_version is not None:
            params.append(("cas", str(_cas_index(op.key, op.if_version))))
        what = f"put {op.key!r}"
        path = f"/v1/kv/{self._consul_key(op.key)}"
        response = self._request("PUT", path, params=params, data=op.value, what=what)
        self._raise_for(response, what)
        if self._json(response, what) is not True:
            raise VersionConflictError(self._conflict_message(op.key, op.if_version))
        entry = self.get(op.key)
        if entry is None:
            raise VersionConflictError(f"{op.key!r} was deleted right after this write")
        return entry.version

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        validate_key(key)
        full = self._consul_key(key)
        what = f"delete {key!r}"
        if if_version is None:
            # "get" fails the whole transaction when the key is absent: that answer
            # and the delete happen atomically.
            _, errors = self._txn(
                [{"KV": {"Verb": "get", "Key": full}}, {"KV": {"Verb": "delete", "Key": full}}],
                what=what,
            )
            return not errors
        index = _cas_index(key, if_version)
        ops: _KVOps = [
            {"KV": {"Verb": "check-index", "Key": full, "Index": index}},
            {"KV": {"Verb": "delete", "Key": full}},
        ]
        _, errors = self._txn(ops, what=what)
        if errors:
            raise VersionConflictError(self._conflict_message(key, if_version))
        return True

    def put_many(
        self,
        items: Mapping[str, ItemValue] | Iterable[tuple[str, ItemValue]],
        *,
        atomic: bool = True,
        if_versions: Mapping[str, str | AbsentType] | None = None,
    ) -> dict[str, str | None]:
        """Write many keys through ``/v1/txn``; a ``None`` value deletes the key.

        Returns ``{key: new version}`` (``None`` for deletes). ``if_versions`` adds
        compare-and-set per key (a version, or :data:`Absent` for create-only).

        ``atomic=True`` (default): one transaction, all or nothing; a batch that does
        not fit one transaction (more than 64 operations or about 512 KB of
        base64-encoded values) raises :class:`UnsupportedOperationError` before any
        I/O. ``atomic=False``: split into transactions of at most 64 operations,
        each all or nothing; if one fails, the error says how many keys were written
        before it (those stay written) and nothing after it is attempted.
        """
        ops = [
            _Op(*item)
            for item in prepare_batch(
                items, if_versions, lambda key, raw: check_value(key, raw, self.max_value_bytes)
            )
        ]
        encoded = [self._kv_op(op) for op in ops]
        chunks = self._chunks(encoded)
        if atomic and len(chunks) > 1:
            raise UnsupportedOperationError(
                f"{len(ops)} writes do not fit one Consul transaction (at most {MAX_TXN_OPS} "
                f"operations and {MAX_TXN_BODY} bytes); pass atomic=False to split them"
            )
        result: dict[str, str | None] = {}
        done = 0
        for chunk in chunks:
            chunk_ops = ops[done : done + len(chunk)]
            if len(chunk) == 1 and len(json.dumps(chunk)) > _TXN_BODY_BUDGET:
                op = chunk_ops[0]
                if op.value is not None and (len(ops) == 1 or not atomic):
                    result[op.key] = self._put_large(op)
                else:
                    raise UnsupportedOperationError(
                        f"value for {op.key!r} is too large for a Consul transaction"
                    )
                done += 1
                continue
            results, errors = self._txn(chunk, what=f"batch of {len(chunk)} writes")
            if errors:
                first = errors[0]
                position = int(first.get("OpIndex", 0))
                key = chunk_ops[position].key if position < len(chunk_ops) else "?"
                applied = f"; {done} earlier writes stay applied" if done else ""
                raise VersionConflictError(
                    f"batch rolled back: {key!r}: {_short(str(first.get('What', '')))}{applied}"
                )
            by_key = {r["Key"]: str(r["ModifyIndex"]) for r in results}
            for op in chunk_ops:
                result[op.key] = None if op.value is None else by_key.get(self._consul_key(op.key))
            done += len(chunk)
        return result

    @staticmethod
    def _chunks(ops: _KVOps) -> _KVBatches:
        chunks: _KVBatches = []
        current: _KVOps = []
        size = 2
        for op in ops:
            op_size = len(json.dumps(op, separators=(",", ":"))) + 1
            if current and (len(current) >= MAX_TXN_OPS or size + op_size > _TXN_BODY_BUDGET):
                chunks.append(current)
                current, size = [], 2
            current.append(op)
            size += op_size
        if current:
            chunks.append(current)
        return chunks

    # -- watch -------------------------------------------------------------------------

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> _ConsulWatch:
        prefix = normalize_prefix(prefix)
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        return self._watches.add(
            _ConsulWatch(self, prefix, on_change, on_stop=self._watches.discard)
        )

    def close(self) -> None:
        if self._closed:
            return
        self._watches.stop_all()
        self._closed = True
        self._consul.http.session.close()
        session, loop = self._asession.release()
        if session is not None and loop is not None:
            _drop_session(session, loop)


def _drop_session(session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
    """Close an aiohttp session away from its loop: on that loop while it exists,
    else mark it closed (its sockets close when collected; aiohttp may still report
    its connector as unclosed, as it would any session left open when its loop ended)."""
    if not loop.is_closed():
        closing = session.close()
        try:
            asyncio.run_coroutine_threadsafe(closing, loop)
            return
        except RuntimeError:  # the loop closed meanwhile
            closing.close()
    session.detach()


class _ConsulWatch:
    """Blocking queries on one prefix, diffed into per-key changes.

    The first read (not blocking) is the baseline. Each later query blocks on the
    last ``X-Consul-Index``; Consul may answer early with nothing changed, so after
    such an answer the next query waits until ``watch_min_interval`` has passed since
    the last one started; after a real change it starts at once (a change after a
    quiet period is seen without delay). An index that went
    backwards (a restored or rebuilt cluster) or a failure (then after a capped,
    jittered backoff) makes the next query a plain read, whose diff with the last
    known state emits everything that changed meanwhile, deletes included.
    """

    def __init__(
        self,
        backend: ConsulBackend,
        prefix: str,
        on_change: Callable[[Change], None],
        *,
        on_stop: Callable[[_ConsulWatch], None],
    ) -> None:
        self._backend = backend
        self._on_stop = on_stop
        self._prefix = prefix
        self._stop = threading.Event()
        # Its own connection pool: a blocking query holds a connection for minutes.
        self._client = backend._new_client()
        index, self._known = backend._list_raw(prefix, client=self._client)
        self._index = max(index, 1)
        self._dispatcher = ChangeDispatcher(on_change, name=f"veltrix-consul-watch-{prefix}")
        self._thread = threading.Thread(
            target=self._run, name=f"veltrix-consul-watch-{prefix}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        backend = self._backend
        backoff = 0.0
        resync = False
        last_start = 0.0
        quiet = False  # the last query brought no change: rate-limit the next one
        failures = FailureLog(log, "veltrix.watch", store=backend.url)
        while not self._stop.is_set():
            limit = backend.watch_min_interval - (time.monotonic() - last_start) if quiet else 0.0
            pause = max(backoff, limit)
            if pause > 0 and self._stop.wait(pause):
                break
            last_start = time.monotonic()
            try:
                index, current = backend._list_raw(
                    self._prefix,
                    index=0 if resync else self._index,
                    wait=backend.watch_wait,
                    client=self._client,
                )
            except Exception as exc:  # keep watching whatever went wrong; log it
                if self._stop.is_set():
                    break
                backoff = min(max(backoff * 2, 0.1), backend.watch_max_backoff)
                backoff *= random.uniform(0.8, 1.0)
                resync = True
                failures.failed(
                    "consul watch on %r failed, retrying: %s", self._prefix, exc, error=exc
                )
                continue
            if self._stop.is_set():
                break
            backoff = 0.0
            resync = False
            failures.succeeded("consul watch on %r works again", self._prefix)
            if index < self._index:
                log.info(
                    "consul index went backwards on %r; resynchronised",
                    self._prefix,
                    extra=event(
                        "veltrix.watch.resynchronised", store=backend.url, key=self._prefix
                    ),
                )
            changes = diff_listings(self._known, current)
            for change in changes:
                self._dispatcher.submit(change)
            quiet = not changes
            self._known = current
            self._index = max(index, 1)  # never block on index 0: it returns at once

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._dispatcher.stop()
        # A blocking query cannot be interrupted; the thread is a daemon and exits
        # (without delivering anything) when its query returns.
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=0.2)
        self._client.http.session.close()
        self._on_stop(self)


__all__ = ["ASYNC_CONNECTIONS", "MAX_TXN_OPS", "MAX_VALUE_BYTES", "ConsulBackend"]
