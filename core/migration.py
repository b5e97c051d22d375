"""Moving configuration between two stores: plan, pre-flight, apply with CAS, verify, resume.

    report = veltrix.migrate("zookeeper://127.0.0.1:2181/app", "consul://127.0.0.1:8500/app")

1. **Plan**: list both stores under ``prefix``; every source key is *created* (absent in
   the destination), *updated* (different bytes) or *unchanged* (same SHA-256); keys
   only in the destination are *extraneous* (deleted with ``delete_extraneous``).
2. **Pre-flight**, before any write: every key and value to write is checked against
   what the destination can hold, through the adapter's pre-flight methods where it
   has them (``SupportsPreflight``: ``check_key(key)``, ``check_value(key, value)``;
   ``SupportsBatchPreflight``: ``check_batch(items)`` for whole-document limits),
   else against its ``max_value_bytes``; any problem stops the run with nothing
   written (:class:`UnrepresentableError`) unless ``skip_unrepresentable`` skips
   those keys.
3. **Apply** with compare-and-set on the destination version seen while planning, so a
   key changed there meanwhile is reported as a conflict and left alone (``force``
   overwrites). Stores with an all-or-nothing ``put_many`` (``SupportsBatch``) get
   batches of their ``max_batch_ops`` (Consul ``/v1/txn``, one AppConfig hosted
   version, a ZooKeeper ``multi``, a Redis ``MULTI``/``EXEC``); the others get
   ``concurrency`` parallel writers.
4. **Verify**: read the destination back and compare SHA-256 with the source.

``state`` names a resume file (JSON Lines, one line per completed write). A run killed
at any point and run again re-plans against the destination (what was written is now
*unchanged*, so nothing is written twice) and reports how much the earlier run did.
A second run over an unchanged source writes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from veltrix.backend import (
    Absent,
    AbsentType,
    Backend,
    Entry,
    HasUrl,
    SupportsBatch,
    SupportsBatchPreflight,
    SupportsContentType,
    SupportsList,
    SupportsPreflight,
    SupportsSecrets,
    SupportsWrite,
    describe,
)
from veltrix.errors import (
    ConfigurationError,
    InvalidKeyError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VeltrixError,
    VersionConflictError,
)
from veltrix.keys import in_prefix, normalize_prefix, normalize_prefixes, validate_key
from veltrix.registry import open_backend
from veltrix.snapshot import sha256_hex

log = logging.getLogger("veltrix.migration")

STATE_FORMAT = "veltrix-migrate-state"
Action = Literal["create", "update", "delete"]
Phase = Literal["plan", "apply", "verify", "done"]


class MigrationError(VeltrixError):
    """A migration could not run as asked."""


class UnrepresentableError(MigrationError, ValueError):
    """Pre-flight found keys or values the destination cannot hold; nothing was written."""

    def __init__(self, message: str, problems: Sequence[Problem]) -> None:
        super().__init__(message)
        self.problems = list(problems)


# -- data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A key (or ``<document>``) the destination cannot hold, or a write that failed."""

    key: str
    reason: str


@dataclass(frozen=True)
class PlannedWrite:
    """One planned write: ``entry`` is the source entry (``None`` for a delete).

    (Called ``Change`` in 0.1.0; a watch's :class:`veltrix.Change` is the only
    ``Change`` now.)"""

    key: str
    action: Action
    entry: Entry | None = field(repr=False)
    dest_version: str | None  # version in the destination when planned; None = absent
    dest_sha256: str | None = None


@dataclass
class Plan:
    source: str
    destination: str
    prefix: str
    changes: list[PlannedWrite] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    extraneous: list[str] = field(default_factory=list)  # only in the destination
    unrepresentable: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    secret_keys: set[str] = field(default_factory=set)
    source_entries: dict[str, Entry] = field(default_factory=dict, repr=False)
    dest_entries: dict[str, Entry] = field(default_factory=dict, repr=False)

    def keys(self, action: Action) -> list[str]:
        return [c.key for c in self.changes if c.action == action]

    @property
    def created(self) -> list[str]:
        return self.keys("create")

    @property
    def updated(self) -> list[str]:
        return self.keys("update")

    @property
    def deleted(self) -> list[str]:
        return self.keys("delete")


