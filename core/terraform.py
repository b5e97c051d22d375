"""Terraform outputs -> a Veltrix client.

Every module under ``terraform/modules/`` outputs ``veltrix_url`` (and the
``redis-cache`` module ``veltrix_cache_url``) in exactly the form
:class:`veltrix.Client` accepts, so a service can be pointed at what Terraform
created with::

    terraform output -json > outputs.json
    client = veltrix.Client.from_terraform("outputs.json")

``source`` is the path of that file, its JSON text, or the parsed mapping. Both
the ``terraform output -json`` shape (``{"name": {"value": ..., "type": ...,
"sensitive": ...}}``) and a plain ``{"name": value}`` mapping are accepted, as is
the JSON string printed by ``terraform output -json veltrix_url``. When a root
module re-exports a child module as one object output (``output "store" { value
= module.store }``), the object holding ``veltrix_url`` is found, or chosen with
``module="store"``.

Output values may be sensitive (the cache URL carries a Redis AUTH token):
nothing here puts a value in a message, and URLs are shown redacted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veltrix.errors import ConfigurationError
from veltrix.urls import redact_url

if TYPE_CHECKING:
    from veltrix.client import Client


URL_OUTPUT = "veltrix_url"
CACHE_URL_OUTPUT = "veltrix_cache_url"


@dataclass(frozen=True)
class TerraformOutputs:
    """What a Terraform module told Veltrix: the store URL and the optional cache URL."""

    url: str
    cache_url: str | None = None
    #: Where the outputs came from (a path, ``"<json text>"`` or ``"<mapping>"``).
    origin: str = "<mapping>"
    #: The object output the URLs were found in, or ``None`` for top-level outputs.
    module: str | None = None
    #: Names of the outputs Terraform marked sensitive.
    sensitive: frozenset[str] = field(default_factory=frozenset)

    def __repr__(self) -> str:
        cache = redact_url(self.cache_url) if self.cache_url else None
        return (
            f"TerraformOutputs(url={redact_url(self.url)!r}, cache_url={cache!r}, "
            f"origin={self.origin!r}, module={self.module!r})"
        )


def _load(source: Any) -> tuple[Any, str]:
    """The parsed JSON of ``source`` and a description of where it came from."""
    if isinstance(source, Mapping):
        return source, "<mapping>"
    if isinstance(source, bytes | bytearray):
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError("Terraform outputs are not UTF-8 text") from exc
    if isinstance(source, str) and source.lstrip().startswith(("{", "[", '"')):
        origin, text = "<json text>", source
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"Terraform outputs file {origin} does not exist "
                "(write it with: terraform output -json > FILE)"
            ) from exc
        except (OSError, ValueError) as exc:  # ValueError: not UTF-8, a NUL, a lone surrogate
            if isinstance(exc, OSError):
                reason = exc.strerror or type(exc).__name__
            elif isinstance(exc, UnicodeDecodeError):
                reason = "not UTF-8 text"
            else:
                reason = "not a usable file name"
            raise ConfigurationError(f"cannot read Terraform outputs {origin}: {reason}") from exc
    else:
        raise ConfigurationError(
            f"Terraform outputs must be a path, JSON text or a mapping, not {type(source).__name__}"
        )
    try:
        return json.loads(text), origin
    except ValueError as exc:
        # No excerpt of the text: it may hold sensitive output values.
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise ConfigurationError(
            f"Terraform outputs {origin} are not valid JSON{where}; "
            "expected the output of `terraform output -json`"
        ) from exc


def _is_wrapped(outputs: Mapping[str, Any]) -> bool:
    """True for the ``terraform output -json`` shape: every output is {"value": ...}."""
    return bool(outputs) and all(
        isinstance(item, Mapping)
        and "value" in item
        and set(item) <= {"value", "type", "sensitive"}
        for item in outputs.values()
    )


def _url(values: Mapping[str, Any], name: str, origin: str, *, required: bool) -> str | None:
    if name not in values:
        if required:
            raise ConfigurationError(f"Terraform outputs {origin} have no {name!r} output")
        return None
    value = values[name]
    if value is None:
        if not required:
            return None
        raise ConfigurationError(
            f"output {name!r} in {origin} is null: has the module been applied?"
        )
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"output {name!r} in {origin} must be a non-empty string, not {type(value).__name__}"
        )
    return value.strip()


def read_outputs(source: Any, *, module: str | None = None) -> TerraformOutputs:
    """Read ``veltrix_url`` and ``veltrix_cache_url`` from Terraform outputs.

    Raises :class:`~veltrix.errors.ConfigurationError` for a missing or unreadable
    file, invalid JSON, or missing/ill-typed outputs (messages never hold values).
    """
    data, origin = _load(source)
    if isinstance(data, str):  # `terraform output -json veltrix_url`
        if module is not None:
            raise ConfigurationError(f"{origin} holds a single output, not module {module!r}")
        url = _url({URL_OUTPUT: data}, URL_OUTPUT, origin, required=True)
        assert url is not None
        return TerraformOutputs(url=url, origin=origin)
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"Terraform outputs {origin} must be a JSON object, not {type(data).__name__}"
        )
    sensitive: set[str] = set()
    if _is_wrapped(data):
        sensitive = {name for name, item in data.items() if item.get("sensitive")}
        values: Mapping[str, Any] = {name: item["value"] for name, item in data.items()}
    else:
        values = data

    chosen: str | None = None
    if module is not None:
        if module not in values:
            raise ConfigurationError(
                f"Terraform outputs {origin} have no output {module!r} "
                f"(outputs: {', '.join(sorted(map(str, values))) or 'none'})"
            )
        if not isinstance(values[module], Mapping):
            raise ConfigurationError(f"output {module!r} in {origin} is not an object")
        chosen = module
    elif URL_OUTPUT not in values:
        holders = sorted(
            name
            for name, value in values.items()
            if isinstance(value, Mapping) and URL_OUTPUT in value
        )
        if len(holders) > 1:
            raise ConfigurationError(
                f"several outputs in {origin} hold a {URL_OUTPUT!r}: "
                f"{', '.join(holders)}; choose one with module="
            )
        if not holders:
            raise ConfigurationError(
                f"Terraform outputs {origin} have no {URL_OUTPUT!r} output "
                f"(outputs: {', '.join(sorted(map(str, values))) or 'none'})"
            )
        chosen = holders[0]
    scope: Mapping[str, Any] = values if chosen is None else values[chosen]
    where = origin if chosen is None else f"{origin} (output {chosen!r})"
    url = _url(scope, URL_OUTPUT, where, required=True)
    assert url is not None
    cache_url = _url(scope, CACHE_URL_OUTPUT, where, required=False)
    return TerraformOutputs(
        url=url,
        cache_url=cache_url,
        origin=origin,
        module=chosen,
        sensitive=frozenset(sensitive),
    )


def client_from_terraform(source: Any, *, module: str | None = None, **kwargs: Any) -> Client:
    """A :class:`veltrix.Client` for the store a Terraform module created.

    ``source``: the path of a ``terraform output -json`` file, its JSON text, or the
    parsed mapping. ``module`` picks an object output holding the URLs when there are
    several. Other keyword arguments go to :class:`veltrix.Client` (``cache=``,
    ``secret_prefixes=``, store options such as ``poll_interval=``). The module's
    ``veltrix_cache_url`` becomes ``cache_url=`` unless the caller passes one.
    """
    from veltrix.client import Client

    outputs = read_outputs(source, module=module)
    if outputs.cache_url is not None and "cache_url" not in kwargs:
        kwargs["cache_url"] = outputs.cache_url
    return Client(outputs.url, **kwargs)
