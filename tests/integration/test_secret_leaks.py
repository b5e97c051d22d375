"""A planted secret value and planted credentials never show up anywhere they could leak.

The scenario uses real servers: ZooKeeper with digest auth as the store, Redis as
the shared cache (L2) with a cache key, a disk snapshot, and SSM (moto's server)
holding a SecureString. While it runs, every logger logs at every level into one
buffer. Afterwards the planted values must appear in none of:

- the log records (Veltrix's loggers and the client libraries': kazoo, botocore,
  urllib3, redis, grpc...), tracebacks included;
- the full tracebacks, ``__cause__``/``__context__`` chains included, of every
  error raised on the way (typed reads of a secret, a model, a refused login);
- the reprs of the client, backend, entries and policy;
- the Redis keys and values of the L2 cache and the disk snapshot;
- the output of the command line (with ``--secret-prefix``) and its usage errors.

Each check is paired with a positive one (the secret *is* read back correctly)
so an empty log or a broken pipeline cannot pass for a clean one.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from pydantic import BaseModel

from tests.support import server_env, unique_name
from veltrix import CachePolicy, Client
from veltrix.errors import AccessDeniedError, DecodeError, VeltrixError

SECRET = "VxSecretValue-" + secrets.token_hex(6)
ZK_PASSWORD = "VxZkPassword-" + secrets.token_hex(6)
WRONG_PASSWORD = "VxWrongPassword-" + secrets.token_hex(6)
AWS_SECRET = "VxAwsSecret-" + secrets.token_hex(6)
CACHE_KEY = secrets.token_hex(32)  # the L2/snapshot sealing key is a secret too
PLANTED = (SECRET, ZK_PASSWORD, WRONG_PASSWORD, AWS_SECRET, CACHE_KEY)
REGION = "us-east-1"


class Database(BaseModel):
    db_password: int  # the secret is not an int: validation fails


def leaks(text: str) -> list[str]:
    return [planted for planted in PLANTED if planted in text]


@contextmanager
def every_log_record() -> Iterator[io.StringIO]:
    """Every logger, every level (kazoo's BLATHER too), with tracebacks, into one buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(1)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    loggers = [
        item
        for item in logging.root.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    saved_root = root.level
    root.addHandler(handler)
    root.setLevel(1)
    for lg in loggers:
        lg.setLevel(logging.NOTSET)
        lg.propagate = True
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_root)
        for lg, level, propagate in saved:
            lg.setLevel(level)
            lg.propagate = propagate


def full_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


