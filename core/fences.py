"""Read-your-own-writes against a late watch: a client's own writes fence its watch.

A watch delivers a key's changes in order, but late: after ``put(k, "b")`` or
``delete(k)`` returns, the watch may still deliver the older ``k = "a"``.
Installing it would resurrect a value this client has just overwritten or deleted.

So each write of a watched key leaves its expected *echo* (the version it wrote,
``None`` for a delete) in the key's fence. A change the watch delivers for a
fenced key is only installed once it is the echo of the client's latest write:
echoes of earlier own writes are consumed in order, anything else is older and
ignored. While a write is still in flight its echo is not known yet, so changes
arriving meanwhile are kept and replayed when the write returns. A fence that is
not echoed within ``hold`` seconds (the store merged our write with a later one,
a delete found nothing to delete) is dropped and the key refetched.

Not thread-safe on its own: the client calls it with its lock held.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Fence:
    outstanding: list[str | None] = field(default_factory=list)  # echoes owed, oldest first
    in_flight: int = 0  # own writes whose echo is not known yet
    seen: list[str | None] = field(default_factory=list)  # changes that came meanwhile
    deadline: float = 0.0


class FenceDue:
    """Scheduler token: the fence on ``key`` may be due (see :meth:`WriteFences.due`)."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


class WriteFences:
    """The fences of one client's keys."""

    def __init__(self, hold: float = 2.0) -> None:
        self.hold = hold
        self._fences: dict[str, _Fence] = {}

    def __len__(self) -> int:
        return len(self._fences)

    def begin(self, key: str) -> None:
        """A write of ``key`` is about to be sent."""
        fence = self._fences.get(key)
        if fence is None:
            fence = self._fences[key] = _Fence()
        fence.in_flight += 1

    def settle(self, key: str, echo: str | None) -> tuple[bool, float | None]:
        """The write returned (``echo``: its version, ``None`` for a delete).

        Returns ``(refetch, due)``: whether changes newer than the write were held
        back (so the key must be refetched), and when the fence falls due (``None``
        once it is gone).
        """
        fence = self._fences.get(key)
        if fence is None:
            return False, None
        fence.in_flight -= 1
        fence.outstanding.append(echo)
        return self._replay(key, fence)

    def abandon(self, key: str) -> tuple[bool, float | None]:
        """The write failed: it owes no echo."""
        fence = self._fences.get(key)
        if fence is None:
            return False, None
        fence.in_flight -= 1
        if not fence.outstanding and not fence.in_flight:
            del self._fences[key]
            return bool(fence.seen), None
        return self._replay(key, fence)

    def admit(self, key: str, version: str | None) -> bool:
        """Whether a watched change of ``key`` may be installed."""
        fence = self._fences.get(key)
        if fence is None:
            return True
        if fence.in_flight:
            fence.seen.append(version)
            return False
        return self._consume(key, fence, version)

    def due(self, key: str, horizon: float) -> bool:
        """Drop the fence of ``key`` if its deadline is before ``horizon``; True if it
        was (refetch)."""
        fence = self._fences.get(key)
        if fence is None or fence.in_flight or fence.deadline >= horizon:
            return False
        del self._fences[key]
        return True

    def _consume(self, key: str, fence: _Fence, version: str | None) -> bool:
        if not fence.outstanding or version != fence.outstanding[0]:
            return False  # older than our writes (or merged with a later one: due refetches)
        fence.outstanding.pop(0)
        if fence.outstanding:
            return False  # the echo of an earlier own write: a later one is still owed
        del self._fences[key]
        return True  # the echo of our latest write

    def _replay(self, key: str, fence: _Fence) -> tuple[bool, float | None]:
        if fence.in_flight:
            return False, None
        seen, fence.seen = fence.seen, []
        for index, version in enumerate(seen):
            if self._consume(key, fence, version):
                return index < len(seen) - 1, None  # what followed our echo is newer
        fence.deadline = time.monotonic() + self.hold
        return False, fence.deadline


__all__ = ["FenceDue", "WriteFences"]
