"""``redis://host:6379/0[/namespace]``: Redis as a configuration store (and the L2 cache's link).

Layout inside one Redis database, all keys of a namespace under one hash tag (so
they share a Cluster slot and one transaction can touch them all)::

    veltrix:{<namespace>}:e:<key>   hash: v (value), r (version), ct (content type)
    veltrix:{<namespace>}:index     sorted set of every key (score 0): prefix lists by ZRANGEBYLEX
    veltrix:{<namespace>}:rev       the namespace's revision counter
    veltrix:{<namespace>}:log       stream of changes, entry id ``0-<rev>``: k, v, ct (or d=1)

Every write is one optimistic transaction (``WATCH`` entry + rev, ``MULTI``,
``EXEC``): the revision goes up by exactly one per committed write and is the
written key's version, so compare-and-set never suffers ABA after delete and
re-create, and the change log has no holes. A watch reads the change log with
``XREAD BLOCK`` from the last revision it delivered; a hole (log trimmed past a
slow watcher) or a revision that went backwards (Redis restarted empty or was
flushed) makes it diff a fresh listing against what it knew, so no change is lost.

Credentials never go in the URL: ``REDIS_USERNAME`` / ``REDIS_PASSWORD`` from the
environment (``password_env=NAME`` picks another variable). ``rediss://`` is TLS
(``ca_file=``, ``tls_verify=``); ``redis+sentinel://s1:26379,s2:26379/service/0``
asks Sentinel for the current master; ``redis+cluster://h1:7000,h2:7001/0`` is Redis
Cluster (database 0 only) through ``redis.cluster.RedisCluster``, built on first use
(its constructor talks to the cluster), with the namespace's hash tag keeping every
transaction, the index and the change log on one slot.

``aget`` (:class:`veltrix.backend.SupportsAsyncGet`) reads one key through
``redis.asyncio`` on the running event loop, for ``veltrix.aio.AsyncClient``'s misses:
``redis://`` and ``rediss://`` only (Sentinel and Cluster URLs read on threads). The
reads asked for in one loop iteration go out together as pipelines, at most
``ASYNC_CONNECTIONS`` in flight; the connection is opened on first use and tied to
that loop.

:mod:`veltrix.redis_connect` (URL targets, TLS, Sentinel, Cluster, error classes) is how
this store, the L2 cache (:mod:`veltrix.shared_cache`) and ``veltrix check`` reach Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Self

import redis
import redis.exceptions

from veltrix.backend import AbsentType, Change, Entry
from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    VeltrixError,
)
from veltrix.keys import in_prefix, normalize_prefix, validate_key
from veltrix.loop_bound import LoopBound
from veltrix.redis_connect import (
    ALL_ERRORS,
    ASYNCIO_SCHEMES,
    AUTH_ERRORS,
    SCHEMES,
    TRANSIENT_ERRORS,
    connect,
    connect_asyncio,
    describe_error,
    parse_target,
    read_settings,
)
from veltrix.urls import Options, parse_url, redact_url
from veltrix.values import check_expected_version, check_value, prepare_batch
from veltrix.watching import ChangeLogWatch, ChangeRecord, WatchSet

log = logging.getLogger("veltrix.redis")

#: Values are held twice (entry + change log) and travel in one reply: keep them modest.
DEFAULT_MAX_VALUE_BYTES = 4 * 1024 * 1024
#: Change-log entries kept for watchers (approximate trimming).
DEFAULT_LOG_SIZE = 10_000
#: Optimistic transactions retried this often when other writers keep winning.
WRITE_ATTEMPTS = 50
#: Writes per ``put_many`` transaction when ``atomic=False`` splits a batch; also the
#: batch size suggested to callers (``RedisBackend.max_batch_ops``).
MAX_BATCH_OPS = 1000
#: Pipelines in flight at once on the asyncio connection (``aget``); more wait for one.
ASYNC_CONNECTIONS = 32
#: Reads sent in one pipeline, at most (``aget`` batches those of one loop iteration).
PIPELINE_READS = 128

ItemValue = bytes | None
_BatchItems = list[tuple[str, bytes | None, str | AbsentType | None]]  # ``list`` is shadowed

_WATCH_ERRORS: tuple[type[BaseException], ...] = (*ALL_ERRORS, BackendError)


def _tag(namespace: str) -> str:
    return "veltrix:{" + (namespace or "/") + "}:"


class RedisBackend:
    schemes: ClassVar[tuple[str, ...]] = SCHEMES
    #: Versions are a store-wide revision (``SupportsOrderedVersions``).
    versions_increase: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    max_value_bytes: ClassVar[int | None] = DEFAULT_MAX_VALUE_BYTES
    #: ``put(content_type=)`` is stored and read back (``SupportsContentType``).
    keeps_content_type: ClassVar[bool] = True
    #: A hint for callers batching writes through :meth:`put_many`.
    max_batch_ops: ClassVar[int] = MAX_BATCH_OPS

    def __init__(
        self,
        client: Any,
        *,
        url: str,
        namespace: str = "",
        log_size: int = DEFAULT_LOG_SIZE,
        block: float = 1.0,
        connect_watch: Callable[[], Any] | None = None,
        connect_async: Callable[[], Any] | None = None,
    ) -> None:
        self._r: Any = client  # redis.Redis (typed loosely: replies depend on the protocol)
        self.url = url
        self.namespace = namespace
        self._tag = _tag(namespace)
        self._index = self._tag + "index"
        self._rev = self._tag + "rev"
        self._log = self._tag + "log"
        self._log_size = log_size
        self._block = block
        self._connect_watch = connect_watch
        self._watches: WatchSet[ChangeLogWatch] = WatchSet()
        self._closed = False
        # The redis.asyncio client of ``aget``, with its reads, on the loop it belongs to.
        self._connect_async = connect_async
        self.native_async = connect_async is not None
        self._areads: LoopBound[_PipelinedReads] = LoopBound(self, "connection")

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        where = parsed.redacted
        opts = Options(parsed.query, options, where=where)
        timeout = opts.float("timeout", 5.0, minimum=0.001)
        connect_timeout = opts.float("connect_timeout", 5.0, minimum=0.001)
        log_size = opts.int("log_size", DEFAULT_LOG_SIZE, minimum=100)
        block = opts.float("watch_block", 1.0, minimum=0.01)
        target = parse_target(parsed)
        settings = read_settings(target, opts, where=where)
        opts.finish()
        client = connect(
            target, settings, timeout=timeout, connect_timeout=connect_timeout, where=where
        )
        namespace = "/".join(target.path)
        if namespace:
            try:
                namespace = validate_key(namespace)
            except Exception as exc:
                raise ConfigurationError(f"{where}: bad namespace {namespace!r}: {exc}") from exc

        def connect_watch() -> Any:
            # Watches block in XREAD: their own connection, with a read timeout past the block.
            return connect(
                target,
                settings,
                timeout=block + timeout,
                connect_timeout=connect_timeout,
                where=where,
            )

        def connect_async() -> Any:
            return connect_asyncio(
                target,
                settings,
                timeout=timeout,
                connect_timeout=connect_timeout,
                max_connections=ASYNC_CONNECTIONS,
            )

        return cls(
            client,
            url=url,
            namespace=namespace,
            log_size=log_size,
            block=block,
            connect_watch=connect_watch,
            connect_async=connect_async if target.scheme in ASYNCIO_SCHEMES else None,
        )

    def __repr__(self) -> str:
        return f"RedisBackend({redact_url(self.url)!r})"

    # -- plumbing --------------------------------------------------------------------

    def _ekey(self, key: str) -> str:
        return self._tag + "e:" + key

    def _entry(self, key: str, fields: Mapping[bytes, bytes]) -> Entry:
        ct = fields.get(b"ct")
        return Entry(
            key,
            bytes(fields.get(b"v", b"")),
            fields[b"r"].decode(),
            ct.decode() if ct else None,
            source=f"{redact_url(self.url)}#{key}",
        )

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        try:
            return fn()
        except ALL_ERRORS as exc:
            raise self._error(what, exc) from exc

    def _error(self, what: str, exc: BaseException) -> VeltrixError:
        """The typed error for ``exc``, one of :data:`ALL_ERRORS` (secret-free: the
        URL redacted, never the server's reply to a credential)."""
        where = f"{redact_url(self.url)}: {what}"
        if isinstance(exc, AUTH_ERRORS):
            return AccessDeniedError(f"{where}: access denied")
        if isinstance(exc, redis.exceptions.CrossSlotTransactionError):  # a bug: keys share a tag
            return BackendError(f"{where}: {type(exc).__name__}")
        if isinstance(exc, TRANSIENT_ERRORS):
            return BackendUnavailableError(f"{where}: {describe_error(exc)}")
        if isinstance(exc, redis.exceptions.ResponseError):
            message = str(exc).split("\n", 1)[0]
            if message.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
                return AccessDeniedError(f"{where}: access denied")
            if message.startswith(("LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN")):
                return BackendUnavailableError(f"{where}: {message}")
            return BackendError(f"{where}: {message}")
        return BackendError(f"{where}: {type(exc).__name__}")

    # -- reads -----------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        validate_key(key)
        fields = self._call("get", lambda: self._r.hgetall(self._ekey(key)))
        if not fields or b"r" not in fields:
            return None
        return self._entry(key, fields)

    async def aget(self, key: str) -> Entry | None:
        """As :meth:`get`, on the running event loop through ``redis.asyncio``: the
        same key layout, the same errors. The connection is opened on first use and
        belongs to that loop; from another loop this raises ConfigurationError until
        :meth:`aclose`. Standalone ``redis://`` and ``rediss://`` only
        (``native_async``): Sentinel and Cluster URLs read on threads."""
        validate_key(key)
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        try:
            fields = await self._async_reads().read(self._ekey(key))
        except ALL_ERRORS as exc:
            raise self._error("get", exc) from exc
        if not fields or b"r" not in fields:
            return None
        return self._entry(key, fields)

    def _async_reads(self) -> _PipelinedReads:
        connect = self._connect_async
        if connect is None:
            raise ConfigurationError(f"{self!r} has no asyncio connection (native_async)")
        return self._areads.get(lambda: _PipelinedReads(connect(), asyncio.get_running_loop()))

    async def aclose(self) -> None:
        """Close the asyncio connection; the next :meth:`aget` opens another, on its
        own loop. From another loop than the connection's, the connection is only
        dropped (its sockets close with their loop, or when collected)."""
        reads, loop = self._areads.release()
        if reads is not None and loop is asyncio.get_running_loop():
            with contextlib.suppress(*ALL_ERRORS):
                await reads.r.aclose()
                await reads.r.connection_pool.disconnect()

    def _list_entries(self, prefix: str) -> list[Entry]:
        def run() -> list[Entry]:
            if prefix:
                keys = self._r.zrangebylex(self._index, "[" + prefix, "(" + prefix + "0")
            else:
                keys = self._r.zrangebylex(self._index, "-", "+")
            names = [k.decode() for k in keys]
            names = [k for k in names if in_prefix(k, prefix)]
            if not names:
                return []
            pipe = self._r.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self._ekey(name))
            rows = pipe.execute()
            return [
                self._entry(name, fields)
                for name, fields in zip(names, rows, strict=True)
                if fields and b"r" in fields
            ]

        result: list[Entry] = self._call("list", run)
        return result

    def list(self, prefix: str) -> Iterator[Entry]:
        return iter(self._list_entries(normalize_prefix(prefix)))

    # -- writes ----------------------------------------------------------------------

    def _transact(self, key: str, what: str, body: Callable[[Any, str | None, int], Any]) -> Any:
        """Run ``body(pipe, current_version, next_rev)`` as one optimistic transaction.

        ``body`` queues commands after ``pipe.multi()`` (it calls it) or returns
        without queueing anything; its return value is returned after ``EXEC``.
        """
        ekey = self._ekey(key)

        def run() -> Any:
            with self._r.pipeline(transaction=True) as pipe:
                for attempt in range(WRITE_ATTEMPTS):
                    try:
                        pipe.watch(ekey, self._rev)
                        current = pipe.hget(ekey, "r")
                        rev = int(pipe.get(self._rev) or 0)
                        result = body(pipe, None if current is None else current.decode(), rev + 1)
                        if len(pipe):  # body queued writes after MULTI (both pipeline kinds)
                            pipe.execute()
                        else:
                            pipe.unwatch()
                        return result
                    except redis.exceptions.WatchError:
                        pipe.reset()
                        time.sleep(min(0.001 * (attempt + 1), 0.02))
                raise BackendUnavailableError(
                    f"{redact_url(self.url)}: {what} {key!r}: too many concurrent writers"
                )

        return self._call(what, run)

    def _queue_log(self, pipe: Any, rev: int, fields: dict[str, bytes | str]) -> None:
        pipe.set(self._rev, rev)
        pipe.xadd(self._log, fields, id=f"0-{rev}", maxlen=self._log_size, approximate=True)

    def put(
        self,
        key: str,
        value: bytes,
        *,
        if_version: str | AbsentType | None = None,
        content_type: str | None = None,
    ) -> str:
        validate_key(key)
        value = check_value(key, value, self.max_value_bytes)

        def body(pipe: Any, current: str | None, rev: int) -> str:
            check_expected_version(key, current, if_version)
            fields: dict[str, bytes | str] = {"v": value, "r": str(rev)}
            pipe.multi()
            pipe.delete(self._ekey(key))
            if content_type:
                fields["ct"] = content_type
            pipe.hset(self._ekey(key), mapping=fields)
            pipe.zadd(self._index, {key: 0})
            self._queue_log(pipe, rev, {"k": key, **fields})
            return str(rev)

        result: str = self._transact(key, "put", body)
        return result

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        validate_key(key)

        def body(pipe: Any, current: str | None, rev: int) -> bool:
            if if_version is not None:
                check_expected_version(key, current, if_version)
            if current is None:
                return False
            pipe.multi()
            pipe.delete(self._ekey(key))
            pipe.zrem(self._index, key)
            self._queue_log(pipe, rev, {"k": key, "d": "1"})
            return True

        result: bool = self._transact(key, "delete", body)
        return result

    def put_many(
        self,
        items: Mapping[str, ItemValue] | Iterable[tuple[str, ItemValue]],
        *,
        atomic: bool = True,
        if_versions: Mapping[str, str | AbsentType] | None = None,
    ) -> dict[str, str | None]:
        """Write many keys in one ``WATCH``/``MULTI``/``EXEC`` transaction; ``None`` deletes.

        Returns ``{key: new version}`` (``None`` for deletes). Each write takes the next
        revision (so the change log stays gap-free for watchers); ``if_versions`` adds
        compare-and-set per key (a version, or :data:`Absent` for create-only), checked
        under ``WATCH``: a lost compare raises :class:`VersionConflictError` with nothing
        written, and a concurrent write to any of the keys makes the transaction start
        over. ``atomic=True`` (default): one transaction, all or nothing.
        ``atomic=False``: transactions of at most ``MAX_BATCH_OPS`` writes, each all or
        nothing; if one fails, the error says how many keys were written before it
        (those stay written) and nothing after it is attempted.
        """
        batch: _BatchItems = prepare_batch(
            items, if_versions, lambda key, raw: check_value(key, raw, self.max_value_bytes)
        )
        size = len(batch) if atomic else MAX_BATCH_OPS
        result: dict[str, str | None] = {}
        done = 0
        for start in range(0, len(batch), max(size, 1)):
            chunk = batch[start : start + size]
            try:
                result.update(self._transact_many(chunk))
            except VeltrixError as exc:
                if not done:
                    raise
                raise type(exc)(f"{exc}; {done} earlier writes stay applied") from exc
            done += len(chunk)
        return result

    def _transact_many(self, chunk: _BatchItems) -> dict[str, str | None]:
        ekeys = [self._ekey(key) for key, _, _ in chunk]
        what = f"batch of {len(chunk)} writes"

        def run() -> dict[str, str | None]:
            with self._r.pipeline(transaction=True) as pipe:
                for attempt in range(WRITE_ATTEMPTS):
                    try:
                        pipe.watch(*ekeys, self._rev)
                        # Read on another connection in one round trip: WATCH (already
                        # answered) covers every change made after it, whoever reads.
                        reader = self._r.pipeline(transaction=False)
                        for ekey in ekeys:
                            reader.hget(ekey, "r")
                        reader.get(self._rev)
                        *currents, rev_raw = reader.execute()
                        rev = int(rev_raw or 0)
                        for (key, _, if_version), current in zip(chunk, currents, strict=True):
                            check_expected_version(
                                key, None if current is None else current.decode(), if_version
                            )
                        pipe.multi()
                        out: dict[str, str | None] = {}
                        writes = 0
                        for (key, value, _), current in zip(chunk, currents, strict=True):
                            out[key] = None
                            if value is None and current is None:
                                continue  # nothing to delete: no revision, no log entry
                            rev += 1
                            writes += 1
                            pipe.delete(self._ekey(key))
                            if value is None:
                                pipe.zrem(self._index, key)
                                self._queue_log(pipe, rev, {"k": key, "d": "1"})
                            else:
                                fields: dict[str, bytes | str] = {"v": value, "r": str(rev)}
                                pipe.hset(self._ekey(key), mapping=fields)
                                pipe.zadd(self._index, {key: 0})
                                self._queue_log(pipe, rev, {"k": key, **fields})
                                out[key] = str(rev)
                        if writes:
                            pipe.execute()
                        else:
                            pipe.reset()
                        return out
                    except redis.exceptions.WatchError:
                        pipe.reset()
                        time.sleep(min(0.001 * (attempt + 1), 0.02))
                raise BackendUnavailableError(
                    f"{redact_url(self.url)}: {what}: too many concurrent writers"
                )

        result: dict[str, str | None] = self._call(what, run)
        return result

    # -- watch -----------------------------------------------------------------------

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> ChangeLogWatch:
        """Follows the namespace's change log from the revision it starts at."""
        prefix = normalize_prefix(prefix)
        if self._connect_watch is None:  # pragma: no cover - from_url always sets it
            raise ConfigurationError(f"{self!r} was not opened from a URL and cannot watch")
        changes = _RedisChangeLog(self, prefix, self._connect_watch())
        try:
            start = self._call("watch", changes.baseline)
        except BaseException:
            changes.close()
            raise
        return self._watches.add(
            ChangeLogWatch(
                changes,
                prefix,
                on_change,
                start=start,
                name=f"veltrix-redis-watch-{prefix}",
                where=redact_url(self.url),
                errors=_WATCH_ERRORS,
                join_timeout=self._block + 5,
                on_stop=self._watches.discard,
            )
        )

    def close(self) -> None:
        if self._closed:
            return
        self._watches.stop_all()
        self._closed = True
        # An asyncio connection not closed with aclose() on its loop is dropped here;
        # its sockets close with its loop (or when collected).
        self._areads.release()
        with contextlib.suppress(*ALL_ERRORS):
            self._r.close()


