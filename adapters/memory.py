"""``memory://[name]``: an in-process store for tests and local experiments.

``memory://`` is a fresh private store; ``memory://name`` is shared by every
backend opened with that name in the same process (handy to point two clients
at one store). Nothing survives the process.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Self

from veltrix.backend import AbsentType, Change, Entry
from veltrix.errors import ConfigurationError
from veltrix.keys import in_prefix, normalize_prefix, validate_key
from veltrix.urls import Options, parse_url
from veltrix.values import check_expected_version, check_value
from veltrix.watching import ChangeDispatcher, WatchSet

DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024


class _Store:
    """The shared state behind one named memory store."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, Entry] = {}
        self.revision = itertools.count(1)
        self.watchers: list[tuple[str, ChangeDispatcher[Change]]] = []

    def publish(self, change: Change) -> None:
        for prefix, dispatcher in self.watchers:
            if in_prefix(change.key, prefix):
                dispatcher.submit(change)


_named_stores: weakref.WeakValueDictionary[str, _Store] = weakref.WeakValueDictionary()
_named_lock = threading.Lock()


class _MemoryWatch:
    def __init__(
        self,
        store: _Store,
        prefix: str,
        dispatcher: ChangeDispatcher[Change],
        *,
        on_stop: Callable[[_MemoryWatch], None],
    ) -> None:
        self._store = store
        self._item = (prefix, dispatcher)
        self._on_stop = on_stop

    def stop(self) -> None:
        with self._store.lock:
            if self._item in self._store.watchers:
                self._store.watchers.remove(self._item)
        self._item[1].stop()
        self._on_stop(self)


class MemoryBackend:
    schemes: ClassVar[tuple[str, ...]] = ("memory",)
    #: Versions are a store-wide revision (``SupportsOrderedVersions``).
    versions_increase: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    max_value_bytes: ClassVar[int | None] = DEFAULT_MAX_VALUE_BYTES

    def __init__(self, name: str = "") -> None:
        self.name = name
        if name:
            with _named_lock:
                store = _named_stores.get(name)
                if store is None:
                    store = _Store()
                    _named_stores[name] = store
        else:
            store = _Store()
        self._store = store
        self._watches: WatchSet[_MemoryWatch] = WatchSet()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        Options(parsed.query, options, where=parsed.redacted).finish()
        if parsed.path not in ("", "/"):
            raise ConfigurationError(f"{parsed.redacted}: memory:// takes a name, not a path")
        return cls(parsed.netloc)

    @property
    def url(self) -> str:
        return f"memory://{self.name}"

    def __repr__(self) -> str:
        return f"MemoryBackend({self.url!r})"

    def get(self, key: str) -> Entry | None:
        validate_key(key)
        return self._store.entries.get(key)

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        with self._store.lock:
            found = [e for k, e in self._store.entries.items() if in_prefix(k, prefix)]
        return iter(sorted(found, key=lambda e: e.key))

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        validate_key(key)
        value = check_value(key, value, self.max_value_bytes)
        store = self._store
        with store.lock:
            current = store.entries.get(key)
            check_expected_version(key, current.version if current else None, if_version)
            version = str(next(store.revision))
            entry = Entry(key, value, version, source=f"{self.url}/{key}")
            store.entries[key] = entry
            store.publish(Change(key, entry, time.time()))
        return version

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        validate_key(key)
        store = self._store
        with store.lock:
            current = store.entries.get(key)
            if if_version is not None:
                check_expected_version(key, current.version if current else None, if_version)
            if current is None:
                return False
            del store.entries[key]
            next(store.revision)
            store.publish(Change(key, None, time.time()))
        return True

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> _MemoryWatch:
        prefix = normalize_prefix(prefix)
        # Changes are published by the writing thread with the store's lock held: never
        # run the callback there (it may take the caller's own locks).
        dispatcher = ChangeDispatcher(
            on_change, name=f"veltrix-memory-watch-{prefix}", inline_allowed=False
        )
        with self._store.lock:
            self._store.watchers.append((prefix, dispatcher))
        return self._watches.add(
            _MemoryWatch(self._store, prefix, dispatcher, on_stop=self._watches.discard)
        )

    def close(self) -> None:
        self._watches.stop_all()
