"""Veltrix: one caching configuration client in front of many stores.

``import veltrix`` stays light: store client libraries (kazoo, boto3, ...) are
imported only when a URL of theirs is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from veltrix import errors
from veltrix.backend import Absent, Change, Entry
from veltrix.cache import CachePolicy
from veltrix.client import Client
from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendNotInstalledError,
    BackendUnavailableError,
    ConfigurationError,
    DecodeError,
    InvalidKeyError,
    KeyNotFoundError,
    UnknownBackendError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VeltrixError,
    VersionConflictError,
)
from veltrix.health import Health, HealthState, L2Health
from veltrix.registry import open_backend

if TYPE_CHECKING:
    from veltrix.migration import MigrationReport, migrate
    from veltrix.settings import VeltrixSettings, VeltrixSettingsSource

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # pydantic-settings is only imported by those who use it.
    if name in ("VeltrixSettings", "VeltrixSettingsSource"):
        from veltrix import settings

        return getattr(settings, name)
    # The exporters need their extras: imported on first use (veltrix.metrics.install()).
    if name in ("metrics", "otel"):
        import importlib

        return importlib.import_module(f"veltrix.{name}")
    # Migration (and its CLI) is only imported by those who use it.
    if name in ("migrate", "MigrationReport"):
        import importlib

        value = getattr(importlib.import_module("veltrix.migration"), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'veltrix' has no attribute {name!r}")


__all__ = [
    "Absent",
    "AccessDeniedError",
    "BackendError",
    "BackendNotInstalledError",
    "BackendUnavailableError",
    "CachePolicy",
    "Change",
    "Client",
    "ConfigurationError",
    "DecodeError",
    "Entry",
    "Health",
    "HealthState",
    "InvalidKeyError",
    "KeyNotFoundError",
    "L2Health",
    "MigrationReport",
    "UnknownBackendError",
    "UnsupportedOperationError",
    "ValueTooLargeError",
    "VeltrixError",
    "VeltrixSettings",
    "VeltrixSettingsSource",
    "VersionConflictError",
    "errors",
    "migrate",
    "open_backend",
]