@dataclass(frozen=True)
class Progress:
    """Reported to the ``progress`` callback (from the calling thread)."""

    phase: Phase
    done: int
    total: int
    key: str | None = None
    written: int = 0
    conflicts: int = 0
    failed: int = 0


@dataclass
class MigrationReport:
    """What a migration did (or, with ``dry_run``, would do)."""

    source: str
    destination: str
    prefix: str
    dry_run: bool
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    extraneous: list[str] = field(default_factory=list)
    conflicts: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    failed: list[Problem] = field(default_factory=list)
    verified: int = 0
    verify_failures: list[Problem] = field(default_factory=list)
    resumed: int = 0
    write_calls: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return len(self.created) + len(self.updated) + len(self.deleted)

    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.failed or self.verify_failures)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data. A dry run wrote nothing: its ``written`` is 0
        and what it would write is ``would_write`` (with ``created``/``updated``/...)."""
        data = asdict(self)
        data["written"] = 0 if self.dry_run else self.written
        data["would_write"] = self.written if self.dry_run else 0
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        verb = "would write" if self.dry_run else "wrote"
        parts = [
            f"{verb} {self.written} (created {len(self.created)}, updated {len(self.updated)}, "
            f"deleted {len(self.deleted)})",
            f"unchanged {self.unchanged}",
        ]
        if self.extraneous:
            parts.append(f"only in destination {len(self.extraneous)}")
        if self.conflicts:
            parts.append(f"conflicts {len(self.conflicts)}")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)}")
        if self.failed:
            parts.append(f"failed {len(self.failed)}")
        if not self.dry_run:
            parts.append(f"verified {self.verified}")
        if self.verify_failures:
            parts.append(f"verify failures {len(self.verify_failures)}")
        if self.resumed:
            parts.append(f"done by an earlier run {self.resumed}")
        return "; ".join(parts)


# -- opening stores ----------------------------------------------------------------------------


def _is_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL...
        return False


@contextlib.contextmanager
def _opened(store: str | Backend) -> Iterator[Backend]:
    if isinstance(store, str):
        if "://" not in store and not store.startswith("snapshot:") and _is_file(store):
            store = "snapshot:" + store
        if store.startswith("snapshot:"):
            from veltrix.snapshot import SnapshotBackend

            backend: Backend = SnapshotBackend.from_url(store)
        else:
            backend = open_backend(store)
        try:
            yield backend
        finally:
            backend.close()
    else:
        yield store


def _refuse_discarded_destination(destination: str | Backend) -> None:
    """``memory://`` (no name) opened from a URL here is a private store closed when
    :func:`migrate` returns: everything copied into it would be lost."""
    if isinstance(destination, str) and destination.strip().lower().rstrip("/") == "memory:":
        raise ConfigurationError(
            "memory:// is a private store discarded when the migration ends: "
            "nothing would be kept; pick a store that outlives it"
        )


def _store_identity(store: Backend) -> str:
    path = getattr(store, "path", None)
    if isinstance(path, Path):  # an SQLite file named relatively and absolutely is one store
        with contextlib.suppress(OSError, ValueError):
            return f"file:{path.resolve()}"
    url = store.url if isinstance(store, HasUrl) else "memory://"
    # Two private memory stores (or two stores without a URL) are different stores.
    return f"object:{id(store)}" if url.rstrip("/") == "memory:" else url


def _refuse_same_store(source: Backend, destination: Backend) -> None:
    if source is destination or _store_identity(source) == _store_identity(destination):
        raise ConfigurationError(
            f"source and destination are the same store ({describe(source)}): nothing to migrate"
        )


def _list(store: Backend, prefix: str, what: str) -> dict[str, Entry]:
    if not isinstance(store, SupportsList):
        raise UnsupportedOperationError(f"{describe(store)} cannot list keys ({what})")
    return {e.key: e for e in store.list(prefix)}


# -- representability --------------------------------------------------------------------------
#
# Every store-specific rule lives in its adapter, behind the optional abilities of
# veltrix.backend: SupportsPreflight (check_key, check_value) and SupportsBatchPreflight
# (check_batch: whole-batch limits, e.g. AppConfig's document size). A store without
# them (a third-party adapter) is checked against the canonical key grammar and its
# ``max_value_bytes`` only.


def key_problem(store: object, key: str) -> str | None:
    """Why ``store`` cannot hold ``key`` (its ``SupportsPreflight.check_key``), or ``None``."""
    try:
        validate_key(key)
    except InvalidKeyError as exc:
        return str(exc)
    if isinstance(store, SupportsPreflight):
        try:
            store.check_key(key)
        except (InvalidKeyError, ValueTooLargeError) as exc:
            return str(exc)
    return None


def value_problem(store: object, key: str, value: bytes) -> str | None:
    """Why ``store`` cannot hold ``value`` at ``key`` (its ``SupportsPreflight.check_value``, else
    its ``max_value_bytes``), or ``None``."""
    if isinstance(store, SupportsPreflight):
        try:
            store.check_value(key, value)
        except (InvalidKeyError, ValueTooLargeError) as exc:
            return str(exc)
        return None
    limit = getattr(store, "max_value_bytes", None)
    if isinstance(limit, int) and len(value) > limit:
        return f"value is {len(value)} bytes; the destination holds at most {limit}"
    return None


def batch_problem(store: object, changes: Iterable[PlannedWrite]) -> str | None:
    """Why ``store`` cannot take these writes together (its
    ``SupportsBatchPreflight.check_batch``: e.g. an AppConfig document over its size
    limit), or ``None``."""
    if not isinstance(store, SupportsBatchPreflight):
        return None
    try:
        store.check_batch([(c.key, None if c.entry is None else c.entry.value) for c in changes])
    except (InvalidKeyError, ValueTooLargeError) as exc:
        return str(exc)
    return None


# -- planning ----------------------------------------------------------------------------------


def _is_secret(entry: Entry, secret_prefixes: Sequence[str]) -> bool:
    return entry.secret or any(in_prefix(entry.key, p) for p in secret_prefixes if p)


def make_plan(
    source: Backend,
    destination: Backend,
    prefix: str = "",
    *,
    delete_extraneous: bool = False,
    secret_prefixes: Iterable[str] = (),
) -> Plan:
    """Compare ``source`` and ``destination`` under ``prefix`` and pre-flight the writes."""
    prefix = normalize_prefix(prefix)
    secrets = list(normalize_prefixes(secret_prefixes))
    src = _list(source, prefix, "source")
    dst = _list(destination, prefix, "destination")
    plan = Plan(
        describe(source), describe(destination), prefix, source_entries=src, dest_entries=dst
    )
    if not src:
        where = f"under {prefix!r} " if prefix else ""
        plan.warnings.append(f"no keys {where}in {plan.source}: nothing to copy")
    for key in sorted(src):
        entry = src[key]
        if _is_secret(entry, secrets):
            plan.secret_keys.add(key)
        current = dst.get(key)
        if current is None:
            plan.changes.append(PlannedWrite(key, "create", entry, None))
        elif current.value == entry.value:
            plan.unchanged.append(key)
        else:
            plan.changes.append(
                PlannedWrite(key, "update", entry, current.version, sha256_hex(current.value))
            )
    for key in sorted(set(dst) - set(src)):
        plan.extraneous.append(key)
        if _is_secret(dst[key], secrets):
            plan.secret_keys.add(key)
        if delete_extraneous:
            plan.changes.append(
                PlannedWrite(key, "delete", None, dst[key].version, sha256_hex(dst[key].value))
            )
    # pre-flight
    for change in plan.changes:
        if change.entry is None:
            continue
        reason = key_problem(destination, change.key) or value_problem(
            destination, change.key, change.entry.value
        )
        if reason:
            plan.unrepresentable.append(Problem(change.key, reason))
    bad = {p.key for p in plan.unrepresentable}
    writes = [c for c in plan.changes if c.key not in bad]
    too_big = batch_problem(destination, writes) if writes else None
    if too_big:
        plan.unrepresentable.append(Problem("<document>", too_big))
    flags_secrets = isinstance(destination, SupportsSecrets) and destination.holds_secrets
    unflagged = [] if flags_secrets else [k for k in plan.secret_keys if k in src]
    if unflagged:
        plan.warnings.append(
            f"{len(unflagged)} secret values go to {plan.destination}, which does not flag them "
            "as secret: mask them with secret_prefixes / --secret-prefix where they are read"
        )
    return plan


def diff(
    source: str | Backend,
    destination: str | Backend,
    prefix: str = "",
    *,
    secret_prefixes: Iterable[str] = (),
) -> Plan:
    """The plan of a migration without writing anything (``created``/``updated``/...)."""
    with _opened(source) as src, _opened(destination) as dst:
        return make_plan(src, dst, prefix, secret_prefixes=secret_prefixes)


# -- state file --------------------------------------------------------------------------------


class StateFile:
    """Append-only JSON Lines record of completed writes, for resuming a killed run.

    The first line names the migration (source, destination, prefix); each later line
    is one completed write. A torn last line (the process died mid-write) is ignored.
    Lines are flushed at once (a SIGKILL loses nothing the OS has) and fsynced at
    most every half second and at the end.
    """

    def __init__(
        self, path: str | os.PathLike[str], source: str, destination: str, prefix: str
    ) -> None:
        self.path = Path(path)
        self.done: dict[str, dict[str, Any]] = {}
        self.previous_runs = 0
        header = {
            "type": STATE_FORMAT,
            "format": 1,
            "source": source,
            "destination": destination,
            "prefix": prefix,
        }
        self._lock = threading.Lock()
        self._last_sync = time.monotonic()
        try:
            existing = self.path.read_bytes() if self.path.exists() else b""
        except OSError as exc:
            raise ConfigurationError(f"cannot read state file {self.path}: {exc.strerror}") from exc
        lines = existing.split(b"\n")
        if existing.strip():
            try:
                first = json.loads(lines[0])
            except ValueError as exc:
                raise ConfigurationError(f"{self.path} is not a migration state file") from exc
            if not isinstance(first, dict) or first.get("type") != STATE_FORMAT:
                raise ConfigurationError(f"{self.path} is not a migration state file")
            for name in ("source", "destination", "prefix"):
                if first.get(name) != header[name]:
                    raise ConfigurationError(
                        f"state file {self.path} belongs to another migration ({name} "
                        f"{first.get(name)!r}, not {header[name]!r}); use another --state file"
                    )
            for raw in lines[1:]:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue  # the torn last line of a killed run
                if isinstance(record, dict) and record.get("op") in ("put", "delete"):
                    self.done[str(record.get("key"))] = record
                elif isinstance(record, dict) and record.get("type") in ("run", "done"):
                    self.previous_runs += record.get("type") == "run"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            self._fd = os.open(self.path, flags, 0o600)
            if not existing.strip():
                os.write(self._fd, _json_line(header))
            elif not existing.endswith(b"\n"):
                os.write(self._fd, b"\n")  # end the torn line so the next one parses
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write state file {self.path}: {exc.strerror}"
            ) from exc
        self.mark({"type": "run", "started": _now()})

    def mark(self, record: Mapping[str, Any]) -> None:
        with self._lock:
            os.write(self._fd, _json_line(dict(record)))
            if time.monotonic() - self._last_sync > 0.5:
                os.fsync(self._fd)
                self._last_sync = time.monotonic()

    def record(self, change: PlannedWrite, version: str | None) -> None:
        if change.entry is None:
            self.mark({"op": "delete", "key": change.key})
        else:
            self.mark(
                {
                    "op": "put",
                    "key": change.key,
                    "sha256": sha256_hex(change.entry.value),
                    "version": version,
                }
            )

    def close(self, report: MigrationReport | None = None) -> None:
        with self._lock:
            if report is not None:
                os.write(
                    self._fd,
                    _json_line(
                        {
                            "type": "done",
                            "finished": _now(),
                            "ok": report.ok,
                            "written": report.written,
                        }
                    ),
                )
            os.fsync(self._fd)
            os.close(self._fd)


def _json_line(obj: Mapping[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- writers -----------------------------------------------------------------------------------


@dataclass
class _Outcome:
    change: PlannedWrite
    version: str | None = None
    conflict: str | None = None
    error: str | None = None


def _if_version(change: PlannedWrite, force: bool) -> str | AbsentType | None:
    if force:
        return None
    return Absent if change.dest_version is None else change.dest_version


def _write_one(
    store: SupportsWrite, change: PlannedWrite, force: bool, with_type: bool
) -> _Outcome:
    """One write; ``with_type``: the store keeps content types (:class:`SupportsContentType`)."""
    try:
        if change.entry is None:
            version = change.dest_version if not force else None
            store.delete(change.key, if_version=version)
            return _Outcome(change)
        if_version = _if_version(change, force)
        if with_type and change.entry.content_type:
            version = cast(SupportsContentType, store).put(
                change.key,
                change.entry.value,
                if_version=if_version,
                content_type=change.entry.content_type,
            )
        else:
            version = store.put(change.key, change.entry.value, if_version=if_version)
        return _Outcome(change, version=version)
    except VersionConflictError as exc:
        return _Outcome(change, conflict=str(exc))
    except (InvalidKeyError, ValueTooLargeError, UnsupportedOperationError) as exc:
        return _Outcome(change, error=str(exc))


BatchWriter = Callable[[list[PlannedWrite], bool], list[_Outcome]]


def _batch_writer(store: object) -> tuple[BatchWriter | None, int]:
    """A writer over the store's ``put_many`` (:class:`SupportsBatch`, all or nothing
    with ``atomic=True``) and its batch size, or ``(None, 1)``."""
    if not isinstance(store, SupportsBatch):
        return None, 1

    def write(batch: list[PlannedWrite], force: bool) -> list[_Outcome]:
        items = [(c.key, None if c.entry is None else c.entry.value) for c in batch]
        versions: dict[str, str | AbsentType] = {}
        if not force:
            for change in batch:
                wanted = _if_version(change, force)
                if wanted is not None:
                    versions[change.key] = wanted
        result = store.put_many(items, atomic=True, if_versions=versions)
        return [_Outcome(c, version=result.get(c.key)) for c in batch]

    size = store.max_batch_ops
    return write, size if isinstance(size, int) and size > 0 else 64


def _batches(
    changes: list[PlannedWrite], size: int, max_bytes: int
) -> Iterator[list[PlannedWrite]]:
    batch: list[PlannedWrite] = []
    used = 0
    for change in changes:
        cost = 200 + len(change.key) + (len(change.entry.value) * 4 // 3 if change.entry else 0)
        if batch and (len(batch) >= size or used + cost > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(change)
        used += cost
    if batch:
        yield batch


# -- migrate -----------------------------------------------------------------------------------


def migrate(
    source: str | Backend,
    destination: str | Backend,
    *,
    prefix: str = "",
    dry_run: bool = False,
    delete_extraneous: bool = False,
    force: bool = False,
    skip_unrepresentable: bool = False,
    state: str | os.PathLike[str] | None = None,
    concurrency: int = 8,
    verify: bool = True,
    secret_prefixes: Iterable[str] = (),
    progress: Callable[[Progress], None] | None = None,
) -> MigrationReport:
    """Copy every key under ``prefix`` from ``source`` to ``destination``.

    Stores are URLs (opened and closed here), backend instances, or a snapshot
    file path as the source. Raises :class:`UnrepresentableError` (nothing written)
    when pre-flight fails and ``skip_unrepresentable`` is false; conflicts, failed
    writes and verify mismatches are in the returned report (``report.ok``).
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError("concurrency must be an integer of at least 1")
    started = time.monotonic()
    notify = progress or (lambda _p: None)
    _refuse_discarded_destination(destination)
    with _opened(source) as src, _opened(destination) as dst:
        _refuse_same_store(src, dst)
        notify(Progress("plan", 0, 0))
        plan = make_plan(
            src, dst, prefix, delete_extraneous=delete_extraneous, secret_prefixes=secret_prefixes
        )
        report = MigrationReport(
            plan.source,
            plan.destination,
            plan.prefix,
            dry_run,
            unchanged=len(plan.unchanged),
            extraneous=list(plan.extraneous),
            warnings=list(plan.warnings),
        )
        if plan.unrepresentable:
            if not skip_unrepresentable:
                shown = "; ".join(f"{p.key}: {p.reason}" for p in plan.unrepresentable[:3])
                more = len(plan.unrepresentable) - 3
                raise UnrepresentableError(
                    f"{len(plan.unrepresentable)} keys cannot be stored in {plan.destination}, "
                    f"nothing written: {shown}"
                    + (f" (and {more} more)" if more > 0 else "")
                    + "; --skip-unrepresentable skips them",
                    plan.unrepresentable,
                )
            plan = _without_unrepresentable(plan, dst)
            report.skipped = list(plan.unrepresentable)  # with keys dropped to fit a document
        if dry_run:
            report.created, report.updated = plan.created, plan.updated
            report.deleted = plan.deleted
            report.seconds = time.monotonic() - started
            notify(Progress("done", 0, len(plan.changes)))
            return report
        if plan.changes and not isinstance(dst, SupportsWrite):
            raise UnsupportedOperationError(f"{plan.destination} is read-only")
        ledger = (
            StateFile(state, plan.source, plan.destination, plan.prefix)
            if state is not None
            else None
        )
        try:
            if ledger is not None:
                report.resumed = sum(
                    1
                    for key in plan.unchanged
                    if key in ledger.done
                    and ledger.done[key].get("sha256") == sha256_hex(plan.source_entries[key].value)
                ) + sum(
                    1
                    for key, rec in ledger.done.items()
                    if rec.get("op") == "delete" and key not in plan.dest_entries
                )
            if plan.changes:
                assert isinstance(dst, SupportsWrite)
                _apply(
                    dst, plan, report, ledger, force=force, concurrency=concurrency, notify=notify
                )
            if verify:
                _verify(dst, plan, report, notify)
        finally:
            if ledger is not None:
                ledger.close(report)
        report.seconds = time.monotonic() - started
        notify(
            Progress(
                "done",
                report.written,
                len(plan.changes),
                written=report.written,
                conflicts=len(report.conflicts),
                failed=len(report.failed),
            )
        )
        return report


