"""``sqlite:///path/config.db``: the embedded default store.

One SQLite file (WAL mode) shared by every process on a host. Every write bumps a
store-wide revision (the ``changes`` table's AUTOINCREMENT key), which is also the
written key's version, so compare-and-set never suffers ABA after delete and
re-create. Watches poll the changes table with one indexed query (a few
microseconds when nothing changed), which sees writes from other processes within
the poll interval (10 ms default).

``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` follow the
SQLAlchemy convention. With no URL at all (and for ``sqlite://``), Veltrix uses
:func:`veltrix.registry.default_path`.

Option ``create`` says what opening may create: ``file`` (the default: the file, in a
folder that must exist), ``parents`` (the folders too; the default for the default
file) or ``no`` (the store must exist: :class:`~veltrix.errors.StoreNotFoundError`
otherwise). The command line opens stores with ``create=no`` for every command that
only reads, so a typo in a path is reported instead of becoming a new empty store.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

from veltrix.backend import AbsentType, Change, Entry
from veltrix.errors import (
    BackendUnavailableError,
    ConfigurationError,
    StoreNotFoundError,
    ValueTooLargeError,
)
from veltrix.keys import in_prefix, normalize_prefix, validate_key
from veltrix.registry import default_path
from veltrix.urls import Options, parse_url
from veltrix.values import check_expected_version, check_value
from veltrix.watching import ChangeLogWatch, ChangeRecord, WatchSet

log = logging.getLogger("veltrix.sqlite")

DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024
#: What opening a store may create (option ``create``).
CREATE_MODES = ("no", "file", "parents")
#: How many change records are kept for watchers; older ones are pruned.
CHANGE_LOG_RETENTION = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    content_type TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    rev INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL
);
"""


def _upper_bound(prefix: str) -> str:
    # Every key below "a/b" sorts in ["a/b/", "a/b0"): '0' is the character after '/'.
    return prefix + "0"


