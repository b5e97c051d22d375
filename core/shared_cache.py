"""The shared Redis cache (L2), fleet-wide single-flight, and the invalidation bus.

Only the client's slow path comes here (an L1 miss): ``Client.get`` on a fresh
key never touches Redis. For one key, :meth:`SharedCache.read_through`:

1. runs one Lua script that returns the L2 entry with its remaining TTL (``PTTL``)
   or, on a miss, tries ``SET lock token NX PX lock_ttl``. An entry with at most
   ``refresh_ahead`` left is a miss for whoever can take the lock (a hit otherwise);
2. the lock winner reads the store, then one script stores the entry only while its
   token still holds the lock, deletes the lock (compare-and-delete: a lock is only
   ever released by its owner; a lock whose owner crashed expires after
   ``lock_ttl``) and publishes the stored bytes on the bus: one round trip;
3. the others wait on an in-process event that the bus listener sets when a message
   for that key arrives, and take the entry it carries (one store call and one Redis
   request each for the fleet). Without a payload they ask L2 again; when the lock
   expires with no message they try to take it; while the bus is disconnected they
   poll every ``lock_poll``; after ``2 * lock_ttl`` they read the store themselves
   (the documented slack).

Entries carry value, version, content type, provenance and the wall-clock time they
were fetched, with a Redis TTL equal to the policy's TTL. So that one process per TTL
refreshes a key and the others never miss it: the loader keeps its L1 copy for the
whole TTL; a copy from L2 or the bus stays fresh for the entry's remaining TTL plus
``grace`` = ``min(lock_ttl, 10% of ttl)`` (``negative_ttl`` for absences: this bounds
the extra staleness of a value changed behind Veltrix's back), and ``refresh_ahead``
= ``min(lock_ttl, 10% of min(ttl, negative_ttl))``. The loader's copy expires first,
its refresh lands slightly before the L2 entry goes, and its bus message replaces the
other copies before they expire: about 2 Redis requests per key per TTL for the fleet.
Keys are namespaced per store URL and hash-tagged per cache key: ``veltrix:l2:<ns>:e:{<key>}`` and its lock
``veltrix:l2:<ns>:lock:{<key>}`` (``<ns>`` = ``sha256(store url)[:16]``). Both keys a
script touches share the tag, so in Redis Cluster they sit in one slot, while
different cache keys spread over all slots (a per-namespace tag would put a whole
store's cache on one node: one hot slot).

Writes through any client and changes seen by any client's watch are written to
L2 and announced on ``veltrix:l2:<ns>:bus``, as are refreshes. A message is JSON:
origin, key, version and, up to :data:`MAX_BUS_PAYLOAD`, the entry's bytes exactly as
stored in L2 (base64; sealed for secrets, never carried for a secret L2 does not hold)
with its TTL in ms. Every other client holding the key installs the carried entry on
the listener thread, or drops its L1 entry and re-reads it from L2 when there is none.
A foreign payload that arrives while this client's own write to the key is still on
its way back was published before that write: it is not installed
(read-your-own-writes). In Redis Cluster the listener subscribes on one node (PUBLISH
reaches every node) and moves to the next node it knows when that one goes away.

Cache URLs: ``redis://host:6379/0``, ``rediss://host:6380/0?ca_file=...`` (TLS),
``redis+sentinel://s1:26379,s2:26379/<service>/0``,
``redis+cluster://h1:7000,h2:7001/0`` (connections are made by :mod:`veltrix.redis_connect`,
imported on first use so ``import veltrix`` never needs redis-py).

Secret entries are sealed with AES-GCM (:mod:`veltrix.secrets_crypto`), or not
stored in L2 at all when no key is configured. Every Redis call has a timeout of
tens of milliseconds and goes through a circuit breaker: after a few failures
Redis is not asked at all for a cool-down period, and a read never fails because
of Redis; it goes to the store instead.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from veltrix.backend import Entry
from veltrix.cache import CachePolicy
from veltrix.errors import ConfigurationError
from veltrix.log_events import event
from veltrix.secrets_crypto import SecretBox
from veltrix.urls import Options, parse_url

log = logging.getLogger("veltrix.shared_cache")


_PLAIN = b"\x00"
_SEALED = b"\x01"
_ABSENT = b"\x02"

# KEYS[1] entry, KEYS[2] lock; ARGV[1] token, ARGV[2] lock ms, ARGV[3] refresh-ahead ms.
# -> {1, value, pttl} hit | {2} lock taken ({2, pttl}: ahead of expiry) | {0, lock pttl}
# someone else holds it.
# An entry with at most ARGV[3] ms left is a miss for whoever takes the lock (the
# refresh lands before the entry goes); while someone else holds it, it is still a hit.
_READ_OR_LOCK = """
local v = redis.call('GET', KEYS[1])
if v then
  local t = redis.call('PTTL', KEYS[1])
  if t > tonumber(ARGV[3]) then return {1, v, t} end
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, t} end
  return {1, v, t}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {0, redis.call('PTTL', KEYS[2])}