def _without_unrepresentable(plan: Plan, dst: Backend) -> Plan:
    bad = {p.key for p in plan.unrepresentable}
    plan.changes = [c for c in plan.changes if c.key not in bad]
    if "<document>" in bad:  # drop the largest values until the batch fits
        writes = sorted(
            (c for c in plan.changes if c.entry is not None),
            key=lambda c: len(c.entry.value) if c.entry else 0,
        )
        while writes and batch_problem(dst, plan.changes):
            dropped = writes.pop()
            plan.changes.remove(dropped)
            plan.unrepresentable.append(Problem(dropped.key, "skipped to fit the document"))
    return plan


def _apply(
    dst: SupportsWrite,
    plan: Plan,
    report: MigrationReport,
    ledger: StateFile | None,
    *,
    force: bool,
    concurrency: int,
    notify: Callable[[Progress], None],
) -> None:
    total = len(plan.changes)
    done = 0
    with_type = isinstance(dst, SupportsContentType)
    batch_writer, batch_size = _batch_writer(dst)

    def settle(outcome: _Outcome) -> None:
        nonlocal done
        done += 1
        change = outcome.change
        if outcome.conflict is not None:
            report.conflicts.append(Problem(change.key, outcome.conflict))
        elif outcome.error is not None:
            report.failed.append(Problem(change.key, outcome.error))
        else:
            {"create": report.created, "update": report.updated, "delete": report.deleted}[
                change.action
            ].append(change.key)
            if ledger is not None:
                ledger.record(change, outcome.version)
        notify(
            Progress(
                "apply",
                done,
                total,
                change.key,
                report.written,
                len(report.conflicts),
                len(report.failed),
            )
        )

    if batch_writer is not None:
        for batch in _batches(plan.changes, batch_size, 400 * 1024):
            report.write_calls += 1
            try:
                outcomes = batch_writer(batch, force)
            except (VersionConflictError, UnsupportedOperationError, ValueTooLargeError):
                # find out which key: this batch one key at a time
                report.write_calls += len(batch)
                outcomes = [_write_one(dst, c, force, with_type) for c in batch]
            for outcome in outcomes:
                settle(outcome)
        return

    pending: set[Future[_Outcome]] = set()
    changes = iter(plan.changes)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="veltrix-migrate") as pool:
        try:
            while True:
                while len(pending) < concurrency * 2:
                    change = next(changes, None)
                    if change is None:
                        break
                    report.write_calls += 1
                    pending.add(pool.submit(_write_one, dst, change, force, with_type))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    settle(future.result())
        except BaseException:
            # record what did complete before giving up (the state file lets a rerun go on)
            for future in pending:
                future.cancel()
            for future in pending:
                if not future.cancelled():
                    with contextlib.suppress(BaseException):
                        settle(future.result())
            raise