@pytest.fixture
def planted_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELTRIX_ZK_AUTH", f"leaktest:{ZK_PASSWORD}")
    monkeypatch.setenv("VELTRIX_CACHE_KEY", CACHE_KEY)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_planted_secret_and_passwords_never_leak(planted_env: None, tmp_path: Path) -> None:
    zk = server_env("VELTRIX_TEST_ZOOKEEPER", "ZooKeeper server")
    redis_url = server_env("VELTRIX_TEST_REDIS_URL", "Redis server")
    moto = server_env("VELTRIX_TEST_MOTO_ENDPOINT", "moto server")
    store_url = f"zookeeper://{zk}/{unique_name('leak')}"
    namespace = unique_name("leak-ns")
    cache_url = f"{redis_url}?namespace={namespace}"
    snapshot = tmp_path / "snapshot.json"
    ssm_prefix = f"veltrix/{unique_name('leak')}"
    seed = boto3.client("ssm", endpoint_url=moto, region_name=REGION)
    seed.put_parameter(Name=f"/{ssm_prefix}/db/password", Value=SECRET, Type="SecureString")
    seed.close()

    shown: list[str] = []  # every traceback, repr and message met on the way
    options: dict[str, Any] = dict(
        secret_prefixes=["secrets"],
        cache_url=cache_url,
        last_known_good_path=snapshot,
        cache=CachePolicy(ttl=30),
    )
    with every_log_record() as logs:
        with Client(store_url, **options) as writer:
            writer.put("secrets/db_password", SECRET)
            writer.put("app/port", "8080")
            shown += [repr(writer), repr(writer.backend), repr(writer.policy), str(writer.stats())]
            shown += [repr(writer.get_entry("secrets/db_password")), repr(writer.list("secrets"))]
        with Client(store_url, **options) as reader:  # a second process: reads through L2
            assert reader.get("secrets/db_password") == SECRET
            assert reader.stats().get("l2_hits", 0) >= 1
            for target in (int, float, bool, list[int], dict[str, int], Database):
                with pytest.raises(DecodeError) as caught:
                    reader.get("secrets/db_password", type=target)
                shown.append(full_traceback(caught.value))
            with pytest.raises(DecodeError) as caught:
                reader.get_model("secrets", Database)
            shown.append(full_traceback(caught.value))
            reader.invalidate()
            assert reader.get("secrets/db_password") == SECRET

        # A wrong digest password: refused, and the refusal names no credential.
        os.environ["VELTRIX_ZK_AUTH"] = f"leaktest:{WRONG_PASSWORD}"
        with Client(store_url, cache=CachePolicy(ttl=0, retries=0)) as intruder:
            with pytest.raises(VeltrixError) as caught:
                intruder.get("secrets/db_password")
            assert isinstance(caught.value, AccessDeniedError), caught.value
            shown.append(full_traceback(caught.value))
            shown.append(repr(intruder.backend))

        # SSM SecureString through botocore (which logs response bodies at DEBUG).
        ssm_url = f"ssm:///{ssm_prefix}?region={REGION}"
        with Client(ssm_url, endpoint_url=moto, cache=CachePolicy(ttl=0)) as aws:
            assert aws.get("db/password") == SECRET
            with pytest.raises(DecodeError) as caught:
                aws.get("db/password", type=int)
            shown.append(full_traceback(caught.value))
            shown.append(repr(aws.get_entry("db/password")))

    log_text = logs.getvalue()
    assert "veltrix.zookeeper.kazoo" in log_text and "botocore" in log_text  # really captured
    assert "Auth(" in log_text  # kazoo's auth request was logged (masked)
    snapshot_text = snapshot.read_bytes().decode("utf-8", "replace")
    assert "secrets/db_password" in snapshot_text  # kept, sealed
    l2 = redis.Redis.from_url(redis_url)
    try:
        stored = [l2.get(key) or b"" for key in l2.scan_iter("veltrix:l2:*", count=1000)]
    finally:
        l2.close()
    assert stored, "nothing in the L2 cache"
    found = {
        "logs": leaks(log_text),
        "tracebacks, reprs, messages": sorted({p for text in shown for p in leaks(text)}),
        "disk snapshot": leaks(snapshot_text),
        "L2": sorted({p for v in stored for p in leaks(v.decode("utf-8", "replace"))}),
    }
    assert found == {where: [] for where in found}, found

    os.environ["VELTRIX_ZK_AUTH"] = f"leaktest:{ZK_PASSWORD}"
    cli_runs = [
        ["get", "secrets/db_password", "--secret-prefix", "secrets"],
        ["get", "secrets/db_password", "--secret-prefix", "secrets", "--json"],
        ["ls", "secrets", "--values", "--secret-prefix", "secrets"],
        ["ls", "--json", "--secret-prefix", "secrets"],
        ["diff", store_url, "memory://", "--secret-prefix", "secrets", "--unchanged"],
        ["diff", store_url, "memory://", "--secret-prefix", "secrets", "--json"],
        ["check", "--url", store_url, "--json"],
        ["delete", "X", "--url", "--", f"redis://:{ZK_PASSWORD}@host/0"],
        ["get", "a", "--url", f"zookeeper://leaktest:{ZK_PASSWORD}@{zk}/x"],
    ]
    env = {**os.environ, "VELTRIX_URL": store_url}
    for argv in cli_runs:
        process = subprocess.run(
            [sys.executable, "-m", "veltrix", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        output = process.stdout + process.stderr
        assert leaks(output) == [], (argv, output)
        assert "Traceback" not in output, (argv, output)
    masked = subprocess.run(
        [
            sys.executable,
            "-m",
            "veltrix",
            "get",
            "secrets/db_password",
            "--secret-prefix",
            "secrets",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert masked.stdout.strip() == "********"  # the key was read, and masked


WRONG_TOKEN = "VxWrongToken-" + secrets.token_hex(6)


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_tokens_and_secrets_never_leak_from_consul_and_gcp(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Consul (HTTP, token header) and Secret Manager (gRPC or REST, bearer token):
    the right tokens, a wrong planted token and a secret value stay out of sight."""
    consul_addr = server_env("VELTRIX_TEST_CONSUL_ACL_ADDR", "Consul test server with ACLs")
    consul_token = server_env("VELTRIX_TEST_CONSUL_ACL_TOKEN", "Consul test server ACL token")
    variable = {"grpc": "VELTRIX_TEST_GCPSM_AUTH_GRPC", "rest": "VELTRIX_TEST_GCPSM_AUTH_REST"}
    gcp_endpoint = server_env(variable[transport], "Secret Manager test server with a token")
    gcp_token = server_env("VELTRIX_TEST_GCPSM_TOKEN", "Secret Manager token")
    planted = (SECRET, WRONG_TOKEN, consul_token, gcp_token)
    consul_url = f"consul://{consul_addr}/{unique_name('leak')}"
    gcp_url = (
        f"gcpsm://{unique_name('leak')}/app?endpoint={gcp_endpoint}&transport={transport}"
        "&insecure=true&deadline=3"
    )
    shown: list[str] = []
    with every_log_record() as logs:
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", consul_token)
        monkeypatch.setenv("VELTRIX_GCPSM_ACCESS_TOKEN", gcp_token)
        for url in (consul_url, gcp_url):
            with Client(url, secret_prefixes=["secrets"], cache=CachePolicy(ttl=0)) as client:
                client.put("secrets/api_key", SECRET)
                assert client.get("secrets/api_key") == SECRET
                with pytest.raises(DecodeError) as caught:
                    client.get("secrets/api_key", type=int)
                shown += [full_traceback(caught.value), repr(client), repr(client.backend)]
                shown.append(repr(client.get_entry("secrets/api_key")))
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", WRONG_TOKEN)
        monkeypatch.setenv("VELTRIX_GCPSM_ACCESS_TOKEN", WRONG_TOKEN)
        for url in (consul_url, gcp_url):
            with Client(url, cache=CachePolicy(ttl=0, retries=0)) as intruder:
                with pytest.raises(AccessDeniedError) as refused:
                    intruder.get("secrets/api_key")
                shown += [full_traceback(refused.value), repr(intruder.backend)]
    log_text = logs.getvalue()
    assert "urllib3" in log_text or "grpc" in log_text or "google" in log_text
    found = {
        "logs": [p for p in planted if p in log_text],
        "tracebacks, reprs, messages": sorted({p for t in shown for p in planted if p in t}),
    }
    assert found == {where: [] for where in found}, found