"""
# KEYS[1] entry, KEYS[2] lock; ARGV[1] token, ARGV[2] payload, ARGV[3] ms (0: do not
# store), ARGV[4] channel, ARGV[5] message. Stores, releases the lock and tells the fleet
# in one round trip (nothing happens, nothing is published, once the lock is not ours).
_STORE_IF_OWNER = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return 1
end
return 0
"""
# KEYS[1] lock; ARGV[1] token
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] entry, KEYS[2] lock; ARGV[1] payload, ARGV[2] ms (0: delete), ARGV[3] channel,
# ARGV[4] message. A write cancels any refresh in flight (its lock goes) so an older
# value read before the write cannot land after it.
_WRITE = """
redis.call('DEL', KEYS[2])
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return redis.call('PUBLISH', ARGV[3], ARGV[4])
"""

#: ``SharedCache.counters``: ``l2_requests`` counts the commands sent to Redis (each
#: command of a pipeline, a script call is one); ``bus_fills``: reads that waited for
#: another process's refresh and got its value from the bus message.
COUNTERS = (
    "l2_requests",
    "l2_hits",
    "l2_misses",
    "l2_refresh_ahead",
    "l2_errors",
    "l2_lock_waits",
    "l2_lock_timeouts",
    "bus_sent",
    "bus_received",
    "bus_fills",
)

#: Bus payloads above this size are not carried: receivers read the entry from L2.
MAX_BUS_PAYLOAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One message from the invalidation bus.

    ``payload`` is the L2 entry exactly as stored (sealed secrets stay sealed), or
    ``None`` when it was not carried (too large, not stored, or from an older client);
    ``ms`` is its TTL in L2 when it was published (0: not stored). ``refresh``: a fleet
    refresh (the store read again), not a change.
    """

    key: str
    version: str | None
    own: bool
    payload: bytes | None = None
    ms: int = 0
    refresh: bool = False


class _Waiter:
    """A read waiting for another process's refresh of one key (woken by the bus)."""

    __slots__ = ("event", "message")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.message: BusMessage | None = None


