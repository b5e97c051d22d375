"""``k8s-volume:///etc/config``: a ConfigMap or Secret mounted as a volume, read-only.

The kubelet updates such a volume with its *atomic writer*: it writes the new
content into a fresh timestamped directory (``..2026_01_31_12_00_00.123456789``),
points a ``..data_tmp`` symlink at it, renames that over ``..data`` (the one atomic
step), then fixes the top-level ``key -> ..data/key`` links and removes the old
directory. This store reads through the directory ``..data`` resolves to, never
through the top-level links, and checks afterwards that ``..data`` still names that
directory; if not (a swap happened while reading, and the old directory may have
been half removed), it reads again. So every read sees exactly one version of the
whole volume, never a mix. The volume is re-read once per swap; between swaps,
reads are served from memory after one ``readlink`` per volume.

Keys: a file at ``PATH`` inside the volume (``PATH`` is a ConfigMap data key, or an
``items[].path`` that may hold ``/``) is the Veltrix key ``PREFIX/PATH``. Names
that are not canonical key segments are skipped with one warning each.

A directory without ``..data`` is not a whole ConfigMap/Secret volume (typically a
file mounted with ``subPath``, which the kubelet never updates): it is read as
plain files and a warning is logged once.

Options: ``prefix`` (key prefix of the URL's directory), ``secret`` (flag its values
secret), ``volume.<prefix>`` / ``secret_volume.<prefix>`` (more directories, each
under its own prefix), ``watch`` (``auto``, ``inotify`` or ``poll``) and
``poll_interval`` (seconds), ``layout`` (``files``, or ``veltrix`` for objects written
by the ``k8s://`` store, whose data keys encode key paths).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from veltrix.adapters._k8s_keys import decode_data_key
from veltrix.backend import Change, Entry
from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendNotInstalledError,
    BackendUnavailableError,
    ConfigurationError,
)
from veltrix.keys import (
    MAX_KEY_LENGTH,
    SEPARATOR,
    in_prefix,
    is_valid_key,
    join,
    normalize_prefix,
    validate_key,
)
from veltrix.urls import Options, parse_url
from veltrix.watching import ChangeDispatcher, WatchSet, diff_listings

log = logging.getLogger("veltrix.k8s_volume")

DATA_LINK = "..data"
#: Names the kubelet keeps for itself (``..data``, ``..data_tmp``, timestamped dirs).
RESERVED_PREFIX = ".."
DEFAULT_POLL_INTERVAL = 1.0
#: Reads of one volume retried while swaps keep replacing what is being read.
READ_ATTEMPTS = 100
#: A ConfigMap or Secret holds at most 1 MiB; a projected volume may combine several.
#: A directory beyond these limits is not a configuration volume (``/`` by mistake).
MAX_VOLUME_FILES = 4096
MAX_VOLUME_BYTES = 16 * 1024 * 1024
WATCH_MODES = ("auto", "inotify", "poll")
#: ``files``: a file's path is the key below the prefix. ``veltrix``: top-level file
#: names are data keys in the ``k8s://`` store's encoding (``timeout__ms``, ``db_spool``).
LAYOUTS = ("files", "veltrix")
_VOLUME_OPTION = "volume."
_SECRET_VOLUME_OPTION = "secret_volume."


@dataclass(frozen=True)
class VolumeMount:
    """One mounted directory and the key prefix its files appear under."""

    prefix: str
    path: Path
    secret: bool = False


@dataclass(frozen=True)
class _VolumeState:
    """One consistent read of one volume."""

    token: object  # what changes when the volume does: the ``..data`` target, or stats
    entries: Mapping[str, Entry] = field(repr=False)


class _Warnings:
    """Each distinct warning logged once per store (names and paths only, never values)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def once(self, message: str, *args: object) -> None:
        text = message % args
        with self._lock:
            if text in self._seen:
                return
            self._seen.add(text)
        log.warning("%s", text)


def _data_target(path: Path) -> str | None:
    """Where ``path/..data`` points, or ``None`` when it is not a kubelet volume."""
    try:
        return os.readlink(os.path.join(path, DATA_LINK))
    except (FileNotFoundError, NotADirectoryError):  # NotADirectory: a subPath-mounted file
        return None
    except OSError as exc:
        if exc.errno == 22:  # EINVAL: ``..data`` exists but is not a symlink
            return None
        raise


def _digest(value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=10).hexdigest()


