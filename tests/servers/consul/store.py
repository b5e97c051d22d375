"""The state behind the Consul test server: a KV table, a graveyard and one index.

Written from Consul's public HTTP API reference (KV store, transactions, blocking
queries). Every write gets the next value of one monotonic index (Consul's Raft
index); a key's ``ModifyIndex`` is the index of the write that last changed it.
Deleted keys leave a tombstone holding the delete's index, so blocking queries on
a prefix wake up for deletes, as Consul's graveyard makes them do.

Blocking queries wait on one condition variable that every write notifies; a
waiter recomputes the index relevant to its own request and goes back to sleep
when it has not moved, so nothing busy-loops.
"""

from __future__ import annotations

import base64
import bisect
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class DirEntry:
    key: str
    value: bytes | None
    flags: int
    create_index: int
    modify_index: int
    lock_index: int = 0

    def to_json(self, *, with_value: bool = True) -> dict[str, Any]:
        value = None
        if with_value and self.value:
            value = base64.b64encode(self.value).decode("ascii")
        return {
            "LockIndex": self.lock_index,
            "Key": self.key,
            "Flags": self.flags,
            "Value": value,
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        }


class TxnFailed(Exception):
    """One operation of a transaction failed; the message is Consul's ``What``."""


class KVStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self._entries: dict[str, DirEntry] = {}
        self._sorted: list[str] = []
        self._tombstones: dict[str, int] = {}
        # Every applied write request takes the next index. A real cluster's Raft log
        # starts with bootstrap entries, so the first KV write never gets index 1,
        # which reads of an empty table report (Consul never hands out 0).
        self._raft_index = 10
        self._table_index = 0  # last write that changed the kvs table or the graveyard
        # Undo log of the running transaction (None outside transactions).
        self._undo: list[tuple[str, DirEntry | None, int | None]] | None = None

    # -- reads (caller holds the lock) -------------------------------------------------

    def _prefixed(self, prefix: str) -> Iterator[str]:
        start = bisect.bisect_left(self._sorted, prefix)
        for key in self._sorted[start:]:
            if not key.startswith(prefix):
                return
            yield key

    def table_index(self) -> int:
        return self._table_index

    def get(self, key: str) -> DirEntry | None:
        return self._entries.get(key)

    def list_prefix(self, prefix: str) -> list[DirEntry]:
        return [self._entries[key] for key in self._prefixed(prefix)]

    def prefix_index(self, prefix: str, entries: list[DirEntry]) -> int:
        """The index Consul reports for a list of ``prefix``: the highest ModifyIndex
        of the entries or of the prefix's tombstones, or the table index when the
        prefix is empty or never had a key."""
        if not prefix:
            return self._table_index
        index = max((e.modify_index for e in entries), default=0)
        for key, deleted_at in self._tombstones.items():
            if deleted_at > index and key.startswith(prefix):
                index = deleted_at
        return index or self._table_index

    # -- blocking ----------------------------------------------------------------------

    def read(
        self,
        query: Callable[[], tuple[int, T]],
        *,
        min_index: int,
        timeout: float,
    ) -> tuple[int, T]:
        """Run ``query`` (returns ``(index, result)``) under the lock; when
        ``min_index`` > 0, wait until its index passes ``min_index`` or ``timeout``
        seconds have passed."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                index, result = query()
                if min_index <= 0 or index > min_index:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.changed.wait(remaining)
        # Consul never hands out index 0: a client would never block and spin.
        return max(index, 1), result

    # -- writes (caller holds the lock via ``write``) ------------------------------------

    def write(self, apply: Callable[[int], T]) -> T:
        """Apply one write request at the next index and wake blocking readers."""
        with self.changed:
            self._raft_index += 1
            result = apply(self._raft_index)
            self.changed.notify_all()
            return result

    def _store(self, entry: DirEntry) -> None:
        if self._undo is not None:
            self._undo.append(
                (entry.key, self._entries.get(entry.key), self._tombstones.get(entry.key))
            )
        if entry.key not in self._entries:
            bisect.insort(self._sorted, entry.key)
        self._entries[entry.key] = entry
        self._table_index = max(self._table_index, entry.modify_index)

    def _remove(self, key: str, index: int) -> None:
        if self._undo is not None:
            self._undo.append((key, self._entries.get(key), self._tombstones.get(key)))
        del self._entries[key]
        self._sorted.pop(bisect.bisect_left(self._sorted, key))
        self._tombstones[key] = index
        self._table_index = max(self._table_index, index)

    def set(self, index: int, key: str, value: bytes | None, flags: int) -> DirEntry:
        existing = self._entries.get(key)
        if existing is None:
            entry = DirEntry(key, value, flags, index, index)
        else:
            entry = replace(existing, value=value, flags=flags, modify_index=index)
        self._store(entry)
        return entry

    def cas(self, index: int, key: str, value: bytes | None, flags: int, expected: int) -> bool:
        existing = self._entries.get(key)
        if expected == 0 and existing is not None:
            return False
        if expected != 0 and (existing is None or existing.modify_index != expected):
            return False
        self.set(index, key, value, flags)
        return True

    def delete(self, index: int, key: str) -> None:
        if key in self._entries:
            self._remove(key, index)

    def delete_cas(self, index: int, key: str, expected: int) -> bool:
        existing = self._entries.get(key)
        if existing is None:
            return True  # as Consul: nothing to delete counts as success
        if existing.modify_index != expected:
            return False
        self._remove(key, index)
        return True

    def delete_tree(self, index: int, prefix: str) -> None:
        for key in list(self._prefixed(prefix)):
            self._remove(key, index)

    # -- transactions ------------------------------------------------------------------

    def transaction(
        self, ops: list[dict[str, Any]], *, allowed: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Run KV ops atomically: ``(results, errors)``; with errors nothing is applied."""

        def apply(index: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            self._undo = []
            table_index = self._table_index
            results: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            try:
                for position, op in enumerate(ops):
                    try:
                        if not allowed:
                            raise TxnFailed("Permission denied")
                        results.extend({"KV": r} for r in self._txn_op(index, op))
                    except TxnFailed as exc:
                        errors.append({"OpIndex": position, "What": str(exc)})
                if errors:
                    self._rollback(table_index)
                    return [], errors
                return results, []
            finally:
                self._undo = None

        return self.write(apply)

    def _rollback(self, table_index: int) -> None:
        assert self._undo is not None
        for key, entry, tombstone in reversed(self._undo):
            if entry is None:
                if key in self._entries:
                    del self._entries[key]
                    self._sorted.pop(bisect.bisect_left(self._sorted, key))
            else:
                if key not in self._entries:
                    bisect.insort(self._sorted, key)
                self._entries[key] = entry
            if tombstone is None:
                self._tombstones.pop(key, None)
            else:
                self._tombstones[key] = tombstone
        self._table_index = table_index

    def _txn_op(self, index: int, op: dict[str, Any]) -> list[dict[str, Any]]:
        verb, key = op["Verb"], op["Key"]
        value, flags, expected = op.get("Value"), op.get("Flags", 0), op.get("Index", 0)
        if verb == "set":
            return [self.set(index, key, value, flags).to_json(with_value=False)]
        if verb == "cas":
            if not self.cas(index, key, value, flags, expected):
                raise TxnFailed(f'failed to set key "{key}", index is stale')
            return [self._entries[key].to_json(with_value=False)]
        entry = self._entries.get(key)
        if verb == "get":
            if entry is None:
                raise TxnFailed(f'key "{key}" doesn\'t exist')
            return [entry.to_json()]
        if verb == "get-or-empty":
            if entry is None:
                return [DirEntry(key, None, flags, 0, 0).to_json()]
            return [entry.to_json()]
        if verb == "get-tree":
            return [e.to_json() for e in self.list_prefix(key)]
        if verb == "check-index":
            if entry is None:
                raise TxnFailed(f'key "{key}" doesn\'t exist')
            if entry.modify_index != expected:
                raise TxnFailed(f"current modify index {entry.modify_index} != {expected}")
            return [entry.to_json(with_value=False)]
        if verb == "check-not-exists":
            if key in self._entries:
                raise TxnFailed(f'key "{key}" exists')
            return []
        if verb == "delete":
            self.delete(index, key)
            return []
        if verb == "delete-cas":
            if not self.delete_cas(index, key, expected):
                raise TxnFailed(f'failed to delete key "{key}", index is stale')
            return []
        if verb == "delete-tree":
            self.delete_tree(index, key)
            return []
        if verb in ("lock", "unlock", "check-session"):
            raise TxnFailed(f'verb "{verb}" needs sessions, which this test server lacks')
        raise TxnFailed(f'unknown KV verb "{verb}"')


WRITE_VERBS = frozenset({"set", "cas", "delete", "delete-cas", "delete-tree", "lock", "unlock"})

__all__ = ["WRITE_VERBS", "DirEntry", "KVStore", "TxnFailed"]
