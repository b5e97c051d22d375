"""Configuration from the environment, and Veltrix as a pydantic-settings source."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from veltrix import Client, VeltrixSettings, VeltrixSettingsSource
from veltrix.errors import ConfigurationError


def test_client_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VELTRIX_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("VELTRIX_CACHE_TTL", "7.5")
    monkeypatch.setenv("VELTRIX_CACHE_STALE_IF_ERROR", "false")
    monkeypatch.setenv("VELTRIX_SECRET_PREFIXES", '["secrets"]')
    with Client.from_env() as client:
        assert client.policy.ttl == 7.5
        assert client.policy.stale_if_error is False
        assert client.is_secret("secrets/x") and not client.is_secret("secretsx")
        client.put("a", "1")
        assert client.get("a") == "1"
    assert VeltrixSettings().url == f"sqlite:///{tmp_path}/env.db"


def test_bad_env_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELTRIX_URL", "nope://x")
    with pytest.raises(ConfigurationError):
        Client.from_env()


class Db(BaseModel):
    host: str = "localhost"
    port: int = 5432


def test_settings_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(f"sqlite:///{tmp_path}/s.db")
    client.put("payments/timeout_ms", "250")
    client.put("payments/db/host", "db.internal")
    client.put("payments/debug", "true")

    class AppSettings(BaseSettings):
        timeout_ms: int = 500
        retries: int = 3
        debug: bool = False
        db: Db = Db()

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            *args: Any,
            **kwargs: Any,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                VeltrixSettingsSource(settings_cls, client, "payments"),
            )

    monkeypatch.setenv("RETRIES", "9")
    settings = AppSettings()
    assert settings.timeout_ms == 250
    assert settings.retries == 9  # environment wins over the store, as ordered
    assert settings.debug is True
    assert settings.db == Db(host="db.internal", port=5432)
    client.close()


def test_a_bad_setting_is_a_configuration_error_without_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VELTRIX_CACHE_TTL", "planted-value-7")
    with pytest.raises(ConfigurationError, match="VELTRIX_CACHE_TTL") as caught:
        Client.from_env()
    shown = "".join(traceback.format_exception(caught.value))
    assert "planted-value-7" not in shown


def test_settings_repr_redacts_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VELTRIX_URL", "redis://:planted-pw@host/0")
    monkeypatch.setenv("VELTRIX_CACHE_URL", "redis://cache/0?password=planted-pw")
    shown = repr(VeltrixSettings())
    assert "planted-pw" not in shown and "redis://:***@host/0" in shown
