"""``veltrix.aio.AsyncClient``: the caching client for asyncio code.

It is a :class:`veltrix.Client` underneath, so policy, errors, the shared cache,
the last-known-good file, store health and watches are the same. What differs is where
the waiting happens:

- a hit reads the client's fresh dicts directly inside the coroutine: no thread
  hop, no I/O, no lock;
- with ``native_reads=True``, a plain miss (a key the client holds nothing for, no
  shared cache, no last-known-good entry, the store up, an untyped ``get``) of a
  store with a sound asyncio client of its own
  (:class:`~veltrix.backend.SupportsAsyncGet`: Redis standalone, Consul, the GCP
  stores over gRPC) is read on the loop through that client; the client's own methods
  count it, time it, feed the store's health, retry it and install its answer under
  the same rule as a threaded miss (a write or change that came meanwhile wins);
- anything else that may wait on a store (other misses, refreshes, writes,
  listings) runs on worker threads that start as calls wait (at most
  ``max_workers``, 32 by default) and retire when idle, so the event loop never
  blocks; tasks that miss the same key at the same time share one call (single-flight
  across tasks, on top of the client's own across threads);
- ``changes(prefix)`` turns the store's watch into an async iterator.

What a miss costs the loop: before its first ``await``, a dict lookup, one future
and a list append (the key is checked on the worker, by the client's own read);
the calls of one loop iteration reach the threads together at the start of the
next, so a burst of tasks takes its first steps before any thread competes with the
loop for the GIL; outcomes come back in batches, settled in one callback.

What stays on threads, and why: the stores without a sound asyncio client here
(kazoo, boto3, the Google clients over REST, sqlite3), Redis Sentinel and Cluster
URLs, and for every store whatever is more than one store call: a refresh or a stale
value to serve (the store's bounded waits and stale-if-error), the shared (L2) cache
with its fleet-wide lock and bus, the last-known-good file, typed reads, models,
listings, writes and their fences. That policy lives in one place, the ``Client``
miss path; the native read reuses its parts rather than copying it. A store's
asyncio connection belongs to the first loop that misses natively; the client used
from another loop meanwhile reads on threads there.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import weakref
from asyncio import get_running_loop
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, Self, TypeVar, cast

from veltrix.backend import AbsentType, Backend, Change, Entry, SupportsAsyncGet
from veltrix.client import _NO_DEFAULT, Client, counting_hits_in_all_clients, hit_counting_switches
from veltrix.errors import (
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    KeyNotFoundError,
)
from veltrix.keys import validate_key

T = TypeVar("T")

#: Markers that keep the flights of get_entry and get_model apart from those of get,
#: whose tokens are ``(key, type)``.
_ENTRY = object()
_MODEL = object()
_WATCH = object()  # the flight starting the client's watch

#: Worker threads of an ``AsyncClient`` by default, at most: threads start as misses
#: wait for one, so a client that misses one key at a time keeps one thread.
DEFAULT_MAX_WORKERS = 32
#: Seconds an idle worker thread waits for work before it exits.
IDLE_SECONDS = 30.0


class AsyncClient:
    """``AsyncClient(url, cache=..., ...)``: the arguments of :class:`veltrix.Client`,
    plus ``max_workers``, the threads that wait on the store for the event loop, and
    ``native_reads``: True reads a plain miss through the store's own asyncio client
    where it has one (Redis, Consul, the GCP stores over gRPC); off by default, since
    the threads never stall the loop much whatever the store, where native reads of a
    large burst can (Redis; docs/asyncio.md has the figures per store)."""

    def __init__(
        self,
        store: str | Backend | None = None,
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        native_reads: bool = False,
        **options: Any,
    ) -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ConfigurationError(f"max_workers must be an integer >= 1, got {max_workers!r}")
        self.client = Client(store, **options)
        self._pool = _Workers(max_workers)
        self._flights: dict[Hashable, _Flight] = {}
        self._streams: set[ChangeStream] = set()
        # The store's own asyncio reads, where it has sound ones (see _native_miss).
        backend = self.client.backend
        self._native: SupportsAsyncGet | None = (
            backend
            if native_reads is True
            and isinstance(backend, SupportsAsyncGet)
            and backend.native_async
            else None
        )
        self._native_loop: asyncio.AbstractEventLoop | None = None  # the one it belongs to
        self._native_tasks: set[asyncio.Task[None]] = set()
        self.native_misses = 0  # misses read through the store's asyncio client

    def __repr__(self) -> str:
        return f"Async{self.client!r}"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reads -------------------------------------------------------------------------

    async def get(self, key: str, default: Any = _NO_DEFAULT, type: Any = None) -> Any:
        """As :meth:`veltrix.Client.get`; a hit never leaves the coroutine."""
        client = self.client
        try:
            if type is None:
                return client._fresh[key]
            return client._typed[type][key]
        except (KeyError, TypeError):
            pass
        # A miss. The key is validated on the worker thread, by the client's own read:
        # the loop pays for a dict lookup, one future and a list append, no more.
        token = (key, type)
        try:
            flight = self._flights.get(token)
        except TypeError:  # an unhashable key or type: the client's checks say what is wrong
            return await self._run(client.get, key, default, type)
        loop = get_running_loop()
        if flight is None or flight.loop is not loop:
            flight = self._flights[token] = _Flight(loop, self._flights, token)
            if (
                type is None
                and self._native is not None
                and key.__class__ is str
                and (self._native_loop is loop or self._native_loop is None)
                and client._may_load_alone(key)
            ):
                self._native_loop = loop
                task = loop.create_task(self._native_miss(flight, key))
                self._native_tasks.add(task)
                task.add_done_callback(self._native_tasks.discard)
            else:
                self._pool.submit(flight, client.get, key, _NO_DEFAULT, type)
        try:
            return await flight.join()
        except KeyNotFoundError:
            if default is _NO_DEFAULT:
                raise
            return default

    async def _get_counting(self, key: str, default: Any = _NO_DEFAULT, type: Any = None) -> Any:
        """``get`` that also counts a hit in the client's hit count: ``AsyncClient.get``
        while a metrics exporter is installed (see :mod:`veltrix.instruments`)."""
        client = self.client
        try:
            value = client._fresh[key] if type is None else client._typed[type][key]
        except (KeyError, TypeError):
            return await AsyncClient._get_plain(self, key, default, type)
        client._hits += 1
        return value

    _get_plain = get

    async def get_entry(self, key: str) -> Entry | None:
        validate_key(key)
        return await self._shared((_ENTRY, key), self.client.get_entry, key)

    async def get_model(self, prefix: str, model: type[T]) -> T:
        """As :meth:`veltrix.Client.get_model`; a cached model never leaves the coroutine."""
        try:
            value = self.client._cached_model(prefix, model, _NO_DEFAULT)
        except TypeError:  # unhashable prefix or model: the client's checks say what is wrong
            return await self._run(self.client.get_model, prefix, model)
        if value is not _NO_DEFAULT:
            return value  # type: ignore[no-any-return]
        return await self._shared((_MODEL, prefix, model), self.client.get_model, prefix, model)

    async def list(self, prefix: str = "") -> list[Entry]:
        return await self._run(self.client.list, prefix)

    async def flag(self, name: str, default: bool = False) -> bool:
        if not isinstance(name, str):
            raise InvalidKeyError(f"flag name must be a string, got {type(name).__name__}")
        value = await self.get(f"flags/{name}/enabled", None, bool)
        return default if value is None else bool(value)

    # -- writes ------------------------------------------------------------------------

    async def put(
        self, key: str, value: object, *, if_version: str | AbsentType | None = None
    ) -> str:
        return await self._run(partial(self.client.put, key, value, if_version=if_version))

    async def delete(self, key: str, *, if_version: str | None = None) -> bool:
        return await self._run(partial(self.client.delete, key, if_version=if_version))

    # -- changes -----------------------------------------------------------------------

    def changes(self, prefix: str = "") -> ChangeStream:
        """Every change under ``prefix``, after the cache has been updated.

        ``async for change in client.changes(prefix)`` subscribes on the first step of
        the loop; ``async with client.changes(prefix) as changes`` subscribes on entry,
        so a write made inside the block is never missed. The stream ends when it is
        closed, when the task iterating it is cancelled, or when the client closes.
        """
        return ChangeStream(self, prefix)

    # -- native reads ------------------------------------------------------------------

    async def _native_miss(self, flight: _Flight, key: str) -> None:
        """Load ``key`` through the store's asyncio client; settle ``flight`` with it."""
        try:
            value = await self._native_load(key)
        except asyncio.CancelledError:  # the client closed (or the loop ends) meanwhile
            flight.settle(None, BackendUnavailableError(f"{self!r} closed during the read"))
            raise
        except Exception as exc:
            flight.settle(None, exc)
        else:
            flight.settle(value, None)

    async def _native_load(self, key: str) -> str:
        """The client's miss (:meth:`veltrix.Client._load`) around an awaited store call:
        the same counts, timings, health verdicts, retries and install rule, from the
        client's own methods; only the wait differs. Taken only when
        :meth:`veltrix.Client._may_load_alone` holds (see :meth:`get`)."""
        client = self.client
        native = cast(SupportsAsyncGet, self._native)
        validate_key(key)
        if client._watch_wanted():  # as the first miss of a Client starts it: one thread hop
            await self._shared(_WATCH, client._ensure_watch)
        generation = client._begin_miss(key)
        retries = client.policy.retries
        attempt = 0
        while True:
            started = client._store_call_begins()
            try:
                entry = await native.aget(key)
            except Exception as exc:
                error = client._store_failed(exc, "get", started, read=True)  # or raises
            else:
                client._store_answered("get", started)
                break
            await asyncio.sleep(client._retry_delay(error, attempt, retries))  # or raises
            attempt += 1
        self.native_misses += 1
        record = client._land(key, generation, entry)
        return client._serve(key, record, _NO_DEFAULT, None)  # type: ignore[no-any-return]

    # -- plumbing ----------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return self.client.stats()

    def health(self) -> Any:
        return self.client.health()

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on a worker thread."""
        flight = _Flight(get_running_loop())
        self._pool.submit(flight, call, *args)
        result: T = await flight.join()
        return result

    async def _shared(self, token: Hashable, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on a worker thread, shared by every task asking for ``token``
        meanwhile."""
        flight = self._flights.get(token)
        loop = get_running_loop()
        if flight is None or flight.loop is not loop:
            flight = self._flights[token] = _Flight(loop, self._flights, token)
            self._pool.submit(flight, call, *args)
        result: T = await flight.join()
        return result

    async def aclose(self) -> None:
        """Close the client (and the store it opened) without blocking the loop; open
        change streams end."""
        for stream in list(self._streams):
            stream.close()
        loop = asyncio.get_running_loop()
        if self._native is not None and self._native_loop is not None:
            if self._native_loop is loop:  # reads in flight end (their waiters are told)
                for task in list(self._native_tasks):
                    task.cancel()
            await self._native.aclose()  # closed on its loop, else dropped
            self._native_loop = None
        await loop.run_in_executor(None, self._close)

    def _close(self) -> None:
        self.client.close()
        self._pool.close()