class _PipelinedReads:
    """The ``HGETALL`` s asked for during one loop iteration, sent together at the
    start of the next: one pipeline (no transaction) per ``PIPELINE_READS`` keys, at
    most ``ASYNC_CONNECTIONS`` pipelines in flight. A burst of misses costs a few
    round trips instead of one each, and the loop parses the replies in bulk."""

    def __init__(self, r: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.r = r  # the redis.asyncio client
        self._loop = loop
        self._pending: list[tuple[str, asyncio.Future[Any]]] = []
        self._slots = asyncio.Semaphore(ASYNC_CONNECTIONS)
        self._sending: set[asyncio.Task[None]] = set()

    def read(self, name: str) -> asyncio.Future[Any]:
        """The fields of the hash ``name`` (a future; redis-py's errors as it raises them)."""
        future = self._loop.create_future()
        self._pending.append((name, future))
        if len(self._pending) == 1:
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), PIPELINE_READS):
            task = self._loop.create_task(self._send(pending[start : start + PIPELINE_READS]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, chunk: list[tuple[str, asyncio.Future[Any]]]) -> None:
        try:
            async with self._slots:
                pipe = self.r.pipeline(transaction=False)
                for name, _ in chunk:
                    pipe.hgetall(name)
                replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:  # the connection is closing: so do the reads
            for _, future in chunk:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in chunk:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(chunk, replies, strict=True):
            if future.done():  # its reader was cancelled
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


class _RedisChangeLog:
    """The namespace's change-log stream as a :class:`veltrix.watching.ChangeLog`, on
    a connection of its own; a read blocks up to ``watch_block`` seconds. Each record
    carries the key's state as of that change."""

    def __init__(self, backend: RedisBackend, prefix: str, r: Any) -> None:
        self._backend = backend
        self._prefix = prefix
        self._r = r

    def baseline(self) -> tuple[int, dict[str, Entry]]:
        """The current revision and the entries under the prefix, consistently."""
        backend = self._backend
        while True:
            rev = int(self._r.get(backend._rev) or 0)
            known = {e.key: e for e in backend._list_entries(self._prefix)}
            if int(self._r.get(backend._rev) or 0) == rev:
                return rev, known

    def read_after(self, revision: int) -> list[ChangeRecord] | None:
        backend = self._backend
        block_ms = int(backend._block * 1000)
        reply = self._r.xread({backend._log: f"0-{revision}"}, count=1000, block=block_ms)
        if not reply:
            # Idle: a revision below ours means Redis lost its data (restart, FLUSHDB).
            return None if int(self._r.get(backend._rev) or 0) < revision else []
        records: list[ChangeRecord] = []
        for entry_id, fields in reply[0][1]:
            key = fields[b"k"].decode()
            deleted = fields.get(b"d") or not in_prefix(key, self._prefix)
            records.append(
                (
                    int(entry_id.decode().split("-", 1)[1]),
                    key,
                    None if deleted else backend._entry(key, fields),
                )
            )
        return records

    def close(self) -> None:
        with contextlib.suppress(*ALL_ERRORS):
            self._r.close()


__all__ = ["RedisBackend"]
