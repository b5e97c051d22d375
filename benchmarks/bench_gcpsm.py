"""Secret Manager benchmarks against the test server (``scripts/services up gcpsm``).

    .venv/bin/python -m benchmarks.bench_gcpsm [--quick]

For each transport (gRPC, REST): ``veltrix.Client`` cached ``get`` vs a raw
``SecretManagerServiceClient.access_secret_version`` vs the adapter's uncached
``SecretManagerBackend.get`` (one AccessSecretVersion call when ``latest`` is enabled).

Prints a markdown section and writes the same figures to
``benchmarks/results/gcpsm.json``. The server is our Python test server on loopback,
not Google's service: store-side figures measure the round trip to it (real calls
cost tens of milliseconds and are billed per 10 000 accesses), so compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

import veltrix
from benchmarks._common import load_services_env, summary_us, timed_calls
from veltrix.adapters.gcp_secret_manager import SecretManagerBackend

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "gcpsm.json"
VARIABLES = {"grpc": "VELTRIX_TEST_GCPSM_GRPC", "rest": "VELTRIX_TEST_GCPSM_REST"}


def timed(call: Callable[[], object], n: int) -> list[float]:
    return timed_calls(call, n, warm_up=1)  # one untimed call: connection, channel


def raw_client(transport: str, endpoint: str) -> SecretManagerServiceClient:
    if transport == "grpc":
        channel = grpc.insecure_channel(endpoint)
        return SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )
    return SecretManagerServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=f"http://{endpoint}"),
    )


def bench_transport(
    transport: str, endpoint: str, cached_reads: int, store_reads: int
) -> dict[str, Any]:
    project = f"bench-{uuid.uuid4().hex[:8]}"
    url = f"gcpsm://{project}/bench?endpoint={endpoint}&transport={transport}&insecure=true"
    backend = SecretManagerBackend.from_url(url)
    backend.put("db/password", b"s3cr3t-value-" + b"x" * 64)
    secret_name = backend._secret_name("bench/db/password")
    raw = raw_client(transport, endpoint)
    results: dict[str, Any] = {}
    try:
        results["raw_access_secret_version"] = summary_us(
            timed(
                lambda: raw.access_secret_version(
                    request={"name": f"{secret_name}/versions/latest"}
                ),
                store_reads,
            )
        )
        results["adapter_get_uncached"] = summary_us(
            timed(lambda: backend.get("db/password"), store_reads)
        )
        policy = veltrix.CachePolicy(ttl=300.0, watch=False)
        with veltrix.Client(backend, cache=policy) as client:
            client.get_bytes("db/password")
            results["veltrix_cached_get"] = summary_us(
                timed(lambda: client.get_bytes("db/password"), min(cached_reads, 100_000))
            )
            started = time.perf_counter()
            for _ in range(cached_reads):
                client.get_bytes("db/password")
            results["veltrix_cached_get_loop_ns"] = (
                (time.perf_counter() - started) / cached_reads * 1e9
            )
            results["client_stats"] = client.stats()
    finally:
        raw.transport.close()  # type: ignore[no-untyped-call]
        backend.close()
    raw_p50 = results["raw_access_secret_version"]["p50_us"]
    results["speedup_cached_vs_raw_p50"] = raw_p50 / results["veltrix_cached_get"]["p50_us"]
    return results


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "## GCP Secret Manager (test server on loopback)",
        "",
        f"{data['machine']}; {data['store_reads']} store reads and "
        f"{data['cached_reads']} cached reads per transport.",
        "",
        "| transport | read | p50 µs | p99 µs | mean µs |",
        "|---|---|---:|---:|---:|",
    ]
    for transport, results in data["transports"].items():
        for name in ("raw_access_secret_version", "adapter_get_uncached", "veltrix_cached_get"):
            s = results[name]
            lines.append(
                f"| {transport} | {name} | {s['p50_us']:.2f} | {s['p99_us']:.2f} | "
                f"{s['mean_us']:.2f} |"
            )
    lines.append("")
    for transport, results in data["transports"].items():
        lines.append(
            f"- {transport}: cached get is {results['speedup_cached_vs_raw_p50']:.0f}x faster "
            f"than a raw access_secret_version at p50; tight loop "
            f"{results['veltrix_cached_get_loop_ns']:.0f} ns per get; client stats "
            f"{results['client_stats']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gcpsm")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args(argv)
    load_services_env()
    missing = [v for v in VARIABLES.values() if not os.environ.get(v)]
    if missing:
        print(
            f"Secret Manager test server not running ({', '.join(missing)} unset): "
            "run scripts/services up gcpsm"
        )
        return 2
    store_reads = 200 if args.quick else 2000
    cached_reads = 100_000 if args.quick else 1_000_000
    data: dict[str, Any] = {
        "machine": f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()} ({os.cpu_count()} CPUs)",
        "store_reads": store_reads,
        "cached_reads": cached_reads,
        "transports": {
            transport: bench_transport(transport, os.environ[variable], cached_reads, store_reads)
            for transport, variable in VARIABLES.items()
        },
    }
    print(markdown(data))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
