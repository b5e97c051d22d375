"""The user API: one caching client in front of any store.

Reads go through a per-client in-process cache (L1). A cache hit is one dict
lookup inside one method call: no I/O, no lock, no clock read (see
:mod:`veltrix.cache` for how expiry works without a clock on the hot path).
Misses of one key share one store call (single-flight); transient store failures
are retried and, past that, answered with the last-known-good value while the
policy allows (stale-if-error). Where the store can watch, a background watch
pushes changes into the cache within milliseconds; TTL stays the safety net.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import warnings
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from time import monotonic
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast, overload

from veltrix.backend import (
    AbsentType,
    Backend,
    Change,
    Entry,
    HasUrl,
    SupportsHealthEvents,
    SupportsList,
    SupportsOrderedVersions,
    SupportsWatch,
    SupportsWrite,
    Watch,
    describe,
    newer_or_same,
)
from veltrix.cache import (
    ABSENT_META,
    EXPIRES_AT,
    VALUE,
    VERSION,
    CachePolicy,
    ExpiryScheduler,
    Freshness,
    Meta,
    Record,
    expire_by,
    pack_value,
    record_entry,
    record_raw,
    record_version,
)
from veltrix.codecs import JSON, convert, decode_text, encode, nest, validate_model
from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    DecodeError,
    InvalidKeyError,
    KeyNotFoundError,
    UnsupportedOperationError,
    VeltrixError,
    VersionConflictError,
)
from veltrix.fences import FenceDue, WriteFences
from veltrix.health import Health, HealthState, L2Health, StoreHealth
from veltrix.instruments import (
    DURATION_BUCKETS,
    ClientInstruments,
    ClientReading,
    L2Reading,
    track,
)
from veltrix.keys import (
    MAX_KEY_LENGTH,
    in_prefix,
    key_match,
    normalize_prefix,
    normalize_prefixes,
    validate_key,
)
from veltrix.log_events import event
from veltrix.registry import default_url, open_backend
from veltrix.watching import ChangeDispatcher, InlineCallback

if TYPE_CHECKING:
    from veltrix.lkg import LastKnownGoodWriter
    from veltrix.shared_cache import BusMessage, SharedCache

log = logging.getLogger("veltrix.client")

M = TypeVar("M")
T = TypeVar("T")

#: Distinct Record.meta tuples interned per client (more are kept per key, uninterned).
_MAX_METAS = 4096
#: ``default`` when the caller gave none (a missing key then raises). The other marker
#: is :data:`veltrix.Absent`: "the key is not there".
_NO_DEFAULT: Any = object()
#: Hot-path hit counting (see Client._get_counting): _HIT_STEPS[n] is n + 1, and the
#: batch is carried into the client's total every _HIT_CARRY hits.
_HIT_CARRY = 1024
_HIT_STEPS: tuple[int, ...] = tuple(range(1, _HIT_CARRY + 1))
#: A value read in the last tenth of its TTL (at most a second) is refreshed before
#: the TTL runs out: see Client._expire.
REFRESH_AHEAD_FRACTION = 0.1
REFRESH_AHEAD_MAX = 1.0
#: Constants of the miss path (Client._get_slow).
_UP = HealthState.UP
_DOWN = HealthState.DOWN
_FIRST_BUCKET = DURATION_BUCKETS[0]


class _Flight:
    """One in-progress store call that concurrent callers wait on.

    No ``__init__``: the class attributes are the defaults, so making one (once per
    miss) runs no Python code.
    """

    # Made by the first waiter: most flights (a miss nobody else wants) have none,
    # which keeps an Event, its Condition and its lock off the miss path.
    event: threading.Event | None = None
    result: Any = None
    error: BaseException | None = None
    started_at = 0.0  # monotonic time the store call began (0: not yet)

    def waiter(self) -> threading.Event:
        """The event set when the flight lands (made on first use, client lock held)."""
        if self.event is None:
            self.event = threading.Event()
        return self.event


class _Subscription:
    def __init__(self, client: Client, item: tuple[str, Callable[[Change], None]]) -> None:
        self._client = client
        self._item = item

    def stop(self) -> None:
        with self._client._lock:
            if self._item in self._client._subscribers:
                self._client._subscribers.remove(self._item)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _old_lkg_name(options: dict[str, Any], path: Any) -> Any:
    """``path``, or ``Client(snapshot_path=)`` (the 0.1.0 name of ``last_known_good_path=``)."""
    if "snapshot_path" not in options:
        return path
    warnings.warn(
        "Client(snapshot_path=) is now Client(last_known_good_path=)",
        DeprecationWarning,
        stacklevel=3,
    )
    old = options.pop("snapshot_path")
    return old if path is None else path


def _open_store(store: str | Backend | None, options: dict[str, Any]) -> Backend:
    """The backend a client reads: opened from a URL (the default store's without one),
    or the instance it was given."""
    if store is None:
        store = default_url()
    if isinstance(store, str):
        return open_backend(store, **options)
    if options:
        raise ConfigurationError("store options go with a URL, not a backend instance")
    if not callable(getattr(store, "get", None)) or not callable(getattr(store, "close", None)):
        raise ConfigurationError(f"not a store URL or backend: {type(store).__name__}")
    return store


class Client:
    """A caching configuration client.

    ``Client("zookeeper://127.0.0.1:2181/app", cache=CachePolicy(ttl=30))``, or
    ``Client(backend_instance)``, or ``Client()`` for the embedded default store.
    A client closes the backend it opened from a URL, not one it was given.
    """

    def __init__(
        self,
        store: str | Backend | None = None,
        *,
        cache: CachePolicy | None = None,
        secret_prefixes: Iterable[str] = (),
        cache_url: str | None = None,
        last_known_good_path: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        last_known_good_path = _old_lkg_name(options, last_known_good_path)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigurationError("a client name must be a non-empty string")
        self._backend: Backend = _open_store(store, options)
        self._owns_backend = store is None or isinstance(store, str)  # opened here: closed here
        # Asked once: a runtime protocol check costs microseconds, and a client of a
        # store that cannot watch would pay it on every miss (each one tries to start
        # the watch while the policy wants one).
        self._watchable = isinstance(self._backend, SupportsWatch)
        # Whether a copy can be told older than the one held (see _on_bus).
        self._ordered_versions = (
            isinstance(self._backend, SupportsOrderedVersions) and self._backend.versions_increase
        )
        if cache is not None and not isinstance(cache, CachePolicy):
            raise ConfigurationError("cache must be a veltrix.CachePolicy")
        self.policy = cache or CachePolicy()
        # Prefixes the store URL (or VELTRIX_SECRET_PREFIXES) gave count too: is_secret
        # answers for keys the store has not returned yet (the shared cache asks it).
        store_prefixes: tuple[str, ...] = getattr(self._backend, "secret_prefixes", ())
        self.secret_prefixes = tuple(
            dict.fromkeys((*normalize_prefixes(secret_prefixes), *store_prefixes))
        )
        self.source = describe(self._backend)
        #: The ``client`` label of this client's metrics (default: the redacted URL).
        self.name = self.source if name is None else name

        # Fresh values only: the hot path reads these dicts and nothing else.
        self._fresh: dict[str, str] = {}  # key -> decoded text
        self._typed: dict[Any, dict[str, Any]] = {}  # conversion target -> key -> value
        # model class -> prefix (as the caller spelled it) -> instance: two subscripts
        # on a hit, no (prefix, model) tuple to build and hash.
        self._models: dict[Any, dict[str, Any]] = {}
        # Slow-path state.
        self._records: dict[str, Record] = {}
        self._metas: dict[Meta, Meta] = {}  # interned Record.meta tuples
        self._last_meta: Meta = ABSENT_META  # the meta of the last miss (see _get_slow)
        self._fences = WriteFences()  # own writes the watch has not echoed yet
        self._model_records: dict[tuple[str, Any], tuple[Any, float]] = {}  # (instance, expires_at)
        self._model_prefixes: dict[tuple[str, Any], str] = {}  # token -> canonical prefix
        self._model_generation: dict[tuple[str, Any], int] = {}
        # key -> the _epoch of its last change (see _bump); _epoch counts all changes.
        self._generation: dict[str, int] = {}
        self._epoch = 0
        self._inflight: dict[Hashable, _Flight] = {}
        # Flights of misses that landed unseen (no waiter made their event), for the
        # next misses: list.pop and list.append are atomic, and cheaper than a new one.
        self._spare_flights: list[_Flight] = []
        self._lock = threading.RLock()
        # The client's lock guards the schedule too: it is held wherever the client
        # schedules, so the miss path takes one lock, not two.
        self._scheduler = ExpiryScheduler(self._expire, name="veltrix-expiry", lock=self._lock)
        self._executor: ThreadPoolExecutor | None = None
        self._watch: Watch | None = None
        self._notifier: ChangeDispatcher[tuple[Change, bool]] | None = None
        self._watch_retry_at = 0.0
        self._subscribers: list[tuple[str, Callable[[Change], None]]] = []
        self._closed = False
        # Hot-path hits, counted only by _get_counting: _hits + _hit_batch.
        self._hits = self._hit_batch = 0
        self._counters = dict.fromkeys(
            (
                "misses",
                "store_calls",
                "stale_served",
                "errors",
                "watch_updates",
                "slow_hits",  # fresh values found on the slow path (absences excluded)
                "negative_hits",  # reads answered by a remembered absence
                "refreshed_ahead",  # values refreshed before their TTL ran out
            ),
            0,
        )
        self._instruments = ClientInstruments()
        self._stale_keys: dict[str, None] = {}  # keys served past their TTL, until refreshed
        # Values in the last stretch of their TTL, off the fresh dicts until replaced:
        # True until a read starts their refresh in the background (see _expire).
        self._refresh_ahead = min(REFRESH_AHEAD_FRACTION * self.policy.ttl, REFRESH_AHEAD_MAX)
        self._ahead_due: dict[str, bool] = {}
        self._health = StoreHealth(self.source, probe_interval=self.policy.error_backoff)
        if isinstance(self._backend, SupportsHealthEvents):
            self._backend.add_health_listener(self._on_connection)
        if self.policy.track_hits:
            self.get = self._get_counting  # type: ignore[method-assign]
        track(self)
        # Optional shared cache (L2) and disk last-known-good: slow path only.
        self._setup_shared(cache_url, last_known_good_path)

    def _setup_shared(self, cache_url: str | None, last_known_good_path: Any) -> None:
        self._l2: SharedCache | None = None
        self._lkg: LastKnownGoodWriter | None = None
        self._lkg_entries: dict[str, tuple[Entry, float]] = {}
        # What the miss path checks (see _get_slow). The store rejects an invalid key in
        # ``get`` before any I/O, with the same InvalidKeyError as validate_key, when it
        # is one of veltrix's own adapters: they all run the conformance suite
        # (test_invalid_keys_rejected_before_io), so the miss leaves the check to them.
        self._store_checks_keys = type(self._backend).__module__.startswith("veltrix.adapters.")
        # True when a miss may have more than the store to ask (or the client is closed).
        self._detour = False
        if cache_url is None and last_known_good_path is None:
            return
        try:
            self._open_shared(cache_url, last_known_good_path)
        except BaseException:
            self.close()
            raise
        self._detour = self._l2 is not None or bool(self._lkg_entries)

    def _open_shared(self, cache_url: str | None, last_known_good_path: Any) -> None:
        from veltrix.secrets_crypto import box_from_env

        box = box_from_env()
        store_id = self._backend.url if isinstance(self._backend, HasUrl) else self.source
        if cache_url is not None:
            from veltrix.shared_cache import SharedCache

            self._counters.update(
                dict.fromkeys(
                    (
                        "bus_invalidations",
                        "bus_updates",
                        "bus_stale_ignored",
                        "last_known_good_served",
                    ),
                    0,
                )
            )
            self._l2 = SharedCache(
                cache_url,
                store=store_id,
                policy=self.policy,
                box=box,
                is_secret=self.is_secret,
                on_message=self._on_bus,
                on_reconnect=self._on_bus_reconnect,
            )
        if last_known_good_path is not None:
            from veltrix.lkg import LastKnownGoodFile, LastKnownGoodWriter

            self._counters.setdefault("last_known_good_served", 0)
            lkg_file = LastKnownGoodFile(
                last_known_good_path, store=store_id, box=box, is_secret=self.is_secret
            )
            self._lkg_entries = lkg_file.load()
            if self._lkg_entries:
                log.info(
                    "loaded %d last-known-good values from %s",
                    len(self._lkg_entries),
                    lkg_file.path,
                    extra=event(
                        "veltrix.last_known_good.loaded",
                        store=self.source,
                        keys=len(self._lkg_entries),
                    ),
                )
            self._lkg = LastKnownGoodWriter(lkg_file, self._last_known_good_entries)

    # -- construction helpers ---------------------------------------------------------

    @classmethod
    def from_env(cls, **overrides: Any) -> Client:
        """A client configured from ``VELTRIX_*`` environment variables (see :class:`VeltrixSettings`)."""
        from veltrix.settings import VeltrixSettings

        return VeltrixSettings(**overrides).client()

    @classmethod
    def from_terraform(cls, source: Any, **kwargs: Any) -> Client:
        """A client for the store a Terraform module created: ``source`` is the path of
        a ``terraform output -json`` file, its JSON text, or the parsed mapping."""
        from veltrix.terraform import client_from_terraform

        return client_from_terraform(source, **kwargs)

    @property
    def backend(self) -> Backend:
        return self._backend

    def __repr__(self) -> str:
        return f"Client({self.source!r}, ttl={self.policy.ttl})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads: the hot path ----------------------------------------------------------

    @overload
    def get(self, key: str) -> str: ...
    @overload
    def get(self, key: str, default: T) -> str | T: ...
    @overload
    def get(self, key: str, default: Any = ..., *, type: type[M]) -> M: ...
    @overload
    def get(self, key: str, default: Any = ..., type: Any = ...) -> Any: ...

    def get(self, key: str, default: Any = _NO_DEFAULT, type: Any = None) -> Any:
        """The value of ``key``: text by default, or converted to ``type``.

        Absent keys return ``default``, or raise :class:`KeyNotFoundError` without one.
        """
        # Subscripts, not dict.get: a miss costs a KeyError, but a hit skips a method call.
        # The fresh dict holds text only (absences and binary values take the slow path),
        # so a hit needs no check of what it found.
        if type is None:
            try:
                return self._fresh[key]
            except (KeyError, TypeError):  # TypeError: an unhashable key; the slow path says so
                pass
        else:
            try:
                return self._typed[type][key]
            except (KeyError, TypeError):
                pass
        return self._get_slow(key, default, type)

    def _get_counting(self, key: str, default: Any = _NO_DEFAULT, type: Any = None) -> Any:
        """``get`` that also counts hot-path hits. It becomes ``Client.get`` itself while
        a metrics exporter is installed (:func:`count_hits_in_all_clients`), and a
        client's own ``get`` with ``CachePolicy(track_hits=True)``.

        A copy of ``get``'s body, not a call to it: one more call would cost more
        than the count itself. The count steps through :data:`_HIT_STEPS` (a table
        lookup returns an int the table already holds: no allocation, no compare);
        stepping past its end raises IndexError, once per ``_HIT_CARRY`` hits, which
        carries the batch into ``_hits`` (a ``try`` costs nothing until it raises).
        """
        if type is None:
            try:
                value = self._fresh[key]
            except (KeyError, TypeError):
                pass
            else:
                try:
                    self._hit_batch = _HIT_STEPS[self._hit_batch]
                except IndexError:
                    self._hits += _HIT_CARRY
                    self._hit_batch = 1
                return value
        else:
            try:
                value = self._typed[type][key]
            except (KeyError, TypeError):
                pass
            else:
                try:
                    self._hit_batch = _HIT_STEPS[self._hit_batch]
                except IndexError:
                    self._hits += _HIT_CARRY
                    self._hit_batch = 1
                return value
        return self._get_slow(key, default, type)

    _get_plain = get  # the class's own get, restored when counting stops

    @property
    def counting_hits(self) -> bool:
        """True while this client counts cache hits (metrics installed, or ``track_hits``)."""
        return "get" in self.__dict__ or Client.get is Client._get_counting

    def get_bytes(self, key: str, default: Any = _NO_DEFAULT) -> Any:
        return self.get(key, default, type=bytes)

    def get_json(self, key: str, default: Any = _NO_DEFAULT) -> Any:
        """The value parsed as JSON (any shape); :class:`DecodeError` if it is not JSON."""
        return self.get(key, default, type=JSON)

    def flag(self, name: str, default: bool = False) -> bool:
        """Whether feature flag ``name`` is on: the key ``flags/<name>/enabled``.

        AppConfig feature-flag profiles expose their flags under that key; any other
        store can hold flags the same way. ``default`` when the flag is not defined;
        :class:`DecodeError` when its value is not a boolean.
        """
        if not isinstance(name, str):
            raise InvalidKeyError(f"flag name must be a string, got {type(name).__name__}")
        value = self.get(f"flags/{name}/enabled", None, bool)
        return default if value is None else bool(value)

    def get_entry(self, key: str) -> Entry | None:
        """The cached entry (value, version, provenance), or ``None`` when absent."""
        validate_key(key)
        return record_entry(self._lookup(key), key)

    def get_model(self, prefix: str, model: type[M]) -> M:
        """The keys under ``prefix`` validated as a pydantic ``model``.

        ``payments/timeout_ms`` and ``payments/db/host`` fill ``timeout_ms`` and
        ``db.host`` of ``get_model("payments", Payments)``. The instance is cached
        and dropped when any key under the prefix changes (watch or write) or expires.
        Instances are shared between callers: do not mutate them.
        """
        try:
            return self._models[model][prefix]  # type: ignore[no-any-return]
        except (KeyError, TypeError):  # TypeError: unhashable; the slow path says why
            return self._get_model_slow(prefix, model)

    def bind(self, prefix: str, model: type[M]) -> M:
        """A live instance of the pydantic ``model`` for the keys under ``prefix``.

        Reading a field is a plain attribute access (``cfg.timeout_ms``), the fastest
        configuration read there is. Whenever a key under ``prefix`` changes (the
        store's watch, or this client's own writes), the model is validated again and
        all its fields are replaced at once: the instance's ``__dict__`` is swapped in
        one reference assignment, so a reader never sees half of an update. Each field
        read gets one version; to read several fields of one version, take
        ``cfg.model_copy()``. A new version that does not validate is not applied: the
        last good one stays, the error is logged and counted (``bind_errors``).
        Needs a store that can watch.
        """
        from pydantic import BaseModel

        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError("bind needs a pydantic BaseModel class")
        self._check_open()
        self._start_watch(required=True)
        token, load = self._model_loader(prefix, model)
        self._counters.setdefault("bind_errors", 0)
        built = [self._model_generation.get(token, 0)]  # the version the instance shows
        subscription = self.watch(prefix, lambda change: refresh())  # before the first read
        try:
            live = self.get_model(prefix, model).model_copy()
        except BaseException:
            subscription.stop()
            raise

        def refresh() -> None:  # on the notifier thread, once per change under prefix
            generation = self._model_generation.get(token, 0)
            if generation == built[0]:
                return  # an earlier change's refresh already read this version
            try:  # from the store, waiting for it: never a stale copy (this is no reader)
                fresh = self._single_flight(token, load)
            except VeltrixError as exc:
                self._counters["bind_errors"] += 1
                log.warning(
                    "keeping the last good %s for %r: %s",
                    model.__name__,
                    prefix,
                    exc,
                    extra=event(
                        "veltrix.bind.refresh_failed", store=self.source, key=prefix, error=exc
                    ),
                )
                return
            built[0] = generation
            object.__setattr__(live, "__pydantic_fields_set__", fresh.__pydantic_fields_set__)
            object.__setattr__(live, "__pydantic_extra__", fresh.__pydantic_extra__)
            object.__setattr__(live, "__dict__", fresh.__dict__)  # the one swap readers see

        return live

    # -- reads: the slow path ---------------------------------------------------------

    def _get_slow(self, key: str, default: Any, target: Any) -> Any:  # noqa: PLR0915 (one function on purpose)
        """A read the hot path could not answer.

        The common case, a key this client holds nothing for (no last-known-good, no
        L2, the store not down), is the miss written out below in one function: it
        does what :meth:`_fetch`, :meth:`_single_flight`, :meth:`_fly`, :meth:`_load`,
        :meth:`_call_store` and :meth:`_install` do, without their calls, and takes
        the client lock once (issue #23). Whatever else a read can meet, and every
        failure, goes to those methods. Everything else takes :meth:`_lookup`.

        What it leaves out, and where that went: the key's check when the store makes
        the same one itself (``_store_checks_keys``); the ``misses`` and
        ``store_calls`` counts, which :meth:`stats` folds in from
        ``ClientInstruments.gets_ok`` (a miss's failure counts itself); the first
        bucket of the duration histogram and the wall-clock read of the refresh time,
        which ``ClientInstruments`` folds in when read.
        """
        if (key.__class__ is not str or not self._store_checks_keys) and not (
            key.__class__ is str and len(key) <= MAX_KEY_LENGTH and key_match(key)
        ):
            validate_key(key)  # raises for an invalid key (a str subclass may pass)
        if key in self._records:  # (an invalid key never is)
            return self._serve(key, self._lookup(key), default, target)
        if (
            self._detour and (self._l2 is not None or self._closed or key in self._lkg_entries)
        ) or self._health.state is _DOWN:
            if self._store_checks_keys:
                validate_key(key)
            return self._serve(key, self._lookup(key), default, target)
        inflight = self._inflight
        # Registered without the lock: setdefault is atomic, and every other flight is
        # registered with setdefault too, so two callers never both lead.
        try:
            new = self._spare_flights.pop()
        except IndexError:
            new = _Flight()
        flight = inflight.setdefault(key, new)
        if flight is not new:  # someone else is loading it: wait for them
            self._spare_flights.append(new)
            if self._store_checks_keys:
                validate_key(key)
            return self._serve(key, self._join(key, flight), default, target)
        epoch = self._epoch  # a change to the key meanwhile moves it past this (see _bump)
        lock = self._lock
        try:
            # The store call, counted and timed like _call_store's first attempt.
            started = flight.started_at = monotonic()
            try:
                entry = self._backend.get(key)
            except BaseException as exc:
                entry = self._miss_failed(key, exc, started)  # retried, or raises
                now = monotonic()
            else:
                now = monotonic()
                # Folded in at read time (ClientInstruments.histograms, last_refresh; stats).
                instruments = self._instruments
                instruments.gets_ok += 1  # also this miss and its store call
                instruments.refreshed_at = now
                seconds = now - started
                if seconds > _FIRST_BUCKET:  # (else the first bucket: a local store)
                    instruments.slow_gets[bisect_left(DURATION_BUCKETS, seconds)] += 1
                instruments.get_seconds += seconds
                if self._health.state is not _UP:
                    self._health.succeeded()
            # Packed as _record packs it (see Record), installed as _install installs it.
            value: str | bytes | None
            if entry is None:
                value, version, meta = None, "", ABSENT_META
                expires_at = deadline = now + self.policy.negative_ttl
            else:
                try:
                    value = entry.value.decode()
                except UnicodeDecodeError:
                    value = entry.value
                version = entry.version
                # The meta of the last miss, when it fits (the common case: one store
                # names every key the same way), else built and interned like _record's.
                meta = self._last_meta
                source = entry.source
                if not (
                    meta[1]
                    and source == meta[0] + key
                    and entry.content_type == meta[2]
                    and entry.secret is meta[3]
                ):
                    meta = self._last_meta = self._meta(key, entry)
                expires_at = now + self.policy.ttl
                # As _install: off the fresh dicts for the last stretch of its TTL.
                deadline = expires_at - self._refresh_ahead
            record: Record = (value, version, meta, expires_at)
            lock.acquire()
            try:
                del inflight[key]
                landed = flight.event
                if self._epoch != epoch or key in self._records:
                    # A watch, a write or an invalidation came meanwhile: _load's rule.
                    current = self._records.get(key)
                    if self._generation.get(key, 0) > epoch and current is not None:
                        record = current
                    else:
                        record = self._install(key, entry)
                    value = record[VALUE]
                else:
                    self._records[key] = record
                    if self._lkg is not None and entry is not None:
                        self._lkg.mark_dirty()
                    # (The key has no record, so it is in neither _stale_keys nor
                    # _ahead_due: see invalidate.)
                    if now < expires_at:
                        if value.__class__ is str:
                            self._fresh[key] = value
                        # ExpiryScheduler.schedule_held, inline for its open slot.
                        scheduler = self._scheduler
                        if scheduler.open_from <= deadline < scheduler.open_until:
                            scheduler.open_tokens.append(key)
                        else:
                            scheduler.schedule_held(deadline, key)
            finally:
                lock.release()
        except BaseException as exc:
            self._land_failed(key, flight, exc)
            raise
        if landed is None:  # nobody saw this flight: the next miss may reuse it
            self._spare_flights.append(flight)
        else:  # readers wait for this load (rare: they made the event)
            flight.result = record
            landed.set()
        if self._watch is None and self.policy.watch:
            self._start_watch(required=False)
        if target is None and value.__class__ is str:
            return value
        return self._serve(key, record, default, target)

    def _join(self, key: str, flight: _Flight) -> Record:
        """Wait for ``flight``, another reader's load of ``key``, and share its outcome."""
        with self._lock:
            if self._inflight.get(key) is flight:
                landed = flight.waiter()
                self._instruments.coalesced += 1
            else:
                landed = None  # it landed meanwhile: load again (it may have failed)
        if landed is None:
            return self._single_flight(key, partial(self._load, key))
        landed.wait()
        if flight.error is not None:
            raise flight.error
        return cast(Record, flight.result)

    def _miss_failed(self, key: str, exc: BaseException, started: float) -> Entry | None:
        """The miss's first store call (begun at ``started``) raised ``exc``: count it
        as :meth:`_call_store` would, then retry through it, or raise.

        An invalid key the store refused (``_store_checks_keys``) raises here,
        uncounted, as if the client had checked it before the call."""
        if isinstance(exc, InvalidKeyError):
            validate_key(key)
        counters = self._counters
        counters["misses"] += 1  # (a miss that succeeds is counted by gets_ok)
        counters["store_calls"] += 1
        error = self._store_failed(exc, "get", started, read=True)
        retries = self.policy.retries
        self._before_retry(error, 0, retries)
        return self._call_store(
            partial(self._backend.get, key), op="get", retries=retries, attempt=1
        )

    def _land_failed(self, key: str, flight: _Flight, error: BaseException) -> None:
        """End the miss's ``flight`` with ``error``: its waiters raise it too."""
        flight.error = error
        with self._lock:
            if self._inflight.get(key) is flight:
                del self._inflight[key]
            landed = flight.event
        if landed is not None:
            landed.set()

    def _serve(self, key: str, record: Record, default: Any, target: Any) -> Any:
        """What a read of ``key`` returns from ``record`` (text, or converted to
        ``target``); a fresh value is put into the hot path's dicts."""
        stored, _, _, expires_at = record
        if stored is None:
            if default is _NO_DEFAULT:
                raise KeyNotFoundError(f"{key!r} not found in {self.source}")
            return default
        if target is not None:
            value = convert(key, cast(bytes, record_raw(record)), target)
        elif isinstance(stored, str):
            value = stored
        else:
            value = decode_text(key, stored)  # not UTF-8 (or it would be a str): DecodeError
        if monotonic() >= expires_at or key in self._ahead_due:
            # Served stale, or in the last stretch of its TTL, which stays off the fresh
            # dicts (_expire). Never take the lock: its holder may wait on the GIL.
            return value
        if target is None and self._fresh.get(key) is value:
            return value  # a miss: the load put it there already
        with self._lock:
            if self._records.get(key) is record and monotonic() < expires_at:
                if target is None:
                    self._fresh[key] = value
                else:
                    self._typed.setdefault(target, {})[key] = value
        return value

    def _lookup(self, key: str) -> Record:
        self._check_open()
        record = self._records.get(key)
        if record is None:
            if key in self._lkg_entries:
                return self._from_last_known_good(key)
            return self._fetch(key)
        now = monotonic()
        state = self.policy.state(record, now)
        if state is Freshness.FRESH:
            self._counters["slow_hits" if record[VALUE] is not None else "negative_hits"] += 1
            if self._ahead_due.get(key):
                self._refresh_before_expiry(key, record)
            return record
        if state is Freshness.REVALIDATE:
            self._background_load(key, lambda: self._load(key))
            self._counters["stale_served"] += 1
            self._stale_keys[key] = None
            return record
        if not self.policy.may_serve_stale(record[EXPIRES_AT], now):
            return self._fetch(key)
        return self._refresh_or_stale(key, lambda: self._load(key), record)

    def _refresh_before_expiry(self, key: str, record: Record) -> None:
        """Start the background refresh of a value read in the last stretch of its TTL,
        while the store is up: readers go on with the value, still within its TTL, and
        no thread hop stands between the TTL and the new value."""
        with self._lock:  # once per record: a reader that lost the GIL must not start another
            if self._ahead_due.get(key) is not True or self._records.get(key) is not record:
                return
            self._ahead_due[key] = False  # begun (the key stays off the fresh dicts)
        if self._health.state is HealthState.UP:
            self._counters["refreshed_ahead"] += 1
            self._background_load(key, partial(self._load, key))  # one flight per key

    def _fetch(self, key: str) -> Record:
        """A read with nothing to serve meanwhile: wait for the store, unless it is down."""
        self._counters["misses"] += 1
        load = partial(self._load, key)
        if self._health.state is HealthState.DOWN:
            self._fail_fast_if_down(key, load)
        return self._single_flight(key, load)

    def _fail_fast_if_down(self, token: Hashable, load: Callable[[], object]) -> None:
        """Raise at once while the store is down (a probe may start in the background)."""
        if self._health.state is HealthState.DOWN:
            self._probe(token, load)
            health = self._health.report()
            raise BackendUnavailableError(
                f"{self.source} is down ({health.reason}) and {token!r} is not cached"
            )

    def _refresh_or_stale(self, token: Hashable, load: Callable[[], T], stale: T) -> T:
        """Refresh an expired value, or serve ``stale`` rather than wait on the store.

        While the store is up, the refresh runs on the refresh pool and the read waits
        for it at most ``policy.refresh_deadline``; a refresh that takes longer marks
        the store slow, so later reads do not wait again. While it is slow or down,
        ``stale`` is served at once and at most one background probe asks the store.
        """
        up = self._health.state is HealthState.UP
        if up:
            self._counters["misses"] += 1
        if up and self.policy.ttl <= 0:
            try:  # no caching: wait for the store, on this thread (no hop to the pool)
                return self._single_flight(token, load)
            except BackendUnavailableError:
                pass
        elif up:
            flight = self._background_load(token, load)
            deadline = self.policy.refresh_deadline
            if flight.waiter().wait(deadline):  # made by _background_load: no race
                if flight.error is None:
                    return flight.result  # type: ignore[no-any-return]
                if not isinstance(flight.error, BackendUnavailableError):
                    raise flight.error
            elif flight.started_at and monotonic() - flight.started_at >= deadline:
                self._health.slow(f"a store call took over {deadline:g}s")
            # Else the refresh has not even begun: the process is busy (threads queue
            # for the GIL), the store is not slow. Serve stale, without a verdict.
        else:
            self._probe(token, load)
        self._counters["stale_served"] += 1
        if isinstance(token, str):  # (stale is the key's Record)
            self._stale_keys[token] = None
        return stale

    def _from_last_known_good(self, key: str) -> Record:
        """Cold start: the disk last-known-good value stands in as an expired record."""
        entry, fetched_wall = self._lkg_entries[key]
        now = monotonic()
        age = max(0.0, time.time() - fetched_wall)
        expired_at = min(now - max(0.0, age - self.policy.expires_at(0.0, False)), now)
        if not self.policy.may_serve_stale(expired_at, now):
            return self._fetch(key)
        with self._lock:
            raced = key in self._records  # another reader got there first
            if not raced:
                record = self._records[key] = self._record(key, entry, expired_at)
        if raced:
            return self._lookup(key)
        result = self._refresh_or_stale(key, lambda: self._load(key), record)
        if result is record:
            self._counters["last_known_good_served"] += 1
            log.debug(
                "serving %r from the last-known-good file (fetched %.0fs ago)",
                key,
                age,
                extra=event("veltrix.last_known_good.served", store=self.source, key=key),
            )
        return result

    def _load(self, key: str) -> Record:
        generation = self._generation.get(key, 0)
        ttl: float | None = None
        if self._l2 is None:
            entry = self._call_store(
                lambda: self._backend.get(key), op="get", retries=self.policy.retries
            )
        else:  # L1 miss -> L2 -> (one process in the fleet) the store
            entry, ttl = self._l2.read_through(
                key,
                lambda: self._call_store(
                    lambda: self._backend.get(key), op="get", retries=self.policy.retries
                ),
            )
        record = self._land(key, generation, entry, ttl)
        if self._watch is None and self.policy.watch:
            self._start_watch(required=False)
        return record

    def _land(
        self, key: str, generation: int, entry: Entry | None, ttl: float | None = None
    ) -> Record:
        """Install ``entry``, read from the store for a load of ``key`` begun at
        ``generation`` (see :meth:`_begin_miss`), unless a watch, a write or an
        invalidation installed something newer meanwhile: then that stays."""
        with self._lock:
            current = self._records.get(key)
            if self._generation.get(key, 0) != generation and current is not None:
                return current
            return self._install(key, entry, ttl)

    # -- the miss in parts, for a caller that waits on the store itself (veltrix.aio) --

    def _may_load_alone(self, key: str) -> bool:
        """True when a miss of ``key`` is one store call and an install, nothing else:
        no record (no stale value to serve, no fence), no shared cache, no
        last-known-good entry, and the store up. (The caller starts the watch the
        policy wants first: :meth:`_watch_wanted`.) Every other read goes through
        :meth:`get`, whose policy decides."""
        return (
            key not in self._records
            and self._l2 is None
            and not self._closed
            and key not in self._lkg_entries
            and self._health.state is _UP
        )

    def _watch_wanted(self) -> bool:
        """True while the policy wants a watch the client could start now."""
        return (
            self._watch is None
            and self.policy.watch
            and self._watchable
            and monotonic() >= self._watch_retry_at
        )

    def _begin_miss(self, key: str) -> int:
        """Count a miss of ``key``; its generation, for :meth:`_land`."""
        self._counters["misses"] += 1
        return self._generation.get(key, 0)

    def _store_call_begins(self) -> float:
        """Count one store call; when it began, for :meth:`_store_answered` or
        :meth:`_store_failed`."""
        self._counters["store_calls"] += 1
        return monotonic()

    def _store_answered(self, op: str, started: float) -> None:
        """The store call begun at ``started`` answered: time it, mark the store up."""
        self._instruments.store_call(op, "ok", monotonic() - started, time.time())
        self._health.succeeded()

    def _install(self, key: str, entry: Entry | None, ttl: float | None = None) -> Record:
        """Make ``entry`` (``None``: absent) the current state of ``key``. Lock held.

        ``ttl``: seconds it stays fresh when less than the policy's (an L2 entry's rest).
        """
        now = monotonic()
        expires_at = self.policy.expires_at(now, entry is None) if ttl is None else now + ttl
        record = self._record(key, entry, expires_at)
        if self._lkg is not None and entry is not None:
            self._lkg.mark_dirty()
        self._records[key] = record
        self._drop_fresh(key)
        self._stale_keys.pop(key, None)
        self._ahead_due.pop(key, None)
        if now < expires_at:
            value = record[VALUE]
            if value.__class__ is str:
                self._fresh[key] = value  # the Record's own text: the value is held once
            # A value with the policy's whole TTL leaves the fresh dicts a little early,
            # so that a read refreshes it in time (see _expire).
            ahead = self._refresh_ahead if ttl is None and entry is not None else 0.0
            self._scheduler.schedule(expires_at - ahead, key)
        return record

    def _record(self, key: str, entry: Entry | None, expires_at: float) -> Record:
        """``entry`` packed into a :class:`Record` (see there for why it is packed)."""
        if entry is None:
            return (None, "", ABSENT_META, expires_at)
        meta = self._meta(key, entry)
        return (pack_value(entry.value), entry.version, meta, expires_at)

    def _meta(self, key: str, entry: Entry) -> Meta:
        """The interned :data:`Meta` of ``entry`` (the source without the key when it ends with it)."""
        source = entry.source
        with_key = source.endswith(key)
        meta: Meta = (
            source[: -len(key)] if with_key else source,
            with_key,
            entry.content_type,
            entry.secret,
        )
        if len(self._metas) < _MAX_METAS:
            meta = self._metas.setdefault(meta, meta)
        return meta

    def _drop_model(self, token: tuple[str, Any]) -> None:
        prefix, model = token
        by_prefix = self._models.get(model)
        if by_prefix is not None:
            by_prefix.pop(prefix, None)

    def _cached_model(self, prefix: str, model: Any, default: Any = None) -> Any:
        """The cached instance of ``model`` under ``prefix`` (no I/O), else ``default``."""
        return self._models.get(model, {}).get(prefix, default)

    def _drop_fresh(self, key: str) -> None:
        self._fresh.pop(key, None)
        for typed in self._typed.values():
            typed.pop(key, None)

    def _expire(self, token: Hashable, horizon: float) -> None:
        """The scheduler's call: whatever ``token`` names with a deadline before
        ``horizon`` has expired (possibly a few ms early, see :class:`ExpiryScheduler`)."""
        with self._lock:
            if isinstance(token, FenceDue):
                if self._fences.due(token.key, horizon):
                    self._mark_expired(token.key)
            elif isinstance(token, str):
                record = self._records.get(token)
                if record is None:
                    return
                expires_at = record[EXPIRES_AT]
                if expires_at < horizon:
                    self._drop_fresh(token)
                    # Expired from now on, also for the slow path (which would else
                    # put the value back into the fresh dicts with no expiry due).
                    self._records[token] = expire_by(record, monotonic())
                elif expires_at - self._refresh_ahead < horizon and record[VALUE] is not None:
                    # The last stretch of its TTL: still served, from the slow path, whose
                    # first read refreshes it in the background. A refresh begun only at
                    # the TTL would reach readers late: under busy reader threads each
                    # handoff to another thread waits for the GIL.
                    self._drop_fresh(token)
                    self._ahead_due[token] = True
            else:
                model_token = cast(tuple[str, Any], token)
                model_record = self._model_records.get(model_token)
                if model_record is not None and model_record[1] < horizon:
                    self._drop_model(model_token)

    def _single_flight(self, token: Hashable, load: Callable[[], T]) -> T:
        new = _Flight()
        with self._lock:
            flight = self._inflight.setdefault(token, new)  # see _get_slow
            leader = flight is new
            if not leader:
                landed = flight.waiter()
                self._instruments.coalesced += 1
        if leader:
            self._fly(token, flight, load)
        else:
            landed.wait()
        if flight.error is not None:
            raise flight.error
        return flight.result  # type: ignore[no-any-return]

    def _fly(self, token: Hashable, flight: _Flight, load: Callable[[], object]) -> None:
        """Run ``load`` as ``flight`` of ``token``: record its outcome, release its waiters."""
        flight.started_at = monotonic()
        try:
            flight.result = load()
        except BaseException as exc:
            flight.error = exc
        finally:
            with self._lock:
                del self._inflight[token]
                landed = flight.event
            if landed is not None:
                landed.set()

    def _background_load(self, token: Hashable, load: Callable[[], T]) -> _Flight:
        """The load of ``token`` in progress, started on the refresh pool if there is none."""
        with self._lock:
            flight = self._inflight.get(token)
            if flight is not None:
                flight.waiter()  # the caller may wait on it
                self._instruments.coalesced += 1
                return flight
            flight = _Flight()
            landed = flight.waiter()
            if self._closed:
                flight.error = ConfigurationError(f"{self!r} is closed")
                landed.set()
                return flight
            joined = self._inflight.setdefault(token, flight)  # see _get_slow
            if joined is not flight:  # a miss registered it since the get above
                joined.waiter()
                self._instruments.coalesced += 1
                return joined
            if self._executor is None:
                self._executor = ThreadPoolExecutor(4, thread_name_prefix="veltrix-refresh")
            executor = self._executor

        def run() -> None:
            self._fly(token, flight, load)
            error = flight.error
            if error is not None and not isinstance(error, BackendUnavailableError):
                log.warning(
                    "background refresh of %r from %s failed: %s",
                    token,
                    self.source,
                    error,
                    extra=event(
                        "veltrix.store.refresh_failed", store=self.source, key=token, error=error
                    ),
                )

        executor.submit(run)
        return flight

    def _probe(self, token: Hashable, load: Callable[[], object]) -> None:
        """While the store is not up: one background call at a time, at most once per
        ``policy.error_backoff``; its success marks the store up again."""
        if not self._inflight and self._health.take_probe():
            self._background_load(token, load)

    def _call_store(
        self, call: Callable[[], T], *, op: str, retries: int, read: bool = True, attempt: int = 0
    ) -> T:
        """Call the store, mapping its failures onto the error tree; retry transient ones.

        Outcomes feed the health state: an answer marks the store up; a transient
        failure of a read marks it down (a failed write says less about reads).
        Retries stop as soon as the adapter reports its connection lost. Each attempt
        is counted and timed under ``op`` (``get``, ``list``, ``put``, ``delete``).
        ``attempt``: how many attempts were made already (the miss path's first one).
        """
        while True:
            started = self._store_call_begins()
            try:
                result = call()
            except BaseException as exc:
                error = self._store_failed(exc, op, started, read=read)
            else:
                self._store_answered(op, started)
                return result
            self._before_retry(error, attempt, retries)
            attempt += 1

    def _store_failed(
        self, exc: BaseException, op: str, started: float, *, read: bool
    ) -> BackendUnavailableError:
        """Count and time the store call begun at ``started`` that raised ``exc``; raise
        the error the caller sees, unless it is transient (then return it, to retry)."""
        outcome = "error"
        try:
            if isinstance(exc, BackendUnavailableError):
                outcome = "unavailable"
                error = exc
            elif isinstance(exc, AccessDeniedError | VersionConflictError):
                outcome = "denied" if isinstance(exc, AccessDeniedError) else "conflict"
                self._counters["errors"] += 1
                self._health.succeeded()  # the store answered
                raise exc
            elif isinstance(exc, VeltrixError):
                self._counters["errors"] += 1
                raise exc
            elif isinstance(exc, self._backend.transient_errors):
                outcome = "unavailable"
                error = BackendUnavailableError(
                    f"{self.source} is unavailable: {type(exc).__name__}"
                )
                error.__cause__ = exc
            elif isinstance(exc, Exception):
                self._counters["errors"] += 1
                raise BackendError(f"{self.source} failed: {type(exc).__name__}: {exc}") from exc
            else:
                raise exc  # KeyboardInterrupt and the like: not the store's failure
        finally:
            self._instruments.store_call(op, outcome, monotonic() - started, time.time())
        self._counters["errors"] += 1
        if read:
            self._health.failed(str(error))
        return error

    def _before_retry(self, error: BackendUnavailableError, attempt: int, retries: int) -> None:
        """Raise ``error`` when ``attempt`` was the last one allowed; else back off."""
        time.sleep(self._retry_delay(error, attempt, retries))

    def _retry_delay(self, error: BackendUnavailableError, attempt: int, retries: int) -> float:
        """Raise ``error`` when ``attempt`` was the last one allowed; else the seconds
        to back off before the next."""
        if attempt >= retries or not self._health.connected or self._closed:
            raise error
        return min(0.05 * 2.0**attempt, 1.0)

    def _get_model_slow(self, prefix: str, model: type[M]) -> M:
        try:
            hash((prefix, model))
        except TypeError:  # unhashable prefix or model: InvalidKeyError or DecodeError
            normalize_prefix(prefix)
            validate_model(prefix, model, {})
            raise DecodeError(f"cannot read {prefix!r} as an unhashable model") from None
        token, load = self._model_loader(prefix, model)
        previous = self._model_records.get(token)
        if previous is not None and self.policy.may_serve_stale(previous[1], monotonic()):
            return self._refresh_or_stale(token, load, previous[0])  # type: ignore[no-any-return]
        self._counters["misses"] += 1
        self._fail_fast_if_down(token, load)
        return self._single_flight(token, load)

    def _model_loader(self, prefix: str, model: type[M]) -> tuple[tuple[str, Any], Callable[[], M]]:
        """The cache token of ``model`` under ``prefix`` and the call that loads it."""
        token = (prefix, model)
        self._check_open()
        with self._lock:
            canonical = self._model_prefixes.get(token)
            if canonical is None:
                canonical = self._model_prefixes[token] = normalize_prefix(prefix)

        def load() -> Any:
            generation = self._model_generation.get(token, 0)
            entries = self.list(canonical)
            instance = validate_model(canonical, model, nest(entries, canonical))
            expires_at = monotonic() + self.policy.ttl
            with self._lock:
                self._model_records[token] = (instance, expires_at)
                if self.policy.ttl > 0 and generation == self._model_generation.get(token, 0):
                    self._models.setdefault(model, {})[token[0]] = instance
                    self._scheduler.schedule(expires_at, token)
            self._ensure_watch()
            return instance

        return token, load

    # -- change propagation ----------------------------------------------------------

    def _ensure_watch(self) -> None:
        if self._watch is not None or not self.policy.watch:
            return
        self._start_watch(required=False)

    def _start_watch(self, *, required: bool) -> None:
        if not self._watchable:
            if required:
                raise UnsupportedOperationError(f"{self.source} cannot watch for changes")
            return
        backend = cast(SupportsWatch, self._backend)
        with self._lock:
            if self._watch is not None or self._closed:
                return
            if not required and monotonic() < self._watch_retry_at:
                return
            try:
                self._watch = backend.watch("", InlineCallback(self._on_change))
            except VeltrixError as exc:
                self._watch_retry_at = monotonic() + 30
                if required:
                    raise
                log.warning(
                    "cannot watch %s (TTL still applies): %s",
                    self.source,
                    exc,
                    extra=event("veltrix.watch.start_failed", store=self.source, error=exc),
                )

    def _on_change(self, change: Change) -> None:
        """A change from the store's watch, applied to the cache on the watch's own
        thread (see :class:`veltrix.watching.InlineCallback`); the L2 fan-out and the
        user's callbacks, which may block, go to the notifier thread, and only when
        there are any."""
        key = change.key
        self._health.succeeded()  # the watch read it from the store: the store answers
        instruments = self._instruments
        instruments.watch_events += 1
        if change.changed_at is not None:
            instruments.watch_lag.observe(max(0.0, time.time() - change.changed_at))
        with self._lock:
            if self._closed:
                return
            self._bump(key)
            current = self._fences.admit(
                key, None if change.entry is None else change.entry.version
            )
            if current and (key in self._records or key in self._inflight):
                self._install(key, change.entry)
                self._counters["watch_updates"] += 1
            publish = current and self._l2 is not None
            if not publish and not any(in_prefix(key, p) for p, _ in self._subscribers):
                return
            if self._notifier is None:
                self._notifier = ChangeDispatcher(self._notify, name="veltrix-callbacks")
            notifier = self._notifier
        notifier.submit((change, publish))

    def _on_connection(self, up: bool, reason: str) -> None:
        """The adapter's connection event: health first, then count a reconnect."""
        if up and not self._health.connected:
            self._instruments.watch_reconnects += 1
        self._health.connection(up, reason)

    def _notify(self, item: tuple[Change, bool]) -> None:
        change, publish = item
        if publish and self._l2 is not None:
            self._l2.publish(change.key, change.entry)
        with self._lock:
            subscribers = [cb for p, cb in self._subscribers if in_prefix(change.key, p)]
        for callback in subscribers:
            try:
                callback(change)
            except Exception as exc:
                log.exception(
                    "watch callback failed for %r",
                    change.key,
                    extra=event(
                        "veltrix.watch.callback_failed",
                        store=self.source,
                        key=change.key,
                        error=exc,
                    ),
                )

    def _mark_expired(self, key: str) -> None:
        """Make the next read of ``key`` ask the store (or L2). Lock held."""
        self._bump(key)
        self._drop_fresh(key)
        record = self._records.get(key)
        if record is not None:
            self._records[key] = expire_by(record, monotonic())

    def _bump(self, key: str) -> None:
        """Note that ``key`` changed: in-flight loads must not overwrite it; models drop. Lock held.

        The key's generation becomes the client's next epoch: a load that began at
        epoch ``e`` sees a change to its key as a generation above ``e`` (and, without
        a dict lookup, any change at all as an epoch past ``e``). The generation is
        written before the epoch moves on, so a load never reads the new epoch while
        its key still shows the old generation.
        """
        epoch = self._epoch + 1
        self._generation[key] = epoch
        self._epoch = epoch
        for token, prefix in self._model_prefixes.items():
            if in_prefix(key, prefix):
                self._drop_model(token)
                self._model_generation[token] = self._model_generation.get(token, 0) + 1

    def _on_bus(self, message: BusMessage) -> None:
        """Another client wrote ``key``, its watch saw a change, or it refreshed the key
        from the store: install the entry the message carries, or drop L1 and re-read L2."""
        key = message.key
        if message.own or self._l2 is None or key not in self._records:
            return
        carried = self._l2.carried(message)  # decoded (maybe unsealed) outside the lock
        with self._lock:
            record = self._records.get(key)
            if record is None or self._closed:
                return
            if carried is not None:
                entry = carried[0]
                if (
                    self._ordered_versions
                    and entry is not None
                    and record[VALUE] is not None
                    and not newer_or_same(entry.version, record[VERSION])
                ):
                    # A late message: this client's own watch (or a write) installed a
                    # newer version since the sender read its copy.
                    self._counters["bus_stale_ignored"] += 1
                    return
                # Fresh for the entry's rest in L2 plus the grace: the next refresh by
                # the process that loaded it normally lands before this copy expires.
                self._bump(key)
                self._install(key, *carried)
                self._counters["bus_updates"] += 1
                return
            if record_version(record) == message.version:
                return  # already have it (our own watch got there first)
            self._mark_expired(key)
            generation = self._generation[key]
            self._counters["bus_invalidations"] += 1
        hit = self._l2.peek(key)
        if hit is None:
            return  # the next read asks L2 / the store
        entry, ttl = hit
        with self._lock:
            if self._generation.get(key, 0) == generation and not self._closed:
                self._install(key, entry, ttl)

    def _on_bus_reconnect(self) -> None:
        """Invalidations may have been missed while Redis was away: re-read every key from L2."""
        now = monotonic()
        with self._lock:
            records = self._records
            for key, record in records.items():
                records[key] = expire_by(record, now)  # (no key added or removed)
                self._drop_fresh(key)

    def watch(self, prefix: str, callback: Callable[[Change], None]) -> _Subscription:
        """Call ``callback(change)`` for every change under ``prefix``.

        Callbacks run on a background thread after the cache has been updated, so a
        ``get`` inside the callback already sees the new value.
        """
        canonical = normalize_prefix(prefix)
        self._check_open()
        self._start_watch(required=True)
        item = (canonical, callback)
        with self._lock:
            self._subscribers.append(item)
        return _Subscription(self, item)

    # -- writes ----------------------------------------------------------------------

    def _writable(self) -> SupportsWrite:
        self._check_open()
        if not isinstance(self._backend, SupportsWrite):
            raise UnsupportedOperationError(f"{self.source} is read-only")
        return self._backend

    def put(self, key: str, value: object, *, if_version: str | AbsentType | None = None) -> str:
        """Write ``value`` (bytes, str, or JSON-encodable); return the new version.

        Write-through: this client reads its own write at once.
        """
        validate_key(key)
        data = encode(key, value)
        backend = self._writable()
        return self._write(
            key,
            "put",
            lambda: backend.put(key, data, if_version=if_version),
            lambda version: Entry(
                key, data, version, source=self.source, secret=self.is_secret(key)
            ),
        )

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        """Delete ``key``; True if it existed."""
        validate_key(key)
        backend = self._writable()
        return self._write(
            key, "delete", lambda: backend.delete(key, if_version=if_version), lambda _: None
        )

    def _write(
        self, key: str, op: str, call: Callable[[], T], written: Callable[[T], Entry | None]
    ) -> T:
        """Write ``key`` through to the store, L1 and L2; return the store call's result.

        ``call`` does the store write; ``written`` turns its result into the entry now
        stored (``None`` after a delete). Fenced against late watch events (see
        :mod:`veltrix.fences`).
        """
        with self._lock:
            if self._watch is not None:
                self._fences.begin(key)
        if self._l2 is not None:
            # From now on, bus payloads about ``key`` from others predate this write.
            self._l2.expect_own(key)
        try:
            result = self._call_store(call, op=op, retries=0, read=False)
        except BaseException:
            with self._lock:
                self._after_fence(key, self._fences.abandon(key))
            if self._l2 is not None:
                self._l2.settle_own(key)
            raise
        entry = written(result)
        with self._lock:
            self._bump(key)
            self._install(key, entry)
            self._after_fence(
                key, self._fences.settle(key, None if entry is None else entry.version)
            )
        if self._l2 is not None:
            self._l2.publish(key, entry, expected=True)
        return result

    def _after_fence(self, key: str, outcome: tuple[bool, float | None]) -> None:
        """Refetch ``key`` and/or schedule its fence's deadline. Lock held."""
        refetch, due = outcome
        if refetch:
            self._mark_expired(key)
        if due is not None:
            self._scheduler.schedule(due, FenceDue(key))

    def list(self, prefix: str = "") -> list[Entry]:
        """Every entry under ``prefix``, read from the store (not cached)."""
        canonical = normalize_prefix(prefix)
        self._check_open()
        backend = self._backend
        if not isinstance(backend, SupportsList):
            raise UnsupportedOperationError(f"{self.source} cannot list keys")
        return self._call_store(
            lambda: list(backend.list(canonical)), op="list", retries=self.policy.retries
        )

    # -- introspection and lifecycle -------------------------------------------------

    def is_secret(self, key: str, entry: Entry | None = None) -> bool:
        """True when values of ``key`` must be masked (flagged by the store or by prefix)."""
        if entry is not None and entry.secret:
            return True
        return any(in_prefix(key, prefix) for prefix in self.secret_prefixes if prefix)

    def health(self) -> Health:
        """The store's health as this client sees it: up, slow or down, since when,
        why; whether its watch is connected, the last successful refresh, the oldest
        stale value's age and the shared cache's state (see :class:`Health`)."""
        reading = self._reading()
        l2 = self._l2
        return dataclasses.replace(
            self._health.report(),
            watch_connected=reading.watch_connected,
            last_refresh=reading.last_refresh or None,
            oldest_stale_age=reading.stale_age,
            l2=None
            if l2 is None
            else L2Health(l2.url, l2.breaker.is_open, l2.bus_node is not None),
        )

    def on_health_change(self, callback: Callable[[Health], None]) -> None:
        """Call ``callback(health)`` whenever the store's health changes. It runs on the
        thread that saw the change (a reader, a refresh, the store's connection
        thread): keep it quick and never block in it."""
        self._health.add_listener(callback)

    def stats(self) -> dict[str, int]:
        """Counters: misses (reads that went to the store), store_calls, stale_served,
        errors, watch_updates, slow_hits and negative_hits (fresh values and remembered
        absences found past the hot path), cached_keys, store_up (1 or 0) and
        health_transitions; plus reads and hits while hits are counted (``track_hits``,
        or an installed metrics exporter: :mod:`veltrix.metrics`)."""
        result = self._counts()
        result["cached_keys"] = len(self._records)
        health = self._health.report()
        result["store_up"] = int(health.up)
        result["health_transitions"] = health.transitions
        if self._l2 is not None:
            result.update(self._l2.counters)
            result["l2_breaker_open"] = int(self._l2.breaker.is_open)
        if self.counting_hits:
            hits = self._hits + self._hit_batch + result["slow_hits"]
            result["hits"] = hits
            result["reads"] = (
                hits + result["misses"] + result["stale_served"] + result["negative_hits"]
            )
        return result

    def _counts(self) -> dict[str, int]:
        """The counters, with the misses the miss path counts only as successful
        store gets (``gets_ok``: each is one miss and one store call) folded in."""
        result = dict(self._counters)
        landed = self._instruments.gets_ok
        result["misses"] += landed
        result["store_calls"] += landed
        return result

    def _reading(self) -> ClientReading:
        """Everything the metrics exporters report for this client, read now.

        Computed here, at scrape time: the stale age walks only the keys served
        stale since their last refresh.
        """
        counters = self._counts()
        now = monotonic()
        oldest = now
        with self._lock:
            for key in list(self._stale_keys):
                record = self._records.get(key)
                if record is None or record[EXPIRES_AT] > now:
                    del self._stale_keys[key]
                else:
                    oldest = min(oldest, record[EXPIRES_AT])
            cached = len(self._records)
        health = self._health.report()
        instruments = self._instruments
        l2 = self._l2
        return ClientReading(
            name=self.name,
            cache={
                "hit": self._hits + self._hit_batch + counters["slow_hits"],
                "miss": counters["misses"],
                "stale": counters["stale_served"],
                "negative": counters["negative_hits"],
            },
            store_requests=instruments.requests(),
            durations=instruments.histograms(),
            store_up=health.up,
            last_refresh=instruments.last_refresh,
            stale_age=now - oldest,
            watch_connected=None if self._watch is None else self._health.connected,
            watch_events=instruments.watch_events,
            watch_reconnects=instruments.watch_reconnects,
            watch_lag=instruments.watch_lag.copy(),
            coalesced=instruments.coalesced,
            cached_keys=cached,
            l2=None
            if l2 is None
            else L2Reading(
                requests={
                    "hit": l2.counters["l2_hits"],
                    "miss": l2.counters["l2_misses"],
                    "error": l2.counters["l2_errors"],
                    "lock_timeout": l2.counters["l2_lock_timeouts"],
                },
                circuit_open=l2.breaker.is_open,
                bus={"sent": l2.counters["bus_sent"], "received": l2.counters["bus_received"]},
            ),
        )

    def invalidate(self, key: str | None = None) -> None:
        """Forget ``key`` (or everything): the next read asks the store."""
        if key is not None:
            validate_key(key)
        with self._lock:
            keys = [key] if key is not None else list(self._records)
            for item in keys:
                # A key is in _stale_keys or _ahead_due only while it has a record: the
                # miss path relies on it and does not look there.
                self._records.pop(item, None)
                self._stale_keys.pop(item, None)
                self._ahead_due.pop(item, None)
                self._drop_fresh(item)
                self._bump(item)
            if key is None:
                self._models.clear()
                self._model_records.clear()
                for token in self._model_prefixes:
                    self._model_generation[token] = self._model_generation.get(token, 0) + 1

    def _last_known_good_entries(self) -> dict[str, tuple[Entry, float]]:
        """What the last-known-good file keeps: every cached value, with wall-clock fetch times.

        A record keeps only its expiry; it was fetched one TTL before that (an entry
        from L2 expires one TTL after the fleet fetched it, so this is its first fetch).
        """
        offset = time.time() - monotonic() - self.policy.ttl
        with self._lock:
            current = {
                key: (entry, record[EXPIRES_AT] + offset)
                for key, record in self._records.items()
                if (entry := record_entry(record, key)) is not None
            }
        merged = {k: v for k, v in self._lkg_entries.items() if k not in current}
        merged.update(current)
        return merged

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(f"{self!r} is closed")

    def close(self) -> None:
        """Stop watches and background threads; close the backend if this client opened it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._detour = True
            watch, self._watch = self._watch, None
            self._subscribers.clear()
        if watch is not None:
            watch.stop()
        if self._notifier is not None:
            self._notifier.stop()
        self._scheduler.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._lkg is not None:
            self._lkg.close()
        if self._l2 is not None:
            self._l2.close()
        if self._owns_backend:
            self._backend.close()


#: Called with the new setting by :func:`count_hits_in_all_clients` (``veltrix.aio``
#: registers the same swap for ``AsyncClient.get``).
hit_counting_switches: list[Callable[[bool], None]] = []


def count_hits_in_all_clients(on: bool) -> None:
    """Make ``Client.get`` itself count hits (``on``) or not, for every client, live
    and future: a class attribute swap, so a read pays for the count and nothing
    else (no per-instance lookup). A bound method taken before the swap
    (``read = client.get``) keeps the function it was bound to."""
    Client.get = Client._get_counting if on else Client._get_plain  # type: ignore[method-assign]
    for switch in hit_counting_switches:
        switch(on)


def counting_hits_in_all_clients() -> bool:
    return Client.get is Client._get_counting


__all__ = [
    "CachePolicy",
    "Client",
    "count_hits_in_all_clients",
    "counting_hits_in_all_clients",
    "hit_counting_switches",
]
