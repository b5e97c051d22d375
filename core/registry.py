"""URL scheme -> backend class, imported lazily.

Built-in stores come from :data:`BUILTIN`; third-party stores register in the
``veltrix.backends`` entry-point group (name = URL scheme, value = ``module:Class``).
Nothing is imported until a URL with that scheme is opened, so ``import veltrix``
stays light.
"""

from __future__ import annotations

import importlib
import importlib.util
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
    #: The client library's import names, checked (not imported) by :func:`is_installed`.
    requires: tuple[str, ...] = ()


#: URL scheme -> where its adapter lives and which extra it needs.
BUILTIN: dict[str, BuiltinBackend] = {
    "sqlite": BuiltinBackend("veltrix.adapters.sqlite", "SQLiteBackend", None),
    "memory": BuiltinBackend("veltrix.adapters.memory", "MemoryBackend", None),
    "zookeeper": BuiltinBackend(
        "veltrix.adapters.zookeeper", "ZooKeeperBackend", "zookeeper", ("kazoo",)
    ),
    "consul": BuiltinBackend("veltrix.adapters.consul", "ConsulBackend", "consul", ("consul",)),
    "appconfig": BuiltinBackend(
        "veltrix.adapters.appconfig", "AppConfigBackend", "aws", ("boto3", "botocore")
    ),
    "ssm": BuiltinBackend("veltrix.adapters.ssm", "SSMBackend", "aws", ("boto3", "botocore")),
    "gcpsm": BuiltinBackend(
        "veltrix.adapters.gcp_secret_manager",
        "SecretManagerBackend",
        "gcp",
        ("google.cloud.secretmanager", "google.api_core"),
    ),
    "redis": BuiltinBackend("veltrix.adapters.redis", "RedisBackend", "redis", ("redis",)),
    "rediss": BuiltinBackend("veltrix.adapters.redis", "RedisBackend", "redis", ("redis",)),
    "redis+sentinel": BuiltinBackend("veltrix.adapters.redis", "RedisBackend", "redis", ("redis",)),
    "redis+cluster": BuiltinBackend("veltrix.adapters.redis", "RedisBackend", "redis", ("redis",)),
    "gcppm": BuiltinBackend(
        "veltrix.adapters.gcp_parameter_manager",
        "ParameterManagerBackend",
        "gcp",
        ("google.cloud.parametermanager", "google.api_core"),
    ),
    "k8s": BuiltinBackend(
        "veltrix.adapters.kubernetes", "KubernetesBackend", "kubernetes", ("kubernetes",)
    ),
    # watchfiles (extra k8s-volume) is optional: without it the store polls ``..data``.
    "k8s-volume": BuiltinBackend("veltrix.adapters.k8s_volume", "KubernetesVolumeBackend", None),
}


def is_installed(scheme: str) -> bool:
    """True when the client libraries of a built-in scheme can be imported (found
    without importing them: cheap enough to ask for every scheme). A third-party
    scheme is imported to find out."""
    spec = BUILTIN.get(scheme.lower())
    if spec is None:
        try:
            backend_class(scheme)
        except (ConfigurationError, ImportError):
            return False
        return True
    for name in spec.requires:
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):  # a parent package missing; a None in sys.modules
            return False
    return True


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


def install_hint(extra: str) -> str:
    """How to install an extra, from the package index and from a checkout."""
    return f"pip install 'veltrix[{extra}]' (in a checkout: pip install -e '.[{extra}]')"


def _import_builtin(scheme: str, spec: BuiltinBackend) -> type[Backend]:
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and missing != "veltrix" and spec.extra:
            raise BackendNotInstalledError(
                f"the {scheme}:// backend needs the {missing!r} package: {install_hint(spec.extra)}"
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
    """Open the store that ``url`` names, e.g. ``zookeeper://127.0.0.1:2181/app``.

    A ``secret_prefixes=a,b`` option in the URL (or ``VELTRIX_SECRET_PREFIXES``) flags
    the entries under those prefixes secret (:mod:`veltrix.secret_prefixes`)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"expected a store URL string, got {type(url).__name__}")
    for name in ("url", "cls"):  # from_url(cls, url, **options) would get it twice: TypeError
        if name in options:
            raise ConfigurationError(f"{name!r} is not a store option: the store URL comes first")
    from veltrix.secret_prefixes import with_secret_prefixes

    def open_store(store_url: str) -> Backend:
        return backend_class(parse_url(store_url).scheme).from_url(store_url, **options)

    return with_secret_prefixes(url, open_store)


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "available_schemes",
    "backend_class",
    "default_path",
    "default_url",
    "install_hint",
    "is_installed",
    "open_backend",
]