class KubernetesVolumeBackend:
    """Read-only store over one or more mounted ConfigMap/Secret volumes."""

    schemes: ClassVar[tuple[str, ...]] = ("k8s-volume",)
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    max_value_bytes: ClassVar[int | None] = None

    def __init__(
        self,
        mounts: list[VolumeMount],
        *,
        watch_mode: str = "auto",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        layout: str = "files",
        url: str = "",
    ) -> None:
        if not mounts:
            raise ConfigurationError("k8s-volume: no volume directory given")
        if watch_mode not in WATCH_MODES:
            raise ConfigurationError(
                f"k8s-volume: watch={watch_mode!r} is not one of {WATCH_MODES}"
            )
        if watch_mode == "inotify" and not _have_watchfiles():
            raise BackendNotInstalledError(
                "k8s-volume watch=inotify needs the 'watchfiles' package: "
                "pip install 'veltrix[k8s-volume]'"
            )
        if layout not in LAYOUTS:
            raise ConfigurationError(f"k8s-volume: layout={layout!r} is not one of {LAYOUTS}")
        self.mounts = tuple(mounts)
        self.layout = layout
        self.watch_mode = watch_mode
        self.poll_interval = poll_interval
        self._url = url or f"k8s-volume://{mounts[0].path}"
        self._warnings = _Warnings()
        self._refresh_lock = threading.Lock()
        self._watches: WatchSet[_VolumeWatch] = WatchSet()
        self._closed = False
        for mount in self.mounts:
            try:
                exists = mount.path.exists()
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"k8s-volume: {mount.path}: {_reason(exc)}") from exc
            if not exists:
                raise ConfigurationError(f"k8s-volume: {mount.path} does not exist")
        self._states: dict[VolumeMount, _VolumeState] = {}
        self._entries: Mapping[str, Entry] = {}
        self._refresh()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        where = parsed.redacted
        if parsed.netloc:
            raise ConfigurationError(
                f"{where}: k8s-volume takes a path, not a host: write k8s-volume:///etc/config "
                "(three slashes)"
            )
        extra = {
            name: options.pop(name)
            for name in list(options)
            if name.startswith((_VOLUME_OPTION, _SECRET_VOLUME_OPTION))
        }
        query = dict(parsed.query)
        for name in list(query):
            if name.startswith((_VOLUME_OPTION, _SECRET_VOLUME_OPTION)):
                extra.setdefault(name, query.pop(name))
        opts = Options(query, options, where=where)
        prefix = opts.str("prefix", "") or ""
        secret = opts.bool("secret", False)
        watch_mode = opts.choice("watch", "auto", WATCH_MODES)
        poll_interval = opts.float("poll_interval", DEFAULT_POLL_INTERVAL, minimum=0.001)
        if not math.isfinite(poll_interval):
            raise ConfigurationError(f"{where}: option poll_interval must be a finite number")
        layout = opts.choice("layout", "files", LAYOUTS)
        opts.finish()
        mounts: list[VolumeMount] = []
        if parsed.path not in ("", "/"):
            mounts.append(VolumeMount(_prefix(prefix, where), Path(parsed.path), secret))
        elif prefix or secret:
            raise ConfigurationError(f"{where}: prefix/secret describe the URL's path; none given")
        for name, value in sorted(extra.items()):
            is_secret = name.startswith(_SECRET_VOLUME_OPTION)
            key_prefix = name.split(".", 1)[1]
            if not isinstance(value, str) or not value.startswith("/"):
                raise ConfigurationError(f"{where}: option {name} must be an absolute path")
            mounts.append(VolumeMount(_prefix(key_prefix, where), Path(value), is_secret))
        return cls(
            mounts, watch_mode=watch_mode, poll_interval=poll_interval, layout=layout, url=url
        )

    @property
    def url(self) -> str:
        return self._url

    @property
    def holds_secrets(self) -> bool:
        return any(mount.secret for mount in self.mounts)

    def __repr__(self) -> str:
        return f"KubernetesVolumeBackend({self._url!r})"

    # -- reads -----------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        validate_key(key)
        return self._current().get(key)

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        entries = self._current()  # one consistent snapshot for the whole listing
        return iter([entries[k] for k in sorted(entries) if in_prefix(k, prefix)])

    def _current(self) -> Mapping[str, Entry]:
        """The entries, re-read first if any volume was swapped since the last read."""
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        states = self._states
        for mount in self.mounts:
            if self._token(mount) != states[mount].token:
                return self._refresh()
        return self._entries

    def _refresh(self) -> Mapping[str, Entry]:
        """Re-read the volumes that changed; publish the union as one new mapping."""
        with self._refresh_lock:
            changed = False
            for mount in self.mounts:
                old = self._states.get(mount)
                if old is not None and self._token(mount) == old.token:
                    continue
                self._states[mount] = self._read_volume(mount, old)
                changed = True
            if changed:
                self._entries = self._union()
            return self._entries

    def _union(self) -> dict[str, Entry]:
        merged: dict[str, Entry] = {}
        for mount in self.mounts:
            for key, entry in self._states[mount].entries.items():
                if key in merged:
                    self._warnings.once(
                        "k8s-volume: key %s comes from two volumes; %s wins",
                        key,
                        merged[key].source,
                    )
                    continue
                merged[key] = entry
        return merged

    def _token(self, mount: VolumeMount) -> object:
        try:
            target = _data_target(mount.path)
            return target if target is not None else self._plain_token(mount.path)
        except OSError as exc:
            raise _os_error(mount.path, exc) from exc

    def _read_volume(self, mount: VolumeMount, previous: _VolumeState | None) -> _VolumeState:
        for _ in range(READ_ATTEMPTS):
            try:
                target = _data_target(mount.path)
                if target is None:
                    return self._read_plain(mount, previous)
                files = self._read_tree(mount.path / target, mount)
                if _data_target(mount.path) != target:
                    continue  # swapped while reading: the files may mix two versions
            except (FileNotFoundError, NotADirectoryError):
                continue  # the directory being read was removed by a newer swap
            except OSError as exc:
                raise _os_error(mount.path, exc) from exc
            return _VolumeState(target, self._entries_of(mount, files, previous))
        raise BackendUnavailableError(
            f"k8s-volume: {mount.path} kept changing while it was read ({READ_ATTEMPTS} tries)"
        )

    def _read_tree(self, root: Path, mount: VolumeMount) -> dict[str, bytes]:
        """Every file under ``root``, by its ``/``-separated path relative to ``root``."""
        files: dict[str, bytes] = {}
        total = 0
        pending = [("", root)]
        while pending:
            relative_dir, directory = pending.pop()
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda e: e.name)
            for child in children:
                if child.name.startswith(RESERVED_PREFIX):
                    continue
                relative = f"{relative_dir}{SEPARATOR}{child.name}" if relative_dir else child.name
                if child.is_dir(follow_symlinks=False):
                    pending.append((relative, Path(child.path)))
                elif child.is_file():
                    with open(child.path, "rb") as handle:
                        files[relative] = value = handle.read(MAX_VOLUME_BYTES + 1)
                    total += len(value)
                    if total > MAX_VOLUME_BYTES or len(files) > MAX_VOLUME_FILES:
                        raise BackendError(
                            f"k8s-volume: {mount.path} holds more than {MAX_VOLUME_FILES} files "
                            f"or {MAX_VOLUME_BYTES // 2**20} MiB: not a ConfigMap or Secret volume"
                        )
                else:
                    self._warnings.once(
                        "k8s-volume: %s/%s is not a regular file; skipped", mount.path, relative
                    )
        return files

    def _read_plain(self, mount: VolumeMount, previous: _VolumeState | None) -> _VolumeState:
        """A directory or file the kubelet does not swap (``subPath``, or not a volume)."""
        self._warnings.once(
            "k8s-volume: %s has no %s link: not a whole ConfigMap/Secret volume (a subPath "
            "mount, or a plain directory); a subPath-mounted file never updates while the "
            "pod runs",
            mount.path,
            DATA_LINK,
        )
        if mount.path.is_file():
            with open(mount.path, "rb") as handle:
                files = {mount.path.name: handle.read()}
        else:
            files = self._read_tree(mount.path, mount)
        return _VolumeState(self._plain_token(mount.path), self._entries_of(mount, files, previous))

    @staticmethod
    def _plain_token(path: Path) -> object:
        """Stats of every file below ``path``: what a plain directory can offer as a version."""
        if not path.is_dir():
            stat = path.stat()
            return (("", stat.st_ino, stat.st_size, stat.st_mtime_ns),)
        found = []
        for directory, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(RESERVED_PREFIX)]
            for name in names:
                try:
                    stat = os.stat(os.path.join(directory, name))
                except FileNotFoundError:
                    continue
                found.append((directory, name, stat.st_ino, stat.st_size, stat.st_mtime_ns))
        return tuple(sorted(found))

    def _entries_of(
        self, mount: VolumeMount, files: Mapping[str, bytes], previous: _VolumeState | None
    ) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        for relative, value in files.items():
            rest = relative if self.layout == "files" else _decoded(relative)
            key = join(mount.prefix, rest) if rest is not None else ""
            if not is_valid_key(key) or len(key) > MAX_KEY_LENGTH:
                self._warnings.once(
                    "k8s-volume: %s/%s is not a valid key name (segments of [A-Za-z0-9._-]); "
                    "skipped",
                    mount.path,
                    relative.encode("unicode_escape").decode("ascii"),
                )
                continue
            entries[key] = Entry(
                key,
                value,
                self._version(mount, key, value, previous),
                source=f"k8s-volume://{mount.path}/{relative}",
                secret=mount.secret,
            )
        return entries

    @staticmethod
    def _version(mount: VolumeMount, key: str, value: bytes, previous: _VolumeState | None) -> str:
        """A digest of the value (every process computes the same one); for a secret
        volume a counter instead, so no digest of a secret is ever shown."""
        if not mount.secret:
            return _digest(value)
        old = previous.entries.get(key) if previous is not None else None
        if old is not None and old.value == value:
            return old.version
        return str(int(old.version) + 1) if old is not None else "1"

    # -- watch -----------------------------------------------------------------------

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> _VolumeWatch:
        prefix = normalize_prefix(prefix)
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        return self._watches.add(_VolumeWatch(self, prefix, on_change))

    def close(self) -> None:
        self._watches.stop_all()  # first: a watch reading a closed store would warn
        self._closed = True


