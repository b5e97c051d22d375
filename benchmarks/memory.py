"""Memory: bytes per cached key in a veltrix.Client, against a plain dict of the same values.

    .venv/bin/python -m benchmarks.memory [--quick] [--keys N]

N keys (100,000; ``--quick``: 10,000) with 32-character text values sit in a SQLite
store (the embedded default; like every adapter it builds a fresh ``Entry`` per read).
A ``veltrix.Client`` (TTL 1 h, default policy otherwise) reads every key once, so all
N are cached; the baseline builds ``{key: value}`` with the same values. Each figure
comes from its own fresh process: one run measures RSS growth (psutil), another the
bytes allocated and still held (tracemalloc; kept apart because tracing inflates RSS).
The key strings exist before measuring in both, so neither is charged for them.

"Beyond the value" subtracts the size of the N value strings (what ``get`` returns
and the dict holds). For the client it breaks the rest down by object: the per-key
packed ``Record`` (see ``veltrix.cache.Record``), its version and expiry objects, raw
bytes kept for non-text values, the (shared) provenance tuples, the expiry slots and
the dict slots.

Target: <= 250 bytes per cached key beyond the value.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import REPO_ROOT, machine, package_versions, write_json

VALUE_CHARS = 32
TARGET_BYTES = 250.0


def key_for(i: int) -> str:
    return f"app/svc{i % 50:02d}/key-{i:06d}"


def value_for(i: int) -> str:
    return f"value-{i:06d}-".ljust(VALUE_CHARS, "x")


def seed(path: str, keys: int) -> None:
    from veltrix.adapters.sqlite import SQLiteBackend

    backend = SQLiteBackend(path)
    for i in range(keys):
        backend.put(key_for(i), value_for(i).encode())
    backend.close()


def _breakdown(client: Any, keys: list[str]) -> dict[str, float]:
    """Average bytes per key of each per-key object the client holds (sys.getsizeof)."""
    from veltrix.cache import EXPIRES_AT, META, VALUE, VERSION

    n = len(keys)
    records = client._records
    scheduler = client._scheduler
    parts = dict.fromkeys(
        (
            "Record (tuple: value, version, meta, expires_at)",
            "Record version (the store's string)",
            "Record expires_at float",
            "Record value bytes (non-UTF-8 values only; text is the value itself)",
            "Record meta tuples (shared; per key when not)",
        ),
        0.0,
    )
    metas: set[int] = set()
    for key in keys:
        record = records[key]
        parts["Record (tuple: value, version, meta, expires_at)"] += sys.getsizeof(record)
        parts["Record version (the store's string)"] += sys.getsizeof(record[VERSION])
        parts["Record expires_at float"] += sys.getsizeof(record[EXPIRES_AT])
        if isinstance(record[VALUE], bytes):
            parts["Record value bytes (non-UTF-8 values only; text is the value itself)"] += (
                sys.getsizeof(record[VALUE])
            )
        if id(record[META]) not in metas:
            metas.add(id(record[META]))
            parts["Record meta tuples (shared; per key when not)"] += sys.getsizeof(
                record[META]
            ) + sum(sys.getsizeof(part) for part in record[META][:1])
    result = {name: total / n for name, total in parts.items()}
    result["dict slots: Client._records"] = sys.getsizeof(records) / n
    result["dict slots: Client._fresh"] = sys.getsizeof(client._fresh) / n
    result["expiry slots (lists of keys due in one 1/64 s slot)"] = (
        sum(sys.getsizeof(tokens) for tokens in scheduler.slots.values())
        + sys.getsizeof(scheduler.slots)
        + sys.getsizeof(scheduler._heap)
    ) / n
    return result


def worker(kind: str, measure: str, store: str, n: int) -> dict[str, Any]:
    """One figure in a fresh process: ``kind`` dict|veltrix, ``measure`` rss|trace."""
    import tracemalloc

    import psutil  # type: ignore[import-untyped]

    keys = [key_for(i) for i in range(n)]
    process = psutil.Process()
    client: Any = None
    if kind == "veltrix":
        import veltrix

        client = veltrix.Client(f"sqlite:///{store}", cache=veltrix.CachePolicy(ttl=3600.0))
        assert client.get(keys[0]) == value_for(0)  # threads, connection, watch: not per key
        client.invalidate()
    gc.collect()
    rss_before = process.memory_info().rss
    if measure == "trace":
        tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0] if measure == "trace" else 0
    holder: Any
    if kind == "dict":
        holder = {key: value_for(i) for i, key in enumerate(keys)}
    else:
        for key in keys:
            client.get(key)
        holder = client
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - traced_before if measure == "trace" else 0
    if measure == "trace":
        tracemalloc.stop()
    rss = process.memory_info().rss - rss_before
    values = [holder[k] for k in keys] if kind == "dict" else [client.get(k) for k in keys]
    assert values[-1] == value_for(n - 1)
    value_bytes = sum(sys.getsizeof(v) for v in values)
    out: dict[str, Any] = {
        "kind": kind,
        "measure": measure,
        "keys": n,
        "value_bytes_per_key": value_bytes / n,
    }
    if measure == "trace":
        out["traced_bytes_per_key"] = traced / n
        out["beyond_value_bytes_per_key"] = (traced - value_bytes) / n
        if client is not None:
            out["breakdown"] = _breakdown(client, keys)
            out["cached_keys"] = client.stats()["cached_keys"]
    else:
        out["rss_bytes_per_key"] = rss / n
        out["rss_beyond_value_bytes_per_key"] = (rss - value_bytes) / n
    if client is not None:
        client.close()
    return out


def _spawn(kind: str, measure: str, store: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--worker", kind, measure, store, str(n)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run(quick: bool = False, *, keys: int | None = None) -> dict[str, Any]:
    n = keys or (10_000 if quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "config.db")
        seed(store, n)
        figures = {
            f"{kind} {measure}": _spawn(kind, measure, store, n)
            for kind in ("dict", "veltrix")
            for measure in ("rss", "trace")
        }
    veltrix_trace, dict_trace = figures["veltrix trace"], figures["dict trace"]
    per_key = veltrix_trace["beyond_value_bytes_per_key"]
    breakdown = veltrix_trace["breakdown"]
    return {
        "benchmark": "memory",
        "quick": quick,
        "keys": n,
        "value_chars": VALUE_CHARS,
        "store": "sqlite (embedded)",
        "figures": figures,
        "veltrix_beyond_value_bytes_per_key": per_key,
        "dict_beyond_value_bytes_per_key": dict_trace["beyond_value_bytes_per_key"],
        "veltrix_over_dict_total": veltrix_trace["traced_bytes_per_key"]
        / dict_trace["traced_bytes_per_key"],
        "breakdown_bytes_per_key": breakdown,
        "unattributed_bytes_per_key": per_key - sum(breakdown.values()),
        "target_bytes": TARGET_BYTES,
        "target_met": per_key <= TARGET_BYTES,
        "machine": machine(),
        "versions": package_versions("psutil"),
    }


def markdown(data: dict[str, Any]) -> str:
    f = data["figures"]
    n = data["keys"]
    lines = [
        f"{n:,} keys, {data['value_chars']}-character text values "
        f"({f['dict trace']['value_bytes_per_key']:.0f} bytes per value string):",
        "",
        "| holder | tracemalloc bytes/key | beyond the value | RSS bytes/key | RSS beyond the value |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, label in (("dict", "plain dict"), ("veltrix", "veltrix.Client (L1)")):
        t, r = f[f"{kind} trace"], f[f"{kind} rss"]
        lines.append(
            f"| {label} | {t['traced_bytes_per_key']:.0f} | {t['beyond_value_bytes_per_key']:.0f} | "
            f"{r['rss_bytes_per_key']:.0f} | {r['rss_beyond_value_bytes_per_key']:.0f} |"
        )
    lines += [
        "",
        "Where the client's bytes per key go (sys.getsizeof, averaged):",
        "",
        "| per-key object | bytes |",
        "|---|---:|",
    ]
    for name, size in data["breakdown_bytes_per_key"].items():
        lines.append(f"| {name} | {size:.0f} |")
    lines.append(
        f"| not attributed (allocator rounding, other) | {data['unattributed_bytes_per_key']:.0f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 keys")
    parser.add_argument("--keys", type=int, default=None)
    parser.add_argument(
        "--worker", nargs=4, metavar=("KIND", "MEASURE", "STORE", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        kind, measure, store, n = args.worker
        print(json.dumps(worker(kind, measure, store, int(n))))
        return
    data = run(quick=args.quick, keys=args.keys)
    print(markdown(data))
    print(f"written {write_json('memory', data)}")


if __name__ == "__main__":
    main()
