"""The one error tree of Veltrix.

Every error raised out of Veltrix is a :class:`VeltrixError`. Errors caused by a
client library are raised ``from`` the original exception so the cause is kept,
while the message stays one line and never contains a secret value.
"""

from __future__ import annotations

import unicodedata

#: Unicode categories escaped in messages: controls, format characters (bidi
#: overrides...), line/paragraph separators and lone surrogates.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def one_line(text: str) -> str:
    """``text`` with every control or separator character escaped (``\\n``, ``\\x1b``...).

    A message built from a URL or a key a caller typed could otherwise start a new
    log line (log injection) or move a terminal's cursor.
    """
    if text.isprintable():  # the common case: nothing to escape, no copy
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in _UNSAFE_CATEGORIES
        else ch
        for ch in text
    )


class VeltrixError(Exception):
    """Base of every error Veltrix raises.

    Its text is always one line: control characters in the message are escaped.
    """

    def __str__(self) -> str:
        return one_line(super().__str__())


class ConfigurationError(VeltrixError, ValueError):
    """A URL, option or setting is malformed or unknown."""


class UnknownBackendError(ConfigurationError):
    """No backend is registered for a URL scheme."""


class BackendNotInstalledError(ConfigurationError, ImportError):
    """The backend exists but its optional dependencies are not installed."""


class StoreNotFoundError(ConfigurationError):
    """The store a URL names does not exist (an embedded SQLite file never written), and
    opening it was not allowed to create it."""


class InvalidKeyError(VeltrixError, ValueError):
    """A key does not follow the canonical key grammar (see ``veltrix.keys``)."""


class ValueTooLargeError(VeltrixError, ValueError):
    """A value exceeds what the store can hold."""


class KeyNotFoundError(VeltrixError, KeyError):
    """The key is confirmed absent from the store and no default was given."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep messages plain
        return one_line(str(self.args[0])) if self.args else ""


class VersionConflictError(VeltrixError):
    """A compare-and-set lost: the key changed (or exists) since the given version."""


class UnsupportedOperationError(VeltrixError):
    """The store does not offer this operation (for example watch or write)."""


class DecodeError(VeltrixError, ValueError):
    """A value could not be decoded or converted to the requested type."""


class RuleError(VeltrixError, ValueError):
    """A feature flag's variant rule is malformed (unknown operator, bad operand, ...)."""


class BackendError(VeltrixError):
    """The store failed in a way that is not the caller's fault."""


class BackendUnavailableError(BackendError):
    """A transient failure: connection refused or lost, timeout, throttling, 5xx.

    The client retries these and serves last-known-good values while they last.
    """


class AccessDeniedError(BackendError):
    """The store refused the credentials. Never retried, never treated as absent."""


class SecretReferenceError(BackendError):
    """A value refers to a secret that could not be resolved (missing, disabled, or not
    readable by the store's identity). ``reference`` names the secret, never its value."""

    def __init__(self, message: str, reference: str, status: str) -> None:
        super().__init__(message)
        self.reference = reference
        self.status = status


__all__ = [
    "AccessDeniedError",
    "BackendError",
    "BackendNotInstalledError",
    "BackendUnavailableError",
    "ConfigurationError",
    "DecodeError",
    "InvalidKeyError",
    "KeyNotFoundError",
    "RuleError",
    "SecretReferenceError",
    "StoreNotFoundError",
    "UnknownBackendError",
    "UnsupportedOperationError",
    "ValueTooLargeError",
    "VeltrixError",
    "VersionConflictError",
    "one_line",
]
