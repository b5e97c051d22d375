"""``?secret_prefixes=`` and ``VELTRIX_SECRET_PREFIXES``: stores without a secret notion
of their own return the entries under those prefixes flagged secret."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import veltrix
from veltrix.backend import Change, SupportsList, SupportsWatch, SupportsWrite
from veltrix.errors import ConfigurationError
from veltrix.registry import open_backend
from veltrix.secret_prefixes import parse_prefixes, split_url


def test_split_url_keeps_the_rest_of_the_url() -> None:
    assert split_url("sqlite:////abs/c.db?secret_prefixes=a,b/c&busy_timeout=2") == (
        "sqlite:////abs/c.db?busy_timeout=2",
        ("a", "b/c"),
    )
    assert split_url("memory://x?secret_prefixes=s/") == ("memory://x", ("s",))
    assert split_url("memory://x") == ("memory://x", ())
    assert parse_prefixes('["a", "b/"]', "where") == ("a", "b")
    with pytest.raises(ConfigurationError, match="where"):
        parse_prefixes("a b", "where")
    with pytest.raises(ConfigurationError, match="where"):
        parse_prefixes('["a", 1]', "where")


def test_entries_under_the_prefixes_come_back_flagged(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path}/s.db?secret_prefixes=secrets")
    try:
        # The store's abilities are its own (a wrapper must not add or hide any).
        assert isinstance(backend, SupportsList | SupportsWrite)
        assert isinstance(backend, SupportsWatch)
        backend.put("secrets/pw", b"hunter2")
        backend.put("secretsX", b"plain")  # a sibling, not below the prefix
        entry = backend.get("secrets/pw")
        assert entry is not None and entry.secret
        assert {e.key: e.secret for e in backend.list("")} == {
            "secrets/pw": True,
            "secretsX": False,
        }
        seen: list[Change] = []
        arrived = threading.Event()

        def on_change(change: Change) -> None:
            seen.append(change)
            arrived.set()

        watch = backend.watch("secrets", on_change)
        try:
            backend.put("secrets/pw", b"hunter3")
            assert arrived.wait(10)
        finally:
            watch.stop()
        assert seen[0].entry is not None and seen[0].entry.secret
        assert "hunter" not in repr(backend)
    finally:
        backend.close()


def test_the_client_treats_them_as_secret_and_the_env_adds_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VELTRIX_SECRET_PREFIXES", "creds")
    with veltrix.Client("memory://?secret_prefixes=secrets") as client:
        client.put("secrets/pw", "x")
        entry = client.get_entry("secrets/pw")
        assert entry is not None and entry.secret
        # Keys never read yet too (the shared cache asks before encrypting a value).
        assert client.is_secret("secrets/other") and client.is_secret("creds/token")
        assert not client.is_secret("app/name")
    monkeypatch.delenv("VELTRIX_SECRET_PREFIXES")
    with veltrix.Client("memory://") as plain:
        assert not plain.is_secret("secrets/pw")


def test_settings_read_the_same_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from veltrix.settings import VeltrixSettings

    monkeypatch.setenv("VELTRIX_SECRET_PREFIXES", "secrets/, creds")
    assert VeltrixSettings().secret_prefixes == ["secrets", "creds"]
    monkeypatch.setenv("VELTRIX_SECRET_PREFIXES", '["secrets"]')
    assert VeltrixSettings().secret_prefixes == ["secrets"]
    monkeypatch.setenv("VELTRIX_SECRET_PREFIXES", "bad prefix")
    with pytest.raises(ConfigurationError, match="VELTRIX_SECRET_PREFIXES"):
        VeltrixSettings()
