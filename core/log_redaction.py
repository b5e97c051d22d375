"""Log filters that keep values and credentials out of client libraries' log records.

Veltrix's own log messages name keys and redacted URLs, never values. The client
libraries under the adapters log more at DEBUG and below: kazoo logs every
request and response (``SetData(path, data=b'...')``, ``Auth(... auth='user:pw')``),
botocore logs request parameters and response bodies (an SSM ``SecureString`` in
clear) and the signing headers (``X-Amz-Security-Token``), urllib3 logs request
lines. :class:`RedactingFilter` rewrites such records before any handler sees
them:

- ``bytes`` arguments become ``<N bytes>`` (values travel as bytes);
- kazoo request/response tuples are shown by field, with data and credentials masked;
- mappings keep their keys; values of sensitive names (``authorization``,
  ``body``, ``password``, ``token``...) are masked;
- exceptions keep their message; other objects (prepared requests, responses) are
  shown by type only;
- text has URL passwords, sensitive query values, signing headers and every
  known credential (see :func:`known_secrets`) masked.

A logger's filters only see records logged on that very logger, not on its
children, so :func:`protect_loggers` attaches one filter to each existing
logger under the given names; adapters call it once their client library is
loaded (its module loggers exist by then).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from veltrix.urls import redact_text

MASK = "***"

#: Environment variables whose values are credentials Veltrix or its client
#: libraries read (masked wherever they appear in a record).
SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "REDIS_PASSWORD",
    "CONSUL_HTTP_TOKEN",
    "VELTRIX_ZK_AUTH",
    "VELTRIX_ZK_TLS_KEY_PASSWORD",
    "VELTRIX_CACHE_KEY",
    "VELTRIX_CACHE_OLD_KEYS",
    "VELTRIX_GCPSM_ACCESS_TOKEN",
    "VELTRIX_GCPPM_ACCESS_TOKEN",
)
#: Shorter values are not masked by search-and-replace (they would mask ordinary words).
MIN_SECRET_LENGTH = 4

_SENSITIVE_NAME = re.compile(
    r"authorization|token|password|passwd|secret|credential|auth|body|data|value|cookie",
    re.I,
)
_HEADER_IN_TEXT = re.compile(
    r"((?:authorization|x-amz-security-token|x-consul-token|cookie)\s*[:=]\s*['\"]?)[^'\"\n,}]+",
    re.I,
)
_DIGEST_ID = re.compile(r"(scheme='digest', id=')[^']*(')")


def known_secrets(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Credential values to mask: those of :data:`SECRET_ENV` that are set, plus ``extra``.

    A ``user:password`` credential is masked both whole and by its password.
    """
    found: set[str] = set()
    for value in [*(os.environ.get(name, "") for name in SECRET_ENV), *extra]:
        for part in value.split(","):
            item = part.strip()
            if len(item) >= MIN_SECRET_LENGTH:
                found.add(item)
            _, sep, password = item.partition(":")
            if sep and len(password) >= MIN_SECRET_LENGTH:
                found.add(password)
    return tuple(sorted(found, key=len, reverse=True))  # longest first: no partial masks


def redact_log_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL credentials, signing headers and the given secrets masked."""
    text = redact_text(text)
    text = _HEADER_IN_TEXT.sub(rf"\1{MASK}", text)
    text = _DIGEST_ID.sub(rf"\1{MASK}\2", text)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def scrub(value: Any, depth: int = 0) -> Any:
    """A log argument with values and credentials replaced (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, BaseException):  # "Connection dropped: %s": keep the reason
        return str(value)  # (the message text is scanned for credentials afterwards)
    if depth > 4:
        return f"<{type(value).__name__}>"
    fields = getattr(value, "_fields", None)
    if isinstance(value, tuple) and isinstance(fields, tuple):  # a namedtuple (kazoo request)
        shown = []
        for name, item in zip(fields, value, strict=False):
            masked = name in ("auth", "data") or (name == "id" and _is_digest(value))
            shown.append(f"{name}={MASK if masked else _plain(scrub(item, depth + 1))}")
        return f"{type(value).__name__}({', '.join(shown)})"
    if isinstance(value, Mapping):
        return {
            str(k): MASK if _SENSITIVE_NAME.search(str(k)) else scrub(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item, depth + 1) for item in value]
    return f"<{type(value).__name__}>"


def _is_digest(value: Any) -> bool:
    return getattr(value, "scheme", None) == "digest"


def _plain(value: Any) -> str:
    return value if isinstance(value, str) and value.startswith("<") else repr(value)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and arguments so no value or credential remains.

    ``secrets`` returns credentials to mask on top of those of :func:`known_secrets`;
    it is called per record, so a credential known only after the filter was
    attached (a client library's auth data) is masked too.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, known_secrets(self._secrets()))
        return True


def redact_record(record: logging.LogRecord, secrets: Iterable[str]) -> None:
    """Scrub ``record`` in place: arguments by :func:`scrub`, then the whole message text."""
    args = record.args
    try:
        if isinstance(args, Mapping):
            record.args = scrub(args)
        elif args:
            record.args = tuple(scrub(arg) for arg in args)
        message = record.getMessage()
    except (TypeError, ValueError):  # a malformed record: keep only its format string
        message = str(record.msg)
    record.msg = redact_log_text(message, tuple(secrets))
    record.args = None
    if record.exc_info is not None and record.exc_text is None:
        formatter = logging.Formatter()
        record.exc_text = redact_log_text(formatter.formatException(record.exc_info), secrets)
        record.exc_info = None


_installed: set[str] = set()
_install_lock = threading.Lock()


def protect_loggers(*prefixes: str) -> None:
    """Attach a :class:`RedactingFilter` to every existing logger named ``prefix`` or below.

    Idempotent per logger; call it again after more of a library was imported.
    """
    with _install_lock:
        names = set(prefixes) | {
            name
            for name in logging.root.manager.loggerDict
            if any(name.startswith(prefix + ".") for prefix in prefixes)
        }
        for name in sorted(names - _installed):
            logging.getLogger(name).addFilter(RedactingFilter())
            _installed.add(name)


__all__ = [
    "MASK",
    "SECRET_ENV",
    "RedactingFilter",
    "known_secrets",
    "protect_loggers",
    "redact_log_text",
    "redact_record",
    "scrub",
]
