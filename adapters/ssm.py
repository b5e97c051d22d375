"""``ssm:///prefix``: AWS Systems Manager Parameter Store.

Key ``payments/timeout_ms`` under ``ssm:///app/prod`` is the parameter
``/app/prod/payments/timeout_ms``. Listing is ``GetParametersByPath`` (recursive,
paginated); the version is the parameter's ``Version``. ``SecureString``
parameters are decrypted (``decrypt=true``, the default) and flagged secret.

Parameter values are non-empty UTF-8 strings; values that are not (empty, not
UTF-8, or starting with the marker itself) are stored as ``{veltrix-b64}`` followed
by their base64 form, so every byte string round-trips.

Parameter Store has no server-side compare-and-set. Create-only writes are exact
(``Overwrite=false``). A versioned write reads the current version, compares, then
writes with ``Overwrite=true``: the race is narrowed to one round trip, and the
adapter checks afterwards that its write got version ``expected + 1``; when it did
not, another writer slipped in between and a warning is logged (both writes are in
the parameter's history).

Options: ``region``, ``endpoint_url``, ``decrypt`` (default true), ``secure``
(write SecureString, default false), ``key_id`` (KMS key for SecureString),
``tier`` (Standard: 4 KB values, Advanced: 8 KB), ``poll_interval`` (watch, seconds),
``timeout``, ``max_attempts`` (botocore's standard retry mode handles throttling).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Self

from veltrix.adapters._aws import BOTO_ERRORS, TRANSIENT_ERRORS, error_code, make_client, map_error
from veltrix.backend import Absent, AbsentType, Change, Entry
from veltrix.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    ValueTooLargeError,
    VersionConflictError,
)
from veltrix.keys import SEPARATOR, in_prefix, is_valid_key, normalize_prefix, validate_key
from veltrix.log_events import event
from veltrix.urls import Options, parse_url
from veltrix.values import check_expected_version
from veltrix.values import check_value as check_size
from veltrix.watching import PollingWatch, WatchSet

log = logging.getLogger("veltrix.ssm")

MARKER = "{veltrix-b64}"
MAX_NAME_LENGTH = 1011
MAX_DEPTH = 15
TIER_LIMITS = {"Standard": 4096, "Advanced": 8192, "Intelligent-Tiering": 8192}


def encode_value(value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    else:
        if text and not text.startswith(MARKER):
            return text
    return MARKER + base64.b64encode(value).decode("ascii")


def decode_value(text: str) -> bytes:
    if text.startswith(MARKER):
        try:
            return base64.b64decode(text[len(MARKER) :], validate=True)
        except ValueError:
            pass  # not ours after all: return the text as it is
    return text.encode("utf-8")


class SSMBackend:
    """AWS SSM Parameter Store under one path prefix."""

    schemes: ClassVar[tuple[str, ...]] = ("ssm",)
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    max_value_bytes: ClassVar[int | None] = TIER_LIMITS["Standard"]

    def __init__(
        self,
        prefix: str = "",
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        decrypt: bool = True,
        secure: bool = False,
        key_id: str | None = None,
        tier: str = "Standard",
        poll_interval: float = 30.0,
        timeout: float = 10.0,
        max_attempts: int = 5,
    ) -> None:
        prefix = prefix.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except InvalidKeyError as exc:
                raise ConfigurationError(f"ssm:///{prefix}: invalid prefix: {exc}") from exc
        if tier not in TIER_LIMITS:
            raise ConfigurationError(f"ssm://: tier must be one of {', '.join(TIER_LIMITS)}")
        self.prefix = prefix
        self.decrypt = decrypt
        self.secure = secure
        self.key_id = key_id
        self.tier = tier
        self.max_value_bytes = TIER_LIMITS[tier]  # type: ignore[misc]
        self.poll_interval = poll_interval
        self._client = make_client(
            "ssm",
            region=region,
            endpoint_url=endpoint_url,
            timeout=timeout,
            max_attempts=max_attempts,
            where=self.url,
        )
        self._watches: WatchSet[PollingWatch] = WatchSet()
        self._closed = False

    @property
    def holds_secrets(self) -> bool:
        """``SupportsSecrets``: writes are SecureString, read back flagged secret, only
        with ``secure=true`` (reads flag SecureString parameters either way)."""
        return self.secure

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        if parsed.netloc:
            raise ConfigurationError(
                f"{parsed.redacted}: ssm URLs have no host; use ssm:///prefix "
                "(region and endpoint_url go in options)"
            )
        opts = Options(parsed.query, options, where=parsed.redacted)
        backend = cls(
            parsed.path,
            region=opts.str("region"),
            endpoint_url=opts.str("endpoint_url"),
            decrypt=opts.bool("decrypt", True),
            secure=opts.bool("secure", False),
            key_id=opts.str("key_id"),
            tier=opts.choice("tier", "Standard", tuple(TIER_LIMITS)),
            poll_interval=opts.float("poll_interval", 30.0, minimum=0.01),
            timeout=opts.float("timeout", 10.0, minimum=0.1),
            max_attempts=opts.int("max_attempts", 5, minimum=1),
        )
        opts.finish()
        return backend

    @property
    def url(self) -> str:
        return f"ssm:///{self.prefix}"

    def __repr__(self) -> str:
        return f"SSMBackend({self.url!r})"

    # -- names ---------------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        validate_key(key)
        name = f"/{self.prefix}/{key}" if self.prefix else f"/{key}"
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidKeyError(f"key {key!r} gives a parameter name over {MAX_NAME_LENGTH}")
        if name.count(SEPARATOR) > MAX_DEPTH:
            raise InvalidKeyError(f"key {key!r} is deeper than SSM's {MAX_DEPTH} levels")
        first = name.split(SEPARATOR)[1].lower()
        if first.startswith(("aws", "ssm")):
            raise InvalidKeyError(f"parameter names may not start with 'aws' or 'ssm': {key!r}")
        return name

    def check_key(self, key: str) -> None:
        """Raise :class:`InvalidKeyError` when ``key`` cannot be a parameter here (the
        name rules :meth:`put` applies before any I/O: length, depth, reserved prefixes)."""
        self._name(key)

    def _encoded(self, key: str, value: bytes) -> str:
        """``value`` as the parameter's text; :class:`ValueTooLargeError` when the tier
        cannot hold it (before or after the encoding)."""
        value = check_size(key, value, self.max_value_bytes)
        text = encode_value(value)
        if len(text.encode("utf-8")) > self.max_value_bytes:  # type: ignore[operator]
            raise ValueTooLargeError(
                f"value for {key!r} is {len(text.encode('utf-8'))} bytes once encoded for "
                f"SSM; at most {self.max_value_bytes}"
            )
        return text

    def check_value(self, key: str, value: bytes) -> None:
        """Raise :class:`ValueTooLargeError` when the tier cannot hold ``value`` once
        encoded (the check :meth:`put` applies before any I/O)."""
        self._encoded(key, value)

    def _key(self, name: str) -> str | None:
        base = f"/{self.prefix}/" if self.prefix else "/"
        if not name.startswith(base):
            return None
        key = name[len(base) :]
        return key if is_valid_key(key) else None

    def _entry(self, key: str, parameter: Mapping[str, Any]) -> Entry:
        return Entry(
            key,
            decode_value(str(parameter.get("Value", ""))),
            str(parameter["Version"]),
            source=f"{self.url}#{key}",
            secret=parameter.get("Type") == "SecureString",
        )

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        return fn(**kwargs)

    def _fail(self, exc: BaseException, what: str) -> Exception:
        code = error_code(exc)
        if code == "ValidationException" and "length" in str(exc).lower():
            return ValueTooLargeError(f"{self.url}: {what}: value too long for SSM")
        if code in ("ParameterPatternMismatchException", "HierarchyLevelLimitExceededException"):
            return InvalidKeyError(f"{self.url}: {what}: SSM refused the parameter name ({code})")
        return map_error(exc, f"{self.url}: {what}")

    # -- reads ---------------------------------------------------------------------------------

    def _get(self, key: str) -> Entry | None:
        name = self._name(key)
        try:
            response = self._call(
                "GetParameter", self._client.get_parameter, Name=name, WithDecryption=self.decrypt
            )
        except BOTO_ERRORS as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise self._fail(exc, f"GetParameter {key}") from exc
        return self._entry(key, response["Parameter"])

    def get(self, key: str) -> Entry | None:
        validate_key(key)
        return self._get(key)

    def _list(self, prefix: str) -> list[Entry]:
        path = (f"/{self.prefix}" if self.prefix else "") + (f"/{prefix}" if prefix else "")
        found: dict[str, Entry] = {}
        if prefix:
            own = self._get(prefix)
            if own is not None:
                found[prefix] = own
        try:
            if self._closed:
                raise BackendUnavailableError(f"{self!r} is closed")
            pages = self._client.get_paginator("get_parameters_by_path").paginate(
                Path=path or "/",
                Recursive=True,
                WithDecryption=self.decrypt,
            )
            for page in pages:
                for parameter in page.get("Parameters", []):
                    key = self._key(parameter["Name"])
                    if key is not None and in_prefix(key, prefix):
                        found[key] = self._entry(key, parameter)
        except BOTO_ERRORS as exc:
            raise self._fail(exc, f"GetParametersByPath {path or '/'}") from exc
        return [found[k] for k in sorted(found)]

    def list(self, prefix: str) -> Iterator[Entry]:
        return iter(self._list(normalize_prefix(prefix)))

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> PollingWatch:
        prefix = normalize_prefix(prefix)
        watch = PollingWatch(
            lambda: {e.key: e for e in self._list(prefix)},
            on_change,
            interval=self.poll_interval,
            name=f"veltrix-ssm-watch-{prefix}",
            on_stop=self._watches.discard,
        )
        return self._watches.add(watch)

    # -- writes --------------------------------------------------------------------------------

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        name = self._name(key)
        text = self._encoded(key, value)
        expected: int | None = None
        if if_version is not None and if_version is not Absent:
            current = self._get(key)
            check_expected_version(key, None if current is None else current.version, if_version)
            expected = int(str(if_version))
        args: dict[str, Any] = {
            "Name": name,
            "Value": text,
            "Type": "SecureString" if self.secure else "String",
            "Overwrite": if_version is not Absent,
            "Tier": self.tier,
        }
        if self.secure and self.key_id:
            args["KeyId"] = self.key_id
        try:
            response = self._call("PutParameter", self._client.put_parameter, **args)
        except BOTO_ERRORS as exc:
            if error_code(exc) == "ParameterAlreadyExists":
                raise VersionConflictError(f"{key!r} already exists (create-only write)") from exc
            raise self._fail(exc, f"PutParameter {key}") from exc
        version = int(response["Version"])
        if expected is not None and version != expected + 1:
            log.warning(
                "%s: a concurrent write to %s landed between the version check and the "
                "write (now version %d, expected %d)",
                self.url,
                key,
                version,
                expected + 1,
                extra=event("veltrix.ssm.concurrent_write", store=self.url, key=key),
            )
        return str(version)

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        name = self._name(key)
        if if_version is not None:
            current = self._get(key)
            check_expected_version(key, None if current is None else current.version, if_version)
        try:
            self._call("DeleteParameter", self._client.delete_parameter, Name=name)
        except BOTO_ERRORS as exc:
            if error_code(exc) == "ParameterNotFound":
                return False
            raise self._fail(exc, f"DeleteParameter {key}") from exc
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._watches.stop_all()
        self._closed = True
        self._client.close()


__all__ = ["SSMBackend", "decode_value", "encode_value"]