class SQLiteBackend:
    schemes: ClassVar[tuple[str, ...]] = ("sqlite",)
    #: Versions are a store-wide revision (``SupportsOrderedVersions``).
    versions_increase: ClassVar[bool] = True
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.OperationalError,)
    max_value_bytes: ClassVar[int | None] = DEFAULT_MAX_VALUE_BYTES
    #: ``put(content_type=)`` is stored and read back (``SupportsContentType``).
    keeps_content_type: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        poll_interval: float = 0.01,
        create: str = "file",
    ) -> None:
        if create not in CREATE_MODES:
            raise ConfigurationError(f"create={create!r} must be one of {', '.join(CREATE_MODES)}")
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._poll_interval = poll_interval
        self._lock = threading.Lock()
        self._watches: WatchSet[ChangeLogWatch] = WatchSet()
        self._closed = False
        self._check_can_open(create)
        try:
            if create == "parents":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
            with self._lock:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error, ValueError) as exc:  # ValueError: a NUL in the path
            raise ConfigurationError(f"cannot open SQLite store {self.path}: {exc}") from exc

    def _check_can_open(self, create: str) -> None:
        try:
            exists = self.path.is_file()
            folder = self.path.parent.is_dir()
        except (OSError, ValueError):  # a name too long, a NUL: reported by the open below
            return
        if exists:
            return
        if create == "no":
            raise StoreNotFoundError(
                f"no SQLite store at {self.path} (nothing was created: only writes create it)"
            )
        if create == "file" and not folder:
            raise StoreNotFoundError(
                f"cannot create SQLite store {self.path}: folder {self.path.parent} does not "
                "exist (create it, or add ?create=parents to the URL)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # explicit BEGIN IMMEDIATE for writes
            check_same_thread=False,
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        opts = Options(parsed.query, options, where=parsed.redacted)
        busy_timeout = opts.float("busy_timeout", 10.0, minimum=0)
        poll_interval = opts.float("poll_interval", 0.01, minimum=0.001)
        create = opts.str("create")
        opts.finish()
        if parsed.netloc:
            raise ConfigurationError(
                f"{parsed.redacted}: sqlite URLs have no host; use sqlite:///relative.db "
                "or sqlite:////absolute/path.db"
            )
        path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
        if not path:
            path = str(default_path())
        if Path(path) == default_path():  # the default file's folders are Veltrix's to make
            create = create or "parents"
        return cls(
            path, busy_timeout=busy_timeout, poll_interval=poll_interval, create=create or "file"
        )

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def __repr__(self) -> str:
        return f"SQLiteBackend({self.url!r})"

    def _entry(self, key: str, value: bytes, version: int, content_type: str | None) -> Entry:
        return Entry(key, bytes(value), str(version), content_type, source=f"{self.url}#{key}")

    def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        try:
            with self._lock:
                return fn(self._conn)
        except sqlite3.OperationalError as exc:
            raise BackendUnavailableError(f"SQLite store {self.path}: {exc}") from exc

    def get(self, key: str) -> Entry | None:
        validate_key(key)
        row = self._run(
            lambda c: c.execute(
                "SELECT value, version, content_type FROM entries WHERE key = ?", (key,)
            ).fetchone()
        )
        return None if row is None else self._entry(key, *row)

    def _list_rows(self, conn: sqlite3.Connection, prefix: str) -> list[tuple[Any, ...]]:
        if not prefix:
            query, args = "SELECT key, value, version, content_type FROM entries", ()
        else:
            query = (
                "SELECT key, value, version, content_type FROM entries "
                "WHERE key = ? OR (key >= ? AND key < ?)"
            )
            args = (prefix, prefix + "/", _upper_bound(prefix))  # type: ignore[assignment]
        return conn.execute(query + " ORDER BY key", args).fetchall()

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        rows = self._run(lambda c: self._list_rows(c, prefix))
        return iter([self._entry(*row) for row in rows])

    def _write(self, key: str, apply: Callable[[sqlite3.Connection, int | None], Any]) -> Any:
        """Run ``apply(conn, current_version)`` in one IMMEDIATE transaction."""

        def transaction(conn: sqlite3.Connection) -> Any:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT version FROM entries WHERE key = ?", (key,)).fetchone()
                result = apply(conn, None if row is None else row[0])
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return self._run(transaction)

    def _log_change(self, conn: sqlite3.Connection, key: str, deleted: bool) -> int:
        rev = conn.execute(
            "INSERT INTO changes (key, deleted) VALUES (?, ?)", (key, int(deleted))
        ).lastrowid
        assert rev is not None
        if rev % 1000 == 0:
            conn.execute("DELETE FROM changes WHERE rev <= ?", (rev - CHANGE_LOG_RETENTION,))
        return rev

    def put(
        self,
        key: str,
        value: bytes,
        *,
        if_version: str | AbsentType | None = None,
        content_type: str | None = None,
    ) -> str:
        validate_key(key)
        value = check_value(key, value, self.max_value_bytes)

        def apply(conn: sqlite3.Connection, current: int | None) -> str:
            check_expected_version(key, None if current is None else str(current), if_version)
            rev = self._log_change(conn, key, deleted=False)
            conn.execute(
                "INSERT INTO entries (key, value, version, content_type) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "version = excluded.version, content_type = excluded.content_type",
                (key, value, rev, content_type),
            )
            return str(rev)

        try:
            result: str = self._write(key, apply)
        except sqlite3.DataError as exc:  # pragma: no cover - guarded by check_value
            raise ValueTooLargeError(f"value for {key!r} is too large for SQLite") from exc
        return result

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        validate_key(key)

        def apply(conn: sqlite3.Connection, current: int | None) -> bool:
            if if_version is not None:
                check_expected_version(key, None if current is None else str(current), if_version)
            if current is None:
                return False
            self._log_change(conn, key, deleted=True)
            conn.execute("DELETE FROM entries WHERE key = ?", (key,))
            return True

        result: bool = self._write(key, apply)
        return result

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> ChangeLogWatch:
        """Polls the change log every ``poll_interval`` for records newer than the last
        one delivered; a gap in the log (pruned while this watcher was slow) falls
        back to a full diff instead of losing changes."""
        prefix = normalize_prefix(prefix)
        changes = _SQLiteChangeLog(self, prefix)
        try:
            start = changes.baseline()
        except BaseException:
            changes.close()
            raise
        return self._watches.add(
            ChangeLogWatch(
                changes,
                prefix,
                on_change,
                start=start,
                name=f"veltrix-sqlite-watch-{prefix}",
                where=self.url,
                errors=(sqlite3.Error,),
                describe_error=str,
                poll_interval=self._poll_interval,
                coalesce=True,
                retry_backoff=0.0,
                on_stop=self._watches.discard,
            )
        )

    def close(self) -> None:
        if self._closed:
            return
        self._watches.stop_all()
        with self._lock:
            self._closed = True
            self._conn.close()


class _SQLiteChangeLog:
    """The ``changes`` table as a :class:`veltrix.watching.ChangeLog`, on a connection
    of its own. Each record carries the key's *current* row (one consistent query
    joins them), so the watch coalesces per read."""

    def __init__(self, backend: SQLiteBackend, prefix: str) -> None:
        self._backend = backend
        self._prefix = prefix
        self._conn = backend._connect()

    def baseline(self) -> tuple[int, dict[str, Entry]]:
        conn = self._conn
        conn.execute("BEGIN")
        try:
            rev: int = conn.execute("SELECT COALESCE(MAX(rev), 0) FROM changes").fetchone()[0]
            rows = self._backend._list_rows(conn, self._prefix)
        finally:
            conn.execute("COMMIT")
        return rev, {e.key: e for e in (self._backend._entry(*r) for r in rows)}

    def read_after(self, revision: int) -> list[ChangeRecord]:
        # One statement (one consistent snapshot, one GIL round trip): every change
        # since the last one seen, joined with the key's current row.
        rows = self._conn.execute(
            "SELECT c.rev, c.key, e.value, e.version, e.content_type FROM changes c "
            "LEFT JOIN entries e ON e.key = c.key WHERE c.rev > ? ORDER BY c.rev",
            (revision,),
        ).fetchall()
        entry = self._backend._entry
        return [
            (
                rev,
                key,
                None
                if version is None or not in_prefix(key, self._prefix)
                else entry(key, value, version, content_type),
            )
            for rev, key, value, version, content_type in rows
        ]

    def close(self) -> None:
        self._conn.close()
