"""veltrix cached get vs aws-lambda-powertools' AppConfigProvider and SSMProvider.

    .venv/bin/python -m benchmarks.bench_aws [--quick]

Same servers (the AppConfig test server, the moto server), same max_age. Measures
(1) cached-read latency in a hot loop and (2) the HTTP requests each library sends
to the store over a timed run of continuous reads (counted with botocore's
``before-send`` event on each library's own client). Prints a markdown section and
writes ``benchmarks/results/aws.json``. Loopback test servers: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import timeit
from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parameters import AppConfigProvider, SSMProvider
from botocore.config import Config

import veltrix
from benchmarks._common import RESULTS_DIR, load_services_env
from veltrix.adapters.appconfig import AppConfigBackend
from veltrix.adapters.ssm import SSMBackend

REGION = "us-east-1"


def counter(client: Any) -> dict[str, int]:
    counts = {"requests": 0}

    def hook(**_: Any) -> None:
        counts["requests"] += 1

    client.meta.events.register("before-send", hook)
    return counts


def ns_per_call(fn: Callable[[], Any], calls: int) -> float:
    best = min(timeit.repeat(fn, number=calls, repeat=5))
    return best / calls * 1e9


def run_for(fn: Callable[[], Any], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    reads = 0
    while time.monotonic() < deadline:
        fn()
        reads += 1
    return reads


def bench_appconfig(endpoint: str, max_age: int, calls: int, run_seconds: float) -> dict[str, Any]:
    control = boto3.client("appconfig", endpoint_url=endpoint, region_name=REGION)
    name = f"bench-{os.getpid()}-{int(time.time())}"
    app = control.create_application(Name=name)
    env = control.create_environment(ApplicationId=app["Id"], Name="prod")
    prof = control.create_configuration_profile(
        ApplicationId=app["Id"], Name="cfg", LocationUri="hosted"
    )
    strategy = control.create_deployment_strategy(
        Name=name, DeploymentDurationInMinutes=0, GrowthFactor=100, FinalBakeTimeInMinutes=0
    )
    document = {
        "payments": {"timeout_ms": 500, "mode": "fast"},
        "pad": {f"k{i}": "x" * 40 for i in range(200)},
    }
    version = control.create_hosted_configuration_version(
        ApplicationId=app["Id"],
        ConfigurationProfileId=prof["Id"],
        Content=json.dumps(document).encode(),
        ContentType="application/json",
    )
    control.start_deployment(
        ApplicationId=app["Id"],
        EnvironmentId=env["Id"],
        DeploymentStrategyId=strategy["Id"],
        ConfigurationProfileId=prof["Id"],
        ConfigurationVersion=str(version["VersionNumber"]),
    )
    try:
        backend = AppConfigBackend.from_url(
            f"appconfig://{name}/prod/cfg?region={REGION}&poll_interval={max_age}"
            f"&feature_flags=false",
            endpoint_url=endpoint,
        )
        ours = counter(backend._data)
        client = veltrix.Client(backend, cache=veltrix.CachePolicy(ttl=max_age, watch=False))
        data = boto3.client(
            "appconfigdata",
            endpoint_url=endpoint,
            region_name=REGION,
            config=Config(parameter_validation=False),
        )
        theirs = counter(data)
        provider = AppConfigProvider(environment="prod", application=name, boto3_client=data)

        def veltrix_get() -> Any:
            return client.get("payments/timeout_ms")

        def powertools_get() -> Any:
            return provider.get(
                "cfg",
                max_age=max_age,
                transform="json",
                RequiredMinimumPollIntervalInSeconds=max_age,
            )["payments"]["timeout_ms"]

        assert veltrix_get() == "500" and powertools_get() == 500
        result: dict[str, Any] = {
            "cached_get_ns": {
                "veltrix": ns_per_call(veltrix_get, calls),
                "powertools": ns_per_call(powertools_get, calls),
            },
        }
        for label, fn, counts in (
            ("veltrix", veltrix_get, ours),
            ("powertools", powertools_get, theirs),
        ):
            before = counts["requests"]
            reads = run_for(fn, run_seconds)
            result.setdefault("run", {})[label] = {
                "reads": reads,
                "store_requests": counts["requests"] - before,
            }
        client.close()
        backend.close()
        data.close()
        return result
    finally:
        control.delete_application(ApplicationId=app["Id"])
        control.delete_deployment_strategy(DeploymentStrategyId=strategy["Id"])


def bench_ssm(endpoint: str, max_age: int, calls: int, run_seconds: float) -> dict[str, Any]:
    prefix = f"bench/{os.getpid()}-{int(time.time())}"
    backend = SSMBackend.from_url(f"ssm:///{prefix}?region={REGION}", endpoint_url=endpoint)
    backend.put("db/timeout_ms", b"500")
    ours = counter(backend._client)
    client = veltrix.Client(backend, cache=veltrix.CachePolicy(ttl=max_age, watch=False))
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=REGION)
    theirs = counter(ssm)
    provider = SSMProvider(boto3_client=ssm)
    name = f"/{prefix}/db/timeout_ms"

    def veltrix_get() -> Any:
        return client.get("db/timeout_ms")

    def powertools_get() -> Any:
        return provider.get(name, max_age=max_age)

    def adapter_get() -> Any:
        return backend.get("db/timeout_ms")

    def boto_get() -> Any:
        return ssm.get_parameter(Name=name)

    assert veltrix_get() == "500" and powertools_get() == "500"
    result: dict[str, Any] = {
        "cached_get_ns": {
            "veltrix": ns_per_call(veltrix_get, calls),
            "powertools": ns_per_call(powertools_get, calls),
        },
        "uncached_get_us": {
            "veltrix_adapter": ns_per_call(adapter_get, 50) / 1000,
            "boto3_get_parameter": ns_per_call(boto_get, 50) / 1000,
        },
    }
    for label, fn, counts in (
        ("veltrix", veltrix_get, ours),
        ("powertools", powertools_get, theirs),
    ):
        before = counts["requests"]
        reads = run_for(fn, run_seconds)
        result.setdefault("run", {})[label] = {
            "reads": reads,
            "store_requests": counts["requests"] - before,
        }
    backend.delete("db/timeout_ms")
    client.close()
    backend.close()
    ssm.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    load_services_env()
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(var, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    appconfig = os.environ.get("VELTRIX_TEST_APPCONFIG_ENDPOINT")
    moto = os.environ.get("VELTRIX_TEST_MOTO_ENDPOINT")
    if not appconfig or not moto:
        raise SystemExit("run scripts/services up appconfig moto first")
    max_age, calls = 1, (20_000 if args.quick else 200_000)
    run_seconds = 3.0 if args.quick else 10.0
    results = {
        "max_age_s": max_age,
        "run_seconds": run_seconds,
        "appconfig": bench_appconfig(appconfig, max_age, calls, run_seconds),
        "ssm": bench_ssm(moto, max_age, calls, run_seconds),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "aws.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"## AWS: veltrix vs Powertools (max_age {max_age} s, {run_seconds:g} s runs)\n")
    print(
        "| store | cached get veltrix | cached get powertools | ratio | store requests "
        "veltrix / powertools (reads) |"
    )
    print("|---|---|---|---|---|")
    for store in ("appconfig", "ssm"):
        r = results[store]
        ours, theirs = r["cached_get_ns"]["veltrix"], r["cached_get_ns"]["powertools"]
        run = r["run"]
        print(
            f"| {store} | {ours:.0f} ns | {theirs:.0f} ns | {theirs / ours:.1f}x | "
            f"{run['veltrix']['store_requests']} ({run['veltrix']['reads']}) / "
            f"{run['powertools']['store_requests']} ({run['powertools']['reads']}) |"
        )
    u = results["ssm"]["uncached_get_us"]
    print(
        f"\nUncached SSM get (moto, loopback): veltrix adapter {u['veltrix_adapter']:.0f} us, "
        f"boto3 get_parameter {u['boto3_get_parameter']:.0f} us."
    )


if __name__ == "__main__":
    main()
