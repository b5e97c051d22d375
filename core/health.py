"""Store health: one state per client, so a dead or slow store never reaches the read path.

A client reading an expired value asks the store only while the store looks
healthy. The state is fed from two sides:

- **call outcomes** (a breaker): a read that fails transiently marks the store
  ``down``; any answer from the store (a value, an absence, even a refusal)
  marks it ``up``; a refresh that outlives the read deadline marks it ``slow``;
- **connection events** from adapters that know their connection
  (:class:`veltrix.backend.SupportsHealthEvents`, e.g. kazoo's SUSPENDED/LOST/
  CONNECTED): a lost connection is ``down`` at once, before any call times out.

While the store is not ``up``, reads of keys the client holds a value for are
answered from the cache at once, keys it has never held fail fast, and at most one
background *probe* (a refresh of one key) runs at a time, at most once per
``probe_interval``: its success brings the store back ``up``.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from veltrix.log_events import event

log = logging.getLogger("veltrix.health")


class HealthState(enum.Enum):
    UP = "up"  # answering: expired values are refreshed before they are served
    SLOW = "slow"  # a store call outlived the read deadline: serve stale, probe
    DOWN = "down"  # failing or disconnected: serve stale, fail fast, probe

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class L2Health:
    """The shared cache's part of :class:`Health`."""

    #: The cache URL, redacted.
    url: str
    #: True while the circuit breaker bypasses the cache (reads go to the store).
    circuit_open: bool
    #: True while the invalidation bus listener is subscribed.
    bus_connected: bool


@dataclass(frozen=True, slots=True)
class Health:
    """What :meth:`veltrix.Client.health` reports.

    The first four fields are the store's health state (also what
    :meth:`veltrix.Client.on_health_change` listeners get); the others are filled
    by :meth:`veltrix.Client.health` from the client's own view.
    """

    state: HealthState
    #: Wall-clock time (``time.time()``) the store entered this state.
    since: float
    #: Why it is in this state (one line, no values).
    reason: str
    #: How many times the state changed since the client was built.
    transitions: int
    #: True while the store's watch runs on a live connection; False while it is
    #: lost; None when this client runs no watch (not started, off, or unsupported).
    watch_connected: bool | None = None
    #: Wall-clock time of the last successful read from the store; None before the first.
    last_refresh: float | None = None
    #: Seconds past its TTL of the oldest value being served stale (0.0: none).
    oldest_stale_age: float = 0.0
    #: The shared cache's state; None without one.
    l2: L2Health | None = None

    @property
    def up(self) -> bool:
        return self.state is HealthState.UP

    @property
    def store_reachable(self) -> bool:
        """The store answers (it may be slow): any state but ``down``."""
        return self.state is not HealthState.DOWN

    @property
    def healthy(self) -> bool:
        """Up, with its watch connected (if any) and the shared cache in use (if any)."""
        return (
            self.up
            and self.watch_connected is not False
            and (self.l2 is None or not self.l2.circuit_open)
        )

    def problems(self) -> list[str]:
        """One line per reason :attr:`healthy` is False (empty when healthy)."""
        found = []
        if not self.up:
            found.append(
                f"store is {self.state}: {self.reason}" if self.reason else f"store is {self.state}"
            )
        if self.watch_connected is False:
            found.append("watch disconnected")
        if self.l2 is not None and self.l2.circuit_open:
            found.append("shared cache unreachable (bypassed)")
        return found


class StoreHealth:
    """The health state machine of one client's store (thread-safe, never blocks).

    ``state`` is a plain attribute so the read path can test it without a lock.
    """

    def __init__(self, source: str, *, probe_interval: float) -> None:
        self.source = source
        self.probe_interval = probe_interval
        self.state = HealthState.UP
        #: False while the adapter reports its connection lost (no retries then).
        self.connected = True
        self._since = time.time()
        self._reason = ""
        self._transitions = 0
        self._next_probe = 0.0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Health], None]] = []

    def add_listener(self, listener: Callable[[Health], None]) -> None:
        """Call ``listener(health)`` after every state change (on the thread that saw it)."""
        self._listeners.append(listener)

    # -- inputs ------------------------------------------------------------------------

    def succeeded(self) -> None:
        """The store answered a call."""
        if self.state is not HealthState.UP:
            self._move(HealthState.UP, "the store answered")

    def failed(self, reason: str) -> None:
        """A read failed transiently (after any retries)."""
        with self._lock:
            self._next_probe = time.monotonic() + self.probe_interval
        self._move(HealthState.DOWN, reason)

    def slow(self, reason: str) -> None:
        """A read outlived the read deadline: serve stale until some call completes."""
        if self.state is HealthState.UP:
            self._move(HealthState.SLOW, reason, only_from=HealthState.UP)

    def connection(self, up: bool, reason: str) -> None:
        """An adapter's connection event (called on the adapter's own thread)."""
        self.connected = up
        if up:
            self._move(HealthState.UP, reason)
        else:
            self.failed(reason)

    # -- decisions ---------------------------------------------------------------------

    def take_probe(self) -> bool:
        """Whether a probe may start now (and, if so, the next one waits ``probe_interval``)."""
        now = time.monotonic()
        if now < self._next_probe:  # the common answer, without the lock (see Client)
            return False
        with self._lock:
            if now < self._next_probe:
                return False
            self._next_probe = now + self.probe_interval
            return True

    def report(self) -> Health:
        with self._lock:
            return Health(self.state, self._since, self._reason, self._transitions)

    def _move(self, state: HealthState, reason: str, only_from: HealthState | None = None) -> None:
        with self._lock:
            if only_from is not None and self.state is not only_from:
                return
            changed = state is not self.state
            self._reason = reason
            if not changed:
                return
            previous, self.state = self.state, state
            self._since = time.time()
            self._transitions += 1
        if state is HealthState.UP:
            log.info(
                "store %s is up again (was %s)",
                self.source,
                previous,
                extra=event("veltrix.store.up", store=self.source, previous=str(previous)),
            )
        else:
            # Slow is a soft state (the store answers; reads are bounded meanwhile) and
            # flips with the load of the process itself: INFO, so that busy readers do
            # not fill the log with warnings. Down is a WARNING.
            log.log(
                logging.WARNING if state is HealthState.DOWN else logging.INFO,
                "store %s is %s: %s; serving cached values without waiting",
                self.source,
                state,
                reason,
                extra=event(f"veltrix.store.{state}", store=self.source),
            )
        if self._listeners:
            report = self.report()
            for listener in self._listeners:
                try:
                    listener(report)
                except Exception as exc:
                    log.exception(
                        "health listener failed",
                        extra=event("veltrix.health.listener_failed", store=self.source, error=exc),
                    )


__all__ = ["Health", "HealthState", "L2Health", "StoreHealth"]
