"""Live migration: a backend that writes to two stores and reads from one.

    mirror = MirrorBackend(open_backend(OLD), open_backend(NEW))                 # dual write
    mirror = MirrorBackend(open_backend(OLD), open_backend(NEW), shadow=True)    # + shadow reads
    client = veltrix.Client(mirror)

* **Dual write**: ``put``/``delete`` go to the primary first (with the caller's
  compare-and-set; its version is what the caller gets back), then to the secondary
  without a condition, so the secondary follows the primary. A failed secondary write
  never fails the caller: it is counted and the key remembered in
  :attr:`MirrorStats.unsynced_keys` for the next ``veltrix migrate`` backfill.
* **Reads** come from the primary. With ``shadow=True`` every ``get``/``list`` also
  reads the secondary and compares SHA-256s; the primary's answer is served either way
  and mismatches are counted (keys only, never values) in :meth:`MirrorBackend.stats`.
* **Watch** is the primary's.

Swap the two arguments to switch stores; see the runbook in ``docs/migration.md``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from veltrix.backend import (
    AbsentType,
    Backend,
    Change,
    Entry,
    SupportsList,
    SupportsWatch,
    SupportsWrite,
    Watch,
    describe,
)
from veltrix.errors import ConfigurationError, UnsupportedOperationError, VeltrixError
from veltrix.keys import normalize_prefix
from veltrix.log_events import event

log = logging.getLogger("veltrix.mirror")

#: How many mismatched / unsynced keys are remembered (counts go on past it).
KEEP_KEYS = 1000


@dataclass
class MirrorStats:
    reads: int = 0
    shadow_reads: int = 0
    mismatches: int = 0
    missing_in_secondary: int = 0
    extra_in_secondary: int = 0
    secondary_read_errors: int = 0
    writes: int = 0
    secondary_write_errors: int = 0
    mismatched_keys: list[str] = field(default_factory=list)
    unsynced_keys: list[str] = field(default_factory=list)


def _digest(entry: Entry | None) -> str | None:
    return None if entry is None else hashlib.sha256(entry.value).hexdigest()


def _remember(keys: list[str], key: str) -> None:
    if key not in keys and len(keys) < KEEP_KEYS:
        keys.append(key)


class MirrorBackend:
    """Two stores behind one backend: dual writes, primary reads, optional shadow reads."""

    schemes: ClassVar[tuple[str, ...]] = ("mirror",)
    transient_errors: tuple[type[BaseException], ...]  # the primary's
    max_value_bytes: int | None  # the smaller of the two

    def __init__(
        self,
        primary: Backend,
        secondary: Backend,
        *,
        shadow: bool = False,
        owns: bool = False,
        on_mismatch: Callable[[str], None] | None = None,
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self.shadow = shadow
        self._owns = owns
        self._on_mismatch = on_mismatch
        self.transient_errors = tuple(getattr(primary, "transient_errors", ()))
        limits = [
            limit
            for limit in (
                getattr(primary, "max_value_bytes", None),
                getattr(secondary, "max_value_bytes", None),
            )
            if isinstance(limit, int)
        ]
        self.max_value_bytes = min(limits) if limits else None
        self._stats = MirrorStats()
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Refused: a mirror is built from two opened stores, never from one URL.

        No ``mirror://`` scheme is registered on purpose: nested store URLs in one
        query string would carry their options (tokens included) past
        :func:`~veltrix.urls.redact_url`, which redacts by top-level option name.
        """
        raise ConfigurationError(  # the URL is not echoed: see above
            "a mirror is not opened from a URL; build it from two stores: "
            "MirrorBackend(open_backend(OLD), open_backend(NEW))"
        )

    @property
    def url(self) -> str:
        return f"mirror:{describe(self.primary)}+{describe(self.secondary)}"

    def __repr__(self) -> str:
        mode = "shadow" if self.shadow else "dual-write"
        return f"MirrorBackend({describe(self.primary)!r} -> {describe(self.secondary)!r}, {mode})"

    # -- reads -------------------------------------------------------------------------

    def _mismatch(self, key: str, kind: str) -> None:
        with self._lock:
            self._stats.mismatches += 1
            if kind == "missing":
                self._stats.missing_in_secondary += 1
            elif kind == "extra":
                self._stats.extra_in_secondary += 1
            _remember(self._stats.mismatched_keys, key)
        log.warning(
            "mirror: %s differs between primary and secondary (%s)",
            key,
            kind,
            extra=event("veltrix.mirror.mismatch", key=key, difference=kind),
        )
        if self._on_mismatch is not None:
            self._on_mismatch(key)

    def _compare(self, key: str, primary: Entry | None, secondary: Entry | None) -> None:
        if _digest(primary) == _digest(secondary):
            return
        kind = "missing" if secondary is None else "extra" if primary is None else "value"
        self._mismatch(key, kind)

    def _shadow_error(self, what: str, exc: Exception) -> None:
        with self._lock:
            self._stats.secondary_read_errors += 1
        log.warning(
            "mirror: shadow %s on the secondary failed: %s",
            what,
            exc,
            extra=event("veltrix.mirror.shadow_failed", error=exc),
        )

    def get(self, key: str) -> Entry | None:
        entry = self.primary.get(key)
        with self._lock:
            self._stats.reads += 1
        if self.shadow:
            try:
                other = self.secondary.get(key)
            except Exception as exc:  # the secondary never fails a read
                self._shadow_error(f"get {key!r}", exc)
            else:
                with self._lock:
                    self._stats.shadow_reads += 1
                self._compare(key, entry, other)
        return entry

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        if not isinstance(self.primary, SupportsList):
            raise UnsupportedOperationError(f"{describe(self.primary)} cannot list keys")
        entries = list(self.primary.list(prefix))
        with self._lock:
            self._stats.reads += 1
        if self.shadow and isinstance(self.secondary, SupportsList):
            try:
                others = {e.key: e for e in self.secondary.list(prefix)}
            except Exception as exc:
                self._shadow_error(f"list {prefix!r}", exc)
            else:
                with self._lock:
                    self._stats.shadow_reads += 1
                mine = {e.key: e for e in entries}
                for key in sorted(set(mine) | set(others)):
                    self._compare(key, mine.get(key), others.get(key))
        return iter(entries)

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> Watch:
        if not isinstance(self.primary, SupportsWatch):
            raise UnsupportedOperationError(f"{describe(self.primary)} cannot watch")
        return self.primary.watch(prefix, on_change)

    # -- writes ------------------------------------------------------------------------

    def _writable(self, store: Backend, role: str) -> SupportsWrite:
        if not isinstance(store, SupportsWrite):
            raise UnsupportedOperationError(f"the {role} {describe(store)} is read-only")
        return store

    def _secondary_failed(self, key: str, what: str, exc: Exception) -> None:
        with self._lock:
            self._stats.secondary_write_errors += 1
            _remember(self._stats.unsynced_keys, key)
        log.warning(
            "mirror: %s on the secondary failed (%s); backfill with veltrix migrate",
            what,
            exc,
            extra=event("veltrix.mirror.secondary_write_failed", error=exc),
        )

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        primary = self._writable(self.primary, "primary")
        secondary = self._writable(self.secondary, "secondary")
        version = primary.put(key, value, if_version=if_version)
        with self._lock:
            self._stats.writes += 1
        try:
            secondary.put(key, value)
        except (VeltrixError, *getattr(self.secondary, "transient_errors", ())) as exc:
            self._secondary_failed(key, f"put {key!r}", exc)
        return version

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        primary = self._writable(self.primary, "primary")
        secondary = self._writable(self.secondary, "secondary")
        existed = primary.delete(key, if_version=if_version)
        with self._lock:
            self._stats.writes += 1
        try:
            secondary.delete(key)
        except (VeltrixError, *getattr(self.secondary, "transient_errors", ())) as exc:
            self._secondary_failed(key, f"delete {key!r}", exc)
        return existed

    # -- introspection and lifecycle ---------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters (reads, shadow_reads, mismatches, ...) and the keys involved."""
        with self._lock:
            s = self._stats
            return {
                "reads": s.reads,
                "shadow_reads": s.shadow_reads,
                "mismatches": s.mismatches,
                "missing_in_secondary": s.missing_in_secondary,
                "extra_in_secondary": s.extra_in_secondary,
                "secondary_read_errors": s.secondary_read_errors,
                "writes": s.writes,
                "secondary_write_errors": s.secondary_write_errors,
                "mismatched_keys": list(s.mismatched_keys),
                "unsynced_keys": list(s.unsynced_keys),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = MirrorStats()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns:
            try:
                self.primary.close()
            finally:
                self.secondary.close()


__all__ = ["MirrorBackend", "MirrorStats"]
