"""``veltrix.aio.AsyncClient``: the caching client for asyncio code.

It is a :class:`veltrix.Client` underneath, so policy, errors, the shared cache,
the last-known-good file, store health and watches are the same. What differs is where
the waiting happens:

- a hit reads the client's fresh dicts directly inside the coroutine: no thread
  hop, no I/O, no lock;
- anything that may wait on a store (a miss, a refresh, a write, a listing) runs on
  a bounded thread pool (``max_workers``), so the event loop never blocks; tasks
  that miss the same key at the same time share one pool call (single-flight
  across tasks, on top of the client's own across threads);
- ``changes(prefix)`` turns the store's watch into an async iterator.

Stores whose client libraries are synchronous (kazoo, boto3, the SQLite module)
are used the same way; native asyncio drivers are not used yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Hashable
from typing import Any, Self, TypeVar

from veltrix.backend import AbsentType, Backend, Change, Entry
from veltrix.client import _NO_DEFAULT, Client, counting_hits_in_all_clients, hit_counting_switches
from veltrix.errors import ConfigurationError, InvalidKeyError, KeyNotFoundError
from veltrix.keys import validate_key

T = TypeVar("T")


class AsyncClient:
    """``AsyncClient(url, cache=..., ...)``: the arguments of :class:`veltrix.Client`,
    plus ``max_workers``, the threads that wait on the store for the event loop."""

    def __init__(
        self, store: str | Backend | None = None, *, max_workers: int = 8, **options: Any
    ) -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ConfigurationError(f"max_workers must be an integer >= 1, got {max_workers!r}")
        self.client = Client(store, **options)
        self._pool = _Workers(max_workers)
        self._flights: dict[Hashable, asyncio.Future[Any]] = {}
        self._streams: set[ChangeStream] = set()

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
            validate_key(key)
        token = ("get", key, type)
        try:
            hash(token)
        except TypeError:  # an unhashable type: the client's conversion says what is wrong
            return await self._run(lambda: client.get(key, default, type))
        try:
            return await self._shared(
                token, lambda: client.get(key, type=type) if type else client.get(key)
            )
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
        return await self._shared(("entry", key), lambda: self.client.get_entry(key))

    async def get_model(self, prefix: str, model: type[T]) -> T:
        """As :meth:`veltrix.Client.get_model`; a cached model never leaves the coroutine."""
        try:
            value = self.client._cached_model(prefix, model, _NO_DEFAULT)
        except TypeError:  # unhashable prefix or model: the client's checks say what is wrong
            return await self._run(lambda: self.client.get_model(prefix, model))
        if value is not _NO_DEFAULT:
            return value  # type: ignore[no-any-return]
        return await self._shared(
            ("model", prefix, model), lambda: self.client.get_model(prefix, model)
        )

    async def list(self, prefix: str = "") -> list[Entry]:
        return await self._run(lambda: self.client.list(prefix))

    async def flag(self, name: str, default: bool = False) -> bool:
        if not isinstance(name, str):
            raise InvalidKeyError(f"flag name must be a string, got {type(name).__name__}")
        value = await self.get(f"flags/{name}/enabled", None, bool)
        return default if value is None else bool(value)

    # -- writes ------------------------------------------------------------------------

    async def put(
        self, key: str, value: object, *, if_version: str | AbsentType | None = None
    ) -> str:
        return await self._run(lambda: self.client.put(key, value, if_version=if_version))

    async def delete(self, key: str, *, if_version: str | None = None) -> bool:
        return await self._run(lambda: self.client.delete(key, if_version=if_version))

    # -- changes -----------------------------------------------------------------------

    def changes(self, prefix: str = "") -> ChangeStream:
        """Every change under ``prefix``, after the cache has been updated.

        ``async for change in client.changes(prefix)`` subscribes on the first step of
        the loop; ``async with client.changes(prefix) as changes`` subscribes on entry,
        so a write made inside the block is never missed. The stream ends when it is
        closed, when the task iterating it is cancelled, or when the client closes.
        """
        return ChangeStream(self, prefix)

    # -- plumbing ----------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        return self.client.stats()

    def health(self) -> Any:
        return self.client.health()

    async def _run(self, call: Callable[[], T]) -> T:
        return await self._pool.submit(call)  # type: ignore[no-any-return]

    async def _shared(self, token: Hashable, call: Callable[[], T]) -> T:
        """``call`` on the pool, shared by every task asking for ``token`` meanwhile."""
        flight = self._flights.get(token)
        if flight is None:
            flight = self._pool.submit(call)
            self._flights[token] = flight
            flight.add_done_callback(lambda _: self._flights.pop(token, None))
        # Shielded: one task giving up must not cancel the call the others wait on.
        return await asyncio.shield(flight)

    async def aclose(self) -> None:
        """Close the client (and the store it opened) without blocking the loop; open
        change streams end."""
        for stream in list(self._streams):
            stream.close()
        await asyncio.get_running_loop().run_in_executor(None, self._close)

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
            subscription = await owner._run(lambda: owner.client.watch(self._prefix, deliver))
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


class _Workers:
    """Threads that run blocking calls for an event loop.

    Lighter on the loop than ``run_in_executor`` (which wraps a concurrent future per
    call): a submission is one loop future and one queue put, a result one
    ``call_soon_threadsafe``, so a burst of misses costs the loop a few microseconds
    each. Threads start on the first submission.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.submitted = 0  # calls handed to the threads so far

    def submit(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if not self._threads:
            self._start()
        self.submitted += 1
        self._jobs.put((call, future))
        return future

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self._size:
                thread = threading.Thread(target=self._work, name="veltrix-aio", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, future = job
            try:
                outcome: tuple[Any, BaseException | None] = (call(), None)
            except BaseException as exc:
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                future.get_loop().call_soon_threadsafe(_settle, future, *outcome)

    def close(self) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(timeout=10)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _switch_hit_counting(on: bool) -> None:
    AsyncClient.get = AsyncClient._get_counting if on else AsyncClient._get_plain  # type: ignore[method-assign]


hit_counting_switches.append(_switch_hit_counting)
_switch_hit_counting(counting_hits_in_all_clients())


__all__ = ["AsyncClient", "ChangeStream"]
