"""The znodes below one chroot on one kazoo client: paths and keys, entries, pipelined walks.

The backend, its transactions and its watches all read the tree through one
:class:`ZnodeTree`, so none of them reaches into another's state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoAuthError, NoNodeError, NotEmptyError
from kazoo.protocol.states import WatchedEvent, ZnodeStat

from veltrix.backend import Entry
from veltrix.log_events import event as log_event

log = logging.getLogger("veltrix.zookeeper")

#: Requests kept in flight at once by ``list`` and the watch's tree scans.
PIPELINE_DEPTH = 1000

NodeCallback = Callable[[str, bytes | None, ZnodeStat | None], None]
PathCallback = Callable[[str], None]
#: Turns a kazoo exception into a Veltrix error (the backend's translation).
Fail = Callable[[BaseException, str], NoReturn]


def depth(path: str) -> int:
    return path.count("/")


def ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]``."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def children(path: str, names: list[str]) -> list[str]:
    """The paths of ``path``'s children ``names`` (the server's ``/zookeeper`` left out)."""
    if path == "/":
        return ["/" + n for n in names if n != "zookeeper"]
    return [f"{path}/{n}" for n in names]


@dataclass(frozen=True, slots=True)
class ZnodeTree:
    """Read access to the znodes below ``root`` (``""`` for the whole tree)."""

    client: KazooClient
    root: str
    url: str
    timeout: float

    def wait(self, result: Any) -> Any:
        """The value of a kazoo async result, or its kazoo exception."""
        return result.get(timeout=self.timeout)

    def key(self, path: str) -> str:
        return path[len(self.root) + 1 :]

    def entry(self, key: str, data: bytes, stat: ZnodeStat) -> Entry:
        return Entry(key, data, str(stat.mzxid), source=f"{self.url}/{key}")

    def scan(
        self,
        roots: list[str],
        *,
        root_is_key: bool,
        watch: Callable[[WatchedEvent], None] | None = None,
        skip: Callable[[str], bool] | None = None,
        on_node: NodeCallback,
        on_gone: PathCallback | None = None,
        on_denied: PathCallback | None = None,
    ) -> None:
        """Walk the trees at ``roots`` one level per round trip (requests pipelined).

        Calls ``on_node(path, data, stat)`` for every znode found (data ``None``
        for null parents; data and stat ``None`` for a root that is not a key) and
        ``on_gone(path)`` for a znode that vanished during the walk, and
        ``on_denied(path)`` (when given; else the error is raised) for one this
        client may not read, whose subtree is then skipped. With ``watch``,
        arms a data and a child watch on every znode read.
        """
        client = self.client
        level = [(path, root_is_key) for path in roots]
        while level:
            batch, level = level[:PIPELINE_DEPTH], level[PIPELINE_DEPTH:]
            pending = [
                (
                    path,
                    client.get_async(path, watch=watch) if is_key else None,
                    client.get_children_async(path, watch=watch),
                )
                for path, is_key in batch
            ]
            for path, data_result, children_result in pending:
                try:
                    names = self.wait(children_result)
                    data, stat = self.wait(data_result) if data_result else (None, None)
                except NoNodeError:
                    if on_gone is not None:
                        on_gone(path)
                    continue
                except NoAuthError:
                    if on_denied is None:
                        raise
                    on_denied(path)
                    continue
                on_node(path, data, stat)
                for child in children(path, names):
                    if skip is None or not skip(child):
                        level.append((child, True))

    def prune(self, path: str) -> None:
        """Remove null ancestors of ``path`` left without children (best effort)."""
        parent = path.rsplit("/", 1)[0]
        while len(parent) > len(self.root) and parent:
            try:
                data, stat = self.wait(self.client.get_async(parent))
                if data is not None or stat.numChildren:
                    return
                self.wait(self.client.delete_async(parent, stat.version))
            except (NoNodeError, NotEmptyError, BadVersionError):
                return
            except Exception as exc:
                log.debug(
                    "pruning %s stopped: %s",
                    parent,
                    type(exc).__name__,
                    extra=log_event("veltrix.zookeeper.prune_stopped", error=exc),
                )
                return
            parent = parent.rsplit("/", 1)[0]
