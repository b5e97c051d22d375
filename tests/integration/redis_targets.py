"""The Redis deployments the Redis tests run against, and URL helpers for them.

Each kind is a real server started by ``scripts/services up <service>``:

- ``single``: one Redis (service ``redis``), ``redis://``
- ``tls``: one Redis serving TLS only with a throw-away CA (``redis-tls``), ``rediss://``
- ``sentinel``: a master and one Sentinel (``redis-sentinel``), ``redis+sentinel://``
- ``cluster``: 3 masters in cluster mode (``redis-cluster``), ``redis+cluster://``
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tests.support import server_env

#: kind -> (environment variable, what, service name)
KINDS: dict[str, tuple[str, str, str]] = {
    "single": ("VELTRIX_TEST_REDIS_URL", "Redis", "redis"),
    "tls": ("VELTRIX_TEST_REDIS_TLS_URL", "Redis over TLS", "redis-tls"),
    "sentinel": ("VELTRIX_TEST_REDIS_SENTINEL_URL", "Redis Sentinel", "redis-sentinel"),
    "cluster": ("VELTRIX_TEST_REDIS_CLUSTER_URL", "Redis Cluster", "redis-cluster"),
}


def redis_url(kind: str) -> str:
    """The base URL (ending at the database number) of ``kind``; skips or fails without it."""
    variable, what, _ = KINDS[kind]
    return server_env(variable, what)


def with_path(url: str, path: str = "", **options: Any) -> str:
    """``url`` with ``/path`` appended and ``options`` merged into its query."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update({name: str(value) for name, value in options.items()})
    new_path = parts.path.rstrip("/") + ("/" + path.strip("/") if path else "")
    return urlunsplit((parts.scheme, parts.netloc, new_path, urlencode(query), ""))


def raw_client(url: str) -> Any:
    """A redis-py client (``redis.Redis``, Sentinel-managed, or ``RedisCluster``) for ``url``,
    made the way Veltrix makes its own (so TLS options in the URL apply)."""
    from veltrix import redis_connect
    from veltrix.urls import Options, parse_url

    parsed = parse_url(url, redis_connect.SCHEMES)
    target = redis_connect.parse_target(parsed)
    opts = Options(parsed.query, {}, where=parsed.redacted)
    settings = redis_connect.read_settings(target, opts, where=parsed.redacted)
    client = redis_connect.connect(
        target, settings, timeout=5.0, connect_timeout=5.0, where=parsed.redacted
    )
    if isinstance(client, redis_connect.LazyCluster):
        return client.client()
    return client
