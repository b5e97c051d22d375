"""Parameter Manager benchmarks against the test server (``scripts/services up gcppm``).

    .venv/bin/python -m benchmarks.bench_gcppm [--quick]

Per transport (gRPC, REST), for a JSON parameter of 20 keys, one of which references a
Secret Manager secret:

- the raw client's cheapest read of a known version, ``render_parameter_version``, and
  ``get_parameter_version`` (no rendering) on the same version, and a render of the same
  document without the reference: the render cost and the reference's share of it;
- the adapter's miss (``ParameterManagerBackend.get``: list the versions to find the newest
  enabled one, then render it; the format is cached) against that raw render;
- ``veltrix.Client`` cached ``get`` against the raw render.

Writes ``benchmarks/results/gcppm.json``. The server is our Python test server on
loopback, not Google's service: compare ratios, not absolute latency.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.parametermanager_v1 import ParameterManagerClient
from google.cloud.parametermanager_v1.services.parameter_manager.transports import (
    ParameterManagerGrpcTransport,
)
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)

import veltrix
from benchmarks._common import machine, section_main, summary_us, timed_calls
from veltrix.adapters.gcp_parameter_manager import ParameterManagerBackend

VARIABLES = {"grpc": "VELTRIX_TEST_GCPPM_GRPC", "rest": "VELTRIX_TEST_GCPPM_REST"}
KEYS = 20


def timed(call: Callable[[], object], n: int) -> list[float]:
    return timed_calls(call, n, warm_up=3)


def clients(transport: str, endpoint: str) -> tuple[ParameterManagerClient, Any]:
    if transport == "grpc":
        channel = grpc.insecure_channel(endpoint)
        return (
            ParameterManagerClient(transport=ParameterManagerGrpcTransport(channel=channel)),
            SecretManagerServiceClient(
                transport=SecretManagerServiceGrpcTransport(channel=channel)
            ),
        )
    options = ClientOptions(api_endpoint=f"http://{endpoint}")
    anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return (
        ParameterManagerClient(transport="rest", credentials=anonymous, client_options=options),
        SecretManagerServiceClient(transport="rest", credentials=anonymous, client_options=options),
    )


def bench_transport(transport: str, endpoint: str, store_reads: int, cached_reads: int) -> Any:
    project = f"bench-{uuid.uuid4().hex[:8]}"
    pm, sm = clients(transport, endpoint)
    secret = sm.create_secret(
        request={
            "parent": f"projects/{project}",
            "secret_id": "db-password",
            "secret": {"replication": {"automatic": {}}},
        }
    )
    version = sm.add_secret_version(
        request={"parent": secret.name, "payload": {"data": b"s3cr3t-value"}}
    )
    document: dict[str, Any] = {f"setting_{i}": f"value-{i}" for i in range(KEYS - 1)}
    plain = json.dumps({**document, "password": "not-a-reference"}).encode()
    document["password"] = f"__REF__(//secretmanager.googleapis.com/{version.name})"
    parent = f"projects/{project}/locations/global"
    names = {}
    for parameter_id, data in (("app", json.dumps(document).encode()), ("plain", plain)):
        created = pm.create_parameter(
            request={"parent": parent, "parameter_id": parameter_id, "parameter": {"format_": 3}}
        )
        pm.create_parameter_version(
            request={
                "parent": created.name,
                "parameter_version_id": "v1",
                "parameter_version": {"payload": {"data": data}},
            }
        )
        names[parameter_id] = f"{created.name}/versions/v1"
    url = f"gcppm://{project}?endpoint={endpoint}&transport={transport}&insecure=true"
    backend = ParameterManagerBackend.from_url(url)
    results: dict[str, Any] = {}
    try:
        results["raw_render"] = summary_us(
            timed(lambda: pm.render_parameter_version(request={"name": names["app"]}), store_reads)
        )
        results["raw_render_no_reference"] = summary_us(
            timed(
                lambda: pm.render_parameter_version(request={"name": names["plain"]}),
                store_reads,
            )
        )
        results["raw_get_version"] = summary_us(
            timed(lambda: pm.get_parameter_version(request={"name": names["app"]}), store_reads)
        )
        results["adapter_get_uncached"] = summary_us(
            timed(lambda: backend.get("app/password"), store_reads)
        )
        policy = veltrix.CachePolicy(ttl=300.0, watch=False)
        with veltrix.Client(backend, cache=policy) as client:
            client.get_bytes("app/password")
            results["veltrix_cached_get"] = summary_us(
                timed(lambda: client.get_bytes("app/password"), cached_reads)
            )
            started = time.perf_counter()
            for _ in range(cached_reads):
                client.get_bytes("app/password")
            results["veltrix_cached_get_loop_ns"] = (
                (time.perf_counter() - started) / cached_reads * 1e9
            )
    finally:
        pm.transport.close()  # type: ignore[no-untyped-call]
        sm.transport.close()  # type: ignore[no-untyped-call]
        backend.close()
    raw = results["raw_render"]["p50_us"]
    results["miss_over_raw_render_p50"] = results["adapter_get_uncached"]["p50_us"] / raw
    results["raw_render_over_cached_p50"] = raw / results["veltrix_cached_get"]["p50_us"]
    results["render_over_get_version_p50"] = raw / results["raw_get_version"]["p50_us"]
    results["reference_share_p50"] = raw / results["raw_render_no_reference"]["p50_us"]
    return results


def run(quick: bool = False) -> dict[str, Any]:
    missing = [v for v in VARIABLES.values() if not os.environ.get(v)]
    if missing:
        raise SystemExit(
            f"Parameter Manager test server not running ({', '.join(missing)} unset): "
            "run scripts/services up gcppm"
        )
    store_reads = 100 if quick else 500
    cached_reads = 20_000 if quick else 200_000
    load_before = os.getloadavg()[0]
    transports = {
        transport: bench_transport(transport, os.environ[variable], store_reads, cached_reads)
        for transport, variable in VARIABLES.items()
    }
    return {
        "machine": machine(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg()[0],
        "keys_per_parameter": KEYS,
        "store_reads": store_reads,
        "cached_reads": cached_reads,
        "transports": transports,
    }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "| transport | read | p50 µs | p99 µs |",
        "|---|---|---:|---:|",
    ]
    names = (
        "raw_get_version",
        "raw_render_no_reference",
        "raw_render",
        "adapter_get_uncached",
        "veltrix_cached_get",
    )
    for transport, r in data["transports"].items():
        for name in names:
            lines.append(
                f"| {transport} | {name} | {r[name]['p50_us']:.2f} | {r[name]['p99_us']:.2f} |"
            )
    lines.append("")
    for transport, r in data["transports"].items():
        lines.append(
            f"- {transport}: adapter miss / raw render {r['miss_over_raw_render_p50']:.2f}; "
            f"raw render / cached get {r['raw_render_over_cached_p50']:,.0f}x; render / "
            f"get_parameter_version {r['render_over_get_version_p50']:.2f}; render with one "
            f"reference / without {r['reference_share_p50']:.2f} (p50)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(section_main("gcppm", run, markdown, None))
