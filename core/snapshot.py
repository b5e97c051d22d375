"""Snapshots: a store's entries as a self-checking JSON Lines file.

A snapshot is UTF-8 text, one JSON object per line, ``\\n`` line ends:

1. a **header**: ``{"type": "veltrix-snapshot", "format": 1, "source": ..., "prefix": ...,
   "created": ..., "count": N}`` (``source`` is the store URL with credentials redacted);
2. ``N`` **entries**, sorted by key: ``{"type": "entry", "key": ..., "value": <base64>,
   "content_type": ..., "version": ..., "secret": ..., "sha256": <hex of the value>}``;
3. a **trailer**: ``{"type": "end", "count": N, "digest": <hex>}`` where ``digest`` is the
   SHA-256 of every byte before the trailer (header and entry lines with their ``\\n``).

:func:`read_snapshot` checks all of it before returning anything, so an importer never
writes from a truncated or corrupted file: a missing trailer, a count or digest that
does not match, a value whose SHA-256 differs, a malformed line, an invalid or
duplicate key all raise :class:`SnapshotError` with a one-line message naming the line.

Secret values are stored as they are (base64 is not encryption): files are created
with mode ``0600``; treat them like the store's credentials. See ``docs/migration.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, Self

from veltrix.backend import Entry
from veltrix.errors import ConfigurationError, DecodeError, InvalidKeyError
from veltrix.keys import in_prefix, normalize_prefix, validate_key
from veltrix.urls import redact_url

FORMAT = "veltrix-snapshot"
FORMAT_VERSION = 1


class SnapshotError(DecodeError):
    """A snapshot file is truncated, corrupted or not a snapshot."""


def sha256_hex(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


@dataclass(frozen=True)
class SnapshotHeader:
    source: str
    prefix: str
    created: str
    count: int
    format: int = FORMAT_VERSION


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot: its header and entries (sorted by key)."""

    header: SnapshotHeader
    entries: list[Entry] = field(repr=False)
    digest: str = ""

    def __len__(self) -> int:
        return len(self.entries)


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def _entry_obj(entry: Entry) -> dict[str, Any]:
    return {
        "type": "entry",
        "key": entry.key,
        "value": base64.b64encode(entry.value).decode("ascii"),
        "content_type": entry.content_type,
        "version": entry.version,
        "secret": bool(entry.secret),
        "sha256": sha256_hex(entry.value),
    }


def write_snapshot(
    out: IO[bytes], entries: Iterable[Entry], *, source: str, prefix: str = ""
) -> SnapshotHeader:
    """Write ``entries`` as a snapshot to the binary stream ``out``; return its header."""
    ordered = sorted(entries, key=lambda e: e.key)
    header = SnapshotHeader(
        source=redact_url(source),
        prefix=normalize_prefix(prefix),
        created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        count=len(ordered),
    )
    digest = hashlib.sha256()

    def emit(data: bytes) -> None:
        digest.update(data)
        out.write(data)

    emit(
        _line(
            {
                "type": FORMAT,
                "format": header.format,
                "source": header.source,
                "prefix": header.prefix,
                "created": header.created,
                "count": header.count,
            }
        )
    )
    for entry in ordered:
        emit(_line(_entry_obj(entry)))
    out.write(_line({"type": "end", "count": header.count, "digest": digest.hexdigest()}))
    return header


def save_snapshot(
    path: str | os.PathLike[str], entries: Iterable[Entry], *, source: str, prefix: str = ""
) -> SnapshotHeader:
    """Write a snapshot file atomically (temp file + rename), mode 0600."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            header = write_snapshot(out, entries, source=source, prefix=prefix)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ConfigurationError(f"cannot write snapshot {target}: {exc.strerror}") from exc
    return header


class _Reader:
    """Parses and checks a snapshot line by line."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, line_no: int, message: str, cause: BaseException | None = None) -> SnapshotError:
        error = SnapshotError(f"{self.name}: line {line_no}: {message}")
        error.__cause__ = cause
        return error

    def parse(self, line_no: int, raw: bytes) -> dict[str, Any]:
        if not raw.endswith(b"\n"):
            raise self.fail(line_no, "incomplete last line (file truncated)")
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise self.fail(line_no, "not valid JSON (file corrupted)", exc) from exc
        if not isinstance(obj, dict):
            raise self.fail(line_no, "not a JSON object (file corrupted)")
        return obj

    def header(self, obj: dict[str, Any]) -> SnapshotHeader:
        if obj.get("type") != FORMAT:
            raise self.fail(1, "not a Veltrix snapshot (no header)")
        if obj.get("format") != FORMAT_VERSION:
            raise self.fail(
                1, f"snapshot format {obj.get('format')!r}; this Veltrix reads {FORMAT_VERSION}"
            )
        count = obj.get("count")
        if not isinstance(count, int) or count < 0:
            raise self.fail(1, "header has no valid count")
        try:
            prefix = normalize_prefix(obj.get("prefix", ""))
        except InvalidKeyError as exc:
            raise self.fail(1, f"header prefix: {exc}", exc) from exc
        return SnapshotHeader(
            source=str(obj.get("source", "")),
            prefix=prefix,
            created=str(obj.get("created", "")),
            count=count,
        )

    def entry(self, line_no: int, obj: dict[str, Any], header: SnapshotHeader) -> Entry:
        if obj.get("type") != "entry":
            raise self.fail(line_no, f"unexpected record type {obj.get('type')!r}")
        key = obj.get("key")
        try:
            validate_key(key)
        except InvalidKeyError as exc:
            raise self.fail(line_no, str(exc), exc) from exc
        assert isinstance(key, str)
        if not in_prefix(key, header.prefix):
            raise self.fail(line_no, f"key {key!r} is outside the prefix {header.prefix!r}")
        raw = obj.get("value")
        if not isinstance(raw, str):
            raise self.fail(line_no, f"{key!r}: value missing")
        try:
            value = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise self.fail(line_no, f"{key!r}: value is not valid base64", exc) from exc
        if sha256_hex(value) != obj.get("sha256"):
            raise self.fail(line_no, f"{key!r}: value does not match its sha256 (corrupted)")
        content_type = obj.get("content_type")
        version = obj.get("version")
        return Entry(
            key,
            value,
            str(version) if version is not None else "",
            content_type if isinstance(content_type, str) else None,
            source=f"{header.source}#{key}",
            secret=bool(obj.get("secret", False)),
        )


