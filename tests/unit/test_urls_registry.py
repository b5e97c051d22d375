"""URL parsing, options, redaction and the backend registry."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from veltrix import errors
from veltrix.registry import BUILTIN, BuiltinBackend, backend_class, open_backend
from veltrix.urls import Options, parse_url, redact_url


def test_unknown_scheme_suggests() -> None:
    with pytest.raises(errors.UnknownBackendError, match="did you mean 'zookeeper'"):
        open_backend("zookeepr://127.0.0.1:2181/app")
    with pytest.raises(errors.UnknownBackendError, match="available:"):
        backend_class("nosuchthing")


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = BuiltinBackend("veltrix.adapters._needs_missing_lib", "X", "zookeeper")
    monkeypatch.setitem(BUILTIN, "fakezk", fake)
    import importlib

    real_import = importlib.import_module

    def failing_import(name: str, *args: Any) -> Any:  # the adapter's client library is missing
        if name == fake.module:
            raise ModuleNotFoundError("No module named 'kazoo'", name="kazoo")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", failing_import)
    with pytest.raises(
        errors.BackendNotInstalledError, match=r"pip install 'veltrix\[zookeeper\]'"
    ):
        open_backend("fakezk://h:1/x")


@pytest.mark.parametrize(
    "url",
    ["memory://?colour=blue", "sqlite:///x.db?busy_timout=1", "memory://?a=1&a=2"],
)
def test_unknown_or_repeated_options_raise(url: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        open_backend(url)


def test_unknown_option_did_you_mean() -> None:
    with pytest.raises(errors.ConfigurationError, match="did you mean 'busy_timeout'"):
        open_backend("sqlite:///tmp/x.db?busy_timout=1")


@pytest.mark.parametrize(
    "url", ["", "nothing", "://x", "1abc://x", "zookeeper://user:pw@host:2181/x"]
)
def test_malformed_urls(url: str) -> None:
    with pytest.raises(errors.ConfigurationError) as info:
        open_backend(url)
    assert "pw" not in str(info.value)


def test_bad_option_values() -> None:
    with pytest.raises(errors.ConfigurationError, match="busy_timeout"):
        open_backend("sqlite:///tmp/x.db?busy_timeout=soon")
    opts = Options({"flag": "maybe", "token": "s3cret"}, {}, where="x://")
    with pytest.raises(errors.ConfigurationError):
        opts.bool("flag", False)
    with pytest.raises(errors.ConfigurationError) as info:
        opts.int("token", 1)
    assert "s3cret" not in str(info.value)


def test_hosts() -> None:
    parsed = parse_url("zookeeper://h1:2181,h2,h3:2182/chroot")
    assert parsed.hosts(2181) == [("h1", 2181), ("h2", 2181), ("h3", 2182)]
    with pytest.raises(errors.ConfigurationError):
        parse_url("zookeeper://h1:99999/x").hosts(2181)


def test_redaction() -> None:
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert "abc" not in redact_url("consul://h:8500/p?token=abc&dc=x")
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_import_is_light() -> None:
    code = (
        "import sys, veltrix; "
        "heavy = [m for m in ('boto3', 'botocore', 'google', 'kazoo', 'redis', 'consul', "
        "'grpc', 'pydantic_settings', 'yaml') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
