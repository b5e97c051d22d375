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
    the request, :mod:`veltrix.adapters._zk_persistent` adds it) and re-reads each
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
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
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
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
    SessionMovedError,
    ThrottledOpError,
    UnimplementedError,
    ZookeeperStoppedError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.serialization import Create, SetData
from kazoo.protocol.states import EventType, KazooState, WatchedEvent, ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from veltrix.adapters._zk_persistent import PersistentWatches, covers, hookable
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
from veltrix.keys import in_prefix, normalize_prefix, validate_key
from veltrix.log_redaction import RedactingFilter, protect_loggers
from veltrix.urls import Options, check_host, parse_url
from veltrix.values import check_expected_version, prepare_batch
from veltrix.values import check_value as check_size
from veltrix.watching import ChangeDispatcher, diff_snapshots, emit_if_changed

log = logging.getLogger("veltrix.zookeeper")

DEFAULT_PORT = 2181
#: The server's default ``jute.maxbuffer`` (0xfffff): no request packet may be larger.
JUTE_MAXBUFFER = 0xFFFFF
#: Largest value accepted: jute.maxbuffer less room for the request's path, ACL and header.
MAX_VALUE_BYTES = 1024 * 1024 - 4096
AUTH_ENV = "VELTRIX_ZK_AUTH"
TLS_KEY_PASSWORD_ENV = "VELTRIX_ZK_TLS_KEY_PASSWORD"
#: ``watch_mode``: ``auto`` uses persistent recursive watches when the server has them
#: (ZooKeeper >= 3.6) and one-shot watches otherwise; the other two force one kind.
WATCH_MODES = ("auto", "persistent", "oneshot")
#: Requests kept in flight at once by ``list`` and the watch's tree scans.
PIPELINE_DEPTH = 1000
#: Attempts of a write that races with concurrent creates/deletes of the same znodes.
WRITE_ATTEMPTS = 8
#: Items per ``put_many`` call that callers batching writes should aim for (ZooKeeper
#: itself bounds a transaction by bytes only: the whole request within jute.maxbuffer).
MAX_BATCH_OPS = 1000
#: Upper bounds of the framing around one operation of a multi request (multi header,
#: length prefixes, version/flags) and around the whole request.
_OP_OVERHEAD = 48
_TXN_OVERHEAD = 64

ItemValue = bytes | None
_Items = list["_Item"]  # (``list`` is shadowed inside ZooKeeperBackend)
_SizedChunks = list[tuple[_Items, int]]
_Paths = list[str]
_Results = list[Any]

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


@dataclass(frozen=True)
class _Item:
    """One write of a batch: a put (``value`` bytes) or a delete (``None``)."""

    key: str
    path: str
    value: bytes | None
    if_version: str | AbsentType | None


