"""The adapter contract: what a store implements.

Kept small and separate from the user API (:class:`veltrix.Client`). A store
implements :class:`Backend`; optional abilities are separate runtime-checkable
protocols (:class:`SupportsList`, :class:`SupportsWrite`, :class:`SupportsWatch`,
:class:`SupportsBatch`, :class:`SupportsPreflight`, :class:`SupportsBatchPreflight`,
:class:`SupportsContentType`, :class:`SupportsSecrets`, :class:`SupportsHealthEvents`,
:class:`SupportsOrderedVersions`, :class:`SupportsAsyncGet`, :class:`HasUrl`), found
with ``isinstance`` (never by probing signatures), and the client raises
:class:`~veltrix.errors.UnsupportedOperationError` when a store lacks one. Keys given to a backend are canonical (see :mod:`veltrix.keys`);
adapters validate them again before any I/O because they are public API too.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from veltrix.urls import redact_url


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
    #: Wall-clock time (``time.time()``) the store made the change, where it says;
    #: the client's watch-lag metric is measured from it.
    changed_at: float | None = None

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


@runtime_checkable
class SupportsAsyncGet(Protocol):
    """Reads one key on the running event loop, through the store's own asyncio client.

    :class:`veltrix.aio.AsyncClient` uses it for a plain miss instead of a worker
    thread. ``native_async`` is False for an instance whose connection kind has no
    sound asyncio client (the caller uses threads then). The connection is opened on
    the first ``aget`` and belongs to that call's event loop: ``aget`` from another
    loop raises :class:`~veltrix.errors.ConfigurationError` until ``aclose()``.
    """

    native_async: bool

    async def aget(self, key: str) -> Entry | None:
        """As :meth:`Backend.get`, with the same errors."""
        ...

    async def aclose(self) -> None:
        """Close (on its loop) or drop (elsewhere) the asyncio connection; the next
        ``aget`` opens another, on its own loop."""
        ...


#: What :meth:`SupportsBatch.put_many` takes: ``key -> value`` (``None`` deletes).
BatchItems = Mapping[str, bytes | None] | Iterable[tuple[str, bytes | None]]


@runtime_checkable
class SupportsBatch(Protocol):
    #: A batch size to hand :meth:`put_many` (the store's own per-transaction limit).
    max_batch_ops: ClassVar[int]

    def put_many(
        self,
        items: BatchItems,
        *,
        atomic: bool = True,
        if_versions: Mapping[str, str | AbsentType] | None = None,
    ) -> dict[str, str | None]:
        """Write many keys (``None`` deletes); ``{key: new version}`` (``None`` for deletes).

        ``atomic=True``: all or nothing, one lost compare in ``if_versions`` (a version,
        or :data:`Absent`) raises :class:`~veltrix.errors.VersionConflictError` with
        nothing written; ``atomic=False`` may split the batch.
        """
        ...


@runtime_checkable
class SupportsPreflight(Protocol):
    """The store's own key and value rules, checked without I/O (migration pre-flight)."""

    def check_key(self, key: str) -> None:
        """Raise :class:`~veltrix.errors.InvalidKeyError` when the store cannot hold ``key``."""
        ...

    def check_value(self, key: str, value: bytes) -> None:
        """Raise :class:`~veltrix.errors.ValueTooLargeError` when ``value`` does not fit."""
        ...


@runtime_checkable
class SupportsBatchPreflight(Protocol):
    def check_batch(self, items: BatchItems) -> None:
        """Raise when these writes cannot go in together (e.g. AppConfig's whole-document
        size after applying them), writing nothing."""
        ...


@runtime_checkable
class SupportsContentType(Protocol):
    """``put`` takes ``content_type=`` and the store keeps it (``Entry.content_type``).

    ``keeps_content_type`` is the marker ``isinstance`` sees: a runtime check cannot
    see a keyword argument, and every writable store has a ``put``.
    """

    keeps_content_type: ClassVar[bool]

    def put(
        self,
        key: str,
        value: bytes,
        *,
        if_version: str | AbsentType | None = None,
        content_type: str | None = None,
    ) -> str: ...


@runtime_checkable
class HasUrl(Protocol):
    @property
    def url(self) -> str:
        """The store's URL as opened (may hold secrets in options: redact before showing)."""
        ...


@runtime_checkable
class SupportsSecrets(Protocol):
    @property
    def holds_secrets(self) -> bool:
        """True when what this store holds comes back flagged secret (``Entry.secret``):
        every Secret Manager entry; SSM entries written as SecureString (``secure=true``).
        A migration warns when secret values go to a store where this is false."""
        ...


@runtime_checkable
class SupportsOrderedVersions(Protocol):
    @property
    def versions_increase(self) -> bool:
        """True when every write of a key gives it a larger decimal version than any it
        had before, deletes and re-creations included (a store-wide revision: SQLite's
        and Redis's change counters, ZooKeeper's ``mzxid``, Consul's ``ModifyIndex``).
        The client then refuses a copy older than the one it holds (a late message of
        the shared cache's bus)."""
        ...


def newer_or_same(version: str, than: str) -> bool:
    """Whether ``version`` is not older than ``than``, for a store whose versions
    increase; versions that are not both decimal count as newer.

    ``isdecimal``, not ``isdigit``: a digit such as ``"²"`` is not a number ``int`` reads.
    """
    if not (version.isdecimal() and than.isdecimal()):
        return True
    return int(version) >= int(than)


def describe(store: object) -> str:
    """How messages name ``store``: its redacted URL (:class:`HasUrl`), else its class."""
    return redact_url(store.url) if isinstance(store, HasUrl) else type(store).__name__


def supports(backend: object, ability: type) -> bool:
    """True when ``backend`` has the optional ability (a protocol above)."""
    return isinstance(backend, ability)


__all__ = [
    "Absent",
    "AbsentType",
    "Backend",
    "BatchItems",
    "Change",
    "Entry",
    "HasUrl",
    "SupportsAsyncGet",
    "SupportsBatch",
    "SupportsBatchPreflight",
    "SupportsContentType",
    "SupportsHealthEvents",
    "SupportsList",
    "SupportsOrderedVersions",
    "SupportsPreflight",
    "SupportsSecrets",
    "SupportsWatch",
    "SupportsWrite",
    "Watch",
    "describe",
    "newer_or_same",
    "supports",
]