def parse_snapshot(lines: Iterable[bytes], *, name: str = "snapshot") -> Snapshot:
    """Parse and fully verify snapshot ``lines`` (each with its ``\\n``)."""
    reader = _Reader(name)
    digest = hashlib.sha256()
    header: SnapshotHeader | None = None
    entries: list[Entry] = []
    seen: set[str] = set()
    trailer: dict[str, Any] | None = None
    trailer_line = line_no = 0
    for line_no, raw in enumerate(lines, start=1):
        if trailer is not None:
            if raw.strip():
                raise reader.fail(line_no, "data after the trailer (file corrupted)")
            continue
        obj = reader.parse(line_no, raw)
        if header is None:
            header = reader.header(obj)
            digest.update(raw)
            continue
        if obj.get("type") == "end":
            trailer = obj
            trailer_line = line_no
            continue
        entry = reader.entry(line_no, obj, header)
        if entry.key in seen:
            raise reader.fail(line_no, f"key {entry.key!r} appears twice (file corrupted)")
        seen.add(entry.key)
        entries.append(entry)
        digest.update(raw)
    if header is None:
        raise SnapshotError(f"{name}: empty file, not a snapshot")
    if trailer is None:
        raise SnapshotError(
            f"{name}: no trailer after line {line_no} (file truncated); "
            f"{len(entries)} of {header.count} entries present"
        )
    if trailer.get("count") != len(entries) or header.count != len(entries):
        raise reader.fail(
            trailer_line,
            f"count mismatch: header {header.count}, trailer {trailer.get('count')}, "
            f"{len(entries)} entries (file corrupted)",
        )
    if trailer.get("digest") != digest.hexdigest():
        raise reader.fail(trailer_line, "digest does not match the content (file corrupted)")
    entries.sort(key=lambda e: e.key)
    return Snapshot(header, entries, digest.hexdigest())


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read and verify a snapshot file (``-`` = stdin)."""
    import sys

    name = str(path)
    try:
        if name == "-":
            return parse_snapshot(sys.stdin.buffer.readlines(), name="<stdin>")
        with open(path, "rb") as handle:
            return parse_snapshot(handle, name=name)
    except OSError as exc:
        raise ConfigurationError(f"cannot read snapshot {name}: {exc.strerror}") from exc


class SnapshotBackend:
    """A verified snapshot as a read-only store (``list``/``get``): the source of an import."""

    schemes: ClassVar[tuple[str, ...]] = ("snapshot",)
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    max_value_bytes: ClassVar[int | None] = None

    def __init__(self, snapshot: Snapshot, name: str = "snapshot") -> None:
        self.snapshot = snapshot
        self._entries = {e.key: e for e in snapshot.entries}
        self.url = f"snapshot:{name}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        if options:
            raise ConfigurationError(f"snapshot: unknown option {sorted(options)[0]!r}")
        path = url.split(":", 1)[1] if url.startswith("snapshot:") else url
        path = path.removeprefix("//")
        return cls(read_snapshot(path), path)

    def __repr__(self) -> str:
        return f"SnapshotBackend({self.url!r}, {len(self._entries)} entries)"

    def get(self, key: str) -> Entry | None:
        validate_key(key)
        return self._entries.get(key)

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        return iter([e for e in self.snapshot.entries if in_prefix(e.key, prefix)])

    def close(self) -> None:
        return None


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Snapshot",
    "SnapshotBackend",
    "SnapshotError",
    "SnapshotHeader",
    "parse_snapshot",
    "read_snapshot",
    "save_snapshot",
    "sha256_hex",
    "write_snapshot",
]
