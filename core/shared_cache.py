"""The shared Redis cache (L2), fleet-wide single-flight, and the invalidation bus.

Only the client's slow path comes here (an L1 miss): ``Client.get`` on a fresh
key never touches Redis. For one key, :meth:`SharedCache.read_through`:

1. runs one Lua script that returns the L2 entry with its remaining TTL (``PTTL``)
   or, on a miss, tries ``SET lock token NX PX lock_ttl``;
2. the lock winner reads the store and stores the entry with a second script that
   writes it only while its token still holds the lock, then deletes the lock
   (compare-and-delete: a lock is only ever released by its owner; a lock whose
   owner crashed expires after ``lock_ttl``);
3. the others poll the L2 entry every few milliseconds until it appears (one
   store call for the fleet), the lock disappears (they try to take it), or
   ``2 * lock_ttl`` passes (they read the store themselves: the documented slack).

Entries carry value, version, content type, provenance and the wall-clock time
they were fetched, with a Redis TTL equal to the policy's TTL, so every process's
L1 copy expires when the L2 entry does. Keys are namespaced per store URL and
hash-tagged per cache key: ``veltrix:l2:<ns>:e:{<key>}`` and its lock
``veltrix:l2:<ns>:lock:{<key>}`` (``<ns>`` = ``sha256(store url)[:16]``). Both keys a
script touches share the tag, so in Redis Cluster they sit in one slot, while
different cache keys spread over all slots (a per-namespace tag would put a whole
store's cache on one node: one hot slot).

Writes through any client and changes seen by any client's watch are written to
L2 and announced on ``veltrix:l2:<ns>:bus``; every other client drops its L1
entry and re-reads it from L2 on the listener thread. In Redis Cluster the
listener subscribes on one node (PUBLISH reaches every node) and moves to the
next node it knows when that one goes away.

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

import contextlib
import hashlib
import json
import logging
import struct
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from veltrix.backend import Entry
from veltrix.cache import CachePolicy
from veltrix.errors import ConfigurationError
from veltrix.secrets_crypto import SecretBox
from veltrix.urls import Options, parse_url

log = logging.getLogger("veltrix.shared_cache")


#: The first byte of an L2 payload says what follows (a wire format, not a marker object).
_TAG_PLAIN = b"\x00"
_TAG_SEALED = b"\x01"
_TAG_ABSENT = b"\x02"

# KEYS[1] entry, KEYS[2] lock; ARGV[1] token, ARGV[2] lock ms.
# -> {1, value, pttl} hit | {2} lock taken | {0, lock pttl} someone else holds it
_READ_OR_LOCK = """
local v = redis.call('GET', KEYS[1])
if v then return {1, v, redis.call('PTTL', KEYS[1])} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {0, redis.call('PTTL', KEYS[2])}
"""
# KEYS[1] entry, KEYS[2] lock; ARGV[1] token, ARGV[2] payload, ARGV[3] ms (0: do not store)
_STORE_IF_OWNER = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
  redis.call('DEL', KEYS[2])
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
                    log.warning("shared cache reachable again; L2 back in use")
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
                    log.warning("shared cache unreachable; bypassing L2 (store reads continue)")
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
        on_message: Callable[[str, str | None, bool], None] | None = None,
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
        self.counters = dict.fromkeys(
            (
                "l2_hits",
                "l2_misses",
                "l2_errors",
                "l2_lock_waits",
                "l2_lock_timeouts",
                "bus_sent",
                "bus_received",
            ),
            0,
        )
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
            return _TAG_ABSENT
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
        plain = _TAG_PLAIN + struct.pack(">I", len(header)) + header + entry.value
        if self._is_secret(key, entry):
            if self._box is None:  # pragma: no cover - cacheable() guards this
                raise ConfigurationError("refusing to store a secret without a key")
            return _TAG_SEALED + self._box.seal(plain, self._ekey(key).encode())
        return plain

    def decode(self, key: str, payload: bytes) -> tuple[bool, Entry | None]:
        """``(ok, entry)``: ok is False for a payload that cannot be read here."""
        kind = payload[:1]
        if kind == _TAG_ABSENT:
            return True, None
        if kind == _TAG_SEALED:
            if self._box is None:
                return False, None
            opened = self._box.open(payload[1:], self._ekey(key).encode())
            if opened is None:
                return False, None
            payload = opened
        if payload[:1] != _TAG_PLAIN or len(payload) < 5:
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
        if kind != _TAG_SEALED and self._is_secret(key, entry):
            return False, None  # a plaintext secret (written by a misconfigured peer): ignore
        return True, entry

    def _ms(self, entry: Entry | None) -> int:
        return int(self.policy.expires_at(0.0, entry is None) * 1000)

    # -- calls ---------------------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> tuple[bool, Any]:
        if not self.breaker.allow():
            return False, None
        try:
            result = fn()
        except Exception as exc:
            # Not only redis-py's errors: the socket layer raises UnicodeError for a bad
            # host name, and a Redis problem must never fail a read (the store answers).
            self.counters["l2_errors"] += 1
            self.breaker.failure()
            log.debug("shared cache call failed: %s", type(exc).__name__)
            return False, None
        self.breaker.success()
        return True, result

    def _hit(self, key: str, reply: Any) -> tuple[Entry | None, float] | None:
        ok, entry = self.decode(key, bytes(reply[1]))
        ttl_ms = int(reply[2])
        if not ok or ttl_ms <= 0:
            return None
        self.counters["l2_hits"] += 1
        return entry, ttl_ms / 1000.0

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
        ekey, lkey = self._ekey(key), self._lkey(key)
        deadline = time.monotonic() + 2 * self.lock_ttl
        waited = False
        while True:
            ok, reply = self._call(
                lambda: self._read_or_lock(keys=[ekey, lkey], args=[token, lock_ms])
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
                self.counters["l2_misses"] += 1
                return self._refresh(key, token, load), None
            if time.monotonic() >= deadline:
                self.counters["l2_lock_timeouts"] += 1
                return load(), None
            waited = True
            remaining = int(reply[1]) if len(reply) > 1 else lock_ms
            time.sleep(min(self.lock_poll, max(remaining, 1) / 1000.0))

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
        self._call(
            lambda: self._store_if_owner(keys=[self._ekey(key), lkey], args=[token, payload, ms])
        )
        return entry

    def peek(self, key: str) -> tuple[Entry | None, float] | None:
        """The L2 entry and its remaining freshness, without locking; ``None`` on a miss."""
        ekey = self._ekey(key)

        def run() -> Any:
            pipe = self._r.pipeline(transaction=False)
            pipe.get(ekey)
            pipe.pttl(ekey)
            return pipe.execute()

        ok, reply = self._call(run)
        if not ok or reply[0] is None:
            return None
        return self._hit(key, [1, reply[0], reply[1]])

    def publish(self, key: str, entry: Entry | None, *, store: bool = True) -> None:
        """Put ``entry`` (``None``: deleted) in L2 and tell every other client."""
        message = json.dumps(
            {"o": self.origin, "k": key, "v": None if entry is None else entry.version},
            separators=(",", ":"),
        )
        if store and self.policy.ttl > 0 and self.cacheable(key, entry):
            payload, ms = self.encode(key, entry), self._ms(entry)
        else:
            payload, ms = b"", 0
        ok, _ = self._call(
            lambda: self._write(
                keys=[self._ekey(key), self._lkey(key)], args=[payload, ms, self.channel, message]
            )
        )
        if ok:
            self.counters["bus_sent"] += 1

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
                log.debug("invalidation bus disconnected: %s", type(exc).__name__)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                for item in (pubsub, client):
                    if item is not None:
                        with contextlib.suppress(*self._errors):
                            item.close()

    def _dispatch(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            origin, key, version = message["o"], message["k"], message["v"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed invalidation message")
            return
        self.counters["bus_received"] += 1
        if self._on_message is not None:
            try:
                self._on_message(key, version, origin == self.origin)
            except Exception:
                log.exception("invalidation handler failed for %r", key)

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
                    self._r.publish(self._wake_channel, b"")
            self._bus_thread.join(timeout=2)
        with contextlib.suppress(*self._errors):
            self._r.close()


__all__ = ["CircuitBreaker", "SharedCache"]
