"""Migration between the embedded stores: plan, pre-flight, CAS conflicts, verify,
idempotence, snapshots as a source, and the live MirrorBackend (also behind a Client)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import veltrix
from veltrix.adapters.memory import MemoryBackend
from veltrix.adapters.sqlite import SQLiteBackend
from veltrix.backend import Entry
from veltrix.errors import DecodeError
from veltrix.migration import (
    MigrationReport,
    Progress,
    UnrepresentableError,
    batch_problem,
    diff,
    key_problem,
    migrate,
    value_problem,
)
from veltrix.mirror import MirrorBackend
from veltrix.registry import open_backend
from veltrix.snapshot import SnapshotError, read_snapshot, save_snapshot, write_snapshot


def dataset(limit: int | None = None) -> dict[str, bytes]:
    """Nested keys, a key that is also a parent, binary, empty and JSON values, secrets,
    and (with ``limit``) a text value of exactly ``limit`` bytes."""
    data = {
        "app/name": b"veltrix",
        "app/db": b"parent-and-value",
        "app/db/host": b"db.internal",
        "app/db/port": b"5432",
        "app/db/pool/max": b"20",
        "app/feature.flag-x_y": b"true",
        "app/json": b'{"a": [1, 2], "b": null}',
        "app/ratio": b"0.25",
        "app/blob": b"\x00\x01\xfe\xff" + bytes(range(256)),
        "app/empty": b"",
        "app/unicode": "zoë — ✓".encode(),
        "deep/a/b/c/d/e/f/g": b"deep",
        "secrets/db/password": b"s3cr3t-pa55word",
        "secrets/api/token": b"tok-123456",
    }
    if limit is not None:
        data["big/at-limit"] = (b"0123456789abcdef" * (limit // 16 + 1))[:limit]
    return data


def seed(store: object, data: dict[str, bytes]) -> None:
    for key, value in data.items():
        store.put(key, value)  # type: ignore[attr-defined]


def contents(store: object, prefix: str = "") -> dict[str, bytes]:
    return {e.key: e.value for e in store.list(prefix)}  # type: ignore[attr-defined]


@pytest.fixture
def src(tmp_path: Path) -> Iterator[SQLiteBackend]:
    backend = SQLiteBackend(tmp_path / "src.db")
    yield backend
    backend.close()


@pytest.fixture
def dst() -> Iterator[MemoryBackend]:
    backend = MemoryBackend()
    yield backend
    backend.close()


def test_migrate_copies_everything_and_second_run_writes_nothing(
    src: SQLiteBackend, dst: MemoryBackend
) -> None:
    data = dataset(limit=dst.max_value_bytes)
    seed(src, data)
    events: list[Progress] = []
    report = migrate(src, dst, progress=events.append)
    assert isinstance(report, MigrationReport) and report.ok
    assert sorted(report.created) == sorted(data)
    assert report.verified == len(data)
    assert contents(dst) == data
    assert [e.done for e in events if e.phase == "apply"] == list(range(1, len(data) + 1))
    assert events[-1].phase == "done"
    again = migrate(src, dst)
    assert again.written == 0 and again.unchanged == len(data) and again.ok


def test_veltrix_migrate_is_the_public_entry_point(src: SQLiteBackend, dst: MemoryBackend) -> None:
    seed(src, {"a": b"1"})
    report = veltrix.migrate(src, dst)
    assert isinstance(report, veltrix.MigrationReport)
    assert report.created == ["a"]


def test_prefix_dry_run_and_diff(src: SQLiteBackend, dst: MemoryBackend) -> None:
    seed(src, {"app/a": b"1", "app/b": b"2", "other/c": b"3"})
    seed(dst, {"app/a": b"1", "app/b": b"old", "app/z": b"extra", "other/q": b"9"})
    plan = diff(src, dst, "app")
    assert (plan.created, plan.updated, plan.unchanged, plan.extraneous) == (
        [],
        ["app/b"],
        ["app/a"],
        ["app/z"],
    )
    report = migrate(src, dst, prefix="app", dry_run=True, delete_extraneous=True)
    assert (report.updated, report.deleted) == (["app/b"], ["app/z"])
    assert contents(dst)["app/b"] == b"old"  # dry run wrote nothing
    report = migrate(src, dst, prefix="app", delete_extraneous=True)
    assert report.ok and report.deleted == ["app/z"]
    assert contents(dst) == {"app/a": b"1", "app/b": b"2", "other/q": b"9"}


def test_concurrent_change_in_destination_is_a_conflict_unless_forced(
    src: SQLiteBackend, dst: MemoryBackend
) -> None:
    seed(src, {"k1": b"new", "k2": b"new", "k3": b"new"})
    seed(dst, {"k1": b"old", "k2": b"old"})
    interfered = False

    def meddle(event: Progress) -> None:
        nonlocal interfered
        if event.phase == "plan" and not interfered:
            return
        if event.phase == "apply" and not interfered:
            interfered = True
            dst.put("k2", b"changed-meanwhile")  # after planning, before k2 is written

    report = migrate(src, dst, progress=meddle, concurrency=1)
    assert [p.key for p in report.conflicts] == ["k2"]
    assert not report.ok
    assert contents(dst) == {"k1": b"new", "k2": b"changed-meanwhile", "k3": b"new"}
    forced = migrate(src, dst, force=True)
    assert forced.ok and forced.updated == ["k2"]
    assert contents(dst)["k2"] == b"new"


def test_preflight_stops_before_any_write(src: SQLiteBackend, tmp_path: Path) -> None:
    small = MemoryBackend()
    small.max_value_bytes = 100  # type: ignore[misc]
    seed(src, {"ok/a": b"1", "ok/b": b"2", "big": b"x" * 101})
    with pytest.raises(UnrepresentableError, match=r"1 keys cannot be stored .* big: value is 101"):
        migrate(src, small)
    assert contents(small) == {}
    report = migrate(src, small, skip_unrepresentable=True)
    assert [p.key for p in report.skipped] == ["big"] and report.ok
    assert contents(small) == {"ok/a": b"1", "ok/b": b"2"}


def test_stores_without_hooks_get_the_generic_checks_only() -> None:
    class ThirdParty:  # no hooks: the canonical grammar and max_value_bytes
        schemes = ("zookeeper",)  # a scheme alone brings no rules: they live in adapters
        root = ""
        max_value_bytes = 10

    assert key_problem(ThirdParty(), "zookeeper/quota") is None
    assert key_problem(ThirdParty(), "bad//key") is not None
    assert value_problem(ThirdParty(), "k", b"x" * 11) == (
        "value is 11 bytes; the destination holds at most 10"
    )
    assert value_problem(ThirdParty(), "k", b"x" * 10) is None
    assert batch_problem(ThirdParty(), []) is None


def test_adapter_hooks_decide() -> None:
    class WithHooks:
        schemes = ("custom",)
        max_value_bytes = 1  # the check_value hook replaces this generic limit

        def check_key(self, key: str) -> None:
            if key.startswith("no"):
                raise veltrix.InvalidKeyError(f"{key!r} refused")

        def check_value(self, key: str, value: bytes) -> None:
            if len(value) > 5:
                raise veltrix.ValueTooLargeError(f"{key!r} over 5")

    assert key_problem(WithHooks(), "nope") == "'nope' refused"
    assert key_problem(WithHooks(), "yes") is None
    assert value_problem(WithHooks(), "k", b"12345") is None
    assert value_problem(WithHooks(), "k", b"123456") == "'k' over 5"


class SmallDocument(MemoryBackend):
    """A store with a whole-batch limit (as AppConfig's document) and batch writes."""

    max_batch_ops = 2

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.batches: list[list[str]] = []

    def check_batch(self, items: list[tuple[str, bytes | None]]) -> None:
        final = {e.key: e.value for e in self.list("")}
        for key, value in items:
            if value is None:
                final.pop(key, None)
            else:
                final[key] = value
        size = sum(len(v) for v in final.values())
        if size > self.limit:
            raise veltrix.ValueTooLargeError(f"the document would be {size} bytes")

    def put_many(
        self,
        items: list[tuple[str, bytes | None]],
        *,
        atomic: bool = True,
        if_versions: dict[str, Any] | None = None,
    ) -> dict[str, str | None]:
        self.batches.append([key for key, _ in items])
        out: dict[str, str | None] = {}
        for key, value in items:
            wanted = (if_versions or {}).get(key)
            if value is None:
                self.delete(key, if_version=wanted)
                out[key] = None
            else:
                out[key] = self.put(key, value, if_version=wanted)
        return out


def test_batch_hooks_preflight_and_batching(src: SQLiteBackend) -> None:
    seed(src, {"a": b"1" * 10, "b": b"2" * 20, "c": b"3" * 30, "d": b"4"})
    dst = SmallDocument(limit=45)
    with pytest.raises(UnrepresentableError, match="<document>: the document would be 61"):
        migrate(src, dst)
    assert contents(dst) == {}
    report = migrate(src, dst, skip_unrepresentable=True)
    assert report.ok, report.verify_failures
    assert {p.key for p in report.skipped} == {"<document>", "c"}  # the largest value went
    assert contents(dst) == {"a": b"1" * 10, "b": b"2" * 20, "d": b"4"}
    assert dst.batches == [["a", "b"], ["d"]] and report.write_calls == 2


def test_state_file_records_progress_and_refuses_another_migration(
    src: SQLiteBackend, dst: MemoryBackend, tmp_path: Path
) -> None:
    seed(src, {"a": b"1", "b": b"2"})
    state = tmp_path / "state.jsonl"
    report = migrate(src, dst, state=state)
    assert report.ok
    lines = state.read_text().splitlines()
    assert '"op":"put"' in lines[2] and '"type":"done"' in lines[-1]
    again = migrate(src, dst, state=state)
    assert again.written == 0 and again.resumed == 2
    with pytest.raises(veltrix.ConfigurationError, match="another migration"):
        migrate(src, MemoryBackend(), prefix="a", state=state)


def test_snapshot_round_trip_through_migrate(
    src: SQLiteBackend, dst: MemoryBackend, tmp_path: Path
) -> None:
    data = dataset()
    seed(src, data)
    path = tmp_path / "export.jsonl"
    save_snapshot(path, src.list(""), source=src.url)
    report = migrate(f"snapshot:{path}", dst)
    assert report.ok and contents(dst) == data
    assert migrate(str(path), dst).written == 0  # a plain path works too


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_snapshot_imports_nothing(
    src: SQLiteBackend, dst: MemoryBackend, tmp_path: Path, damage: str
) -> None:
    seed(src, dataset())
    out = io.BytesIO()
    write_snapshot(out, src.list(""), source=src.url)
    data = out.getvalue()
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    else:
        data = data.replace(b'"key":"app/name"', b'"key":"app/nane"')
    path = tmp_path / "bad.jsonl"
    path.write_bytes(data)
    with pytest.raises(SnapshotError, match="truncated" if damage == "truncate" else "digest"):
        migrate(f"snapshot:{path}", dst)
    with pytest.raises(DecodeError):
        read_snapshot(path)
    assert contents(dst) == {}


# -- MirrorBackend ------------------------------------------------------------------------------


def test_mirror_dual_writes_and_reads_primary() -> None:
    primary, secondary = MemoryBackend(), MemoryBackend()
    mirror = MirrorBackend(primary, secondary)
    version = mirror.put("a/b", b"1")
    assert primary.get("a/b") == mirror.get("a/b")
    entry = mirror.get("a/b")
    assert entry is not None and entry.version == version
    assert contents(secondary) == {"a/b": b"1"}
    with pytest.raises(veltrix.VersionConflictError):
        mirror.put("a/b", b"2", if_version="999")  # CAS is the primary's
    assert contents(secondary) == {"a/b": b"1"}
    assert mirror.delete("a/b")
    assert contents(primary) == contents(secondary) == {}


def test_mirror_is_not_opened_from_a_url() -> None:
    """No mirror:// scheme: nested store URLs would carry their tokens past redaction."""
    url = (
        "mirror://?primary=consul%3A%2F%2Fh%2Fapp%3Ftoken%3Ds3cret-token&secondary=memory%3A%2F%2F"
    )
    with pytest.raises(veltrix.ConfigurationError) as refused:
        MirrorBackend.from_url(url)
    assert "MirrorBackend(" in str(refused.value) and "s3cret-token" not in str(refused.value)
    with pytest.raises(veltrix.UnknownBackendError):
        open_backend(url)


def test_mirror_secondary_failure_never_fails_the_caller() -> None:
    primary, secondary = MemoryBackend(), MemoryBackend()
    secondary.max_value_bytes = 4  # type: ignore[misc]
    mirror = MirrorBackend(primary, secondary)
    mirror.max_value_bytes = None  # let the primary take it
    mirror.put("k", b"longer than four")
    stats = mirror.stats()
    assert stats["secondary_write_errors"] == 1 and stats["unsynced_keys"] == ["k"]
    assert contents(primary) == {"k": b"longer than four"} and contents(secondary) == {}


def test_shadow_reads_serve_primary_and_count_mismatches() -> None:
    primary, secondary = MemoryBackend(), MemoryBackend()
    seed(primary, {"same": b"1", "differs": b"p", "missing": b"m"})
    seed(secondary, {"same": b"1", "differs": b"s", "extra": b"e"})
    seen: list[str] = []
    mirror = MirrorBackend(primary, secondary, shadow=True, on_mismatch=seen.append)
    got = mirror.get("differs")
    assert got is not None and got.value == b"p"
    assert mirror.get("same") is not None
    assert mirror.get("extra") is None  # the primary's answer
    assert sorted(e.key for e in mirror.list("")) == ["differs", "missing", "same"]
    stats = mirror.stats()
    assert stats["shadow_reads"] == 4
    assert stats["mismatches"] == 2 + 3  # two gets, then differs/extra/missing in the list
    assert stats["missing_in_secondary"] == 1 and stats["extra_in_secondary"] == 2
    assert set(stats["mismatched_keys"]) == {"differs", "extra", "missing"}
    assert "p" not in repr(mirror)
    assert seen[:2] == ["differs", "extra"]


def test_mirror_behind_a_client_and_backfill_with_migrate(tmp_path: Path) -> None:
    old = SQLiteBackend(tmp_path / "old.db")
    new = MemoryBackend()
    seed(old, {"app/a": b"1", "app/b": b"2"})
    mirror = MirrorBackend(old, new, shadow=True)
    with veltrix.Client(mirror, cache=veltrix.CachePolicy(ttl=0, watch=False)) as client:
        client.put("app/c", "3")  # dual write: reaches both
        assert client.get("app/a") == "1"
        assert mirror.stats()["missing_in_secondary"] == 1  # app/a not backfilled yet
        report = migrate(old, new)  # backfill
        assert report.created == ["app/a", "app/b"]
        mirror.reset_stats()
        assert client.get("app/b") == "2"
        assert [e.key for e in client.list("app")] == ["app/a", "app/b", "app/c"]
        assert mirror.stats()["mismatches"] == 0
    switched = MirrorBackend(new, old, shadow=True)  # switch: the new store is primary
    assert switched.get("app/c") == new.get("app/c")
    assert switched.stats()["mismatches"] == 0
    old.close()


def test_secret_values_never_in_reports_or_errors(src: SQLiteBackend) -> None:
    small = MemoryBackend()
    small.max_value_bytes = 8  # type: ignore[misc]
    seed(src, {"secrets/pw": b"hunter2-but-longer"})
    with pytest.raises(UnrepresentableError) as info:
        migrate(src, small, secret_prefixes=["secrets"])
    assert "hunter2" not in str(info.value)
    report = migrate(src, MemoryBackend(), secret_prefixes=["secrets"])
    assert "hunter2" not in repr(report) and "hunter2" not in str(report.to_dict())
    assert any("secret" in w for w in report.warnings)


def test_entries_carry_no_values_in_repr() -> None:
    assert "s3cr3t" not in repr(Entry("k", b"s3cr3t", "1"))