def _depth(path: str) -> int:
    return path.count("/")


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]``."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


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
        self._watches: list[_ZooKeeperWatch] = []
        self._last_drop: str | None = None  # why the connection last dropped
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

        own.addFilter(remember)
        own.addFilter(RedactingFilter(credentials))
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
            except Exception:  # pragma: no cover - a listener bug must not stop kazoo
                log.exception("health listener failed")

    def _on_state(self, state: str) -> None:  # kazoo's connection thread: never block
        if state == KazooState.CONNECTED:
            self._last_drop = None
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

    def _key(self, path: str) -> str:
        return path[len(self.root) + 1 :]

    def _base(self, prefix: str) -> str:
        """The znode holding ``prefix`` (already normalized); the root for ``""``."""
        if prefix:
            return self._path(prefix)
        return self.root or "/"

    def _children(self, path: str, names: list[str]) -> list[str]:
        if path == "/":
            return ["/" + n for n in names if n != "zookeeper"]
        return [f"{path}/{n}" for n in names]

    def _entry(self, key: str, data: bytes, stat: ZnodeStat) -> Entry:
        return Entry(key, data, str(stat.mzxid), source=f"{self.url}/{key}")

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
        return None if data is None else self._entry(key, data, stat)

    def _scan(
        self,
        client: KazooClient,
        roots: list[str],
        *,
        root_is_key: bool,
        watch: Callable[[WatchedEvent], None] | None = None,
        skip: Callable[[str], bool] | None = None,
        on_node: Callable[[str, bytes | None, ZnodeStat | None], None],
        on_gone: Callable[[str], None] | None = None,
        on_denied: Callable[[str], None] | None = None,
    ) -> None:
        """Walk the trees at ``roots`` one level per round trip (requests pipelined).

        Calls ``on_node(path, data, stat)`` for every znode found (data ``None``
        for null parents; data and stat ``None`` for a root that is not a key) and
        ``on_gone(path)`` for a znode that vanished during the walk, and
        ``on_denied(path)`` (when given; else the error is raised) for one this
        client may not read, whose subtree is then skipped. With ``watch``,
        arms a data and a child watch on every znode read.
        """
        level = [(path, root_is_key) for path in roots]
        while level:
            batch, level = level[:PIPELINE_DEPTH], level[PIPELINE_DEPTH:]
            pending = [
                (
                    path,
                    client.get_async(path, watch=watch) if is_key else None,
                    client.get_children_async(path, watch=watch),
                )
                for path, is_key in batch
            ]
            for path, data_result, children_result in pending:
                try:
                    names = self._wait(children_result)
                    data, stat = self._wait(data_result) if data_result else (None, None)
                except NoNodeError:
                    if on_gone is not None:
                        on_gone(path)
                    continue
                except NoAuthError:
                    if on_denied is None:
                        raise
                    on_denied(path)
                    continue
                on_node(path, data, stat)
                for child in self._children(path, names):
                    if skip is None or not skip(child):
                        level.append((child, True))

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        base = self._base(prefix)
        client = self._ready(f"list {prefix!r}")
        entries: list[Entry] = []

        def found(path: str, data: bytes | None, stat: ZnodeStat | None) -> None:
            if data is not None and stat is not None:
                entries.append(self._entry(self._key(path), data, stat))

        try:
            self._scan(client, [base], root_is_key=bool(prefix), on_node=found)
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
                    self._prune(client, path)
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
        batch: _Items = [
            _Item(key, self._path(key), value, version)
            for key, value, version in prepare_batch(
                items, if_versions, lambda key, raw: self._checked_value(key, self._path(key), raw)
            )
        ]
        chunks = self._chunk_sizes(batch)
        if atomic and len(chunks) > 1:
            raise UnsupportedOperationError(
                f"{len(batch)} writes do not fit one ZooKeeper transaction (jute.maxbuffer "
                f"is {JUTE_MAXBUFFER} bytes); pass atomic=False to split them"
            )
        result: dict[str, str | None] = {}
        if not batch:
            return result
        what = f"batch of {len(batch)} writes"
        client = self._ready(what)
        done = 0
        for chunk, size in chunks:
            try:
                if len(chunk) == 1 and size > JUTE_MAXBUFFER:
                    # one value near the limit plus parents to create: write it alone
                    item = chunk[0]
                    assert item.value is not None  # a delete is always small
                    result[item.key] = self.put(item.key, item.value, if_version=item.if_version)
                else:
                    result.update(self._commit(client, chunk, what))
            except VeltrixError as exc:
                if not done:
                    raise
                raise type(exc)(f"{exc}; {done} earlier writes stay applied") from exc
            done += len(chunk)
        return result

    def _op_bytes(self, item: _Item, counted: set[str]) -> tuple[int, _Paths]:
        """An upper bound of the request bytes ``item`` adds to a transaction that
        already counts the parents in ``counted``, and the parents it adds (every
        parent counted as created: whether it exists is not known before I/O)."""
        size = len(item.path.encode()) + len(item.value or b"") + self._acl_bytes + _OP_OVERHEAD
        parents = (
            [] if item.value is None else [p for p in _ancestors(item.path) if p not in counted]
        )
        size += sum(len(p.encode()) + self._acl_bytes + _OP_OVERHEAD for p in parents)
        return size, parents

    def _chunk_sizes(self, batch: _Items) -> _SizedChunks:
        """``batch`` in order, cut into transactions that each fit jute.maxbuffer (a
        single item that does not is a chunk of its own), with their sizes."""
        chunks: _SizedChunks = []
        current: _Items = []
        counted: set[str] = set()
        size = _TXN_OVERHEAD
        for item in batch:
            cost, parents = self._op_bytes(item, counted)
            if current and size + cost > JUTE_MAXBUFFER:
                chunks.append((current, size))
                current, counted, size = [], set(), _TXN_OVERHEAD
                cost, parents = self._op_bytes(item, counted)
            size += cost
            counted.update(parents)
            current.append(item)
        if current:
            chunks.append((current, size))
        return chunks

    def _read_state(
        self, client: KazooClient, chunk: _Items
    ) -> tuple[dict[str, tuple[bytes | None, ZnodeStat] | None], set[str]]:
        """``({item path: (data, stat) or None when absent}, {missing parent paths})``,
        read with pipelined requests."""
        gets = [(item.path, client.get_async(item.path)) for item in chunk]
        puts = {item.path for item in chunk if item.value is not None}
        parents = sorted({a for path in puts for a in _ancestors(path)} - puts)
        checks = [(path, client.exists_async(path)) for path in parents]
        state: dict[str, tuple[bytes | None, ZnodeStat] | None] = {}
        for path, result in gets:
            try:
                state[path] = self._wait(result)
            except NoNodeError:
                state[path] = None
        missing = {path for path, result in checks if self._wait(result) is None}
        return state, missing

    def _commit(self, client: KazooClient, chunk: _Items, what: str) -> dict[str, str | None]:
        """One chunk as one transaction, re-read and retried when a znode changed
        between the read and the commit."""
        for _ in range(WRITE_ATTEMPTS):
            try:
                state, missing = self._read_state(client, chunk)
            except VeltrixError:
                raise
            except Exception as exc:
                self._fail(exc, what)
            for item in chunk:
                node = state[item.path]
                current = None if node is None or node[0] is None else str(node[1].mzxid)
                check_expected_version(item.key, current, item.if_version)
            txn, created, removed = self._build(client, chunk, state, missing)
            if not txn.operations:  # only deletes of keys that are not there
                return {item.key: None for item in chunk}
            try:
                results = self._wait(txn.commit_async())
            except Exception as exc:
                self._fail(exc, what)
            failure = next(
                (
                    r
                    for r in results
                    if isinstance(r, Exception)
                    and not isinstance(r, RolledBackError | RuntimeInconsistency)
                ),
                None,
            )
            if failure is None:
                try:
                    version = (
                        self._txn_version(client, results, created)
                        if any(item.value is not None for item in chunk)
                        else None
                    )
                except VeltrixError:
                    raise
                except Exception as exc:
                    self._fail(exc, what)
                for path in removed:
                    self._prune(client, path)
                return {item.key: None if item.value is None else version for item in chunk}
            if isinstance(failure, BadVersionError | NodeExistsError | NoNodeError | NotEmptyError):
                continue  # a znode changed since it was read: read again
            self._fail(failure, what)
        raise VersionConflictError(f"{what}: the znodes kept changing during the transaction")

    def _build(
        self,
        client: KazooClient,
        chunk: _Items,
        state: Mapping[str, tuple[bytes | None, ZnodeStat] | None],
        missing: set[str],
    ) -> tuple[Any, _Paths, _Paths]:
        """The transaction for ``chunk``: creates and sets, parents first, then
        deletes, children first. Returns it with the paths it creates and removes."""
        txn = client.transaction()
        acl = self._acl or OPEN_ACL_UNSAFE
        writes: list[tuple[str, bytes | None, ZnodeStat | None]] = [
            (path, None, None)
            for path in missing  # null parents
        ]
        deletes: _Items = []
        for item in chunk:
            node = state[item.path]
            if item.value is None:
                if node is not None and node[0] is not None:
                    deletes.append(item)
            else:
                writes.append((item.path, item.value, None if node is None else node[1]))
        created = [path for path, _, stat in writes if stat is None]
        new_children: dict[str, int] = {}
        for path in created:
            parent = path.rsplit("/", 1)[0]
            new_children[parent] = new_children.get(parent, 0) + 1
        for path, value, stat in sorted(writes, key=lambda w: _depth(w[0])):
            if stat is None:
                # kazoo's builder refuses a null data buffer; ZooKeeper takes one (a
                # parent that is not a key), so the request is added as it goes on the wire
                txn.operations.append(Create(path, value, acl, 0))
            else:
                assert value is not None
                txn.set_data(path, value, stat.version)
        removed: _Paths = []
        gone_children: dict[str, int] = {}
        for item in sorted(deletes, key=lambda i: -_depth(i.path)):
            node = state[item.path]
            assert node is not None
            stat = node[1]
            left = stat.numChildren - gone_children.get(item.path, 0)
            if left == 0 and not new_children.get(item.path):
                txn.delete(item.path, stat.version)
                removed.append(item.path)
                parent = item.path.rsplit("/", 1)[0]
                gone_children[parent] = gone_children.get(parent, 0) + 1
            else:  # keep the children: the node becomes a null parent
                txn.operations.append(SetData(item.path, None, stat.version))
        return txn, created, removed

    def _txn_version(self, client: KazooClient, results: _Results, created: _Paths) -> str:
        """The zxid of a committed transaction: the ``mzxid`` of any znode it set, else
        the ``czxid`` of a znode it created."""
        for result in results:
            if isinstance(result, ZnodeStat):
                return str(result.mzxid)
        for path in created:
            stat = self._wait(client.exists_async(path))
            if stat is not None:
                return str(stat.czxid)
        raise VersionConflictError("every znode of the batch was deleted right after it")

    def _prune(self, client: KazooClient, path: str) -> None:
        """Remove null ancestors of ``path`` left without children (best effort)."""
        parent = path.rsplit("/", 1)[0]
        while len(parent) > len(self.root) and parent:
            try:
                data, stat = self._wait(client.get_async(parent))
                if data is not None or stat.numChildren:
                    return
                self._wait(client.delete_async(parent, stat.version))
            except (NoNodeError, NotEmptyError, BadVersionError):
                return
            except Exception as exc:
                log.debug("pruning %s stopped: %s", parent, type(exc).__name__)
                return
            parent = parent.rsplit("/", 1)[0]

    # -- watch -----------------------------------------------------------------------

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> _ZooKeeperWatch:
        prefix = normalize_prefix(prefix)
        self._base(prefix)  # validates before any I/O
        self._ready(f"watch {prefix!r}")
        watch = _ZooKeeperWatch(self, prefix, on_change)
        with self._lock:
            self._watches.append(watch)
        return watch

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
        log.info("ZooKeeper at %s: %s; using one-shot watches", self.hosts, why)

    def _forget(self, watch: _ZooKeeperWatch) -> None:
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watches, self._watches = self._watches, []
        for watch in watches:
            watch.stop()
        self._connected.clear()
        try:
            self._client.stop()
            self._client.close()
        except Exception as exc:  # closing must not raise
            log.debug("closing kazoo client: %s", type(exc).__name__)


