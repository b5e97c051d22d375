"""How Veltrix reaches Redis: URL targets, connection options, TLS, Sentinel and Cluster.

One module for every Redis connection Veltrix makes: the ``redis://`` store
(:mod:`veltrix.adapters.redis`), the shared L2 cache (:mod:`veltrix.shared_cache`)
and ``veltrix check``'s cache probe (:mod:`veltrix.cli_check`). It lives in the core
(not in the adapter) because the core must never import an adapter; it imports
redis-py at module level, so the core imports *this* module lazily, only when a
Redis URL is actually opened (``import veltrix`` stays free of redis-py).

URL forms: ``redis://host:6379/0``, ``rediss://host:6380/0?ca_file=...`` (TLS),
``redis+sentinel://s1:26379,s2:26379/<service>/0`` (asks Sentinel for the current
master) and ``redis+cluster://h1:7000,h2:7001/0`` (Redis Cluster, database 0 only).
Credentials never go in the URL: ``REDIS_USERNAME`` / ``REDIS_PASSWORD`` from the
environment (``password_env=NAME`` picks another variable).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from veltrix.errors import ConfigurationError
from veltrix.log_redaction import protect_loggers
from veltrix.urls import Options, ParsedURL

DEFAULT_PORT = 6379
SENTINEL_PORT = 26379
#: Schemes served by ``redis.cluster.RedisCluster``.
CLUSTER_SCHEMES = ("redis+cluster",)
#: Every Redis URL scheme (store and cache alike).
SCHEMES = ("redis", "rediss", "redis+sentinel", *CLUSTER_SCHEMES)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ReadOnlyError,
    # Cluster: a redirect storm (MovedError/AskError past redis-py's own redirects),
    # "TTL exhausted" (ClusterError), no node for a slot (SlotNotCoveredError), no node
    # reachable at all (RedisClusterException, which is NOT a RedisError).
    redis.exceptions.AskError,
    redis.exceptions.ClusterError,
    redis.exceptions.RedisClusterException,
    OSError,
)
#: Everything redis-py raises (plus socket errors): the L2 cache never lets one escape.
ALL_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
)
AUTH_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
    redis.exceptions.NoPermissionError,
)


def describe_error(exc: BaseException) -> str:
    """A short, secret-free name for a connection failure; TLS failures say what failed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return (
                "TLS certificate verification failed "
                f"({current.verify_message or 'untrusted certificate'}; check ca_file)"
            )
        if isinstance(current, ssl.SSLError):
            return f"TLS handshake failed ({current.reason or type(current).__name__})"
        current = current.__cause__ or current.__context__
    name = type(exc).__name__
    if "Connection" in name or "Timeout" in name:  # worded as the other stores word it
        return f"unreachable ({name})"
    return name


