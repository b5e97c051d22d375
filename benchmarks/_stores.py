"""Fresh, empty stores on the local servers for the cross-store benchmark sections.

Each store gets its own random namespace (chroot, prefix, project, AppConfig
application) so runs never see each other's keys. Addresses come from the
``VELTRIX_TEST_*`` variables (see :func:`benchmarks._common.load_services_env`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

REGION = "us-east-1"

PUSH_STORES = ("memory", "sqlite", "zookeeper", "consul", "redis")
POLLING_STORES = ("appconfig", "ssm", "gcpsm")


def _name() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


def aws_test_credentials() -> None:
    """Dummy credentials for the moto / AppConfig test servers (never real ones)."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        os.environ.setdefault(name, value)


def _appconfig(endpoint: str, poll_interval: float, cleanups: list[Callable[[], None]]) -> str:
    import boto3

    control = boto3.client("appconfig", endpoint_url=endpoint, region_name=REGION)
    app = control.create_application(Name=_name())
    control.create_environment(ApplicationId=app["Id"], Name="bench")
    control.create_configuration_profile(
        ApplicationId=app["Id"], Name="config", LocationUri="hosted", Type="AWS.Freeform"
    )
    cleanups.append(lambda: control.delete_application(ApplicationId=app["Id"]))
    return (
        f"appconfig://{app['Name']}/bench/config?region={REGION}&poll_interval={poll_interval:g}"
        f"&endpoint_url={endpoint}"
    )


def store_url(
    kind: str,
    workdir: Path,
    cleanups: list[Callable[[], None]],
    *,
    poll_interval: float | None = None,
) -> str | None:
    """URL of a fresh, empty store of ``kind``; None when its server is not running.

    ``poll_interval``: for stores whose watch polls (appconfig, ssm, gcpsm, sqlite),
    seconds between polls (None: the adapter's default).
    """
    env = os.environ.get
    name = _name()
    poll = "" if poll_interval is None else f"poll_interval={poll_interval:g}"
    if kind == "memory":
        return f"memory://{name}"
    if kind == "sqlite":
        return f"sqlite:///{workdir}/{name}.db" + (f"?{poll}" if poll else "")
    if kind == "zookeeper" and env("VELTRIX_TEST_ZOOKEEPER"):
        return f"zookeeper://{env('VELTRIX_TEST_ZOOKEEPER')}/veltrix-bench/{name}"
    if kind == "consul" and env("VELTRIX_TEST_CONSUL_ADDR"):
        return f"consul://{env('VELTRIX_TEST_CONSUL_ADDR')}/veltrix-bench/{name}"
    if kind == "redis" and env("VELTRIX_TEST_REDIS_URL"):
        return f"{str(env('VELTRIX_TEST_REDIS_URL')).rstrip('/')}/{name}"
    if kind == "appconfig" and env("VELTRIX_TEST_APPCONFIG_ENDPOINT"):
        aws_test_credentials()
        return _appconfig(
            str(env("VELTRIX_TEST_APPCONFIG_ENDPOINT")),
            60.0 if poll_interval is None else poll_interval,
            cleanups,
        )
    if kind == "ssm" and env("VELTRIX_TEST_MOTO_ENDPOINT"):
        aws_test_credentials()
        return (
            f"ssm:///veltrix-bench/{name}?region={REGION}"
            f"&endpoint_url={env('VELTRIX_TEST_MOTO_ENDPOINT')}" + (f"&{poll}" if poll else "")
        )
    if kind == "gcpsm" and env("VELTRIX_TEST_GCPSM_GRPC"):
        return (
            f"gcpsm://{name}/bench?endpoint={env('VELTRIX_TEST_GCPSM_GRPC')}"
            "&transport=grpc&insecure=true&timeout=10" + (f"&{poll}" if poll else "")
        )
    return None