class _VolumeWatch:
    """Wakes on inotify events (or every ``poll_interval``), re-reads swapped volumes,
    and delivers the differences under ``prefix``: puts and deletes, one swap at a time."""

    def __init__(
        self, store: KubernetesVolumeBackend, prefix: str, on_change: Callable[[Change], None]
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._stop = threading.Event()
        self._dispatcher = ChangeDispatcher(on_change, name=f"veltrix-k8s-volume-watch-{prefix}")
        self._known = self._in_prefix(store._refresh())
        use_inotify = store.watch_mode == "inotify" or (
            store.watch_mode == "auto" and _have_watchfiles()
        )
        self.mode = "inotify" if use_inotify else "poll"
        self._thread = threading.Thread(
            target=self._run_inotify if use_inotify else self._run_poll,
            name=f"veltrix-k8s-volume-{self.mode}",
            daemon=True,
        )
        self._thread.start()

    def _in_prefix(self, entries: Mapping[str, Entry]) -> dict[str, Entry]:
        return {k: e for k, e in entries.items() if in_prefix(k, self._prefix)}

    def _check(self) -> None:
        try:
            current = self._in_prefix(self._store._current())
        except Exception as exc:  # keep watching: the volume may come back
            self._store._warnings.once("k8s-volume watch: reading the volume failed: %s", exc)
            return
        for change in diff_listings(self._known, current):
            self._dispatcher.submit(change)
        self._known = current

    def _run_poll(self) -> None:
        while not self._stop.wait(self._store.poll_interval):
            self._check()

    def _run_inotify(self) -> None:
        import watchfiles

        paths = [m.path if m.path.is_dir() else m.path.parent for m in self._store.mounts]
        try:
            for _events in watchfiles.watch(
                *paths,
                watch_filter=None,
                debounce=200,
                step=5,
                stop_event=self._stop,
                rust_timeout=max(1, int(self._store.poll_interval * 1000)),
                yield_on_timeout=True,  # an empty wake-up: the safety-net check
                recursive=False,
                raise_interrupt=False,
            ):
                self._check()
        except Exception as exc:
            if self._stop.is_set():
                return
            log.warning("k8s-volume watch: inotify failed (%s); polling instead", exc)
            self.mode = "poll"
            self._run_poll()

    def stop(self) -> None:
        self._stop.set()
        self._store._watches.discard(self)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        self._dispatcher.stop()


def _decoded(relative: str) -> str | None:
    """The key below the prefix that a ``layout=veltrix`` file name encodes."""
    if SEPARATOR in relative:
        return None  # the k8s:// layout has data keys only: no item paths
    return decode_data_key(relative)


def _have_watchfiles() -> bool:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return False
    return True


def _prefix(text: str, where: str) -> str:
    try:
        prefix = normalize_prefix(text)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc
    if any(part.startswith(RESERVED_PREFIX) for part in prefix.split(SEPARATOR) if part):
        raise ConfigurationError(f"{where}: prefix {text!r} has a segment starting with '..'")
    return prefix


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or type(exc).__name__


def _os_error(path: Path, exc: OSError) -> Exception:
    if isinstance(exc, PermissionError):
        return AccessDeniedError(f"k8s-volume: {path}: permission denied")
    return BackendUnavailableError(f"k8s-volume: {path}: {_reason(exc)}")


__all__ = ["DATA_LINK", "KubernetesVolumeBackend", "VolumeMount"]
