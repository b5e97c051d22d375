"""URL scheme -> backend class, imported lazily.

Built-in stores come from :data:`BUILTIN`; third-party stores register in the
``veltrix.backends`` entry-point group (name = URL scheme, value = ``module:Class``).
Nothing is imported until a URL with that scheme is opened, so ``import veltrix``
stays light.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

from veltrix.backend import Backend
from veltrix.errors import BackendNotInstalledError, ConfigurationError, UnknownBackendError
from veltrix.urls import did_you_mean, parse_url

ENTRY_POINT_GROUP = "veltrix.backends"


@dataclass(frozen=True)
class BuiltinBackend:
    module: str
    attribute: str
    extra: str | None  # the pip extra that installs its client library


#: URL scheme -> where its adapter lives and which extra it needs.
BUILTIN: dict[str, BuiltinBackend] = {
    "sqlite": BuiltinBackend("veltrix.adapters.sqlite", "SQLiteBackend", None),
    "memory": BuiltinBackend("veltrix.adapters.memory", "MemoryBackend", None),
    "zookeeper": BuiltinBackend("veltrix.adapters.zookeeper", "ZooKeeperBackend", "zookeeper"),
    "consul": BuiltinBackend("veltrix.adapters.consul", "ConsulBackend", "consul"),
    "appconfig": BuiltinBackend("veltrix.adapters.appconfig", "AppConfigBackend", "aws"),
    "ssm": BuiltinBackend("veltrix.adapters.ssm", "SSMBackend", "aws"),
    "gcpsm": BuiltinBackend("veltrix.adapters.gcp_secret_manager", "SecretManagerBackend", "gcp"),
    "gcppm": BuiltinBackend(
        "veltrix.adapters.gcp_parameter_manager", "ParameterManagerBackend", "gcp"
    ),
    "redis": BuiltinBackend("veltrix.adapters.redis", "RedisBackend", "redis"),
    "rediss": BuiltinBackend("veltrix.adapters.redis", "RedisBackend", "redis"),
    "redis+sentinel": BuiltinBackend("veltrix.adapters.redis", "RedisBackend", "redis"),
    "redis+cluster": BuiltinBackend("veltrix.adapters.redis", "RedisBackend", "redis"),
}


def default_path() -> Path:
    """The embedded store's file: ``$VELTRIX_HOME/config.db``, else
    ``$XDG_DATA_HOME/veltrix/config.db``, else ``~/.local/share/veltrix/config.db``."""
    home = os.environ.get("VELTRIX_HOME")
    if home:
        return Path(home) / "config.db"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "veltrix" / "config.db"


def default_url() -> str:
    """The store a client opens when given none: the embedded SQLite file
    :func:`default_path`. Kept here (not in the adapter) so the core never imports
    an adapter to find it."""
    return "sqlite:///" + str(default_path())


def _import_builtin(scheme: str, spec: BuiltinBackend) -> type[Backend]:
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and missing != "veltrix" and spec.extra:
            raise BackendNotInstalledError(
                f"the {scheme}:// backend needs the {missing!r} package: "
                f"pip install 'veltrix[{spec.extra}]'"
            ) from exc
        if exc.name == spec.module:
            raise UnknownBackendError(
                f"the {scheme}:// backend is not part of this Veltrix build"
            ) from exc
        raise
    return cast(type[Backend], getattr(module, spec.attribute))


def _third_party() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_schemes() -> list[str]:
    return sorted({*BUILTIN, *_third_party()})


def backend_class(scheme: str) -> type[Backend]:
    """The backend class for ``scheme``; raises a typed error with a hint."""
    scheme = scheme.lower()
    spec = BUILTIN.get(scheme)
    if spec is not None:
        return _import_builtin(scheme, spec)
    plugins = _third_party()
    if scheme in plugins:
        try:
            return cast(type[Backend], plugins[scheme].load())
        except ImportError as exc:
            raise BackendNotInstalledError(
                f"the {scheme}:// backend ({plugins[scheme].value}) failed to import: {exc}"
            ) from exc
    choices = available_schemes()
    raise UnknownBackendError(
        f"no backend for URL scheme {scheme!r}{did_you_mean(scheme, choices)}; "
        f"available: {', '.join(choices)}"
    )


def open_backend(url: str, /, **options: Any) -> Backend:
    """Open the store that ``url`` names, e.g. ``zookeeper://127.0.0.1:2181/app``."""
    if not isinstance(url, str):
        raise ConfigurationError(f"expected a store URL string, got {type(url).__name__}")
    for name in ("url", "cls"):  # from_url(cls, url, **options) would get it twice: TypeError
        if name in options:
            raise ConfigurationError(f"{name!r} is not a store option: the store URL comes first")
    parsed = parse_url(url)
    return backend_class(parsed.scheme).from_url(url, **options)


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "available_schemes",
    "backend_class",
    "default_path",
    "default_url",
    "open_backend",
]
