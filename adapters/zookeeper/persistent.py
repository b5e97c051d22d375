"""Persistent recursive watches (ZooKeeper >= 3.6) for kazoo, which has none.

kazoo 2.11 knows neither the ``AddWatch`` request (opcode 106) nor what to do with
an event for a path it holds no one-shot watcher for: its connection looks the
event's path up in the client's one-shot watcher tables and drops it otherwise.

:class:`PersistentWatches` fills both gaps for one ``KazooClient``: it sends
``AddWatch``/``RemoveWatches`` through the client's own request queue (so they are
ordered with every other request on the session) and wraps the connection's
watch-event reader so that an event below a registered base path also reaches the
callbacks registered for that base. One-shot watchers keep working: the original
reader still runs for the event types it knows.

The server drops every watch of a connection when the connection goes, and kazoo
only re-registers its own one-shot watches on reconnect, so callers re-send
:meth:`PersistentWatches.add` after every reconnection (the server treats a repeat
as a no-op) and resync, as the ZooKeeper adapter's watch does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Watch, int_struct, write_string
from kazoo.protocol.states import EVENT_TYPE_MAP, WatchedEvent

from veltrix.log_events import event as log_event

log = logging.getLogger("veltrix.zookeeper")

#: ``AddWatchMode.PERSISTENT_RECURSIVE``: events for the node and every descendant
#: (created, deleted, data changed; no child-list events), never consumed by firing.
MODE_PERSISTENT_RECURSIVE = 1
#: ``WatcherType.ANY`` for ``RemoveWatches``: removes the path's watch whatever its mode.
_WATCHER_TYPE_ANY = 3

EventCallback = Callable[[WatchedEvent], None]


class AddWatch:
    """The ``AddWatch`` request: ``{ustring path; int mode}``; the reply has no body."""

    type: ClassVar[int] = 106

    def __init__(self, path: str, mode: int = MODE_PERSISTENT_RECURSIVE) -> None:
        self.path = path
        self.mode = mode

    def serialize(self) -> bytearray:
        return bytearray(write_string(self.path) + int_struct.pack(self.mode))

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> bool:
        return True

    def __repr__(self) -> str:
        return f"AddWatch(path={self.path!r}, mode={self.mode})"


class RemoveWatches:
    """The ``RemoveWatches`` request: ``{ustring path; int type}``; no reply body."""

    type: ClassVar[int] = 18

    def __init__(self, path: str, watcher_type: int = _WATCHER_TYPE_ANY) -> None:
        self.path = path
        self.watcher_type = watcher_type

    def serialize(self) -> bytearray:
        return bytearray(write_string(self.path) + int_struct.pack(self.watcher_type))

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> bool:
        return True

    def __repr__(self) -> str:
        return f"RemoveWatches(path={self.path!r}, type={self.watcher_type})"


def hookable(client: KazooClient) -> bool:
    """Whether this kazoo has the internals :class:`PersistentWatches` hooks into
    (checked so that a kazoo release that moves them degrades to one-shot watches)."""
    connection = getattr(client, "_connection", None)
    return all(
        callable(getattr(obj, name, None))
        for obj, name in ((connection, "_read_watch_event"), (client, "_call"))
    ) and hasattr(client, "_stopped")


def covers(base: str, path: str) -> bool:
    """Whether a recursive watch on ``base`` fires for ``path``."""
    return base in ("/", path) or path.startswith(base + "/")


class PersistentWatches:
    """Persistent recursive watches on one kazoo client, routed to callbacks by path.

    Paths are the server's (the client must not use kazoo's own chroot). Callbacks
    run on kazoo's connection thread: they must only enqueue.
    """

    def __init__(self, client: KazooClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._routes: dict[str, list[EventCallback]] = {}
        connection = client._connection
        self._read_one_shot = connection._read_watch_event
        # An instance attribute shadows the method: ConnectionHandler._read_socket calls
        # self._read_watch_event, so every watch event now passes through _read_event.
        connection._read_watch_event = self._read_event

    def add(self, path: str, callback: EventCallback) -> Any:
        """Route events below ``path`` to ``callback`` and (re-)send ``AddWatch``.

        Returns kazoo's async result for the request: it raises
        ``UnimplementedError`` on a server older than 3.6.
        """
        with self._lock:
            callbacks = self._routes.setdefault(path, [])
            if callback not in callbacks:
                callbacks.append(callback)
        return self._send(AddWatch(path))

    def discard(
        self, path: str, callback: EventCallback, *, tell_server: bool = True
    ) -> Any | None:
        """Stop routing to ``callback``; the last one for ``path`` also removes the
        server's watch unless ``tell_server`` is false (returns that request's async
        result, else ``None``)."""
        with self._lock:
            callbacks = self._routes.get(path, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if callbacks or path not in self._routes:
                return None
            del self._routes[path]
        return self._send(RemoveWatches(path)) if tell_server else None

    def _send(self, request: AddWatch | RemoveWatches) -> Any:
        result = self._client.handler.async_result()
        self._client._call(request, result)
        return result

    def _read_event(self, buffer: bytes, offset: int) -> None:
        """kazoo's connection thread: one watch event off the wire."""
        watch, _ = Watch.deserialize(buffer, offset)
        if watch.type not in EVENT_TYPE_MAP:
            return  # e.g. PersistentWatchRemoved (7): nothing to deliver
        self._read_one_shot(buffer, offset)  # kazoo's own one-shot watchers
        with self._lock:
            targets = [
                callback
                for base, callbacks in self._routes.items()
                if covers(base, watch.path)
                for callback in callbacks
            ]
        if not targets or self._client._stopped.is_set():
            return
        event = WatchedEvent(EVENT_TYPE_MAP[watch.type], self._client._state, watch.path)
        for callback in targets:
            try:
                callback(event)
            except Exception as exc:  # never break kazoo's connection thread
                log.exception(
                    "persistent watch callback failed for %s",
                    watch.path,
                    extra=log_event("veltrix.watch.callback_failed", error=exc),
                )
