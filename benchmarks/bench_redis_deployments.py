"""Redis round trips per deployment: one node, TLS, Sentinel, Cluster (store and L2).

    .venv/bin/python -m benchmarks.bench_redis_deployments [--quick]

For each deployment started by ``scripts/services up redis redis-tls redis-sentinel
redis-cluster`` (addresses from the ``VELTRIX_TEST_REDIS*_URL`` variables, read from
``.services/env`` when unset), measured one call at a time on one connection:

- store ``get`` (one ``HGETALL``) and ``put`` (``WATCH``, reads, ``MULTI``/``EXEC``);
- L2 hit: ``SharedCache.read_through`` on a key already in L2 (one Lua script);
- L2 publish: ``SharedCache.publish`` (the write script, with its ``PUBLISH``).

Ratios are against the one-node figures. A deployment whose variable is missing is
skipped. Writes ``benchmarks/results/redis_deployments.json``.
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

from benchmarks._common import (
    load_services_env,
    machine,
    package_versions,
    summary_us,
    timed_calls,
    write_json,
)

DEPLOYMENTS = {
    "single": "VELTRIX_TEST_REDIS_URL",
    "tls": "VELTRIX_TEST_REDIS_TLS_URL",
    "sentinel": "VELTRIX_TEST_REDIS_SENTINEL_URL",
    "cluster": "VELTRIX_TEST_REDIS_CLUSTER_URL",
}


def _with_path(url: str, path: str, **options: Any) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in options.items()})
    new_path = parts.path.rstrip("/") + ("/" + path if path else "")
    return urlunsplit((parts.scheme, parts.netloc, new_path, urlencode(query), ""))


def measure(url: str, n: int) -> dict[str, dict[str, float]]:
    from veltrix import CachePolicy
    from veltrix.adapters.redis import RedisBackend
    from veltrix.backend import Entry
    from veltrix.shared_cache import SharedCache

    name = f"bench-{uuid.uuid4().hex[:8]}"
    store = RedisBackend.from_url(_with_path(url, name, timeout=5))
    cache = SharedCache(
        _with_path(url, "", timeout=1, namespace=name),
        store=name,
        policy=CachePolicy(ttl=600),
        box=None,
        is_secret=lambda key, entry: False,
    )
    try:
        store.put("bench/key", b"x" * 100)
        entry = Entry("bench/key", b"x" * 100, "1")
        cache.read_through("bench/key", lambda: entry)  # fills L2
        counter = iter(range(10**9))
        results = {
            "store_get": summary_us(timed_calls(lambda: store.get("bench/key"), n, warm_up=50)),
            "store_put": summary_us(
                timed_calls(lambda: store.put("bench/w", str(next(counter)).encode()), n // 2)
            ),
            "l2_hit": summary_us(
                timed_calls(lambda: cache.read_through("bench/key", lambda: entry), n, warm_up=50)
            ),
            "l2_publish": summary_us(timed_calls(lambda: cache.publish("bench/p", entry), n // 2)),
        }
        assert cache.counters["l2_errors"] == 0, cache.counters
        return results
    finally:
        cache.close()
        store.close()


def run(quick: bool = False) -> dict[str, Any]:
    load_services_env()
    n = 300 if quick else 3000
    figures: dict[str, Any] = {}
    skipped = []
    for kind, variable in DEPLOYMENTS.items():
        url = os.environ.get(variable)
        if not url:
            skipped.append(kind)
            continue
        figures[kind] = measure(url, n)
    ratios: dict[str, dict[str, float]] = {}
    base = figures.get("single")
    if base:
        for kind, ops in figures.items():
            ratios[kind] = {op: ops[op]["p50_us"] / base[op]["p50_us"] for op in ops}
    return {
        "calls": n,
        "deployments": figures,
        "p50_ratio_to_single": ratios,
        "skipped": skipped,
        "machine": machine(),
        "versions": package_versions("redis"),
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "## Redis deployments: store and L2 round trips",
        "",
        f"{data['calls']} calls each (puts and publishes: half), one at a time, loopback; "
        "p50 / p99 in µs, ratio = p50 against one node.",
        "",
        "| deployment | store get | store put | L2 hit | L2 publish |",
        "|---|---|---|---|---|",
    ]
    for kind, ops in data["deployments"].items():
        ratio = data["p50_ratio_to_single"].get(kind, {})
        cells = [
            f"{ops[op]['p50_us']:.0f} / {ops[op]['p99_us']:.0f} (x{ratio.get(op, float('nan')):.2f})"
            for op in ("store_get", "store_put", "l2_hit", "l2_publish")
        ]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    if data["skipped"]:
        lines += ["", f"Skipped (no server): {', '.join(data['skipped'])}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    args = parser.parse_args()
    data = run(quick=args.quick)
    print(markdown(data))
    path = write_json("redis_deployments", data)
    print(f"\n(figures in {path})")


if __name__ == "__main__":
    main()