class ChangeStream:
    """The changes under a prefix as an async iterator (see :meth:`AsyncClient.changes`)."""

    def __init__(self, owner: AsyncClient, prefix: str) -> None:
        self._owner = owner
        self._prefix = prefix
        self._queue: asyncio.Queue[Change | None] | None = None
        self._subscription: Any = None
        self._closed = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def start(self) -> None:
        """Subscribe now (idempotent): changes from here on are delivered."""
        if self._queue is not None or self._closed:
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._queue = queue

        def deliver(change: Change) -> None:  # on the client's callback thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, change)

        owner = self._owner
        try:
            subscription = await owner._run(owner.client.watch, self._prefix, deliver)
        except BaseException:
            self._queue = None
            raise
        self._subscription = subscription
        owner._streams.add(self)
        self._stop_if_closed()  # closed while subscribing

    def _stop_if_closed(self) -> None:
        if self._closed:
            self._owner._streams.discard(self)
            self._subscription.stop()

    async def __anext__(self) -> Change:
        if self._queue is None:
            await self.start()
        if self._closed or self._queue is None:
            raise StopAsyncIteration
        try:
            change = await self._queue.get()
        except asyncio.CancelledError:  # the iterating task gave up: so does the stream
            self.close()
            raise
        if change is None:
            raise StopAsyncIteration
        return change

    def close(self) -> None:
        """Unsubscribe; a task waiting for the next change gets ``StopAsyncIteration``."""
        if self._closed:
            return
        self._closed = True
        self._owner._streams.discard(self)
        if self._subscription is not None:
            self._subscription.stop()
        if self._queue is not None:
            self._queue.put_nowait(None)

    async def aclose(self) -> None:
        self.close()


