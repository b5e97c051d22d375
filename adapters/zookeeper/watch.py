"""A watch on one prefix of a ZooKeeper tree, delivered across reconnects and session expiry.

The backend (:mod:`veltrix.adapters.zookeeper`) creates it with what it needs as
explicit parameters: the :class:`ZnodeTree` to read, the persistent-watch router
(or none), and callbacks for the session state, error translation, the
persistent-watch fallback and its own bookkeeping.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import NoAuthError, NoNodeError, UnimplementedError
from kazoo.protocol.states import EventType, KazooState, WatchedEvent, ZnodeStat

from veltrix.adapters.zookeeper.persistent import PersistentWatches, covers
from veltrix.adapters.zookeeper.tree import PIPELINE_DEPTH, Fail, ZnodeTree, children
from veltrix.backend import Change, Entry
from veltrix.errors import VeltrixError
from veltrix.keys import in_prefix
from veltrix.log_events import event as log_event
from veltrix.watching import ChangeDispatcher, diff_listings, emit_if_changed

log = logging.getLogger("veltrix.zookeeper")


_STOP = ("stop", None)
_Queued = tuple[str, Any]


class ZooKeeperWatch:
    """Delivers every change below a prefix, across reconnects and session expiry.

    Two ways to hear about changes, chosen by the backend's ``watch_mode`` (it passes ``router``):

    - *persistent*: one persistent recursive watch on the prefix's znode
      (ZooKeeper >= 3.6, see :mod:`veltrix.adapters.zookeeper.persistent`); each event
      names a znode, which is re-read (queued events are read pipelined);
    - *one-shot*: a data and a child watch on every znode below the prefix, re-armed
      as each fires (and an exists watch on the prefix's znode while it is missing).

    Either way the server forgets a connection's watches when the connection goes,
    so every (re)connection re-arms and diffs the tree against what was delivered.

    Kazoo calls :meth:`_on_event` and :meth:`_on_state` from its own threads; both
    only enqueue. One worker thread does all reads and owns all state; changes go
    to a :class:`ChangeDispatcher`, which runs the callback in order on another
    thread, so a slow callback never blocks kazoo or the watch.
    """

    def __init__(
        self,
        tree: ZnodeTree,
        prefix: str,
        base: str,
        on_change: Callable[[Change], None],
        *,
        router: PersistentWatches | None,
        connected: Callable[[], bool],
        fail: Fail,
        persistent_unavailable: Callable[[BaseException], None],
        on_stop: Callable[[ZooKeeperWatch], None],
    ) -> None:
        """Watch ``prefix`` (its znode ``base``) in ``tree``.

        ``router`` routes persistent recursive watch events (``None``: one-shot
        watches); ``connected()`` says whether the session is up; ``fail`` turns a
        kazoo exception into a Veltrix error; ``persistent_unavailable(exc)`` is
        told when the server turns out to have no persistent watches (it may
        raise to refuse the fallback); ``on_stop(watch)`` is told once on stop.
        """
        self._tree = tree
        self._client = tree.client
        self._prefix = prefix
        self._base = base
        self._router = router
        self._connected = connected
        self._persistent_unavailable = persistent_unavailable
        self._on_stop = on_stop
        self._queue: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._known: dict[str, Entry] = {}
        self._tracked: set[str] = set()  # one-shot mode: znodes with watches armed
        self._denied: set[str] = set()  # znodes this client may not read (ACLs)
        self._resyncs = 0
        name = f"veltrix-zk-watch-{prefix or '/'}"
        self._dispatcher = ChangeDispatcher(on_change, name=f"{name}-callbacks")
        self._client.add_listener(self._on_state)
        try:
            # The baseline: watches are armed before watch() returns, nothing is emitted.
            self._known = self._rescan()
        except Exception as exc:
            self._release()
            self._dispatcher.stop()
            if isinstance(exc, VeltrixError):
                raise
            fail(exc, f"watch {prefix!r}")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def mode(self) -> str:
        """``"persistent"`` or ``"oneshot"``: the kind of server watch in use."""
        return "oneshot" if self._router is None else "persistent"

    @property
    def resyncs(self) -> int:
        """How many times the watch re-armed and diffed after a reconnect."""
        return self._resyncs

    # -- kazoo's threads: enqueue only ------------------------------------------------

    def _on_event(self, event: WatchedEvent) -> None:
        if not self._stopped.is_set():
            self._queue.put(("event", event))

    def _on_state(self, state: str) -> None:
        if not self._stopped.is_set():
            self._queue.put(("state", state))

    # -- the worker thread ----------------------------------------------------------

    def _run(self) -> None:
        dirty = False  # watches may be missing: re-arm everything and diff
        carried: _Queued | None = None  # taken off the queue while draining events
        while True:
            if carried is not None:
                (kind, item), carried = carried, None
            else:
                try:
                    kind, item = self._queue.get(timeout=0.5 if dirty else None)
                except queue.Empty:
                    kind, item = "retry", None
            if kind == "stop":
                return
            if kind == "state":
                # The server drops every watch on connection loss and session expiry,
                # so each (re)connection re-arms them and diffs against what we know.
                dirty = True
                if item != KazooState.CONNECTED:
                    continue
            elif kind == "event" and not dirty:
                if not self._connected():
                    dirty = True  # the reconnection's resync covers it; don't queue reads
                    continue
                events = [item]
                if self._router is not None:
                    carried = self._drain(events)
                try:
                    self._handle(events)
                except Exception as exc:
                    log.warning(
                        "zookeeper watch on %r: %s; resyncing",
                        self._prefix,
                        exc,
                        extra=log_event("veltrix.watch.event_failed", key=self._prefix, error=exc),
                    )
                    dirty = True
                continue
            if dirty and self._connected():
                try:
                    self._resync()
                    dirty = False
                except Exception as exc:
                    log.warning(
                        "zookeeper watch resync on %r failed: %s",
                        self._prefix,
                        exc,
                        extra=log_event("veltrix.watch.resync_failed", key=self._prefix, error=exc),
                    )

    def _drain(self, events: list[WatchedEvent]) -> _Queued | None:
        """Move already-queued events into ``events`` (up to a pipeline's depth);
        return the first non-event item met, which the caller handles next."""
        while len(events) < PIPELINE_DEPTH:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                return None
            if kind != "event":
                return kind, item
            events.append(item)
        return None

    def _handle(self, events: list[WatchedEvent]) -> None:
        if self._router is not None:
            self._refresh(events)
            return
        for event in events:
            self._handle_one_shot(event)

    def _refresh(self, events: list[WatchedEvent]) -> None:
        """Persistent mode: re-read every znode the events name, pipelined, in order.

        Created, changed and deleted all come down to "read it now": the read sees
        the event's write or a later one (ZooKeeper delivers a watch event before
        the data it announces), so the final state is always delivered.
        """
        paths = dict.fromkeys(
            e.path for e in events if e.type != EventType.NONE and e.path is not None
        )
        pending = [(path, self._client.get_async(path)) for path in paths if self._is_watched(path)]
        for path, result in pending:
            try:
                data, stat = self._tree.wait(result)
            except NoNodeError:
                self._gone(path)
                continue
            except NoAuthError:
                self._deny(path)
                continue
            self._found(path, data, stat, emit=True)

    def _is_watched(self, path: str) -> bool:
        """Whether a recursive watch event for ``path`` concerns a key below the prefix."""
        if not covers(self._base, path) or not self._is_key_path(path):
            return False
        return self._base != "/" or path.split("/", 2)[1] != "zookeeper"

    def _handle_one_shot(self, event: WatchedEvent) -> None:
        path = event.path
        if event.type == EventType.NONE or path is None:
            return  # a session event: the state listener handles it
        if event.type == EventType.DELETED:
            self._gone(path)
            if path == self._base:
                self._arm_base(emit=True)
        elif event.type == EventType.CREATED and path == self._base:
            self._arm_base(emit=True)
        elif event.type == EventType.CHILD:
            self._scan([path], emit=True, children_only=True)
        else:  # CHANGED (or CREATED of a tracked node)
            self._scan([path], emit=True, single=True)

    def _is_key_path(self, path: str) -> bool:
        return path != self._base or bool(self._prefix)

    def _found(
        self,
        path: str,
        data: bytes | None,
        stat: ZnodeStat | None,
        *,
        emit: bool,
        into: dict[str, Entry] | None = None,
    ) -> None:
        """A znode was read: a key's entry, a null parent (not a key), or a root."""
        if stat is None or not self._is_key_path(path):
            return
        key = self._tree.key(path)
        if data is None:
            if emit:
                self._emit(key, None)
            return
        entry = self._tree.entry(key, data, stat)
        if into is not None:
            into[key] = entry
        if emit:  # the znode's mtime (server clock, ms) is the change time: watch lag
            self._emit(key, entry, stat.mtime / 1000.0)

    def _scan(
        self, paths: list[str], *, emit: bool, children_only: bool = False, single: bool = False
    ) -> dict[str, Entry]:
        """One-shot mode: arm watches on ``paths`` and the untracked znodes below
        them; read them."""
        found: dict[str, Entry] = {}
        client = self._client

        def on_node(path: str, data: bytes | None, stat: ZnodeStat | None) -> None:
            self._tracked.add(path)
            self._found(path, data, stat, emit=emit, into=found)

        if children_only:
            # A child list changed: re-arm the child watch, scan only new children.
            if paths[0] not in self._tracked:
                return found
            try:
                names = self._tree.wait(client.get_children_async(paths[0], watch=self._on_event))
            except NoNodeError:
                self._gone(paths[0])
                return found
            new = [p for p in children(paths[0], names) if p not in self._tracked]
            if not new:
                return found
            paths = new
        roots_are_keys = all(self._is_key_path(p) for p in paths)
        if single:
            # Data changed: re-arm the data watch and read (children have their own watch).
            for path in paths:
                try:
                    data, stat = self._tree.wait(client.get_async(path, watch=self._on_event))
                except NoNodeError:
                    self._gone(path)
                    continue
                on_node(path, data, stat)
            return found
        self._tree.scan(
            paths,
            root_is_key=roots_are_keys,
            watch=self._on_event,
            skip=self._tracked.__contains__,
            on_node=on_node,
            on_gone=self._gone if emit else None,
            on_denied=self._deny,
        )
        return found

    def _arm_base(self, *, emit: bool) -> dict[str, Entry]:
        """One-shot mode: watch the prefix's znode: its tree if it exists, its
        creation if not."""
        stat = self._tree.wait(self._client.exists_async(self._base, watch=self._on_event))
        if stat is None:
            return {}
        return self._scan([self._base], emit=emit)

    def _add_persistent(self) -> bool:
        """(Re-)add the persistent recursive watch; False when the server has none
        (older than 3.6), after which this watch uses one-shot watches."""
        assert self._router is not None
        try:
            self._tree.wait(self._router.add(self._base, self._on_event))
            return True
        except UnimplementedError as exc:
            self._router.discard(self._base, self._on_event, tell_server=False)
            self._router = None
            self._persistent_unavailable(exc)
            return False

    def _rescan(self) -> dict[str, Entry]:
        """Arm the server's watches, then read the whole tree below the prefix."""
        found = self._read_tree()
        if self._base in self._denied:
            raise NoAuthError()  # the prefix itself is unreadable: AccessDeniedError
        return found

    def _read_tree(self) -> dict[str, Entry]:
        self._tracked.clear()
        if self._router is None or not self._add_persistent():
            return self._arm_base(emit=False)
        # The watch is in place before the read, so nothing falls between the two.
        found: dict[str, Entry] = {}
        self._tree.scan(
            [self._base],
            root_is_key=bool(self._prefix),
            on_node=lambda path, data, stat: self._found(path, data, stat, emit=False, into=found),
            on_denied=self._deny,
        )
        return found

    def _resync(self) -> None:
        self._denied.clear()
        current = self._rescan()
        # What this client may not read (any more) is not reported as deleted: its
        # last delivered state stands, as for a key whose read failed.
        for path in self._denied:
            key = self._tree.key(path)
            for known_key, entry in self._known.items():
                if in_prefix(known_key, key) and known_key not in current:
                    current[known_key] = entry
        for change in diff_listings(self._known, current):
            self._dispatcher.submit(change)
        self._known = current
        self._resyncs += 1

    def _deny(self, path: str) -> None:
        """A znode below the prefix is unreadable to this client (its ACL): skip it and
        its subtree, and say so once per path (``get``/``list`` raise AccessDeniedError)."""
        if path not in self._denied:
            self._denied.add(path)
            log.warning(
                "zookeeper watch on %r cannot read %s (NoAuth): changes there are not delivered",
                self._prefix,
                path,
                extra=log_event("veltrix.watch.access_denied", key=self._prefix),
            )

    def _gone(self, path: str) -> None:
        self._tracked.discard(path)
        if self._is_key_path(path):
            self._emit(self._tree.key(path), None)

    def _emit(self, key: str, entry: Entry | None, changed_at: float | None = None) -> None:
        emit_if_changed(self._known, self._dispatcher, key, entry, changed_at)

    def _release(self) -> None:
        """Stop hearing from kazoo: the state listener and the server-side watch."""
        self._client.remove_listener(self._on_state)
        if self._router is not None:
            with contextlib.suppress(Exception):  # best effort: the watch dies with us
                self._router.discard(self._base, self._on_event)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._release()
        self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        self._dispatcher.stop()
        self._on_stop(self)
