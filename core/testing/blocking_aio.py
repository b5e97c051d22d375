"""``AsyncClient`` driven from synchronous test code.

:class:`BlockingAsyncClient` owns a private event loop on its own thread and runs
every :class:`veltrix.aio.AsyncClient` coroutine there, so a test written against
``veltrix.Client`` (``get``, ``put``, ``delete``, ``watch``, ``with ... as client``)
exercises the asyncio client unchanged. The conformance suite uses it to run its
client-level scenarios through both clients (see :func:`open_client`).

``watch(prefix, callback)`` is the async client's :meth:`~veltrix.aio.AsyncClient.changes`
stream, pumped by a task on the private loop: the callback runs on that loop's
thread, in the order the stream delivers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, Self, TypeVar

from veltrix.aio import AsyncClient, ChangeStream
from veltrix.backend import AbsentType, Backend, Change, Entry
from veltrix.client import _NO_DEFAULT, Client

T = TypeVar("T")

#: Which client a conformance scenario runs through.
ClientApi = Literal["sync", "async"]
CLIENT_APIS: tuple[ClientApi, ...] = ("sync", "async")

#: Seconds one call may take before the test fails instead of hanging.
CALL_TIMEOUT = 120.0


class BlockingAsyncClient:
    """An :class:`AsyncClient` (``self.aclient``) behind blocking methods."""

    def __init__(self, store: str | Backend | None = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="veltrix-aio-facade", daemon=True
        )
        self._thread.start()
        self._pumps: list[_Pump] = []
        try:
            self.aclient = AsyncClient(store, **options)
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        return f"Blocking{self.aclient!r}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT)

    @property
    def client(self) -> Client:
        return self.aclient.client

    def get(self, key: str, default: Any = _NO_DEFAULT, type: Any = None) -> Any:
        return self._call(self.aclient.get(key, default, type))

    def get_entry(self, key: str) -> Entry | None:
        return self._call(self.aclient.get_entry(key))

    def get_model(self, prefix: str, model: type[T]) -> T:
        return self._call(self.aclient.get_model(prefix, model))

    def list(self, prefix: str = "") -> list[Entry]:
        return self._call(self.aclient.list(prefix))

    def flag(self, name: str, default: bool = False) -> bool:
        return self._call(self.aclient.flag(name, default))

    def put(self, key: str, value: object, *, if_version: str | AbsentType | None = None) -> str:
        return self._call(self.aclient.put(key, value, if_version=if_version))

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        return self._call(self.aclient.delete(key, if_version=if_version))

    def watch(self, prefix: str, callback: Callable[[Change], None]) -> _Pump:
        """``callback(change)`` for every change under ``prefix``; subscribed on return."""

        async def subscribe() -> _Pump:
            stream = self.aclient.changes(prefix)
            await stream.start()
            return _Pump(stream, asyncio.create_task(_deliver(stream, callback)), self._loop)

        pump = self._call(subscribe())
        self._pumps.append(pump)
        return pump

    def stats(self) -> dict[str, int]:
        return self.aclient.stats()

    def health(self) -> Any:
        return self.aclient.health()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self._aclose())
        finally:
            self._stop_loop()

    async def _aclose(self) -> None:
        await self.aclient.aclose()  # ends the change streams, so the pumps finish
        await asyncio.gather(*(pump.task for pump in self._pumps), return_exceptions=True)
        await self._loop.shutdown_default_executor()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT)
        self._loop.close()


class _Pump:
    """One ``watch``: the stream and the task delivering it; ``stop()`` ends both."""

    def __init__(
        self, stream: ChangeStream, task: asyncio.Task[None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self.stream = stream
        self.task = task
        self._loop = loop

    def stop(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.stream.close)


async def _deliver(stream: ChangeStream, callback: Callable[[Change], None]) -> None:
    async for change in stream:
        callback(change)


def open_client(api: ClientApi, store: str | Backend | None = None, **options: Any) -> Any:
    """``veltrix.Client(store, **options)`` for ``"sync"``, the same through
    :class:`BlockingAsyncClient` for ``"async"``: both are context managers with the
    client's blocking methods."""
    if api == "sync":
        return Client(store, **options)
    if api == "async":
        return BlockingAsyncClient(store, **options)
    raise ValueError(f"unknown client api {api!r}; expected one of {CLIENT_APIS}")


__all__ = ["CLIENT_APIS", "BlockingAsyncClient", "ClientApi", "open_client"]
