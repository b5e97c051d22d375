"""``zookeeper://host:port[,host:port...]/chroot``: Apache ZooKeeper through kazoo.

Mapping
    A canonical key ``a/b/c`` is the znode ``<chroot>/a/b/c``; its value is the
    znode's data. Parents are created as needed with *null* data (ZooKeeper keeps
    a null data buffer apart from an empty one), so a parent that only exists to
    hold children is not a key: ``get`` says absent and ``list`` skips it.
    Deleting a key that still has children turns it back into such a null node;
    null nodes left without children are pruned on delete.

Versions
    :attr:`Entry.version` is the znode's ``mzxid`` (the transaction id of its last
    write), not the per-znode ``version`` counter: the counter restarts at 0 when a
    znode is deleted and re-created, so it cannot tell two different values apart
    across a delete, while an ``mzxid`` is unique per write. Compare-and-set still
    uses the znode version under the hood: read the stat, check its ``mzxid``,
    then ``set``/``delete`` with that stat's version (ZooKeeper rejects the write
    if anything changed in between).

Auth and TLS
    Digest credentials come from ``VELTRIX_ZK_AUTH=user:password`` (never from the
    URL); with them every znode this adapter creates gets a digest ACL giving that
    identity all permissions and nobody else any. TLS uses kazoo's ``use_ssl``
    support (``?tls=true&tls_ca=...&tls_cert=...&tls_key=...``).

Watch
    ``watch_mode=auto`` (the default) uses one persistent recursive watch on the
    prefix's znode when the server has them (ZooKeeper >= 3.6; kazoo 2.11 lacks
    the request, :mod:`veltrix.adapters.zookeeper.persistent` adds it) and re-reads each
    znode an event names, pipelined. Older servers get one-shot data and child
    watches on every znode below the prefix, re-armed as each fires
    (``watch_mode=oneshot`` forces them, ``persistent`` refuses to fall back).
    The server drops a connection's watches when it goes, so on every reconnect
    and on a new session after expiry the watch re-arms and diffs the tree
    against the last delivered versions: changes made while disconnected are
    delivered, deletes included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, NoReturn, Self

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadVersionError,
    ConnectionClosedError,
    ConnectionDropped,
    ConnectionLoss,
    InvalidACLError,
    KazooException,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NotReadOnlyCallError,
    OperationTimeoutError,
    RequestTimeoutError,
    SessionExpiredError,
    SessionMovedError,
    ThrottledOpError,
    ZookeeperStoppedError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState, ZnodeStat
from kazoo.security import make_digest_acl

from veltrix.adapters.zookeeper.persistent import PersistentWatches, hookable
from veltrix.adapters.zookeeper.transactions import (
    JUTE_MAXBUFFER,
    WRITE_ATTEMPTS,
    Item,
    chunk_sizes,
    commit,
)
from veltrix.adapters.zookeeper.tree import ZnodeTree
from veltrix.adapters.zookeeper.watch import ZooKeeperWatch
from veltrix.backend import Absent, AbsentType, Change, Entry
from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VeltrixError,
    VersionConflictError,
)
from veltrix.keys import normalize_prefix, validate_key
from veltrix.log_events import event
from veltrix.log_redaction import RedactingFilter, protect_loggers
from veltrix.urls import Options, check_host, parse_url, redact_url
from veltrix.values import check_value as check_size
from veltrix.values import prepare_batch
from veltrix.watching import WatchSet

log = logging.getLogger("veltrix.zookeeper")

DEFAULT_PORT = 2181
#: Largest value accepted: jute.maxbuffer less room for the request's path, ACL and header.
MAX_VALUE_BYTES = 1024 * 1024 - 4096
AUTH_ENV = "VELTRIX_ZK_AUTH"
TLS_KEY_PASSWORD_ENV = "VELTRIX_ZK_TLS_KEY_PASSWORD"
#: ``watch_mode``: ``auto`` uses persistent recursive watches when the server has them
#: (ZooKeeper >= 3.6) and one-shot watches otherwise; the other two force one kind.
WATCH_MODES = ("auto", "persistent", "oneshot")
#: Items per ``put_many`` call that callers batching writes should aim for (ZooKeeper
#: itself bounds a transaction by bytes only: the whole request within jute.maxbuffer).
MAX_BATCH_OPS = 1000

ItemValue = bytes | None

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    ConnectionLoss,
    ConnectionDropped,
    SessionExpiredError,  # includes ConnectionClosedError
    SessionMovedError,
    OperationTimeoutError,
    RequestTimeoutError,
    ThrottledOpError,
    NotReadOnlyCallError,
    ZookeeperStoppedError,
    KazooTimeoutError,
)


def _check_chroot(path: str, where: str) -> str:
    """``/a/b`` -> ``/a/b``; ``""`` or ``/`` -> ``""`` (the tree's root)."""
    stripped = path.strip("/")
    if not stripped:
        return ""
    try:
        validate_key(stripped)
    except InvalidKeyError as exc:
        raise ConfigurationError(f"{where}: invalid chroot {path!r}: {exc}") from exc
    if stripped.split("/")[0] == "zookeeper":
        raise ConfigurationError(f"{where}: /zookeeper is reserved by ZooKeeper")
    return "/" + stripped


def _parse_auth(raw: str) -> tuple[str, str]:
    user, sep, password = raw.partition(":")
    if not sep or not user or not password:
        raise ConfigurationError(
            f"{AUTH_ENV} must be 'user:password' for ZooKeeper digest auth (value not shown)"
        )
    return user, password


class ZooKeeperBackend:
    """A ZooKeeper ensemble (optionally below a chroot) as a Veltrix store."""

    schemes: ClassVar[tuple[str, ...]] = ("zookeeper",)
    #: Versions are a store-wide revision (``SupportsOrderedVersions``).
    versions_increase: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = _UNAVAILABLE
    max_value_bytes: ClassVar[int | None] = MAX_VALUE_BYTES
    #: A hint for callers batching writes through :meth:`put_many`.
    max_batch_ops: ClassVar[int] = MAX_BATCH_OPS

    def __init__(
        self,
        hosts: str,
        chroot: str = "",
        *,
        auth: str | None = None,
        session_timeout: float = 10.0,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        read_only: bool = False,
        reconnect_max_delay: float = 0.5,
        tls: bool = False,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_verify: bool = True,
        tls_check_hostname: bool = False,
        watch_mode: str = "auto",
    ) -> None:
        for item in str(hosts).split(","):  # kazoo's connection thread dies of a bad name
            host = item.rpartition(":")[0] if item.count(":") == 1 else item
            check_host(host, f"zookeeper://{hosts}")
        self.hosts = hosts
        if watch_mode not in WATCH_MODES:
            raise ConfigurationError(
                f"zookeeper://{hosts}: watch_mode must be one of {', '.join(WATCH_MODES)}, "
                f"got {watch_mode!r}"
            )
        self.watch_mode = watch_mode
        #: False once persistent watches proved unavailable (old server or kazoo).
        self._persistent_supported = True
        self._persistent: PersistentWatches | None = None
        self.root = _check_chroot(chroot, f"zookeeper://{hosts}")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        if auth is None:
            auth = os.environ.get(AUTH_ENV) or None
        auth_data: list[tuple[str, str]] = []
        self._acl: list[Any] | None = None
        if auth is not None:
            user, password = _parse_auth(auth)
            auth_data.append(("digest", f"{user}:{password}"))
            self._acl = [make_digest_acl(user, password, all=True)]
        self.authenticated = auth is not None
        self._acl_bytes = (
            sum(12 + len(a.id.scheme.encode()) + len(a.id.id.encode()) for a in (self._acl or []))
            or 31
        )  # the default world:anyone ACL
        self._connected = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._watches: WatchSet[ZooKeeperWatch] = WatchSet()
        self._last_drop: str | None = None  # why the connection last dropped
        # kazoo warnings already logged since the connection was lost (see _kazoo_logger)
        self._warned_while_down: set[str] = set()
        self._health_listeners: list[Callable[[bool, str], None]] = []
        tls_options: dict[str, Any] = {}
        if tls:
            tls_options = dict(
                use_ssl=True,
                ca=tls_ca,
                certfile=tls_cert,
                keyfile=tls_key,
                keyfile_password=os.environ.get(TLS_KEY_PASSWORD_ENV) or None,
                verify_certs=tls_verify,
                check_hostname=tls_check_hostname,
            )
        elif tls_ca or tls_cert or tls_key:
            raise ConfigurationError(f"{self.url}: tls_* options need tls=true")
        try:
            self._client = KazooClient(
                hosts=hosts,
                timeout=session_timeout,
                auth_data=auth_data or None,
                default_acl=self._acl,
                read_only=read_only or None,
                connection_retry=dict(
                    max_tries=-1, delay=0.05, backoff=2, max_delay=reconnect_max_delay
                ),
                command_retry=dict(max_tries=0),
                logger=self._kazoo_logger(),
                **tls_options,
            )
        except (KazooException, ValueError, TypeError) as exc:
            raise ConfigurationError(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        self._tree = ZnodeTree(self._client, self.root, self.url, timeout)
        self._client.add_listener(self._on_state)
        # Connect in the background: operations wait up to connect_timeout for it, so a
        # store that is down at start-up does not stop the process from starting.
        self._client.start_async()

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        opts = Options(parsed.query, options, where=parsed.redacted)
        kwargs: dict[str, Any] = dict(
            session_timeout=opts.float("session_timeout", 10.0, minimum=1.0),
            timeout=opts.float("timeout", 10.0, minimum=0.01),
            connect_timeout=opts.float("connect_timeout", 5.0, minimum=0.0),
            read_only=opts.bool("read_only", False),
            reconnect_max_delay=opts.float("reconnect_max_delay", 0.5, minimum=0.05),
            tls=opts.bool("tls", False),
            tls_ca=opts.str("tls_ca"),
            tls_cert=opts.str("tls_cert"),
            tls_key=opts.str("tls_key"),
            tls_verify=opts.bool("tls_verify", True),
            tls_check_hostname=opts.bool("tls_check_hostname", False),
            watch_mode=opts.choice("watch_mode", "auto", WATCH_MODES),
        )
        opts.finish()
        hosts = ",".join(f"{host}:{port}" for host, port in parsed.hosts(DEFAULT_PORT))
        return cls(hosts, parsed.path, **kwargs)

    @property
    def url(self) -> str:
        return f"zookeeper://{self.hosts}{self.root}"

    def __repr__(self) -> str:
        auth = ", digest auth" if self.authenticated else ""
        return f"ZooKeeperBackend({self.url!r}{auth})"

    # -- connection state ------------------------------------------------------------

    def _kazoo_logger(self) -> logging.Logger:
        """kazoo's logger for this client: records go to ``veltrix.zookeeper.kazoo`` as
        usual, and the reason of the last dropped connection (a refused TLS
        handshake, a reset, ...) is kept for the "not connected" error message."""
        shared = logging.getLogger("veltrix.zookeeper.kazoo")
        own = logging.Logger(shared.name)  # not registered: one per backend
        own.parent = shared

        def remember(record: logging.LogRecord) -> bool:
            message = record.msg
            if isinstance(message, str) and message.startswith("Connection dropped"):
                self._last_drop = record.getMessage().partition(": ")[2] or None
            return True

        def credentials() -> list[str]:
            # kazoo logs requests at DEBUG, its Auth request with the digest credential.
            client = getattr(self, "_client", None)
            auth_data = getattr(client, "auth_data", None) or ()
            return [credential for _, credential in auth_data]

        repeats = logging.getLogger("veltrix.zookeeper.kazoo.repeats")

        def once_per_outage(record: logging.LogRecord) -> bool:
            """Name kazoo's records; while disconnected, a warning kazoo repeats on each
            reconnect attempt goes out once, later ones at DEBUG (on ``.repeats``), as do
            kazoo's warnings about giving up once we close it."""
            record.event = "veltrix.zookeeper.client"
            record.store = redact_url(self.url)
            if record.levelno < logging.WARNING or (self._connected.is_set() and not self._closed):
                return True
            template = str(record.msg)
            if not self._closed and template not in self._warned_while_down:
                self._warned_while_down.add(template)
                return True
            if repeats.isEnabledFor(logging.DEBUG):
                repeats.debug(
                    "%s",
                    record.getMessage(),
                    extra=event("veltrix.zookeeper.client", store=redact_url(self.url)),
                )
            return False

        own.addFilter(remember)
        own.addFilter(RedactingFilter(credentials))
        own.addFilter(once_per_outage)  # after the redaction: it re-logs the message
        protect_loggers("kazoo")  # kazoo's module loggers (recipes, handlers)
        return own

    def add_health_listener(self, listener: Callable[[bool, str], None]) -> None:
        """``listener(up, reason)`` on every session state change (kazoo's SUSPENDED and
        LOST are down, CONNECTED is up) and when a call gave up waiting to connect."""
        self._health_listeners.append(listener)

    def _tell(self, up: bool, reason: str) -> None:
        if self._closed:
            return  # kazoo reports LOST when we stop it: not an outage
        for listener in self._health_listeners:
            try:
                listener(up, reason)
            except Exception as exc:  # pragma: no cover - a listener bug must not stop kazoo
                log.exception(
                    "health listener failed",
                    extra=event("veltrix.health.listener_failed", store=self.url, error=exc),
                )

    def _on_state(self, state: str) -> None:  # kazoo's connection thread: never block
        if state == KazooState.CONNECTED:
            self._last_drop = None
            self._warned_while_down.clear()
            self._connected.set()
            self._tell(True, f"ZooKeeper at {self.hosts} connected")
        else:
            self._connected.clear()
            self._tell(False, f"ZooKeeper at {self.hosts}: session {str(state).lower()}")

    def _ready(self, what: str) -> KazooClient:
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        if not self._connected.is_set() and not self._connected.wait(self._connect_timeout):
            # Fail fast instead of queueing: kazoo would send a queued write later.
            last = f"; last connection error: {self._last_drop}" if self._last_drop else ""
            waited = f"waited {self._connect_timeout:g}s{last}"
            self._tell(False, f"ZooKeeper at {self.hosts} is not connected ({waited})")
            raise BackendUnavailableError(
                f"ZooKeeper at {self.hosts} is unreachable: not connected ({what}; {waited})"
            )
        return self._client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _wait(self, result: Any) -> Any:
        """The value of a kazoo async result, or its kazoo exception."""
        return result.get(timeout=self._timeout)

    def _fail(self, exc: BaseException, what: str) -> NoReturn:
        """Raise ``exc`` (from kazoo) as a Veltrix error."""
        name = type(exc).__name__
        if isinstance(exc, NotReadOnlyCallError):
            raise BackendUnavailableError(
                f"ZooKeeper at {self.hosts}: connected to a read-only member (cut off from "
                f"its quorum), which refuses writes ({what})"
            ) from exc
        if isinstance(exc, (*_UNAVAILABLE, OSError)):
            if isinstance(exc, ConnectionClosedError) and self._closed:
                raise BackendUnavailableError(f"{self!r} is closed") from exc
            raise BackendUnavailableError(
                f"ZooKeeper at {self.hosts} unavailable ({what}): {name}"
            ) from exc
        if isinstance(exc, NoAuthError | AuthFailedError):
            raise AccessDeniedError(
                f"ZooKeeper at {self.hosts} denied access ({what}): {name}"
            ) from exc
        if isinstance(exc, InvalidACLError):
            raise ConfigurationError(f"ZooKeeper rejected the ACL ({what}): {name}") from exc
        if isinstance(exc, BadVersionError | NodeExistsError):
            raise VersionConflictError(f"{what}: {name}") from exc
        raise BackendError(f"ZooKeeper at {self.hosts} failed ({what}): {name}") from exc

    # -- keys and entries ------------------------------------------------------------

    def _path(self, key: str) -> str:
        validate_key(key)
        if not self.root and key.split("/", 1)[0] == "zookeeper":
            raise InvalidKeyError(f"key {key!r}: /zookeeper is reserved by ZooKeeper")
        return f"{self.root}/{key}"

    def _base(self, prefix: str) -> str:
        """The znode holding ``prefix`` (already normalized); the root for ``""``."""
        if prefix:
            return self._path(prefix)
        return self.root or "/"

    def _checked_value(self, key: str, path: str, value: bytes) -> bytes:
        """``value`` as bytes, or :class:`ValueTooLargeError` when the request writing it
        at ``path`` (value + path + ACL + header) would exceed jute.maxbuffer."""
        value = check_size(key, value, self.max_value_bytes)
        request = len(value) + len(path.encode()) + self._acl_bytes + 32
        if request > JUTE_MAXBUFFER:
            raise ValueTooLargeError(
                f"value for {key!r} is {len(value)} bytes; with its path and ACL the request "
                f"exceeds ZooKeeper's jute.maxbuffer of {JUTE_MAXBUFFER} bytes"
            )
        return value

    def check_key(self, key: str) -> None:
        """Raise :class:`InvalidKeyError` when ``key`` cannot be a znode here (the
        canonical grammar; ``/zookeeper`` is reserved when there is no chroot)."""
        self._path(key)

    def check_value(self, key: str, value: bytes) -> None:
        """Raise :class:`ValueTooLargeError` when writing ``value`` at ``key`` would not
        fit jute.maxbuffer (the check :meth:`put` makes before any I/O)."""
        self._checked_value(key, self._path(key), value)

    # -- reads -----------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        path = self._path(key)
        client = self._ready(f"get {key!r}")
        try:
            data, stat = self._wait(client.get_async(path))
        except NoNodeError:
            return None
        except Exception as exc:
            self._fail(exc, f"get {key!r}")
        return None if data is None else self._tree.entry(key, data, stat)

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        base = self._base(prefix)
        self._ready(f"list {prefix!r}")
        entries: list[Entry] = []

        def found(path: str, data: bytes | None, stat: ZnodeStat | None) -> None:
            if data is not None and stat is not None:
                entries.append(self._tree.entry(self._tree.key(path), data, stat))

        try:
            self._tree.scan([base], root_is_key=bool(prefix), on_node=found)
        except Exception as exc:
            self._fail(exc, f"list {prefix!r}")
        entries.sort(key=lambda e: e.key)
        return iter(entries)

    # -- writes ----------------------------------------------------------------------

    def _make_parents(self, client: KazooClient, path: str) -> None:
        """Create the missing ancestors of ``path`` as null znodes (pipelined)."""
        parts = path.strip("/").split("/")[:-1]
        ancestors = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
        results = [client.create_async(a, None, acl=self._acl) for a in ancestors]
        for result in results:
            with contextlib.suppress(NodeExistsError):
                self._wait(result)

    def _create(self, client: KazooClient, path: str, value: bytes) -> ZnodeStat:
        """Create ``path`` with ``value``, making parents; NodeExistsError if it exists."""
        for _ in range(WRITE_ATTEMPTS):
            try:
                _, stat = self._wait(
                    client.create_async(path, value, acl=self._acl, include_data=True)
                )
                return stat
            except NoNodeError:
                self._make_parents(client, path)  # a concurrent delete may prune them again
        raise ConnectionLoss("parents of the znode kept disappearing")

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        path = self._path(key)
        value = self._checked_value(key, path, value)
        what = f"put {key!r}"
        client = self._ready(what)
        try:
            if if_version is Absent:
                stat = self._put_create_only(client, key, path, value)
            elif if_version is None:
                stat = self._put_any(client, path, value)
            else:
                stat = self._put_cas(client, key, path, value, str(if_version))
        except VeltrixError:
            raise
        except Exception as exc:
            self._fail(exc, what)
        return str(stat.mzxid)

    def _put_any(self, client: KazooClient, path: str, value: bytes) -> ZnodeStat:
        for _ in range(WRITE_ATTEMPTS):
            try:
                stat: ZnodeStat = self._wait(client.set_async(path, value))
                return stat
            except NoNodeError:
                pass
            try:
                return self._create(client, path, value)
            except NodeExistsError:
                continue  # created concurrently: set it
        raise ConnectionLoss("the znode kept being created and deleted concurrently")

    def _put_create_only(self, client: KazooClient, key: str, path: str, value: bytes) -> ZnodeStat:
        for _ in range(WRITE_ATTEMPTS):
            try:
                return self._create(client, path, value)
            except NodeExistsError:
                pass
            try:
                data, stat = self._wait(client.get_async(path))
            except NoNodeError:
                continue
            if data is not None:
                raise VersionConflictError(f"{key!r} already exists (create-only write)")
            try:  # a null parent node is not a key: fill it, unless someone else does
                new_stat: ZnodeStat = self._wait(client.set_async(path, value, stat.version))
                return new_stat
            except (BadVersionError, NoNodeError):
                continue
        raise VersionConflictError(f"{key!r} kept changing during a create-only write")

    def _put_cas(
        self, client: KazooClient, key: str, path: str, value: bytes, expected: str
    ) -> ZnodeStat:
        stat = self._wait(client.exists_async(path))
        if stat is None:
            raise VersionConflictError(f"{key!r} does not exist (expected version {expected})")
        if str(stat.mzxid) != expected:
            raise VersionConflictError(f"{key!r} is at version {stat.mzxid}, not {expected}")
        try:
            new_stat: ZnodeStat = self._wait(client.set_async(path, value, stat.version))
        except (BadVersionError, NoNodeError) as exc:
            raise VersionConflictError(f"{key!r} changed during the write") from exc
        return new_stat

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        path = self._path(key)
        what = f"delete {key!r}"
        client = self._ready(what)
        try:
            return self._delete(client, key, path, if_version)
        except VeltrixError:
            raise
        except Exception as exc:
            self._fail(exc, what)

    def _delete(self, client: KazooClient, key: str, path: str, if_version: str | None) -> bool:
        for _ in range(WRITE_ATTEMPTS):
            try:
                data, stat = self._wait(client.get_async(path))
            except NoNodeError:
                data = stat = None
            if data is None:
                if if_version is not None:
                    raise VersionConflictError(
                        f"{key!r} does not exist (expected version {if_version})"
                    )
                return False
            if if_version is not None and str(stat.mzxid) != str(if_version):
                raise VersionConflictError(f"{key!r} is at version {stat.mzxid}, not {if_version}")
            try:
                if stat.numChildren == 0:
                    self._wait(client.delete_async(path, stat.version))
                    self._tree.prune(path)
                else:  # keep the children: the node becomes a null parent
                    self._wait(client.set_async(path, None, stat.version))
                return True
            except (BadVersionError, NoNodeError, NotEmptyError) as exc:
                if if_version is not None and isinstance(exc, BadVersionError):
                    raise VersionConflictError(f"{key!r} changed during the delete") from exc
                continue  # raced with another writer: look again
        raise VersionConflictError(f"{key!r} kept changing during the delete")

    # -- batches ---------------------------------------------------------------------

    def put_many(
        self,
        items: Mapping[str, ItemValue] | Iterable[tuple[str, ItemValue]],
        *,
        atomic: bool = True,
        if_versions: Mapping[str, str | AbsentType] | None = None,
    ) -> dict[str, str | None]:
        """Write many keys in one ZooKeeper transaction (``multi``); ``None`` deletes.

        Returns ``{key: new version}`` (``None`` for deletes); every key written by one
        transaction gets the same version (its zxid). ``if_versions`` adds
        compare-and-set per key (a version, or :data:`Absent` for create-only),
        checked against the znodes as read just before the transaction, which itself
        carries each znode's version: a key changed in between fails the transaction
        and it starts over (a compare-and-set key that changed is then a
        :class:`VersionConflictError`). Missing parents are created (null) inside the
        same transaction.

        ``atomic=True`` (default): all or nothing; a batch whose request would exceed
        jute.maxbuffer raises :class:`UnsupportedOperationError` before any I/O.
        ``atomic=False``: split into transactions that each fit jute.maxbuffer, each
        all or nothing; if one fails, the error says how many keys were written before
        it (those stay written) and nothing after it is attempted.
        """
        batch = [
            Item(key, self._path(key), value, version)
            for key, value, version in prepare_batch(
                items, if_versions, lambda key, raw: self._checked_value(key, self._path(key), raw)
            )
        ]
        chunks = chunk_sizes(batch, self._acl_bytes)
        if atomic and len(chunks) > 1:
            raise UnsupportedOperationError(
                f"{len(batch)} writes do not fit one ZooKeeper transaction (jute.maxbuffer "
                f"is {JUTE_MAXBUFFER} bytes); pass atomic=False to split them"
            )
        result: dict[str, str | None] = {}
        if not batch:
            return result
        what = f"batch of {len(batch)} writes"
        self._ready(what)
        done = 0
        for chunk, size in chunks:
            try:
                if len(chunk) == 1 and size > JUTE_MAXBUFFER:
                    # one value near the limit plus parents to create: write it alone
                    item = chunk[0]
                    assert item.value is not None  # a delete is always small
                    result[item.key] = self.put(item.key, item.value, if_version=item.if_version)
                else:
                    result.update(commit(self._tree, chunk, what, acl=self._acl, fail=self._fail))
            except VeltrixError as exc:
                if not done:
                    raise
                raise type(exc)(f"{exc}; {done} earlier writes stay applied") from exc
            done += len(chunk)
        return result

    # -- watch -----------------------------------------------------------------------

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> ZooKeeperWatch:
        prefix = normalize_prefix(prefix)
        base = self._base(prefix)  # validates before any I/O
        self._ready(f"watch {prefix!r}")
        watch = ZooKeeperWatch(
            self._tree,
            prefix,
            base,
            on_change,
            router=self._persistent_watches(),
            connected=self._connected.is_set,
            fail=self._fail,
            persistent_unavailable=self._persistent_unavailable,
            on_stop=self._watches.discard,
        )
        return self._watches.add(watch)

    def _persistent_watches(self) -> PersistentWatches | None:
        """The client's persistent-watch router, or None when watches are one-shot."""
        if self.watch_mode == "oneshot" or self._persistent_supported is False:
            return None
        if not hookable(self._client):
            self._persistent_unavailable(
                None, "this kazoo version cannot be extended with AddWatch"
            )
            return None
        with self._lock:
            if self._persistent is None:
                self._persistent = PersistentWatches(self._client)
            return self._persistent

    def _persistent_unavailable(
        self,
        exc: BaseException | None,
        why: str = "the server has no AddWatch (needs ZooKeeper >= 3.6)",
    ) -> None:
        """No persistent watches: fall back to one-shot watches (``auto``) or refuse
        (``persistent``)."""
        self._persistent_supported = False
        if self.watch_mode == "persistent":
            raise UnsupportedOperationError(
                f"ZooKeeper at {self.hosts}: no persistent recursive watches: {why}; "
                "use watch_mode=auto or oneshot"
            ) from exc
        log.info(
            "ZooKeeper at %s: %s; using one-shot watches",
            self.hosts,
            why,
            extra=event("veltrix.zookeeper.oneshot_watches", store=redact_url(self.url)),
        )

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._watches.stop_all()
        self._connected.clear()
        try:
            self._client.stop()
            self._client.close()
        except Exception as exc:  # closing must not raise
            log.debug(
                "closing kazoo client: %s",
                type(exc).__name__,
                extra=event("veltrix.zookeeper.close_failed", error=exc),
            )


__all__ = ["AUTH_ENV", "MAX_VALUE_BYTES", "ZooKeeperBackend"]
