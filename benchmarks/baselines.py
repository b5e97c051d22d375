"""The cheapest honest alternatives to Veltrix's cache, for side-by-side runs.

Each wraps a ``load(key)`` (the store's own client) the way a team would write it
in an afternoon:

- ``ttl_dict``: a hand-written dict of ``(value, expires_at)``; a hit reads a clock;
- ``cachetools_ttl``: ``cachetools.TTLCache`` behind a lock (it is not thread-safe);
- ``lru``: ``functools.lru_cache``, which never refreshes (the fastest possible read,
  and wrong as soon as configuration changes).

None has single-flight, stale-if-error, watches or a shared cache: they are the
floor Veltrix's hot path is compared against, not equivalents.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

Loader = Callable[[str], Any]


def ttl_dict(load: Loader, ttl: float) -> Loader:
    cache: dict[str, tuple[Any, float]] = {}
    clock = time.monotonic

    def get(key: str) -> Any:
        hit = cache.get(key)
        now = clock()
        if hit is not None and hit[1] > now:
            return hit[0]
        value = load(key)
        cache[key] = (value, now + ttl)
        return value

    return get


def cachetools_ttl(load: Loader, ttl: float) -> Loader:
    from cachetools import TTLCache

    cache: TTLCache[str, Any] = TTLCache(maxsize=100_000, ttl=ttl)
    lock = threading.Lock()

    def get(key: str) -> Any:
        with lock:
            try:
                return cache[key]
            except KeyError:
                pass
        value = load(key)
        with lock:
            cache[key] = value
        return value

    return get


def lru(load: Loader) -> Loader:
    return functools.lru_cache(maxsize=None)(load)


BASELINES: dict[str, Callable[[Loader, float], Loader]] = {
    "hand-written TTL dict": ttl_dict,
    "cachetools.TTLCache + lock": cachetools_ttl,
    "functools.lru_cache (never refreshes)": lambda load, ttl: lru(load),
}


def available() -> dict[str, Callable[[Loader, float], Loader]]:
    """The baselines whose packages are installed (cachetools is in the ``bench`` extra)."""
    found = dict(BASELINES)
    try:
        import cachetools  # noqa: F401
    except ImportError:
        del found["cachetools.TTLCache + lock"]
    return found
