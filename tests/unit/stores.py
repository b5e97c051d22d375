"""In-process stores for cache-policy tests: a real MemoryBackend with a switch.

These wrap Veltrix's own memory store (no client library is involved) so policy
tests can count store calls and make the store fail or stall on demand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from veltrix.adapters.memory import MemoryBackend
from veltrix.backend import AbsentType, Change, Entry
from veltrix.errors import AccessDeniedError, BackendUnavailableError


class ControlledStore(MemoryBackend):
    """A memory store that counts reads and can be told to fail or be slow."""

    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionError,)

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.gets = 0
        self.lists = 0
        self.failure: BaseException | None = None
        self.delay = 0.0
        self._count_lock = threading.Lock()

    def _before(self) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.failure is not None:
            raise self.failure

    def get(self, key: str) -> Entry | None:
        with self._count_lock:
            self.gets += 1
        self._before()
        return super().get(key)

    def list(self, prefix: str) -> Iterator[Entry]:
        with self._count_lock:
            self.lists += 1
        self._before()
        return super().list(prefix)

    def fail_with(self, error: BaseException | None) -> None:
        self.failure = error

    def go_down(self) -> None:
        self.failure = BackendUnavailableError("store is down")

    def deny(self) -> None:
        self.failure = AccessDeniedError("permission denied")

    def come_back(self) -> None:
        self.failure = None

    # writes go around the switch, like another process writing to the store
    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        return super().put(key, value, if_version=if_version)

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> Any:
        return super().watch(prefix, on_change)


class NoWatch:
    """The smallest store: reads only (no list, write or watch), every key absent."""

    schemes = ("nowatch",)
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    max_value_bytes = None

    def get(self, key: str) -> None:
        return None

    def close(self) -> None:
        pass


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()
