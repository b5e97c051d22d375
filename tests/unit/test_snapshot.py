"""Snapshot format: round trip, and every way a file can be truncated or corrupted."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from pathlib import Path

import pytest

from veltrix.backend import Entry
from veltrix.errors import DecodeError
from veltrix.snapshot import (
    SnapshotBackend,
    SnapshotError,
    parse_snapshot,
    read_snapshot,
    save_snapshot,
    sha256_hex,
    write_snapshot,
)

ENTRIES = [
    Entry("app/db/host", b"db.internal", "7", "text/plain"),
    Entry("app/blob", bytes(range(256)), "8"),
    Entry("app/empty", b"", "9"),
    Entry("secrets/db/password", b"s3cr3t", "10", secret=True),
]


def snapshot_bytes(entries: list[Entry] = ENTRIES, prefix: str = "") -> bytes:
    out = io.BytesIO()
    write_snapshot(out, entries, source="consul://127.0.0.1:8500/app?token=abc", prefix=prefix)
    return out.getvalue()


def lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def test_round_trip_keeps_bytes_flags_and_order() -> None:
    data = snapshot_bytes()
    snap = parse_snapshot(lines(data))
    assert [e.key for e in snap.entries] == sorted(e.key for e in ENTRIES)
    by_key = {e.key: e for e in snap.entries}
    for original in ENTRIES:
        got = by_key[original.key]
        assert got.value == original.value
        assert got.version == original.version
        assert got.content_type == original.content_type
        assert got.secret == original.secret
    assert snap.header.count == 4


def test_format_is_json_lines_with_header_entries_and_trailer() -> None:
    records = [json.loads(line) for line in lines(snapshot_bytes())]
    header, *entries, trailer = records
    assert header["type"] == "veltrix-snapshot" and header["format"] == 1
    assert header["count"] == 4 and header["created"].endswith("Z")
    assert "abc" not in header["source"]  # credentials redacted
    assert entries[0] == {
        "type": "entry",
        "key": "app/blob",
        "value": base64.b64encode(bytes(range(256))).decode(),
        "content_type": None,
        "version": "8",
        "secret": False,
        "sha256": sha256_hex(bytes(range(256))),
    }
    assert trailer["type"] == "end" and trailer["count"] == 4 and len(trailer["digest"]) == 64


def test_empty_snapshot_is_valid() -> None:
    snap = parse_snapshot(lines(snapshot_bytes([])))
    assert snap.entries == [] and snap.header.count == 0


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5])
def test_truncated_at_a_line_boundary_is_detected(cut: int) -> None:
    with pytest.raises(SnapshotError, match="truncated"):
        parse_snapshot(lines(snapshot_bytes())[:cut])


def test_truncated_mid_line_is_detected() -> None:
    data = snapshot_bytes()
    with pytest.raises(SnapshotError, match="truncated"):
        parse_snapshot(lines(data[: len(data) // 2]))


def test_truncated_to_nothing_is_not_a_snapshot() -> None:
    with pytest.raises(SnapshotError, match="empty file"):
        parse_snapshot([])


def test_changed_value_is_detected_by_its_sha256() -> None:
    rows = lines(snapshot_bytes())
    record = json.loads(rows[2])
    record["value"] = base64.b64encode(b"tampered").decode()
    rows[2] = (json.dumps(record) + "\n").encode()
    with pytest.raises(SnapshotError, match=r"line 3: .*sha256"):
        parse_snapshot(rows)


def test_consistently_changed_entry_is_detected_by_the_digest() -> None:
    rows = lines(snapshot_bytes())
    record = json.loads(rows[2])
    record["value"] = base64.b64encode(b"tampered").decode()
    record["sha256"] = sha256_hex(b"tampered")
    rows[2] = (json.dumps(record) + "\n").encode()
    with pytest.raises(SnapshotError, match="digest"):
        parse_snapshot(rows)


def test_dropped_entry_is_detected_by_the_count() -> None:
    rows = lines(snapshot_bytes())
    del rows[2]
    with pytest.raises(SnapshotError, match="count mismatch"):
        parse_snapshot(rows)


def test_flipped_byte_is_detected() -> None:
    data = bytearray(snapshot_bytes())
    data[len(data) // 2] ^= 0x01
    with pytest.raises(SnapshotError):
        parse_snapshot(lines(bytes(data)))


def test_garbage_line_and_duplicates_and_bad_keys() -> None:
    rows = lines(snapshot_bytes())
    with pytest.raises(SnapshotError, match="not valid JSON"):
        parse_snapshot([rows[0], b"{nope\n", *rows[1:]])
    with pytest.raises(SnapshotError, match="twice"):
        parse_snapshot([rows[0], rows[1], rows[1], *rows[2:]])
    bad = json.loads(rows[1])
    bad["key"] = "../etc"
    with pytest.raises(SnapshotError, match="line 2"):
        parse_snapshot([rows[0], (json.dumps(bad) + "\n").encode(), *rows[2:]])
    with pytest.raises(SnapshotError, match="after the trailer"):
        parse_snapshot([*rows, rows[1]])


def test_not_a_snapshot_and_future_format() -> None:
    with pytest.raises(SnapshotError, match="not a Veltrix snapshot"):
        parse_snapshot([b'{"hello": 1}\n'])
    rows = lines(snapshot_bytes())
    header = json.loads(rows[0])
    header["format"] = 99
    with pytest.raises(SnapshotError, match="format 99"):
        parse_snapshot([(json.dumps(header) + "\n").encode(), *rows[1:]])


def test_key_outside_the_prefix_is_refused() -> None:
    data = snapshot_bytes([Entry("app/a", b"1", "1")], prefix="app")
    rows = lines(data)
    header = json.loads(rows[0])
    header["prefix"] = "other"
    with pytest.raises(SnapshotError, match="outside the prefix"):
        parse_snapshot([(json.dumps(header) + "\n").encode(), *rows[1:]])


def test_snapshot_error_is_a_decode_error_with_one_line() -> None:
    with pytest.raises(DecodeError) as info:
        parse_snapshot(lines(snapshot_bytes())[:2])
    assert "\n" not in str(info.value)


def test_save_is_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "snap.jsonl"
    save_snapshot(path, ENTRIES, source="memory://x")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    snap = read_snapshot(path)
    assert len(snap) == 4
    backend = SnapshotBackend(snap, str(path))
    assert [e.key for e in backend.list("app")] == ["app/blob", "app/db/host", "app/empty"]
    got = backend.get("secrets/db/password")
    assert got is not None and got.secret and got.value == b"s3cr3t"
    assert "s3cr3t" not in repr(got) and "s3cr3t" not in repr(backend)


def test_secret_values_never_appear_in_errors() -> None:
    rows = lines(snapshot_bytes())
    record = json.loads(rows[4])  # secrets/db/password
    record["sha256"] = "0" * 64
    rows[4] = (json.dumps(record) + "\n").encode()
    with pytest.raises(SnapshotError) as info:
        parse_snapshot(rows)
    assert "s3cr3t" not in str(info.value)
    assert base64.b64encode(b"s3cr3t").decode() not in str(info.value)
