"""Structured fields for Veltrix's log records: ``extra=event("veltrix.store.down", ...)``.

Every record a Veltrix logger (the ``veltrix.*`` tree) emits carries a stable
``event`` name plus the fields that apply: ``store`` (a redacted URL or a name),
``key`` (a configuration key; never its value) and ``error_type`` (the exception
class name). Log processors can route and count on these without parsing the
message; the message text may change, the event names do not.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable


def event(
    name: str,
    *,
    store: str | None = None,
    key: Hashable | None = None,
    error: BaseException | None = None,
    **fields: object,
) -> dict[str, object]:
    """The ``extra`` mapping of one log record (``None`` fields are left out)."""
    extra: dict[str, object] = {"event": name}
    if store is not None:
        extra["store"] = store
    if key is not None:
        # A model's cache token is (prefix, model class): the prefix is the key part.
        if isinstance(key, tuple) and key:
            key = key[0]
        extra["key"] = str(key)
    if error is not None:
        extra["error_type"] = type(error).__name__
    extra.update(fields)
    return extra


class FailureLog:
    """Logs a repeating failure once per state change, not once per attempt.

    A watch retrying against an unreachable store would otherwise log a warning
    per retry. :meth:`failed` warns on the first failure (``<prefix>.failed``) and
    logs later ones at debug level; :meth:`succeeded` logs ``<prefix>.recovered``
    once after a failure.
    """

    def __init__(self, logger: logging.Logger, prefix: str, *, store: str | None = None) -> None:
        self._log = logger
        self._prefix = prefix
        self._store = store
        self.failing = False

    def failed(self, message: str, *args: object, error: BaseException | None = None) -> None:
        level = logging.DEBUG if self.failing else logging.WARNING
        self.failing = True
        self._log.log(
            level,
            message,
            *args,
            extra=event(f"{self._prefix}.failed", store=self._store, error=error),
        )

    def succeeded(self, message: str, *args: object) -> None:
        if self.failing:
            self.failing = False
            self._log.info(
                message, *args, extra=event(f"{self._prefix}.recovered", store=self._store)
            )


__all__ = ["FailureLog", "event"]
