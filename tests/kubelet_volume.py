"""The kubelet's atomic update of a ConfigMap/Secret volume, re-implemented for tests.

Written from the public description of the kubelet's atomic writer (the header
comment of kubernetes ``pkg/volume/util/atomic_writer.go``), not from its code.
One :meth:`AtomicWriter.write` does what the kubelet does for one update:

1. validate the payload (relative paths, no ``..`` element, no leading ``..``);
2. find the current timestamped directory by reading the ``..data`` link;
3. walk it to know the paths the old version has;
4. stop if the content is unchanged;
5. create a new timestamped directory ``..YYYY_MM_DD_HH_MM_SS.NNNNNNNNN``;
6. write the payload into it;
7. create a ``..data_tmp`` symlink to it;
8. rename ``..data_tmp`` over ``..data`` (the atomic step);
9. create the user-visible top-level links ``name -> ..data/name`` that are missing;
10. remove user-visible top-level paths the new payload no longer has;
11. remove the old timestamped directory.

``pause`` (a callable taking the step's name) lets a test look at the directory
between steps, or slow a step down.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

DATA = "..data"
DATA_TMP = "..data_tmp"


class AtomicWriter:
    def __init__(self, target: Path, *, pause: Callable[[str], None] | None = None) -> None:
        self.target = Path(target)
        self.target.mkdir(parents=True, exist_ok=True)
        self.pause = pause or (lambda step: None)
        self._last_stamp = ""

    def write(self, payload: Mapping[str, bytes]) -> bool:
        """Publish ``payload`` (path -> content) as the volume's new version.
        False when the content was already that (the kubelet writes nothing then)."""
        for path in payload:
            _validate(path)
        old_dir = self._current_dir()
        old_paths = self._walk(self.target / old_dir) if old_dir else {}
        if old_dir and old_paths == dict(payload):
            return False
        new_dir = self._new_dir_name()
        staging = self.target / new_dir
        staging.mkdir(mode=0o755)
        self.pause("created-dir")
        for path, content in payload.items():
            file = staging / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)
            os.chmod(file, 0o644)
        self.pause("wrote-payload")
        tmp_link = self.target / DATA_TMP
        os.symlink(new_dir, tmp_link)
        self.pause("created-data-tmp")
        os.replace(tmp_link, self.target / DATA)
        self.pause("renamed-data")
        for name in sorted({p.split("/", 1)[0] for p in payload}):
            link = self.target / name
            if not os.path.lexists(link):
                os.symlink(f"{DATA}/{name}", link)
        self.pause("linked-new-paths")
        new_top = {p.split("/", 1)[0] for p in payload}
        for name in sorted({p.split("/", 1)[0] for p in old_paths} - new_top):
            link = self.target / name
            if os.path.lexists(link):
                os.unlink(link)
        self.pause("removed-old-paths")
        if old_dir:
            shutil.rmtree(self.target / old_dir)
        self.pause("removed-old-dir")
        return True

    def _current_dir(self) -> str | None:
        try:
            return os.readlink(self.target / DATA)
        except FileNotFoundError:
            return None

    def _new_dir_name(self) -> str:
        while True:
            now = time.time_ns()
            stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime(now // 1_000_000_000))
            name = f"{stamp}.{now % 1_000_000_000:09d}"
            if name != self._last_stamp and not (self.target / name).exists():
                self._last_stamp = name
                return name

    @staticmethod
    def _walk(root: Path) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for directory, _dirs, names in os.walk(root):
            for name in names:
                full = Path(directory) / name
                found[full.relative_to(root).as_posix()] = full.read_bytes()
        return found


def _validate(path: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or path.startswith(".."):
        raise ValueError(f"invalid volume path {path!r}")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid volume path {path!r}")


def subpath_mount(volume: Path, path: str, destination: Path) -> None:
    """What a ``subPath`` mount gives a container: the file as it is now, a plain file
    (a bind mount of the resolved file), which later swaps of the volume never touch."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(os.path.realpath(volume / path), destination)