_STOP = ("stop", None)
_Queued = tuple[str, Any]


class _ZooKeeperWatch:
    """Delivers every change below a prefix, across reconnects and session expiry.

    Two ways to hear about changes, chosen by the backend's ``watch_mode``:

    - *persistent*: one persistent recursive watch on the prefix's znode
      (ZooKeeper >= 3.6, see :mod:`veltrix.adapters._zk_persistent`); each event
      names a znode, which is re-read (queued events are read pipelined);
    - *one-shot*: a data and a child watch on every znode below the prefix, re-armed
      as each fires (and an exists watch on the prefix's znode while it is missing).

    Either way the server forgets a connection's watches when the connection goes,
    so every (re)connection re-arms and diffs the tree against what was delivered.

    Kazoo calls :meth:`_on_event` and :meth:`_on_state` from its own threads; both
    only enqueue. One worker thread does all reads and owns all state; changes go
    to a :class:`ChangeDispatcher`, which runs the callback in order on another
    thread, so a slow callback never blocks kazoo or the watch.
    """

    def __init__(
        self, backend: ZooKeeperBackend, prefix: str, on_change: Callable[[Change], None]
    ) -> None:
        self._backend = backend
        self._client = backend._client
        self._prefix = prefix
        self._base = backend._base(prefix)
        self._router = backend._persistent_watches()
        self._queue: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._known: dict[str, Entry] = {}
        self._tracked: set[str] = set()  # one-shot mode: znodes with watches armed
        self._denied: set[str] = set()  # znodes this client may not read (ACLs)
        self._resyncs = 0
        name = f"veltrix-zk-watch-{prefix or '/'}"
        self._dispatcher = ChangeDispatcher(on_change, name=f"{name}-callbacks")
        self._client.add_listener(self._on_state)
        try:
            # The baseline: watches are armed before watch() returns, nothing is emitted.
            self._known = self._rescan()
        except Exception as exc:
            self._release()
            self._dispatcher.stop()
            if isinstance(exc, VeltrixError):
                raise
            backend._fail(exc, f"watch {prefix!r}")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def mode(self) -> str:
        """``"persistent"`` or ``"oneshot"``: the kind of server watch in use."""
        return "oneshot" if self._router is None else "persistent"

    @property
    def resyncs(self) -> int:
        """How many times the watch re-armed and diffed after a reconnect."""
        return self._resyncs

    # -- kazoo's threads: enqueue only ------------------------------------------------

    def _on_event(self, event: WatchedEvent) -> None:
        if not self._stopped.is_set():
            self._queue.put(("event", event))

    def _on_state(self, state: str) -> None:
        if not self._stopped.is_set():
            self._queue.put(("state", state))

    # -- the worker thread ----------------------------------------------------------

    def _run(self) -> None:
        dirty = False  # watches may be missing: re-arm everything and diff
        carried: _Queued | None = None  # taken off the queue while draining events
        while True:
            if carried is not None:
                (kind, item), carried = carried, None
            else:
                try:
                    kind, item = self._queue.get(timeout=0.5 if dirty else None)
                except queue.Empty:
                    kind, item = "retry", None
            if kind == "stop":
                return
            if kind == "state":
                # The server drops every watch on connection loss and session expiry,
                # so each (re)connection re-arms them and diffs against what we know.
                dirty = True
                if item != KazooState.CONNECTED:
                    continue
            elif kind == "event" and not dirty:
                if not self._backend.connected:
                    dirty = True  # the reconnection's resync covers it; don't queue reads
                    continue
                events = [item]
                if self._router is not None:
                    carried = self._drain(events)
                try:
                    self._handle(events)
                except Exception as exc:
                    log.warning("zookeeper watch on %r: %s; resyncing", self._prefix, exc)
                    dirty = True
                continue
            if dirty and self._backend.connected:
                try:
                    self._resync()
                    dirty = False
                except Exception as exc:
                    log.warning("zookeeper watch resync on %r failed: %s", self._prefix, exc)

    def _drain(self, events: list[WatchedEvent]) -> _Queued | None:
        """Move already-queued events into ``events`` (up to a pipeline's depth);
        return the first non-event item met, which the caller handles next."""
        while len(events) < PIPELINE_DEPTH:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                return None
            if kind != "event":
                return kind, item
            events.append(item)
        return None

    def _handle(self, events: list[WatchedEvent]) -> None:
        if self._router is not None:
            self._refresh(events)
            return
        for event in events:
            self._handle_one_shot(event)

    def _refresh(self, events: list[WatchedEvent]) -> None:
        """Persistent mode: re-read every znode the events name, pipelined, in order.

        Created, changed and deleted all come down to "read it now": the read sees
        the event's write or a later one (ZooKeeper delivers a watch event before
        the data it announces), so the final state is always delivered.
        """
        paths = dict.fromkeys(
            e.path for e in events if e.type != EventType.NONE and e.path is not None
        )
        backend = self._backend
        pending = [(path, self._client.get_async(path)) for path in paths if self._is_watched(path)]
        for path, result in pending:
            try:
                data, stat = backend._wait(result)
            except NoNodeError:
                self._gone(path)
                continue
            except NoAuthError:
                self._deny(path)
                continue
            self._found(path, data, stat, emit=True)

    def _is_watched(self, path: str) -> bool:
        """Whether a recursive watch event for ``path`` concerns a key below the prefix."""
        if not covers(self._base, path) or not self._is_key_path(path):
            return False
        return self._base != "/" or path.split("/", 2)[1] != "zookeeper"

    def _handle_one_shot(self, event: WatchedEvent) -> None:
        path = event.path
        if event.type == EventType.NONE or path is None:
            return  # a session event: the state listener handles it
        if event.type == EventType.DELETED:
            self._gone(path)
            if path == self._base:
                self._arm_base(emit=True)
        elif event.type == EventType.CREATED and path == self._base:
            self._arm_base(emit=True)
        elif event.type == EventType.CHILD:
            self._scan([path], emit=True, children_only=True)
        else:  # CHANGED (or CREATED of a tracked node)
            self._scan([path], emit=True, single=True)

    def _is_key_path(self, path: str) -> bool:
        return path != self._base or bool(self._prefix)

    def _found(
        self,
        path: str,
        data: bytes | None,
        stat: ZnodeStat | None,
        *,
        emit: bool,
        into: dict[str, Entry] | None = None,
    ) -> None:
        """A znode was read: a key's entry, a null parent (not a key), or a root."""
        if stat is None or not self._is_key_path(path):
            return
        key = self._backend._key(path)
        if data is None:
            if emit:
                self._emit(key, None)
            return
        entry = self._backend._entry(key, data, stat)
        if into is not None:
            into[key] = entry
        if emit:
            self._emit(key, entry)

    def _scan(
        self, paths: list[str], *, emit: bool, children_only: bool = False, single: bool = False
    ) -> dict[str, Entry]:
        """One-shot mode: arm watches on ``paths`` and the untracked znodes below
        them; read them."""
        found: dict[str, Entry] = {}
        backend = self._backend
        client = self._client

        def on_node(path: str, data: bytes | None, stat: ZnodeStat | None) -> None:
            self._tracked.add(path)
            self._found(path, data, stat, emit=emit, into=found)

        if children_only:
            # A child list changed: re-arm the child watch, scan only new children.
            if paths[0] not in self._tracked:
                return found
            try:
                names = backend._wait(client.get_children_async(paths[0], watch=self._on_event))
            except NoNodeError:
                self._gone(paths[0])
                return found
            new = [p for p in backend._children(paths[0], names) if p not in self._tracked]
            if not new:
                return found
            paths = new
        roots_are_keys = all(self._is_key_path(p) for p in paths)
        if single:
            # Data changed: re-arm the data watch and read (children have their own watch).
            for path in paths:
                try:
                    data, stat = backend._wait(client.get_async(path, watch=self._on_event))
                except NoNodeError:
                    self._gone(path)
                    continue
                on_node(path, data, stat)
            return found
        backend._scan(
            client,
            paths,
            root_is_key=roots_are_keys,
            watch=self._on_event,
            skip=self._tracked.__contains__,
            on_node=on_node,
            on_gone=self._gone if emit else None,
            on_denied=self._deny,
        )
        return found

    def _arm_base(self, *, emit: bool) -> dict[str, Entry]:
        """One-shot mode: watch the prefix's znode: its tree if it exists, its
        creation if not."""
        stat = self._backend._wait(self._client.exists_async(self._base, watch=self._on_event))
        if stat is None:
            return {}
        return self._scan([self._base], emit=emit)

    def _add_persistent(self) -> bool:
        """(Re-)add the persistent recursive watch; False when the server has none
        (older than 3.6), after which this watch uses one-shot watches."""
        assert self._router is not None
        try:
            self._backend._wait(self._router.add(self._base, self._on_event))
            return True
        except UnimplementedError as exc:
            self._router.discard(self._base, self._on_event, tell_server=False)
            self._router = None
            self._backend._persistent_unavailable(exc)
            return False

    def _rescan(self) -> dict[str, Entry]:
        """Arm the server's watches, then read the whole tree below the prefix."""
        found = self._read_tree()
        if self._base in self._denied:
            raise NoAuthError()  # the prefix itself is unreadable: AccessDeniedError
        return found

    def _read_tree(self) -> dict[str, Entry]:
        self._tracked.clear()
        if self._router is None or not self._add_persistent():
            return self._arm_base(emit=False)
        # The watch is in place before the read, so nothing falls between the two.
        found: dict[str, Entry] = {}
        self._backend._scan(
            self._client,
            [self._base],
            root_is_key=bool(self._prefix),
            on_node=lambda path, data, stat: self._found(path, data, stat, emit=False, into=found),
            on_denied=self._deny,
        )
        return found

    def _resync(self) -> None:
        self._denied.clear()
        current = self._rescan()
        # What this client may not read (any more) is not reported as deleted: its
        # last delivered state stands, as for a key whose read failed.
        for path in self._denied:
            key = self._backend._key(path)
            for known_key, entry in self._known.items():
                if in_prefix(known_key, key) and known_key not in current:
                    current[known_key] = entry
        for change in diff_snapshots(self._known, current):
            self._dispatcher.submit(change)
        self._known = current
        self._resyncs += 1

    def _deny(self, path: str) -> None:
        """A znode below the prefix is unreadable to this client (its ACL): skip it and
        its subtree, and say so once per path (``get``/``list`` raise AccessDeniedError)."""
        if path not in self._denied:
            self._denied.add(path)
            log.warning(
                "zookeeper watch on %r cannot read %s (NoAuth): changes there are not delivered",
                self._prefix,
                path,
            )

    def _gone(self, path: str) -> None:
        self._tracked.discard(path)
        if self._is_key_path(path):
            self._emit(self._backend._key(path), None)

    def _emit(self, key: str, entry: Entry | None) -> None:
        emit_if_changed(self._known, self._dispatcher, key, entry)

    def _release(self) -> None:
        """Stop hearing from kazoo: the state listener and the server-side watch."""
        self._client.remove_listener(self._on_state)
        if self._router is not None:
            with contextlib.suppress(Exception):  # best effort: the watch dies with us
                self._router.discard(self._base, self._on_event)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._release()
        self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        self._dispatcher.stop()
        self._backend._forget(self)


__all__ = ["AUTH_ENV", "MAX_VALUE_BYTES", "ZooKeeperBackend"]
