"""``put_many`` as ZooKeeper transactions (``multi``).

A batch is cut into transactions that each fit ``jute.maxbuffer``
(:func:`chunk_sizes`), and each is committed by :func:`commit`: read the znodes
it touches (pipelined), check the callers' compare-and-set versions, build one
``multi`` that carries each znode's own version, and start over when a znode
changed in between. Everything the backend lends it is explicit: the
:class:`ZnodeTree`, the ACL for new znodes and the error translation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.serialization import Create, SetData
from kazoo.protocol.states import ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE

from veltrix.adapters.zookeeper.tree import Fail, ZnodeTree, ancestors, depth
from veltrix.backend import AbsentType
from veltrix.errors import VeltrixError, VersionConflictError
from veltrix.values import check_expected_version

#: The server's default ``jute.maxbuffer`` (0xfffff): no request packet may be larger.
JUTE_MAXBUFFER = 0xFFFFF
#: Attempts of a write that races with concurrent creates/deletes of the same znodes.
WRITE_ATTEMPTS = 8
#: Upper bounds of the framing around one operation of a multi request (multi header,
#: length prefixes, version/flags) and around the whole request.
_OP_OVERHEAD = 48
_TXN_OVERHEAD = 64

NodeState = tuple[bytes | None, ZnodeStat] | None


@dataclass(frozen=True)
class Item:
    """One write of a batch: a put (``value`` bytes) or a delete (``None``)."""

    key: str
    path: str
    value: bytes | None
    if_version: str | AbsentType | None


Items = list[Item]
SizedChunks = list[tuple[Items, int]]


def op_bytes(item: Item, counted: set[str], acl_bytes: int) -> tuple[int, list[str]]:
    """An upper bound of the request bytes ``item`` adds to a transaction that
    already counts the parents in ``counted``, and the parents it adds (every
    parent counted as created: whether it exists is not known before I/O)."""
    size = len(item.path.encode()) + len(item.value or b"") + acl_bytes + _OP_OVERHEAD
    parents = [] if item.value is None else [p for p in ancestors(item.path) if p not in counted]
    size += sum(len(p.encode()) + acl_bytes + _OP_OVERHEAD for p in parents)
    return size, parents


def chunk_sizes(batch: Items, acl_bytes: int) -> SizedChunks:
    """``batch`` in order, cut into transactions that each fit jute.maxbuffer (a
    single item that does not is a chunk of its own), with their sizes."""
    chunks: SizedChunks = []
    current: Items = []
    counted: set[str] = set()
    size = _TXN_OVERHEAD
    for item in batch:
        cost, parents = op_bytes(item, counted, acl_bytes)
        if current and size + cost > JUTE_MAXBUFFER:
            chunks.append((current, size))
            current, counted, size = [], set(), _TXN_OVERHEAD
            cost, parents = op_bytes(item, counted, acl_bytes)
        size += cost
        counted.update(parents)
        current.append(item)
    if current:
        chunks.append((current, size))
    return chunks


def read_state(tree: ZnodeTree, chunk: Items) -> tuple[dict[str, NodeState], set[str]]:
    """``({item path: (data, stat) or None when absent}, {missing parent paths})``,
    read with pipelined requests."""
    client = tree.client
    gets = [(item.path, client.get_async(item.path)) for item in chunk]
    puts = {item.path for item in chunk if item.value is not None}
    parents = sorted({a for path in puts for a in ancestors(path)} - puts)
    checks = [(path, client.exists_async(path)) for path in parents]
    state: dict[str, NodeState] = {}
    for path, result in gets:
        try:
            state[path] = tree.wait(result)
        except NoNodeError:
            state[path] = None
    missing = {path for path, result in checks if tree.wait(result) is None}
    return state, missing


def commit(
    tree: ZnodeTree, chunk: Items, what: str, *, acl: list[Any] | None, fail: Fail
) -> dict[str, str | None]:
    """One chunk as one transaction, re-read and retried when a znode changed
    between the read and the commit. Returns ``{key: new version or None}``."""
    for _ in range(WRITE_ATTEMPTS):
        try:
            state, missing = read_state(tree, chunk)
        except VeltrixError:
            raise
        except Exception as exc:
            fail(exc, what)
        for item in chunk:
            node = state[item.path]
            current = None if node is None or node[0] is None else str(node[1].mzxid)
            check_expected_version(item.key, current, item.if_version)
        txn, created, removed = build(tree, chunk, state, missing, acl)
        if not txn.operations:  # only deletes of keys that are not there
            return {item.key: None for item in chunk}
        try:
            results = tree.wait(txn.commit_async())
        except Exception as exc:
            fail(exc, what)
        failure = next(
            (
                r
                for r in results
                if isinstance(r, Exception)
                and not isinstance(r, RolledBackError | RuntimeInconsistency)
            ),
            None,
        )
        if failure is None:
            try:
                version = (
                    txn_version(tree, results, created)
                    if any(item.value is not None for item in chunk)
                    else None
                )
            except VeltrixError:
                raise
            except Exception as exc:
                fail(exc, what)
            for path in removed:
                tree.prune(path)
            return {item.key: None if item.value is None else version for item in chunk}
        if isinstance(failure, BadVersionError | NodeExistsError | NoNodeError | NotEmptyError):
            continue  # a znode changed since it was read: read again
        fail(failure, what)
    raise VersionConflictError(f"{what}: the znodes kept changing during the transaction")


def build(
    tree: ZnodeTree,
    chunk: Items,
    state: Mapping[str, NodeState],
    missing: set[str],
    acl: list[Any] | None,
) -> tuple[Any, list[str], list[str]]:
    """The transaction for ``chunk``: creates and sets, parents first, then
    deletes, children first. Returns it with the paths it creates and removes."""
    txn = tree.client.transaction()
    acl = acl or OPEN_ACL_UNSAFE
    writes: list[tuple[str, bytes | None, ZnodeStat | None]] = [
        (path, None, None)
        for path in missing  # null parents
    ]
    deletes: Items = []
    for item in chunk:
        node = state[item.path]
        if item.value is None:
            if node is not None and node[0] is not None:
                deletes.append(item)
        else:
            writes.append((item.path, item.value, None if node is None else node[1]))
    created = [path for path, _, stat in writes if stat is None]
    new_children: dict[str, int] = {}
    for path in created:
        parent = path.rsplit("/", 1)[0]
        new_children[parent] = new_children.get(parent, 0) + 1
    for path, value, stat in sorted(writes, key=lambda w: depth(w[0])):
        if stat is None:
            # kazoo's builder refuses a null data buffer; ZooKeeper takes one (a
            # parent that is not a key), so the request is added as it goes on the wire
            txn.operations.append(Create(path, value, acl, 0))
        else:
            assert value is not None
            txn.set_data(path, value, stat.version)
    removed: list[str] = []
    gone_children: dict[str, int] = {}
    for item in sorted(deletes, key=lambda i: -depth(i.path)):
        node = state[item.path]
        assert node is not None
        stat = node[1]
        left = stat.numChildren - gone_children.get(item.path, 0)
        if left == 0 and not new_children.get(item.path):
            txn.delete(item.path, stat.version)
            removed.append(item.path)
            parent = item.path.rsplit("/", 1)[0]
            gone_children[parent] = gone_children.get(parent, 0) + 1
        else:  # keep the children: the node becomes a null parent
            txn.operations.append(SetData(item.path, None, stat.version))
    return txn, created, removed


def txn_version(tree: ZnodeTree, results: list[Any], created: list[str]) -> str:
    """The zxid of a committed transaction: the ``mzxid`` of any znode it set, else
    the ``czxid`` of a znode it created."""
    for result in results:
        if isinstance(result, ZnodeStat):
            return str(result.mzxid)
    for path in created:
        stat = tree.wait(tree.client.exists_async(path))
        if stat is not None:
            return str(stat.czxid)
    raise VersionConflictError("every znode of the batch was deleted right after it")
