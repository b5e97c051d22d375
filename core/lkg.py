"""The last-known-good file: the client's cache on disk, for cold starts during an outage.

With ``Client(..., last_known_good_path=...)`` the client writes what it has fetched to
one JSON file, off the hot path: installs only set a flag, and a background
thread writes at most once per ``interval`` seconds (and once more on close).
Each write is atomic: a temporary file in the same directory, ``fsync``, rename
over the old file, ``fsync`` of the directory, so a crash leaves either the old
file or the new one, never a torn file.

A process that starts while its store is down loads the file and serves its
values as stale (``stale_if_error`` and ``max_stale`` apply, counted from when the
value was fetched), counting ``last_known_good_served``; the store's health state (see
:mod:`veltrix.health`) makes sure only the first read waits for the dead store.

Secret values are sealed with the cache key (:mod:`veltrix.secrets_crypto`) or
left out of the file when no key is configured.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from veltrix.backend import Entry
from veltrix.errors import ConfigurationError
from veltrix.keys import is_valid_key
from veltrix.log_events import event
from veltrix.secrets_crypto import SecretBox
from veltrix.urls import redact_url

log = logging.getLogger("veltrix.lkg")

FORMAT = "veltrix-lkg/1"


class LastKnownGoodFile:
    """Reads and atomically writes one last-known-good file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        store: str,
        box: SecretBox | None,
        is_secret: Callable[[str, Entry | None], bool],
    ) -> None:
        try:
            self.path = Path(path)
        except TypeError:
            raise ConfigurationError(
                f"last_known_good_path must be a path, not a {type(path).__name__}"
            ) from None
        self.store = store
        self._box = box
        self._is_secret = is_secret

    def _aad(self, key: str) -> bytes:
        return f"{self.store}#{key}".encode()

    def load(self) -> dict[str, tuple[Entry, float]]:
        """``key -> (entry, wall-clock time it was fetched)``; empty when missing or unusable."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning(
                "ignoring unreadable last-known-good file %s: %s",
                self.path,
                type(exc).__name__,
                extra=event(
                    "veltrix.last_known_good.unreadable", store=redact_url(self.store), error=exc
                ),
            )
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            log.warning(
                "ignoring last-known-good file %s: not a %s file",
                self.path,
                FORMAT,
                extra=event("veltrix.last_known_good.unreadable", store=redact_url(self.store)),
            )
            return {}
        if data.get("store") != self.store:
            log.warning(
                "ignoring last-known-good file %s: it belongs to another store",
                self.path,
                extra=event("veltrix.last_known_good.other_store", store=redact_url(self.store)),
            )
            return {}
        result: dict[str, tuple[Entry, float]] = {}
        entries = data.get("entries", {})
        if not isinstance(entries, dict):
            log.warning(
                "ignoring last-known-good file %s: its entries are not a mapping",
                self.path,
                extra=event("veltrix.last_known_good.unreadable", store=redact_url(self.store)),
            )
            return {}
        for key, item in entries.items():
            try:
                if not is_valid_key(key):
                    continue
                raw = base64.b64decode(item["value"])
                if item.get("sealed"):
                    if self._box is None:
                        continue
                    opened = self._box.open(raw, self._aad(key))
                    if opened is None:
                        continue
                    raw = opened
                entry = Entry(
                    key,
                    raw,
                    str(item["version"]),
                    item.get("content_type"),
                    source=str(item.get("source", "")),
                    secret=bool(item.get("secret")),
                )
                result[key] = (entry, float(item["fetched_at"]))
            except (KeyError, TypeError, ValueError):
                continue
        return result

    def write(self, entries: dict[str, tuple[Entry, float]]) -> int:
        """Write ``entries`` atomically; returns how many were written (secrets may be left out)."""
        out: dict[str, dict[str, object]] = {}
        for key, (entry, fetched_at) in sorted(entries.items()):
            value = entry.value
            sealed = False
            if self._is_secret(key, entry):
                if self._box is None:
                    continue
                value, sealed = self._box.seal(value, self._aad(key)), True
            out[key] = {
                "value": base64.b64encode(value).decode("ascii"),
                "version": entry.version,
                "content_type": entry.content_type,
                "source": entry.source,
                "secret": entry.secret,
                "sealed": sealed,
                "fetched_at": fetched_at,
            }
        document = {"format": FORMAT, "store": self.store, "saved_at": time.time(), "entries": out}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(document, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return len(out)


class LastKnownGoodWriter:
    """Writes ``collect()`` to a :class:`LastKnownGoodFile` when marked dirty, at most every ``interval``."""

    def __init__(
        self,
        file: LastKnownGoodFile,
        collect: Callable[[], dict[str, tuple[Entry, float]]],
        *,
        interval: float = 1.0,
    ) -> None:
        self.file = file
        self._collect = collect
        self._interval = interval
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self.writes = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name="veltrix-lkg", daemon=True)
        self._thread.start()

    def mark_dirty(self) -> None:
        self._dirty.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                break
            self._stop.wait(self._interval)  # coalesce a burst of installs into one write
            self.flush()

    def flush(self) -> None:
        if not self._dirty.is_set():
            return
        self._dirty.clear()
        try:
            self.file.write(self._collect())
            self.writes += 1
        except (OSError, ValueError) as exc:
            self.failures += 1
            log.warning(
                "cannot write last-known-good file %s: %s",
                self.file.path,
                exc,
                extra=event(
                    "veltrix.last_known_good.write_failed",
                    store=redact_url(self.file.store),
                    error=exc,
                ),
            )

    def close(self) -> None:
        self._stop.set()
        was_dirty = self._dirty.is_set()
        self._dirty.set()  # wake the thread
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        if was_dirty:
            self._dirty.set()
            self.flush()


__all__ = ["FORMAT", "LastKnownGoodFile", "LastKnownGoodWriter"]