class _Flight:
    """One call on a worker thread and the tasks of one loop waiting for it.

    Each task waits on a future of its own (``join``), so a task that is cancelled
    leaves the call and the other tasks alone; the call's outcome settles every
    waiter at once, on the loop, and removes the flight from ``registry``.
    """

    __slots__ = ("_registry", "_token", "_waiters", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        registry: dict[Hashable, _Flight] | None = None,
        token: Hashable = None,
    ) -> None:
        self.loop = loop
        self._registry = registry
        self._token = token
        self._waiters: list[asyncio.Future[Any]] = []

    def join(self) -> asyncio.Future[Any]:
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        return waiter

    def settle(self, result: Any, error: BaseException | None) -> None:
        registry = self._registry
        if registry is not None and registry.get(self._token) is self:
            registry.pop(self._token, None)
        for waiter in self._waiters:
            if waiter.done():  # its task was cancelled meanwhile
                continue
            if error is None:
                waiter.set_result(result)
            else:
                waiter.set_exception(error)


_Job = tuple["_LoopLink", _Flight, Callable[..., Any], tuple[Any, ...]]


class _LoopLink:
    """What passes between one event loop and the worker threads, in batches.

    Calls submitted during one loop iteration are handed to the threads together at
    the start of the next (``flush``): the tasks started by one burst all take their
    first step before any thread wakes up to compete with the loop for the GIL.
    Outcomes come back the same way: a thread appends to ``outcomes`` and wakes the
    loop only if no wake-up is pending, and the loop settles them all in one callback
    (``drain``), instead of a self-pipe write and a callback per result.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, workers: _Workers) -> None:
        self.loop = loop
        self.workers = workers
        self.outgoing: list[_Job] = []
        self.outcomes: list[tuple[_Flight, Any, BaseException | None]] = []
        self.lock = threading.Lock()
        self.drain_pending = False

    def flush(self) -> None:  # on the loop
        jobs, self.outgoing = self.outgoing, []
        self.workers.hand(jobs)

    def post(self, flight: _Flight, result: Any, error: BaseException | None) -> None:
        with self.lock:  # on a worker thread
            self.outcomes.append((flight, result, error))
            if self.drain_pending:
                return
            self.drain_pending = True
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:  # on the loop
        with self.lock:
            outcomes, self.outcomes = self.outcomes, []
            self.drain_pending = False
        for flight, result, error in outcomes:
            flight.settle(result, error)


class _Workers:
    """Threads that run blocking calls for event loops, started on demand.

    Lighter on the loop than ``run_in_executor`` (a concurrent future and a callback
    per call): a submission is one list append, and submissions and outcomes cross
    between the loop and the threads in batches (see :class:`_LoopLink`). A thread
    starts when a call waits and no thread is idle, up to ``limit``; a thread idle for
    ``IDLE_SECONDS`` exits.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: set[threading.Thread] = set()
        self._idle = 0  # threads waiting for a job
        self._lock = threading.Lock()
        self._last: _LoopLink | None = None  # the link of the loop that submitted last
        self._links: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopLink] = (
            weakref.WeakKeyDictionary()
        )
        self.submitted = 0  # calls handed to the threads so far

    @property
    def threads(self) -> int:
        return len(self._threads)

    def submit(self, flight: _Flight, call: Callable[..., Any], *args: Any) -> None:
        """Run ``call(*args)`` on a thread; its outcome settles ``flight`` (on the loop)."""
        link = self._last
        if link is None or link.loop is not flight.loop:
            link = self._link(flight.loop)
        self.submitted += 1
        link.outgoing.append((link, flight, call, args))
        if len(link.outgoing) == 1:
            flight.loop.call_soon(link.flush)

    def _link(self, loop: asyncio.AbstractEventLoop) -> _LoopLink:
        link = self._links.get(loop)
        if link is None:
            link = self._links[loop] = _LoopLink(loop, self)
        self._last = link
        return link

    def hand(self, jobs: list[_Job]) -> None:
        with self._lock:
            for job in jobs:
                self._jobs.put(job)
            start = self._idle < len(jobs) and len(self._threads) < self._limit
        if start:  # one from the loop; each new thread starts the next while calls wait
            self._start()

    def _start(self) -> None:
        thread = threading.Thread(target=self._work, name="veltrix-aio", daemon=True)
        with self._lock:
            if len(self._threads) >= self._limit:
                return
            self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        jobs = self._jobs
        me = threading.current_thread()
        with self._lock:
            self._idle += 1
        while True:
            try:
                job = jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if jobs.empty():
                        self._idle -= 1
                        self._threads.discard(me)
                        return
                continue
            with self._lock:
                self._idle -= 1
                if job is None:  # closing
                    self._threads.discard(me)
                    return
                grow = not self._idle and not jobs.empty() and len(self._threads) < self._limit
            if grow:
                self._start()
            link, flight, call, args = job
            try:
                outcome: tuple[Any, BaseException | None] = (call(*args), None)
            except BaseException as exc:
                outcome = (None, exc)
            with self._lock:  # idle before the loop hears of the outcome (and submits more)
                self._idle += 1
            link.post(flight, *outcome)
            del job, link, flight, call, args, outcome  # hold no value while idle

    def close(self) -> None:
        """Stop the threads (each after its current call); the pool restarts on demand."""
        with self._lock:
            threads, self._threads = self._threads, set()
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(timeout=10)


def _switch_hit_counting(on: bool) -> None:
    AsyncClient.get = AsyncClient._get_counting if on else AsyncClient._get_plain  # type: ignore[method-assign]


hit_counting_switches.append(_switch_hit_counting)
_switch_hit_counting(counting_hits_in_all_clients())


__all__ = ["AsyncClient", "ChangeStream"]