@dataclass(frozen=True)
class RedisTarget:
    """Where a ``redis://``, ``rediss://``, ``redis+sentinel://`` or ``redis+cluster://``
    URL points."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    db: int
    path: tuple[str, ...]  # path segments after the database number
    service: str | None  # Sentinel service name


def parse_target(parsed: ParsedURL) -> RedisTarget:
    segments = [s for s in parsed.path.split("/") if s]
    service = None
    if parsed.scheme == "redis+sentinel":
        if not segments:
            raise ConfigurationError(
                f"{parsed.redacted}: redis+sentinel:// needs a service name: "
                "redis+sentinel://host:26379/<service>/<db>"
            )
        service = segments.pop(0)
        hosts = parsed.hosts(SENTINEL_PORT)
    elif parsed.scheme in CLUSTER_SCHEMES:
        hosts = parsed.hosts(DEFAULT_PORT)  # startup nodes: any reachable one will do
    else:
        hosts = parsed.hosts(DEFAULT_PORT)
        if len(hosts) != 1:
            raise ConfigurationError(
                f"{parsed.redacted}: one host only (use redis+sentinel:// for several)"
            )
    db = 0
    if segments:
        try:
            db = int(segments[0])
        except ValueError as exc:
            raise ConfigurationError(
                f"{parsed.redacted}: the first path segment is the database number, "
                f"got {segments[0]!r}"
            ) from exc
        if db < 0:
            raise ConfigurationError(f"{parsed.redacted}: database number must be >= 0")
        if db != 0 and parsed.scheme in CLUSTER_SCHEMES:
            raise ConfigurationError(
                f"{parsed.redacted}: Redis Cluster has only database 0, got {db}"
            )
        segments = segments[1:]
    return RedisTarget(parsed.scheme, tuple(hosts), db, tuple(segments), service)


@dataclass(frozen=True)
class ConnectSettings:
    """Connection options read once from a URL (so reconnecting never re-reads them)."""

    password_env: str = "REDIS_PASSWORD"
    ca_file: str | None = None
    tls_verify: bool = True


def read_settings(target: RedisTarget, opts: Options, *, where: str) -> ConnectSettings:
    """Read ``password_env``, ``ca_file`` and ``tls_verify`` from ``opts`` (the caller
    calls ``opts.finish()``). A ``ca_file`` that is not a readable file is a
    :class:`ConfigurationError` here, before any connection."""
    password_env = opts.str("password_env", "REDIS_PASSWORD") or "REDIS_PASSWORD"
    ca_file = opts.str("ca_file")
    tls_verify = opts.bool("tls_verify", True)
    if ca_file is not None:
        if target.scheme != "rediss":
            raise ConfigurationError(f"{where}: ca_file needs rediss://")
        if not os.path.isfile(ca_file) or not os.access(ca_file, os.R_OK):
            raise ConfigurationError(f"{where}: ca_file {ca_file!r} is not a readable file")
    return ConnectSettings(password_env, ca_file, tls_verify)


class ClusterScript:
    """A Lua script run with ``EVALSHA`` on the node owning its keys' slot, falling back
    to ``EVAL`` there. (redis-py's ``Script`` answers ``NOSCRIPT`` with ``SCRIPT LOAD``
    on every primary, which fails while any one of them is down, even for keys whose
    own node is up.)"""

    def __init__(self, cluster: LazyCluster, script: str) -> None:
        self._cluster = cluster
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()

    def __call__(self, keys: Iterable[Any] = (), args: Iterable[Any] = ()) -> Any:
        keys, args = tuple(keys), tuple(args)
        client = self._cluster.client()
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.script, len(keys), *keys, *args)


class LazyCluster:
    """A ``RedisCluster`` made on first use: its constructor reads the slot map from the
    cluster, and opening a store or a cache must not fail because the cluster is down.
    A failed build is retried by the next call. Attribute access is forwarded."""

    def __init__(self, factory: Callable[[], Any], hosts: tuple[tuple[str, int], ...]) -> None:
        self._factory = factory
        self.hosts = hosts
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
                client = self._client
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client(), name)

    def register_script(self, script: str) -> ClusterScript:
        return ClusterScript(self, script)

    def node_addresses(self) -> list[tuple[str, int]]:
        """Every node address known: the cluster's own view when built, then the URL's."""
        found: list[tuple[str, int]] = []
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                found = [(n.host, int(n.port)) for n in client.get_nodes()]
        return found + [h for h in self.hosts if h not in found]

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __repr__(self) -> str:
        return f"LazyCluster({', '.join(f'{h}:{p}' for h, p in self.hosts)})"


def connect(
    target: RedisTarget,
    settings: ConnectSettings,
    *,
    timeout: float,
    connect_timeout: float,
    where: str,
    node: tuple[str, int] | None = None,
) -> Any:
    """A redis-py client for ``target`` (no retries inside redis-py: callers decide).

    ``node``: a plain client for that one node of a cluster (the L2 bus subscribes
    on one node; PUBLISH reaches every node of a cluster).
    """
    common = _connection_options(settings, timeout=timeout, connect_timeout=connect_timeout)
    password = common["password"]
    if target.scheme == "rediss":
        common.update(ssl=True, **_tls_options(settings))
    no_retry = Retry(backoff=NoBackoff(), retries=0)
    try:
        if target.scheme in CLUSTER_SCHEMES and node is None:
            from redis.cluster import ClusterNode, RedisCluster

            def build() -> Any:
                # The constructor's own first command (COMMAND, on the default node:
                # the master of slot 0) needs a retry on another node when that
                # master is down; afterwards, no retries inside redis-py.
                client = RedisCluster(
                    startup_nodes=[
                        ClusterNode(h, p)  # type: ignore[no-untyped-call]
                        for h, p in target.hosts
                    ],
                    retry=Retry(backoff=NoBackoff(), retries=3),
                    require_full_coverage=False,
                    **common,
                )
                client.set_retry(Retry(backoff=NoBackoff(), retries=0))
                return client

            return LazyCluster(build, target.hosts)
        single: dict[str, Any] = {
            **common,
            "db": target.db,
            "retry": no_retry,
            "health_check_interval": 0,
        }
        if target.scheme == "redis+sentinel":
            from redis.sentinel import Sentinel

            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.hosts),
                socket_timeout=timeout,
                socket_connect_timeout=connect_timeout,
                sentinel_kwargs={
                    "socket_timeout": timeout,
                    "socket_connect_timeout": connect_timeout,
                    "password": password,
                },
            )
            assert target.service is not None
            return sentinel.master_for(target.service, **single)  # type: ignore[no-untyped-call]
        host, port = node or target.hosts[0]
        return redis.Redis(host=host, port=port, **single)
    except redis.exceptions.RedisError as exc:  # pragma: no cover - constructors do no I/O
        raise ConfigurationError(f"{where}: {type(exc).__name__}") from exc


def _connection_options(
    settings: ConnectSettings, *, timeout: float, connect_timeout: float
) -> dict[str, Any]:
    """Credentials (from the environment) and timeouts, for redis-py and redis.asyncio."""
    protect_loggers("redis")
    return {
        "username": os.environ.get("REDIS_USERNAME") or None,
        "password": os.environ.get(settings.password_env) or None,
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout,
        "protocol": 2,
    }


def _tls_options(settings: ConnectSettings) -> dict[str, Any]:
    return {
        "ssl_ca_certs": settings.ca_file,
        "ssl_cert_reqs": "required" if settings.tls_verify else "none",
        "ssl_check_hostname": settings.tls_verify,
    }


#: Schemes with a native asyncio connection (:func:`connect_asyncio`).
ASYNCIO_SCHEMES = ("redis", "rediss")


def connect_asyncio(
    target: RedisTarget,
    settings: ConnectSettings,
    *,
    timeout: float,
    connect_timeout: float,
    max_connections: int,
) -> Any:
    """A ``redis.asyncio.Redis`` for a standalone ``redis://`` or ``rediss://`` target,
    with the options of :func:`connect` (no retries inside redis-py: callers decide).

    At most ``max_connections`` connections (the caller keeps its commands in flight
    below that: past it, redis-py raises instead of waiting). It opens no connection
    until its first command, on the event loop running it.
    Sentinel and Cluster have no native connection here: callers use threads.
    """
    if target.scheme not in ASYNCIO_SCHEMES:
        raise ConfigurationError(f"no asyncio connection for {target.scheme}://")
    import redis.asyncio
    import redis.asyncio.connection
    from redis.asyncio.retry import Retry as AsyncRetry

    options = _connection_options(settings, timeout=timeout, connect_timeout=connect_timeout)
    connection_class: type[Any] = redis.asyncio.connection.Connection
    if target.scheme == "rediss":
        connection_class = redis.asyncio.connection.SSLConnection
        options.update(_tls_options(settings))
    host, port = target.hosts[0]
    pool = redis.asyncio.ConnectionPool(
        max_connections=max_connections,
        connection_class=connection_class,
        host=host,
        port=port,
        db=target.db,
        retry=AsyncRetry(backoff=NoBackoff(), retries=0),
        health_check_interval=0,
        **options,
    )
    return redis.asyncio.Redis(connection_pool=pool)


__all__ = [
    "ALL_ERRORS",
    "ASYNCIO_SCHEMES",
    "AUTH_ERRORS",
    "CLUSTER_SCHEMES",
    "DEFAULT_PORT",
    "SCHEMES",
    "SENTINEL_PORT",
    "TRANSIENT_ERRORS",
    "ClusterScript",
    "ConnectSettings",
    "LazyCluster",
    "RedisTarget",
    "connect",
    "connect_asyncio",
    "describe_error",
    "parse_target",
    "read_settings",
]
