"""Configuration of Veltrix itself from the environment, and a pydantic-settings source.

``VeltrixSettings`` reads ``VELTRIX_URL``, ``VELTRIX_CACHE_TTL`` and friends;
``Client.from_env()`` uses it. ``VeltrixSettingsSource`` lets an application's own
``BaseSettings`` class take its fields from any Veltrix store::

    class AppSettings(BaseSettings):
        timeout_ms: int = 500

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                       dotenv_settings, file_secret_settings):
            store = VeltrixSettingsSource(settings_cls, client, prefix="payments")
            return (init_settings, env_settings, store)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from veltrix.cache import CachePolicy
from veltrix.client import Client
from veltrix.codecs import nest
from veltrix.errors import ConfigurationError
from veltrix.keys import normalize_prefix
from veltrix.secret_prefixes import parse_prefixes
from veltrix.urls import redact_url

_URL_FIELDS = ("url", "cache_url")


class VeltrixSettings(BaseSettings):
    """Settings read from ``VELTRIX_*`` environment variables.

    A bad value is a :class:`ConfigurationError` naming the variable, without its
    value (pydantic's own error would quote it); the repr shows URLs redacted.
    """

    model_config = SettingsConfigDict(
        env_prefix="VELTRIX_", extra="ignore", hide_input_in_errors=True
    )

    def __init__(self, **values: Any) -> None:
        reason = None
        try:
            super().__init__(**values)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "value"
            reason = f"VELTRIX_{where.upper()}: {first.get('msg', 'invalid')}"
        if reason is not None:  # raised here, unchained: the ValidationError holds the input
            raise ConfigurationError(f"invalid Veltrix setting {reason}")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            shown = redact_url(value) if name in _URL_FIELDS and isinstance(value, str) else value
            yield name, shown

    url: str | None = Field(None, description="store URL; the embedded SQLite store when unset")
    cache_ttl: float = Field(30.0, ge=0)
    cache_stale_while_revalidate: float = Field(0.0, ge=0)
    cache_stale_if_error: bool = True
    cache_max_stale: float = Field(3600.0, ge=0)
    cache_negative_ttl: float = Field(5.0, ge=0)
    cache_watch: bool = True
    #: ``VELTRIX_SECRET_PREFIXES=secrets,creds`` (or a JSON list), as the stores read it.
    secret_prefixes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cache_url: str | None = Field(
        None, description="shared Redis cache (L2), e.g. redis://host:6379/0"
    )
    last_known_good_path: str | None = Field(
        None, description="the last-known-good file (cold starts while the store is down)"
    )

    @field_validator("secret_prefixes", mode="before")
    @classmethod
    def _split_prefixes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return list(parse_prefixes(value, "secret_prefixes"))
        return value

    def policy(self) -> CachePolicy:
        return CachePolicy(
            ttl=self.cache_ttl,
            stale_while_revalidate=self.cache_stale_while_revalidate,
            stale_if_error=self.cache_stale_if_error,
            max_stale=self.cache_max_stale,
            negative_ttl=self.cache_negative_ttl,
            watch=self.cache_watch,
        )

    def client(self) -> Client:
        return Client(
            self.url,
            cache=self.policy(),
            secret_prefixes=self.secret_prefixes,
            cache_url=self.cache_url,
            last_known_good_path=self.last_known_good_path,
        )


class VeltrixSettingsSource(PydanticBaseSettingsSource):
    """Field values for a ``BaseSettings`` class from the keys under ``prefix`` of a store.

    Field ``timeout_ms`` reads key ``<prefix>/timeout_ms``; nested models read the
    keys below their field's name. Absent keys leave the field to other sources.
    """

    def __init__(self, settings_cls: type[BaseSettings], client: Client, prefix: str = "") -> None:
        super().__init__(settings_cls)
        self._client = client
        self._prefix = normalize_prefix(prefix)
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            self._data = nest(self._client.list(self._prefix), self._prefix)
        return self._data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = field.alias or field_name
        return self._load().get(name), name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, name, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[name] = value
        return values


__all__ = ["VeltrixSettings", "VeltrixSettingsSource"]
