"""A store's asyncio connection, which belongs to the event loop that opened it.

asyncio clients (``redis.asyncio``, aiohttp sessions, ``grpc.aio`` channels) are tied
to the loop they were made on. An adapter's ``aget`` (:class:`veltrix.backend.
SupportsAsyncGet`) opens its connection on the first read and refuses reads from
any other loop until ``aclose()`` releases it; :class:`LoopBound` is that rule,
written once for every adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from veltrix.errors import ConfigurationError

T = TypeVar("T")


class LoopBound(Generic[T]):
    """``value``: what ``get`` opened (None until then, and after ``release``), and
    ``loop``: the event loop it belongs to. ``owner`` names the store in errors and
    ``what`` the resource ("connection", "session", "client")."""

    def __init__(self, owner: object, what: str) -> None:
        self._owner = owner
        self._what = what
        self.value: T | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def get(self, open_: Callable[[], T]) -> T:
        """The resource, opened with ``open_`` on the running loop if there is none;
        :class:`ConfigurationError` from another loop than its own."""
        loop = asyncio.get_running_loop()
        if self.value is None:
            self.value, self.loop = open_(), loop
        elif self.loop is not loop:
            raise ConfigurationError(
                f"{self._owner!r}: its asyncio {self._what} belongs to another event loop; "
                "aclose() it first"
            )
        return self.value

    def release(self) -> tuple[T | None, asyncio.AbstractEventLoop | None]:
        """Forget the resource (the next ``get`` opens another, on its own loop) and
        hand it, with its loop, to the caller to close."""
        value, loop = self.value, self.loop
        self.value = self.loop = None
        return value, loop


__all__ = ["LoopBound"]