class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive failures; one probe after ``cooldown``.

    While open, :meth:`allow` is False without any I/O. The cool-down doubles on each
    failed probe up to ``max_cooldown``.
    """

    def __init__(
        self, threshold: int = 3, cooldown: float = 0.5, max_cooldown: float = 5.0
    ) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0
        self._probing = False
        self._lock = threading.Lock()
        self.trips = 0

    @property
    def is_open(self) -> bool:
        return self._failures >= self.threshold

    def allow(self) -> bool:
        if self._failures < self.threshold:
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._open_until or self._probing:
                return False
            self._probing = True  # half-open: exactly one caller probes
            return True

    def success(self) -> None:
        if self._failures:
            with self._lock:
                if self._failures >= self.threshold:
                    log.warning(
                        "shared cache reachable again; L2 back in use",
                        extra=event("veltrix.l2.recovered"),
                    )
                self._failures = 0
                self._probing = False
                self._cooldown = self.base_cooldown

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing:
                self._probing = False
                self._cooldown = min(self._cooldown * 2, self.max_cooldown)
            if self._failures >= self.threshold:
                if self._failures == self.threshold:
                    self.trips += 1
                    log.warning(
                        "shared cache unreachable; bypassing L2 (store reads continue)",
                        extra=event("veltrix.l2.circuit_open"),
                    )
                self._open_until = time.monotonic() + self._cooldown


class SharedCache:
    """One client's link to the shared L2 cache and its invalidation bus."""

    def __init__(
        self,
        url: str,
        *,
        store: str,
        policy: CachePolicy,
        box: SecretBox | None,
        is_secret: Callable[[str, Entry | None], bool],
        on_message: Callable[[BusMessage], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
        **options: Any,
    ) -> None:
        from veltrix import redis_connect

        parsed = parse_url(url, redis_connect.SCHEMES)
        self.url = parsed.redacted
        opts = Options(parsed.query, options, where=self.url)
        timeout = opts.float("timeout", 0.05, minimum=0.001)
        connect_timeout = opts.float("connect_timeout", timeout, minimum=0.001)
        self.lock_ttl = opts.float("lock_ttl", 2.0, minimum=0.01)
        self.lock_poll = opts.float("lock_poll", 0.005, minimum=0.0005)
        namespace = opts.str("namespace") or store
        threshold = opts.int("breaker_threshold", 3, minimum=1)
        cooldown = opts.float("breaker_cooldown", 0.5, minimum=0.01)
        target = redis_connect.parse_target(parsed)
        if target.path:
            raise ConfigurationError(f"{self.url}: a cache URL ends at the database number")
        settings = redis_connect.read_settings(target, opts, where=self.url)
        opts.finish()
        self._r: Any = redis_connect.connect(
            target, settings, timeout=timeout, connect_timeout=connect_timeout, where=self.url
        )
        self._bus_attempts = 0

        def connect_bus() -> Any:
            node = None
            if isinstance(self._r, redis_connect.LazyCluster):
                # One node of the cluster, the next one on every reconnect.
                nodes = self._r.node_addresses()
                node = nodes[self._bus_attempts % len(nodes)]
                self._bus_attempts += 1
            return redis_connect.connect(
                target,
                settings,
                timeout=5.0,
                connect_timeout=connect_timeout,
                where=self.url,
                node=node,
            )

        self._connect_bus: Callable[[], Any] = connect_bus
        self.bus_node: str | None = None  # "host:port" the listener is subscribed on
        self._errors: tuple[type[BaseException], ...] = redis_connect.ALL_ERRORS
        digest = hashlib.sha256(namespace.encode()).hexdigest()[:16]
        self.prefix = f"veltrix:l2:{digest}:"
        self.channel = self.prefix + "bus"
        self.policy = policy
        self._box = box
        self._is_secret = is_secret
        self.origin = uuid.uuid4().hex
        self.breaker = CircuitBreaker(threshold, cooldown)
        self._read_or_lock = self._r.register_script(_READ_OR_LOCK)
        self._store_if_owner = self._r.register_script(_STORE_IF_OWNER)
        self._release = self._r.register_script(_RELEASE)
        self._write = self._r.register_script(_WRITE)
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._init_fleet_state()
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._closed = threading.Event()
        self._bus_thread: threading.Thread | None = None
        self._bus_ready = threading.Event()
        if on_message is not None:
            self._bus_thread = threading.Thread(
                target=self._listen, name="veltrix-l2-bus", daemon=True
            )
            self._bus_thread.start()

    def __repr__(self) -> str:
        return f"SharedCache({self.url!r})"

    def _init_fleet_state(self) -> None:
        # Seconds a copy from L2 or the bus is kept past the entry's TTL in L2, and how
        # long before that TTL ends an entry counts as a miss for the lock winner (see
        # the module docstring: one process refreshes, the others never see it expire).
        self.grace = min(self.lock_ttl, 0.1 * self.policy.ttl)
        self.negative_grace = min(self.lock_ttl, 0.1 * self.policy.negative_ttl)
        self.refresh_ahead = min(self.grace, self.negative_grace)
        # Reads waiting for another process's refresh, per key (woken by the bus).
        self._waiters: dict[str, list[_Waiter]] = {}
        # Our writes whose bus message has not come back yet, per key: a payload from
        # another client published before them is older than what we hold.
        self._own_pending: dict[str, int] = {}
        self._waiters_lock = threading.Lock()

    # -- encoding ----------------------------------------------------------------------

    def _ekey(self, key: str) -> str:
        return self.prefix + "e:{" + key + "}"  # canonical keys never contain braces

    def _lkey(self, key: str) -> str:
        return self.prefix + "lock:{" + key + "}"  # same hash tag: same Cluster slot

    def cacheable(self, key: str, entry: Entry | None) -> bool:
        """Secret values go to L2 only sealed; without a key they do not go at all."""
        return self._box is not None or not self._is_secret(key, entry)

    def encode(self, key: str, entry: Entry | None) -> bytes:
        if entry is None:
            return _ABSENT
        header = json.dumps(
            {
                "v": entry.version,
                "ct": entry.content_type,
                "s": entry.source,
                "x": entry.secret,
                "t": time.time(),
            },
            separators=(",", ":"),
        ).encode()
        plain = _PLAIN + struct.pack(">I", len(header)) + header + entry.value
        if self._is_secret(key, entry):
            if self._box is None:  # pragma: no cover - cacheable() guards this
                raise ConfigurationError("refusing to store a secret without a key")
            return _SEALED + self._box.seal(plain, self._ekey(key).encode())
        return plain

    def decode(self, key: str, payload: bytes) -> tuple[bool, Entry | None]:
        """``(ok, entry)``: ok is False for a payload that cannot be read here."""
        kind = payload[:1]
        if kind == _ABSENT:
            return True, None
        if kind == _SEALED:
            if self._box is None:
                return False, None
            opened = self._box.open(payload[1:], self._ekey(key).encode())
            if opened is None:
                return False, None
            payload = opened
        if payload[:1] != _PLAIN or len(payload) < 5:
            return False, None
        try:
            (size,) = struct.unpack(">I", payload[1:5])
            meta = json.loads(payload[5 : 5 + size])
            entry = Entry(
                key,
                payload[5 + size :],
                str(meta["v"]),
                meta.get("ct"),
                source=str(meta.get("s", "")),
                secret=bool(meta.get("x")),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return False, None  # a corrupt entry (or not ours): read the store instead
        if kind != _SEALED and self._is_secret(key, entry):
            return False, None  # a plaintext secret (written by a misconfigured peer): ignore
        return True, entry

    def _ms(self, entry: Entry | None) -> int:
        return int(self.policy.expires_at(0.0, entry is None) * 1000)

    # -- calls ---------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any], requests: int = 1) -> tuple[bool, Any]:
        """``fn()`` through the breaker; ``requests``: the Redis commands it sends."""
        if not self.breaker.allow():
            return False, None
        self.counters["l2_requests"] += requests
        try:
            result = fn()
        except Exception as exc:
            # Not only redis-py's errors: the socket layer raises UnicodeError for a bad
            # host name, and a Redis problem must never fail a read (the store answers).
            self.counters["l2_errors"] += 1
            self.breaker.failure()
            log.debug(
                "shared cache call failed: %s",
                type(exc).__name__,
                extra=event("veltrix.l2.call_failed", error=exc),
            )
            return False, None
        self.breaker.success()
        return True, result

    def _fresh_for(self, entry: Entry | None, ttl_ms: int) -> float:
        """Seconds a copy of an L2 entry with ``ttl_ms`` left is served: that plus the grace."""
        return ttl_ms / 1000.0 + (self.negative_grace if entry is None else self.grace)

    def _hit(self, key: str, reply: Any) -> tuple[Entry | None, float] | None:
        ok, entry = self.decode(key, bytes(reply[1]))
        ttl_ms = int(reply[2])
        if not ok or ttl_ms <= 0:
            return None
        self.counters["l2_hits"] += 1
        return entry, self._fresh_for(entry, ttl_ms)

    def carried(self, message: BusMessage) -> tuple[Entry | None, float] | None:
        """The entry a bus message carries and the seconds it stays fresh, or ``None``."""
        if message.payload is None or message.ms <= 0:
            return None
        ok, entry = self.decode(message.key, message.payload)
        if not ok:
            return None
        return entry, self._fresh_for(entry, message.ms)

    def _message(
        self, key: str, entry: Entry | None, payload: bytes, ms: int, *, refresh: bool = False
    ) -> str:
        """A bus message; it carries ``payload`` (as stored in L2) when small enough."""
        body: dict[str, Any] = {
            "o": self.origin,
            "k": key,
            "v": None if entry is None else entry.version,
        }
        if ms > 0 and len(payload) <= MAX_BUS_PAYLOAD:
            body["p"] = base64.b64encode(payload).decode()
            body["ms"] = ms
        if refresh:
            body["r"] = 1
        return json.dumps(body, separators=(",", ":"))

    def read_through(
        self, key: str, load: Callable[[], Entry | None]
    ) -> tuple[Entry | None, float | None]:
        """The entry for ``key`` from L2, or from ``load()`` under the fleet lock.

        Returns ``(entry, seconds it stays fresh)``; the seconds are ``None`` when
        the entry came from ``load()`` (fresh for the whole policy TTL).
        """
        if self.policy.ttl <= 0 or not self.cacheable(key, None):
            return load(), None
        token = uuid.uuid4().hex
        lock_ms = max(1, int(self.lock_ttl * 1000))
        ahead_ms = int(self.refresh_ahead * 1000)
        ekey, lkey = self._ekey(key), self._lkey(key)
        deadline = time.monotonic() + 2 * self.lock_ttl
        waited = False
        waiter = _Waiter()
        with self._waiters_lock:
            self._waiters.setdefault(key, []).append(waiter)
        try:
            while True:
                # A message that came before this call is reflected in its answer.
                waiter.event.clear()
                waiter.message = None
                ok, reply = self._call(
                    lambda: self._read_or_lock(keys=[ekey, lkey], args=[token, lock_ms, ahead_ms])
                )
                if not ok:
                    return load(), None
                state = int(reply[0])
                if state == 1:
                    hit = self._hit(key, reply)
                    if hit is not None:
                        if waited:
                            self.counters["l2_lock_waits"] += 1
                        return hit
                    # Unreadable here (sealed with a key we lack): read the store, leave L2 alone.
                    return load(), None
                if state == 2:
                    self.counters["l2_refresh_ahead" if len(reply) > 1 else "l2_misses"] += 1
                    return self._refresh(key, token, load), None
                now = time.monotonic()
                if now >= deadline:
                    self.counters["l2_lock_timeouts"] += 1
                    return load(), None
                waited = True
                filled = self._wait(waiter, int(reply[1]) / 1000.0, deadline - now)
                if filled is not None:
                    self.counters["l2_lock_waits"] += 1
                    self.counters["bus_fills"] += 1
                    return filled
        finally:
            with self._waiters_lock:
                waiters = self._waiters.get(key, [])
                waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(key, None)

    def _wait(
        self, waiter: _Waiter, lock_left: float, until_deadline: float
    ) -> tuple[Entry | None, float] | None:
        """Wait for the lock holder's refresh: its bus message, or the lock's expiry.

        Returns the entry the message carries; ``None`` means "ask L2 again" (the
        message carried no payload, the lock expired, or there is no bus to listen to:
        then this polls every ``lock_poll`` as a bus-less fleet must).
        """
        if self.bus_node is None:
            timeout = min(self.lock_poll, max(lock_left, 0.001))
        else:
            timeout = min(max(lock_left, 0.0) + 0.001, until_deadline)
        if not waiter.event.wait(timeout):
            return None
        message = waiter.message
        return None if message is None else self.carried(message)

    def _refresh(self, key: str, token: str, load: Callable[[], Entry | None]) -> Entry | None:
        lkey = self._lkey(key)
        try:
            entry = load()
        except BaseException:
            self._call(lambda: self._release(keys=[lkey], args=[token]))
            raise
        if self.cacheable(key, entry):
            payload, ms = self.encode(key, entry), self._ms(entry)
        else:
            payload, ms = b"", 0
        message = self._message(key, entry, payload, ms, refresh=True)
        ok, stored = self._call(
            lambda: self._store_if_owner(
                keys=[self._ekey(key), lkey], args=[token, payload, ms, self.channel, message]
            )
        )
        if ok and int(stored):
            self.counters["bus_sent"] += 1
        return entry

    def peek(self, key: str) -> tuple[Entry | None, float] | None:
        """The L2 entry and its remaining freshness, without locking; ``None`` on a miss."""
        ekey = self._ekey(key)

        def run() -> Any:
            pipe = self._r.pipeline(transaction=False)
            pipe.get(ekey)
            pipe.pttl(ekey)
            return pipe.execute()

        ok, reply = self._call(run, requests=2)
        if not ok or reply[0] is None:
            return None
        return self._hit(key, [1, reply[0], reply[1]])

    def expect_own(self, key: str) -> None:
        """A write of ``key`` is starting: until its message comes back, payloads other
        clients published earlier are older than it. Follow with :meth:`publish`
        (``expected=True``) or, if the write failed, :meth:`settle_own`."""
        with self._waiters_lock:
            self._own_pending[key] = self._own_pending.get(key, 0) + 1

    def publish(
        self, key: str, entry: Entry | None, *, store: bool = True, expected: bool = False
    ) -> None:
        """Put ``entry`` (``None``: deleted) in L2 and tell every other client.

        The message carries the stored payload (see :meth:`_message`), so the others
        install it without reading L2. ``expected``: :meth:`expect_own` was called.
        """
        if store and self.policy.ttl > 0 and self.cacheable(key, entry):
            payload, ms = self.encode(key, entry), self._ms(entry)
        else:
            payload, ms = b"", 0
        message = self._message(key, entry, payload, ms)
        if not expected:
            self.expect_own(key)
        ok, _ = self._call(
            lambda: self._write(
                keys=[self._ekey(key), self._lkey(key)], args=[payload, ms, self.channel, message]
            )
        )
        if ok:
            self.counters["bus_sent"] += 1
        else:  # no message will come back (if it does after all, it finds nothing pending)
            self.settle_own(key)

    def settle_own(self, key: str) -> None:
        """One write of ``key`` announced (or abandoned): see :meth:`expect_own`."""
        with self._waiters_lock:
            left = self._own_pending.get(key, 0) - 1
            if left > 0:
                self._own_pending[key] = left
            else:
                self._own_pending.pop(key, None)

    # -- the bus listener ------------------------------------------------------------------

    def _listen(self) -> None:
        backoff = 0.05
        connected_before = False
        while not self._closed.is_set():
            client: Any = None
            pubsub: Any = None
            try:
                client = self._connect_bus()
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                # Our own wake-up channel too: close() publishes there so the listener
                # stops at once instead of at the end of its 0.5 s poll.
                pubsub.subscribe(self.channel, self._wake_channel)
                pubsub.get_message(timeout=1.0)  # the subscribe confirmations
                conn = pubsub.connection
                self.bus_node = f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"
                with self._waiters_lock:
                    self._own_pending.clear()  # their echoes may have been lost
                if connected_before and self._on_reconnect is not None:
                    # Messages sent while we were away are lost: re-read everything from L2.
                    self._on_reconnect()
                connected_before = True
                self._bus_ready.set()
                backoff = 0.05
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if (
                        message is not None
                        and message.get("type") == "message"
                        and message.get("channel") != self._wake_channel.encode()
                    ):
                        self._dispatch(message["data"])
            except self._errors as exc:
                self.bus_node = None
                if self._closed.is_set():
                    break
                log.debug(
                    "invalidation bus disconnected: %s",
                    type(exc).__name__,
                    extra=event("veltrix.bus.disconnected", store=self.url, error=exc),
                )
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                for item in (pubsub, client):
                    if item is not None:
                        with contextlib.suppress(*self._errors):
                            item.close()

    def _dispatch(self, data: bytes) -> None:
        try:
            body = json.loads(data)
            origin, key, version = body["o"], body["k"], body["v"]
            ms = int(body.get("ms", 0))
            payload = base64.b64decode(body["p"], validate=True) if "p" in body else None
        except (ValueError, KeyError, TypeError):
            log.warning(
                "ignoring a malformed invalidation message",
                extra=event("veltrix.bus.malformed_message", store=self.url),
            )
            return
        if not isinstance(key, str):
            log.warning(
                "ignoring a malformed invalidation message",
                extra=event("veltrix.bus.malformed_message", store=self.url),
            )
            return
        self.counters["bus_received"] += 1
        own = origin == self.origin
        if own:
            self.settle_own(key)
        with self._waiters_lock:
            if not own and self._own_pending.get(key):
                payload = None  # published before our own write to it: older than ours
            waiters = list(self._waiters.get(key, ()))
        message = BusMessage(key, version, own, payload, ms, bool(body.get("r")))
        for waiter in waiters:
            waiter.message = message
            waiter.event.set()
        if self._on_message is not None:
            try:
                self._on_message(message)
            except Exception as exc:
                log.exception(
                    "invalidation handler failed for %r",
                    key,
                    extra=event("veltrix.bus.handler_failed", store=self.url, key=key, error=exc),
                )

    def wait_ready(self, timeout: float) -> bool:
        """True once the bus listener is subscribed (tests and benchmarks)."""
        return self._bus_ready.wait(timeout)

    @property
    def _wake_channel(self) -> str:
        return f"{self.channel}:wake:{self.origin}"

    def close(self) -> None:
        self._closed.set()
        if self._bus_thread is not None and threading.current_thread() is not self._bus_thread:
            if self._bus_ready.is_set() and self.breaker.allow():
                with contextlib.suppress(*self._errors):
                    self.counters["l2_requests"] += 1
                    self._r.publish(self._wake_channel, b"")
            self._bus_thread.join(timeout=2)
        with contextlib.suppress(*self._errors):
            self._r.close()


__all__ = ["MAX_BUS_PAYLOAD", "BusMessage", "CircuitBreaker", "SharedCache"]
