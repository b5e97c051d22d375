"""The adapter contract: what a store implements.

Kept small and separate from the user API (:class:`veltrix.Client`). A store
implements :class:`Backend`; optional abilities are separate protocols
(:class:`SupportsList`, :class:`SupportsWrite`, :class:`SupportsWatch`) and the
client raises :class:`~veltrix.errors.UnsupportedOperationError` when a store
lacks one. Keys given to a backend are canonical (see :mod:`veltrix.keys`);
adapters validate them again before any I/O because they are public API too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, runtime_checkable


class _AbsentType(enum.Enum):
    ABSENT = "ABSENT"

    def __repr__(self) -> str:
        return "Absent"


#: ``put(key, value, if_version=Absent)`` means "create only": fail if the key exists.
Absent = _AbsentType.ABSENT
AbsentType = _AbsentType


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored value with its provenance."""

    key: str
    value: bytes = field(repr=False)
    version: str
    content_type: str | None = None
    source: str = ""
    secret: bool = False

    def __repr__(self) -> str:  # never show values: they may be secrets
        return (
            f"Entry(key={self.key!r}, version={self.version!r}, size={len(self.value)}, "
            f"content_type={self.content_type!r}, source={self.source!r}, secret={self.secret})"
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A change seen by a watch: ``entry`` is the new value, ``None`` for a delete."""

    key: str
    entry: Entry | None

    @property
    def deleted(self) -> bool:
        return self.entry is None


@runtime_checkable
class Watch(Protocol):
    """A running watch; ``stop()`` is idempotent and waits for the callback thread."""

    def stop(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """The minimum every store offers: read one key."""

    schemes: ClassVar[tuple[str, ...]]
    #: Exceptions (of the client library) that mean "try again later".
    transient_errors: ClassVar[tuple[type[BaseException], ...]]
    #: Largest value the store accepts, in bytes; ``None`` when unbounded.
    max_value_bytes: ClassVar[int | None]

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self: ...

    def get(self, key: str) -> Entry | None:
        """The entry, or ``None`` only for a confirmed absence."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...


@runtime_checkable
class SupportsList(Protocol):
    def list(self, prefix: str) -> Iterator[Entry]:
        """Entries at ``prefix`` and below it (segment-wise: ``a/b`` never lists ``a/bc``)."""
        ...


@runtime_checkable
class SupportsWrite(Protocol):
    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        """Store ``value``; return the new version.

        ``if_version`` is compare-and-set: a version string means "only if the key is
        at this version", :data:`Absent` means "only if the key does not exist".
        A lost compare raises :class:`~veltrix.errors.VersionConflictError`.
        """
        ...

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        """Delete ``key``; True if it existed. ``if_version`` as for :meth:`put`."""
        ...


@runtime_checkable
class SupportsWatch(Protocol):
    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> Watch:
        """Call ``on_change`` for every change at or below ``prefix``, in order, from a
        background thread, until the returned watch is stopped."""
        ...


@runtime_checkable
class SupportsHealthEvents(Protocol):
    def add_health_listener(self, listener: Callable[[bool, str], None]) -> None:
        """Call ``listener(up, reason)`` whenever the store's connection is lost
        (``up=False``) or (re)established (``up=True``).

        Stores with a long-lived connection (ZooKeeper's session) implement this so a
        client stops waiting on a dead store before any call times out. The listener
        runs on the adapter's own thread and never blocks.
        """
        ...


def supports(backend: object, ability: type) -> bool:
    """True when ``backend`` has the optional ability (a protocol above)."""
    return isinstance(backend, ability)


__all__ = [
    "Absent",
    "AbsentType",
    "Backend",
    "Change",
    "Entry",
    "SupportsHealthEvents",
    "SupportsList",
    "SupportsWatch",
    "SupportsWrite",
    "Watch",
    "supports",
]
