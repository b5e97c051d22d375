"""Migration throughput: keys/s per store pair for 10,000 keys (``--quick``: 1,000).

    scripts/services up
    .venv/bin/python -m benchmarks.bench_migrate [--quick] [--keys N] [--stores sqlite,consul]

For every store X: ``sqlite -> X`` (a fresh X), then ``X -> sqlite`` (reading back what
was just written), then ``sqlite -> X`` again with nothing to do (the idempotent re-run:
plan only). Each figure is one full ``veltrix.migrate`` (list both sides, pre-flight,
CAS writes, read-back verify) with the default concurrency of 8 writers.

Prints a markdown section and writes the same data to ``benchmarks/results/migrate.json``.
The servers are local test servers (moto for SSM, our wire-faithful Consul, AppConfig and
Secret Manager servers), so absolute numbers measure loopback round trips and those
servers, not the cloud services: compare pairs, not production capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import load_services_env, machine, package_versions, write_json
from veltrix.backend import Backend
from veltrix.migration import migrate
from veltrix.registry import open_backend

REGION = "us-east-1"
ALL_STORES = ["memory", "sqlite", "redis", "zookeeper", "consul", "appconfig", "ssm", "gcpsm"]


def _name() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


def _appconfig(endpoint: str, cleanups: list[Callable[[], None]]) -> str:
    import boto3

    control = boto3.client("appconfig", endpoint_url=endpoint, region_name=REGION)
    app = control.create_application(Name=_name())
    control.create_environment(ApplicationId=app["Id"], Name="bench")
    control.create_configuration_profile(
        ApplicationId=app["Id"], Name="config", LocationUri="hosted", Type="AWS.Freeform"
    )
    cleanups.append(lambda: control.delete_application(ApplicationId=app["Id"]))
    return (
        f"appconfig://{app['Name']}/bench/config?region={REGION}&poll_interval=0.1"
        f"&endpoint_url={endpoint}"
    )


def store_url(kind: str, workdir: Path, cleanups: list[Callable[[], None]]) -> str | None:
    """A fresh store of ``kind``, or None when its server is not running."""
    env = os.environ.get
    name = _name()
    if kind == "memory":
        return f"memory://{name}"
    if kind == "sqlite":
        return f"sqlite:///{workdir}/{name}.db"
    if kind == "zookeeper" and env("VELTRIX_TEST_ZOOKEEPER"):
        return f"zookeeper://{env('VELTRIX_TEST_ZOOKEEPER')}/veltrix-bench/{name}"
    if kind == "consul" and env("VELTRIX_TEST_CONSUL_ADDR"):
        return f"consul://{env('VELTRIX_TEST_CONSUL_ADDR')}/veltrix-bench/{name}"
    if kind == "appconfig" and env("VELTRIX_TEST_APPCONFIG_ENDPOINT"):
        return _appconfig(str(env("VELTRIX_TEST_APPCONFIG_ENDPOINT")), cleanups)
    if kind == "ssm" and env("VELTRIX_TEST_MOTO_ENDPOINT"):
        return (
            f"ssm:///veltrix-bench/{name}?region={REGION}"
            f"&endpoint_url={env('VELTRIX_TEST_MOTO_ENDPOINT')}"
        )
    if kind == "gcpsm" and env("VELTRIX_TEST_GCPSM_GRPC"):
        return (
            f"gcpsm://{name}/bench?endpoint={env('VELTRIX_TEST_GCPSM_GRPC')}"
            "&transport=grpc&insecure=true&timeout=10&deadline=30"
        )
    if kind == "redis" and env("VELTRIX_TEST_REDIS_URL"):
        return f"{str(env('VELTRIX_TEST_REDIS_URL')).rstrip('/')}/{name}?timeout=10"
    return None


def dataset(keys: int) -> dict[str, bytes]:
    return {
        f"svc{i % 20:02d}/group{i % 7}/key-{i:05d}": f"value-{i:05d}-{'x' * 80}".encode()
        for i in range(keys)
    }


def timed(source: Backend, destination: Backend, keys: int) -> dict[str, Any]:
    started = time.perf_counter()
    report = migrate(source, destination)
    seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"migration failed: {report.summary()}")
    return {
        "seconds": round(seconds, 3),
        "keys_per_s": round(keys / seconds, 1),
        "written": report.written,
        "write_calls": report.write_calls,
        "verified": report.verified,
    }


def drain(backend: Backend) -> None:
    """Empty a shared server's store (batched / parallel deletes, through migrate itself)."""
    from veltrix.adapters.memory import MemoryBackend

    with contextlib.suppress(Exception):
        migrate(MemoryBackend(), backend, delete_extraneous=True, verify=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 keys instead of 10,000")
    parser.add_argument("--keys", type=int, default=None)
    parser.add_argument("--stores", default=",".join(ALL_STORES))
    parser.add_argument(
        "--ssm-keys",
        type=int,
        default=None,
        help="keys for SSM (moto's GetParametersByPath slows down with many parameters)",
    )
    args = parser.parse_args()
    load_services_env()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        os.environ.setdefault(name, value)
    keys = args.keys or (1_000 if args.quick else 10_000)
    data = dataset(keys)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        base = open_backend(store_url("sqlite", workdir, []) or "")
        for key, value in data.items():
            base.put(key, value)  # type: ignore[attr-defined]
        for kind in [s for s in args.stores.split(",") if s]:
            cleanups: list[Callable[[], None]] = []
            url = store_url(kind, workdir, cleanups)
            if url is None:
                print(f"skipping {kind}: its server is not running (scripts/services up)")
                continue
            store = open_backend(url)
            back = open_backend(store_url("sqlite", workdir, []) or "")
            count, source = keys, base
            if kind == "ssm" and args.ssm_keys and args.ssm_keys < keys:
                count = args.ssm_keys
                source = open_backend(store_url("sqlite", workdir, []) or "")
                for key in list(data)[:count]:
                    source.put(key, data[key])  # type: ignore[attr-defined]
            try:
                forward = timed(source, store, count)
                reverse = timed(store, back, count)
                idle = timed(source, store, count)
                for figures in (forward, reverse, idle):
                    figures["keys"] = count
                results[kind] = {
                    f"sqlite->{kind}": forward,
                    f"{kind}->sqlite": reverse,
                    f"sqlite->{kind} (nothing to do)": idle,
                }
                write_json(
                    "migrate",
                    {
                        "keys": keys,
                        "concurrency": 8,
                        "partial": True,
                        "stores": results,
                        "machine": machine(),
                    },
                )
                print(
                    f"{kind}: {forward['keys_per_s']:,.0f} keys/s in, "
                    f"{reverse['keys_per_s']:,.0f} keys/s out",
                    flush=True,
                )
            finally:
                if kind not in ("memory", "sqlite", "appconfig"):  # appconfig: app deleted
                    drain(store)
                store.close()
                back.close()
                for cleanup in cleanups:
                    cleanup()
        base.close()
    rows = [
        (pair, figures) for per_store in results.values() for pair, figures in per_store.items()
    ]
    print(f"\n## Migration throughput ({keys:,} keys, concurrency 8)\n")
    print("| pair | keys | keys/s | seconds | write calls | verified |")
    print("|---|---:|---:|---:|---:|---:|")
    for pair, figures in rows:
        print(
            f"| {pair} | {figures['keys']:,} | {figures['keys_per_s']:,.0f} | "
            f"{figures['seconds']:.2f} | {figures['write_calls']:,} | {figures['verified']:,} |"
        )
    path = write_json(
        "migrate",
        {
            "keys": keys,
            "concurrency": 8,
            "pairs": {pair: figures for pair, figures in rows},
            "machine": machine(),
            "packages": package_versions(
                "kazoo", "py-consul", "boto3", "moto", "google-cloud-secret-manager", "redis"
            ),
        },
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
