"""An OpenFeature provider for every Veltrix store (extra ``openfeature``).

``VeltrixProvider(client)`` resolves flags through a :class:`veltrix.Client` or a
:class:`veltrix.aio.AsyncClient`, so evaluations are cached reads. The layout, under
``prefix`` (``flags`` by default), is the one AppConfig feature-flag profiles expose
and any other store can hold:

- ``flags/<name>/enabled``: ``true``/``false``, the value of a boolean flag; for the
  other types, ``false`` means the flag is disabled (the default is returned, reason
  ``DISABLED``);
- ``flags/<name>/value``: the value of a string (the text as stored), integer, float
  or object (JSON) flag;
- an object flag without a ``value`` key resolves to all of the flag's keys as one
  object (an AppConfig flag's attributes, with ``enabled``).
- ``flags/<name>/_variants``: a multi-variant flag (:mod:`veltrix.flag_variants`), a
  JSON list of variants whose rules are evaluated in order against the evaluation
  context; the first match answers (reason ``TARGETING_MATCH``, its name as
  ``variant``), else the default variant (reason ``DEFAULT``).

Reasons: ``STATIC`` (the value was read from the store by this evaluation; no
targeting rules are evaluated, so every value is static), ``CACHED`` (the value came
from the client's cache), ``STALE`` while the store is down or slow (the value is the
last-known-good one), ``DISABLED``, ``DEFAULT`` (a flag defined with ``enabled`` but
without a value, asked for as a string or number: the caller's default); errors
raise the SDK's typed errors (``FLAG_NOT_FOUND``, ``TYPE_MISMATCH``, ``PARSE_ERROR``,
``GENERAL`` for a store failure), which the SDK turns into the default value with
reason ``ERROR``; a malformed variant list or rule is ``PARSE_ERROR``.

Events: ``PROVIDER_CONFIGURATION_CHANGED`` with the changed flag names, from the
store's watch; ``PROVIDER_STALE`` when the store goes down or slow and
``PROVIDER_READY`` when it is up again (the client's health state).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import RootModel

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.event import ProviderEventDetails
    from openfeature.exception import (
        FlagNotFoundError,
        GeneralError,
        ParseError,
        TypeMismatchError,
    )
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider import AbstractProvider, Metadata
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "veltrix.openfeature needs the OpenFeature SDK: pip install 'veltrix[openfeature]'"
    ) from exc

from veltrix.aio import AsyncClient
from veltrix.backend import Absent, Change
from veltrix.client import Client
from veltrix.errors import (
    DecodeError,
    InvalidKeyError,
    RuleError,
    VeltrixError,
)
from veltrix.flag_variants import VARIANTS, ParsedVariants, context_values, select_variant
from veltrix.health import Health
from veltrix.keys import normalize_prefix, validate_key

T = TypeVar("T")
FlagValue = bool | str | int | float | Sequence[Any] | Mapping[str, Any]


class _Attributes(RootModel[dict[str, Any]]):
    """All keys of one flag, as one object."""


class VeltrixProvider(AbstractProvider):
    """OpenFeature flags from any Veltrix store (see the module documentation)."""

    def __init__(self, client: Client | AsyncClient, *, prefix: str = "flags") -> None:
        self._async = client if isinstance(client, AsyncClient) else None
        self._client = client.client if isinstance(client, AsyncClient) else client
        self._prefix = normalize_prefix(prefix)
        self._subscription: Any = None
        self._variants = ParsedVariants()

    def get_metadata(self) -> Metadata:
        return Metadata(name="veltrix")

    # -- lifecycle and events ------------------------------------------------------------

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        self._client.on_health_change(self._on_health)
        try:
            self._subscription = self._client.watch(self._prefix, self._on_change)
        except VeltrixError:
            self._subscription = None  # a store that cannot watch: no change events

    def shutdown(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.stop()

    def _on_change(self, change: Change) -> None:
        name = change.key[len(self._prefix) + 1 :].split("/", 1)[0]
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=[name]))

    def _on_health(self, health: Health) -> None:
        if health.up:
            self.emit_provider_ready(ProviderEventDetails(message="store up"))
        else:
            self.emit_provider_stale(ProviderEventDetails(message=health.reason))

    # -- resolution ----------------------------------------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        variants = self._read(flag_key, VARIANTS)
        if variants is not Absent:
            return self._targeted(flag_key, bool, default_value, variants, evaluation_context)
        cached = self._cached(flag_key, "enabled")
        enabled = self._read(flag_key, "enabled")
        return self._finish(flag_key, bool, default_value, enabled, None, cached)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve_sync(flag_key, str, default_value, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve_sync(flag_key, int, default_value, evaluation_context)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._resolve_sync(flag_key, float, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        return self._resolve_sync(flag_key, object, default_value, evaluation_context)

    async def resolve_boolean_details_async(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        variants = await self._read_async(flag_key, VARIANTS)
        if variants is not Absent:
            return self._targeted(flag_key, bool, default_value, variants, evaluation_context)
        cached = self._cached(flag_key, "enabled")
        enabled = await self._read_async(flag_key, "enabled")
        return self._finish(flag_key, bool, default_value, enabled, None, cached)

    async def resolve_string_details_async(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return await self._resolve_async(flag_key, str, default_value, evaluation_context)

    async def resolve_integer_details_async(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return await self._resolve_async(flag_key, int, default_value, evaluation_context)

    async def resolve_float_details_async(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return await self._resolve_async(flag_key, float, default_value, evaluation_context)

    async def resolve_object_details_async(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        return await self._resolve_async(flag_key, object, default_value, evaluation_context)

    # -- plumbing ------------------------------------------------------------------------

    def _key(self, flag: str, leaf: str) -> str:
        key = f"{self._prefix}/{flag}/{leaf}" if self._prefix else f"{flag}/{leaf}"
        try:
            validate_key(key)
        except InvalidKeyError as exc:
            raise FlagNotFoundError(f"{flag!r} is not a valid flag name") from exc
        return key

    def _read(self, flag: str, leaf: str) -> Any:
        return _guard(lambda: self._client.get(self._key(flag, leaf), Absent))

    async def _read_async(self, flag: str, leaf: str) -> Any:
        assert self._async is not None
        key = self._key(flag, leaf)
        client = self._async
        return await _guard_async(lambda: client.get(key, Absent))

    def _attributes(self, flag: str) -> Any:
        prefix = self._key(flag, "enabled").rpartition("/")[0]
        return _json_leaves(_guard(lambda: self._client.get_model(prefix, _Attributes).root))

    def _cached(self, flag: str, leaf: str) -> bool:
        """Whether the client's cache holds the flag's ``leaf`` now (reason ``CACHED``
        rather than ``STATIC``); an invalid name is reported by the read itself."""
        key = f"{self._prefix}/{flag}/{leaf}" if self._prefix else f"{flag}/{leaf}"
        try:
            return key in self._client._fresh
        except TypeError:
            return False

    def _resolve_sync(
        self, flag: str, kind: type, default: Any, context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[Any]:
        variants = self._read(flag, VARIANTS)
        if variants is not Absent:
            return self._targeted(flag, kind, default, variants, context)
        cached = self._cached(flag, "value")
        enabled = self._read(flag, "enabled")
        value = self._read(flag, "value")
        if value is Absent and kind is object and enabled is not Absent:
            value = self._attributes(flag)
        return self._finish(flag, kind, default, enabled, value, cached)

    async def _resolve_async(
        self, flag: str, kind: type, default: Any, context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[Any]:
        if self._async is None:
            return self._resolve_sync(flag, kind, default, context)
        variants = await self._read_async(flag, VARIANTS)
        if variants is not Absent:
            return self._targeted(flag, kind, default, variants, context)
        cached = self._cached(flag, "value")
        enabled = await self._read_async(flag, "enabled")
        value = await self._read_async(flag, "value")
        if value is Absent and kind is object and enabled is not Absent:
            value = self._attributes(flag)  # a cached model read once fetched
        return self._finish(flag, kind, default, enabled, value, cached)

    def _finish(
        self, flag: str, kind: type, default: Any, enabled: Any, value: Any, cached: bool
    ) -> FlagResolutionDetails[Any]:
        if not self._client.health().up:
            reason = Reason.STALE
        else:
            reason = Reason.CACHED if cached else Reason.STATIC
        if kind is bool:
            if enabled is Absent:
                raise FlagNotFoundError(f"flag {flag!r} is not defined")
            result = _parse_bool(flag, enabled)
            return FlagResolutionDetails(
                result, reason=reason, variant="on" if result else "off", flag_metadata=self._meta()
            )
        if enabled is not Absent and not _parse_bool(flag, enabled):
            return FlagResolutionDetails(
                default, reason=Reason.DISABLED, flag_metadata=self._meta()
            )
        if value is Absent:
            if enabled is Absent:
                raise FlagNotFoundError(f"flag {flag!r} is not defined")
            # Defined and enabled, but no value of its own: the caller's default.
            return FlagResolutionDetails(default, reason=Reason.DEFAULT, flag_metadata=self._meta())
        return FlagResolutionDetails(
            _convert(flag, kind, value), reason=reason, flag_metadata=self._meta()
        )

    def _targeted(
        self,
        flag: str,
        kind: type,
        default: Any,
        stored: Any,
        context: EvaluationContext | None,
    ) -> FlagResolutionDetails[Any]:
        """A multi-variant flag: the first variant whose rule matches, else the default."""
        try:
            variants = self._variants.get(flag, stored)
            chosen, matched = select_variant(variants, context_values(context))
        except RuleError as exc:
            raise ParseError(f"flag {flag!r}: {exc}") from exc
        reason = Reason.TARGETING_MATCH if matched else Reason.DEFAULT
        meta = self._meta()
        if kind is bool:
            if "enabled" not in chosen.values:
                raise TypeMismatchError(f"flag {flag!r}: variant has no 'enabled'")
            enabled = _parse_bool(flag, chosen.values["enabled"])
            return FlagResolutionDetails(
                enabled, reason=reason, variant=chosen.name, flag_metadata=meta
            )
        if "enabled" in chosen.values and not _parse_bool(flag, chosen.values["enabled"]):
            return FlagResolutionDetails(
                default, reason=Reason.DISABLED, variant=chosen.name, flag_metadata=meta
            )
        if "value" in chosen.values:
            value = chosen.values["value"]
            if kind is not str and not isinstance(value, str):
                value = json.dumps(value)  # _convert parses JSON text
            result = _convert(flag, kind, value)
        elif kind is object:
            result = dict(chosen.values)
        else:
            return FlagResolutionDetails(
                default, reason=Reason.DEFAULT, variant=chosen.name, flag_metadata=meta
            )
        return FlagResolutionDetails(result, reason=reason, variant=chosen.name, flag_metadata=meta)

    def _meta(self) -> dict[str, str]:
        return {"source": self._client.source}


def _guard(read: Callable[[], T]) -> T:
    """A read with the store's errors as the SDK's (messages never carry values)."""
    try:
        return read()
    except VeltrixError as exc:
        raise _sdk_error(exc) from exc


async def _guard_async(read: Callable[[], Awaitable[T]]) -> T:
    try:
        return await read()
    except VeltrixError as exc:
        raise _sdk_error(exc) from exc


def _sdk_error(exc: VeltrixError) -> Exception:
    if isinstance(exc, DecodeError):
        return ParseError(str(exc))
    return GeneralError(f"{type(exc).__name__}: {exc}")


def _json_leaves(value: Any) -> Any:
    """Each text leaf of a flag's keys as the JSON it holds (``"30"`` -> 30), else as text."""
    if isinstance(value, dict):
        return {key: _json_leaves(item) for key, item in value.items()}
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_bool(flag: str, text: Any) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "on", "yes"):
        return True
    if lowered in ("false", "0", "off", "no"):
        return False
    raise TypeMismatchError(f"flag {flag!r}: 'enabled' is not a boolean")


def _convert(flag: str, kind: type, value: Any) -> Any:
    if kind is str:
        if not isinstance(value, str):
            raise TypeMismatchError(f"flag {flag!r} is an object, not a string")
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ParseError(f"flag {flag!r}: the value is not JSON") from exc
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is object and isinstance(value, dict | list):
        return value
    raise TypeMismatchError(f"flag {flag!r} does not hold a {kind.__name__} value")


__all__ = ["VeltrixProvider"]