def _verify(
    dst: Backend, plan: Plan, report: MigrationReport, notify: Callable[[Progress], None]
) -> None:
    """Read the destination back; SHA-256 of every source key must match."""
    skipped = {p.key for p in report.skipped}
    expected: dict[str, str | None] = {
        key: sha256_hex(entry.value)
        for key, entry in plan.source_entries.items()
        if key not in skipped
    }
    conflicted = {p.key for p in report.conflicts} | {p.key for p in report.failed}
    for key in report.deleted:
        expected[key] = None
    for key in conflicted:
        expected.pop(key, None)
    mismatched = _mismatches(dst, plan.prefix, expected)
    delay = 0.2
    for _ in range(4):  # stores that serve reads from a polled document catch up
        if not mismatched:
            break
        time.sleep(delay)
        delay *= 2
        mismatched = _mismatches(dst, plan.prefix, {k: expected[k] for k in mismatched})
    report.verified = len(expected) - len(mismatched)
    report.verify_failures = [
        Problem(k, "still present after delete" if expected[k] is None else "sha256 differs")
        for k in sorted(mismatched)
    ]
    notify(Progress("verify", report.verified, len(expected)))


def _mismatches(dst: Backend, prefix: str, expected: Mapping[str, str | None]) -> list[str]:
    if not expected:
        return []
    if isinstance(dst, SupportsList) and len(expected) > 20:
        actual = {e.key: sha256_hex(e.value) for e in dst.list(prefix)}
        return [k for k, h in expected.items() if actual.get(k) != h]
    bad = []
    for key, wanted in expected.items():
        entry = dst.get(key)
        if (None if entry is None else sha256_hex(entry.value)) != wanted:
            bad.append(key)
    return bad


def __getattr__(name: str) -> Any:
    # ``veltrix.migration.Change`` was this module's name for a planned write in
    # 0.1.0; it clashed with the watch's ``veltrix.Change``. Deprecated alias.
    if name == "Change":
        import warnings

        warnings.warn(
            "veltrix.migration.Change is now veltrix.migration.PlannedWrite",
            DeprecationWarning,
            stacklevel=2,
        )
        return PlannedWrite
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
