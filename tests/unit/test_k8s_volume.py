"""The mounted-volume store against kubelet-style swaps (tests/kubelet_volume.py).

A filesystem store: no server is involved, so these are unit tests. They drive the
re-implemented atomic writer step by step, race readers against rapid swaps, force
the polling path, and check the subPath and invalid-name warnings.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubelet_volume import AtomicWriter, subpath_mount
from tests.unit.stores import wait_until
from veltrix.adapters.k8s_volume import KubernetesVolumeBackend
from veltrix.backend import SupportsWrite, supports
from veltrix.cache import CachePolicy
from veltrix.client import Client
from veltrix.errors import (
    ConfigurationError,
    InvalidKeyError,
    UnsupportedOperationError,
)
from veltrix.registry import open_backend
from veltrix.testing.conformance import ChangeRecorder

LOGGER = "veltrix.k8s_volume"


def _open(url: str, **options: object) -> KubernetesVolumeBackend:
    backend = open_backend(url, **options)
    assert isinstance(backend, KubernetesVolumeBackend)
    return backend


@pytest.fixture
def volume(tmp_path: Path) -> AtomicWriter:
    writer = AtomicWriter(tmp_path / "config")
    writer.write({"timeout": b"30", "mode": b"fast"})
    return writer


@pytest.fixture
def store(volume: AtomicWriter) -> Iterator[KubernetesVolumeBackend]:
    backend = _open(f"k8s-volume://{volume.target}?prefix=app")
    yield backend
    backend.close()


def _version_payload(version: int, keys: int = 8) -> dict[str, bytes]:
    return {f"k{i}": f"v{version}".encode() for i in range(keys)}


# -- layout and key mapping ----------------------------------------------------------------


def test_writer_builds_the_kubelet_layout(volume: AtomicWriter) -> None:
    target = volume.target
    data = os.readlink(target / "..data")
    assert data.startswith("..") and len(data.split(".")[-1]) == 9
    assert os.readlink(target / "timeout") == "..data/timeout"
    volume.write({"timeout": b"31", "nested/deep/key": b"x"})
    names = sorted(os.listdir(target))
    assert names == sorted(["..data", os.readlink(target / "..data"), "nested", "timeout"])
    assert (target / "nested" / "deep" / "key").read_bytes() == b"x"
    assert volume.write({"timeout": b"31", "nested/deep/key": b"x"}) is False  # unchanged


def test_store_reads_keys_and_nested_paths(volume: AtomicWriter) -> None:
    volume.write({"timeout": b"30", "db/pool/size": b"5", ".hidden": b"h"})
    store = _open(f"k8s-volume://{volume.target}?prefix=app/svc")
    try:
        assert [e.key for e in store.list("")] == [
            "app/svc/.hidden",
            "app/svc/db/pool/size",
            "app/svc/timeout",
        ]
        entry = store.get("app/svc/db/pool/size")
        assert entry is not None and entry.value == b"5"
        assert entry.source == f"k8s-volume://{volume.target}/db/pool/size"
        assert store.get("timeout") is None, "keys live under the prefix only"
        assert not supports(store, SupportsWrite)
    finally:
        store.close()


def test_several_volumes_combine_by_prefix(tmp_path: Path) -> None:
    config = AtomicWriter(tmp_path / "config")
    config.write({"timeout": b"30"})
    creds = AtomicWriter(tmp_path / "creds")
    creds.write({"password": b"hunter2-secret"})
    flags = AtomicWriter(tmp_path / "flags")
    flags.write({"beta": b"on"})
    url = (
        f"k8s-volume://{config.target}?prefix=app"
        f"&secret_volume.app/db={creds.target}&volume.flags={flags.target}"
    )
    store = _open(url)
    try:
        assert {e.key: e.secret for e in store.list("")} == {
            "app/timeout": False,
            "app/db/password": True,
            "flags/beta": False,
        }
        assert store.holds_secrets
        assert "hunter2" not in repr(store.get("app/db/password"))
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("k8s-volume://etc/config", "three slashes"),
        ("k8s-volume:///{dir}?prefix=a//b", "prefix"),
        ("k8s-volume:///{dir}?prefix=..x", "'..'"),
        ("k8s-volume:///{dir}?watch=sometimes", "watch"),
        ("k8s-volume:///{dir}?prefixx=a", "did you mean"),
        ("k8s-volume:///{dir}/missing", "does not exist"),
        ("k8s-volume:///{dir}?volume.a=relative/path", "absolute path"),
        ("k8s-volume:///{dir}?layout=nested", "layout"),
        ("k8s-volume://?prefix=a", "none given"),
    ],
)
def test_bad_urls_are_configuration_errors(volume: AtomicWriter, url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _open(url.format(dir=str(volume.target).lstrip("/")))


def test_invalid_names_are_skipped_with_one_warning(
    volume: AtomicWriter, caplog: pytest.LogCaptureFixture
) -> None:
    volume.write({"good": b"1", "sp ace": b"2", "caf\u00e9": b"3"})
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store = _open(f"k8s-volume://{volume.target}")
    try:
        assert [e.key for e in store.list("")] == ["good"]
        volume.write({"good": b"11", "sp ace": b"22", "caf\u00e9": b"3"})
        assert [e.value for e in store.list("")] == [b"11"]
    finally:
        store.close()
    warnings = [r.getMessage() for r in caplog.records if "not a valid key" in r.getMessage()]
    assert len(warnings) == 2, warnings  # one per name, not one per read
    assert any("sp ace" in w for w in warnings) and any("caf\\xe9" in w for w in warnings)


def test_invalid_keys_and_writes(store: KubernetesVolumeBackend) -> None:
    with pytest.raises(InvalidKeyError):
        store.get("a//b")
    with Client(store) as client, pytest.raises(UnsupportedOperationError, match="read-only"):
        client.put("app/timeout", "1")


# -- swaps ---------------------------------------------------------------------------------


def test_reads_follow_swaps_without_a_watch(
    volume: AtomicWriter, store: KubernetesVolumeBackend
) -> None:
    first = store.get("app/timeout")
    assert first is not None and first.value == b"30"
    volume.write({"timeout": b"45", "mode": b"fast"})
    second = store.get("app/timeout")
    assert second is not None and second.value == b"45" and second.version != first.version
    mode = store.get("app/mode")
    assert mode is not None
    volume.write({"timeout": b"45", "mode": b"fast", "added": b"new"})
    unchanged = store.get("app/mode")
    assert unchanged is not None and unchanged.version == mode.version
    added = store.get("app/added")
    assert added is not None and added.value == b"new"


@pytest.mark.parametrize(
    "step",
    ["created-dir", "wrote-payload", "created-data-tmp", "linked-new-paths", "removed-old-paths"],
)
def test_no_step_of_a_swap_shows_a_half_applied_update(tmp_path: Path, step: str) -> None:
    seen: list[dict[str, bytes]] = []
    store: KubernetesVolumeBackend | None = None

    def look(at: str) -> None:
        if at == step and store is not None:
            seen.append({e.key: e.value for e in store.list("")})

    writer = AtomicWriter(tmp_path / "v", pause=look)
    writer.write({"a": b"1", "b": b"1", "gone": b"1"})
    store = _open(f"k8s-volume://{writer.target}")
    try:
        writer.write({"a": b"2", "b": b"2", "added": b"2"})
        assert len(seen) == 1
        old = {"a": b"1", "b": b"1", "gone": b"1"}
        new = {"a": b"2", "b": b"2", "added": b"2"}
        assert seen[0] == (new if step in ("linked-new-paths", "removed-old-paths") else old)
    finally:
        store.close()


def test_a_read_racing_a_swap_starts_over(tmp_path: Path) -> None:
    """The directory being read is swapped out and removed mid-read: the read must
    return the new version whole, not the old one half removed."""
    writer = AtomicWriter(tmp_path / "v")
    writer.write(_version_payload(1, keys=20))
    store = _open(f"k8s-volume://{writer.target}")
    original = os.scandir
    armed = threading.Event()
    swapped = threading.Event()

    def scandir_then_swap(path: object) -> object:
        result = original(path)  # type: ignore[arg-type]
        if armed.is_set() and not swapped.is_set():
            swapped.set()  # before writing: the writer's own rmtree scans directories too
            writer.write(_version_payload(2, keys=20))
        return result

    try:
        os.scandir = scandir_then_swap  # type: ignore[assignment]
        writer.write(_version_payload(3, keys=20))
        armed.set()
        values = {e.value for e in store.list("")}
    finally:
        os.scandir = original
        store.close()
    assert swapped.is_set()
    assert values == {b"v2"}


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_reader_never_sees_a_mix_during_200_rapid_swaps(tmp_path: Path, mode: str) -> None:
    writer = AtomicWriter(tmp_path / "v")
    writer.write(_version_payload(0))
    store = _open(f"k8s-volume://{writer.target}?watch={mode}&poll_interval=0.005")
    recorder = ChangeRecorder()
    watch = store.watch("", recorder)
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]
    seen_versions: list[int] = []

    def reader() -> None:
        last = 0
        while not stop.is_set():
            values = {e.value for e in store.list("")}
            reads[0] += 1
            if len(values) != 1:
                problems.append(f"mixed read: {sorted(values)}")
                continue
            version = int(values.pop().decode()[1:])
            if version < last:
                problems.append(f"went back from {last} to {version}")
            last = version
            seen_versions.append(version)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 201):
            writer.write(_version_payload(version))
        assert recorder.wait_for(
            lambda ch: any(c.entry is not None and c.entry.value == b"v200" for c in ch), 10
        )
    finally:
        stop.set()
        thread.join()
        watch.stop()
        store.close()
    assert problems == []
    assert reads[0] > 0 and seen_versions[-1] == 200
    # Changes of one key arrive in order and end at the last version.
    values = [int(c.entry.value[1:]) for c in recorder.changes if c.key == "k0" and c.entry]
    assert values == sorted(values) and values[-1] == 200


@pytest.mark.parametrize("mode", ["inotify", "poll"])
def test_watch_reports_added_changed_and_removed_keys(tmp_path: Path, mode: str) -> None:
    writer = AtomicWriter(tmp_path / "v")
    writer.write({"keep": b"1", "change": b"1", "remove": b"1", "other/x": b"1"})
    store = _open(f"k8s-volume://{writer.target}?prefix=app&watch={mode}&poll_interval=0.01")
    recorder = ChangeRecorder()
    watch = store.watch("app", recorder)
    try:
        assert watch.mode == mode
        writer.write({"keep": b"1", "change": b"2", "added": b"1", "other/x": b"1"})
        assert recorder.wait_for(lambda ch: len(ch) >= 3, 5), recorder.states()
        time.sleep(0.1)
        assert sorted(recorder.states(), key=str) == sorted(
            [("app/added", b"1"), ("app/change", b"2"), ("app/remove", None)], key=str
        )
        assert [c.deleted for c in recorder.changes if c.key == "app/remove"] == [True]
    finally:
        watch.stop()
        store.close()


def test_polling_is_used_without_watchfiles(
    volume: AtomicWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``watch=auto`` falls back to polling when watchfiles cannot be imported."""
    import sys

    monkeypatch.setitem(sys.modules, "watchfiles", None)  # import raises ImportError
    store = _open(f"k8s-volume://{volume.target}?poll_interval=0.01")
    recorder = ChangeRecorder()
    watch = store.watch("", recorder)
    try:
        assert watch.mode == "poll"
        volume.write({"timeout": b"99", "mode": b"fast"})
        assert recorder.wait_for(lambda ch: ("timeout", b"99") in recorder.states(), 5)
    finally:
        watch.stop()
        store.close()
    with pytest.raises(ConfigurationError, match="watchfiles"):
        _open(f"k8s-volume://{volume.target}?watch=inotify")


def test_client_sees_a_swap_through_its_watch(volume: AtomicWriter) -> None:
    with Client(f"k8s-volume://{volume.target}", cache=CachePolicy(ttl=3600)) as client:
        recorder = ChangeRecorder()
        client.watch("", recorder)
        assert client.get("timeout", type=int) == 30
        volume.write({"timeout": b"60"})
        assert recorder.wait_for(lambda ch: len(ch) >= 2, 5), recorder.states()
        assert client.get("timeout", type=int) == 60
        assert client.get("mode", default=None) is None


# -- subPath, plain directories, secrets ------------------------------------------------------


def test_subpath_file_is_read_and_warned_about_once(
    volume: AtomicWriter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mounted = tmp_path / "app" / "timeout"
    subpath_mount(volume.target, "timeout", mounted)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store = _open(f"k8s-volume://{mounted}?prefix=app")
    try:
        entry = store.get("app/timeout")
        assert entry is not None and entry.value == b"30"
        volume.write({"timeout": b"45", "mode": b"fast"})  # the kubelet updates the volume...
        entry = store.get("app/timeout")
        assert entry is not None and entry.value == b"30"  # ...never the subPath file
        store.list("")
    finally:
        store.close()
    warnings = [r.getMessage() for r in caplog.records if "subPath" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert str(mounted) in warnings[0]


def test_plain_directory_is_read_and_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "timeout").write_bytes(b"1")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store = _open(f"k8s-volume://{plain}")
    try:
        assert [e.value for e in store.list("")] == [b"1"]
        (plain / "timeout").unlink()
        (plain / "retries").write_bytes(b"3")
        assert [(e.key, e.value) for e in store.list("")] == [("retries", b"3")]
    finally:
        store.close()
    assert sum("subPath" in r.getMessage() for r in caplog.records) == 1


def test_secret_values_never_reach_logs_or_reprs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = AtomicWriter(tmp_path / "secret")
    writer.write({"password": b"hunter2-secret", "bad name": b"hunter2-other"})
    caplog.set_level(logging.DEBUG)
    store = _open(f"k8s-volume://{writer.target}?secret=true&watch=poll&poll_interval=0.01")
    recorder = ChangeRecorder()
    watch = store.watch("", recorder)
    try:
        entry = store.get("password")
        assert entry is not None and entry.secret and entry.value == b"hunter2-secret"
        writer.write({"password": b"hunter2-rotated"})
        assert recorder.wait_for(lambda ch: len(ch) >= 1, 5)
        rotated = store.get("password")
        assert rotated is not None and rotated.version != entry.version
        shown = [repr(store), repr(entry), repr(rotated), str(recorder.changes), store.url]
    finally:
        watch.stop()
        store.close()
    shown += [r.getMessage() for r in caplog.records]
    assert not [text for text in shown if "hunter2" in text]
    assert "bad name" in " ".join(r.getMessage() for r in caplog.records)


def test_veltrix_layout_reads_keys_as_the_api_store_encodes_them(tmp_path: Path) -> None:
    """``layout=veltrix``: a mounted object written by the ``k8s://`` store (data keys
    ``_`` -> ``__``, ``/`` -> ``_s``, leading ``.`` -> ``_d``, ``_`` for the first
    segment itself) reads back as the same keys."""
    from veltrix.adapters._k8s_keys import encode_data_key

    rests = ["timeout_ms", "db/pool/size", ".hidden", "", "a__b/_s"]
    writer = AtomicWriter(tmp_path / "vx-app-3payments")
    writer.write({encode_data_key(rest): rest.encode() for rest in rests} | {"bad_x": b"?"})
    store = _open(f"k8s-volume://{writer.target}?prefix=payments&layout=veltrix")
    try:
        assert {e.key: e.value for e in store.list("")} == {
            "payments/timeout_ms": b"timeout_ms",
            "payments/db/pool/size": b"db/pool/size",
            "payments/.hidden": b".hidden",
            "payments": b"",
            "payments/a__b/_s": b"a__b/_s",
        }  # bad_x encodes no key: skipped
    finally:
        store.close()


def test_get_model_through_a_client_reads_one_version(tmp_path: Path) -> None:
    """``Client.get_model`` loads with one ``list``: a model built during rapid swaps
    has every field from the same version."""
    from pydantic import BaseModel

    class Config(BaseModel):
        k0: str
        k1: str
        k2: str
        k3: str

    writer = AtomicWriter(tmp_path / "v")
    writer.write(_version_payload(0, keys=4))
    stop = threading.Event()
    mixed: list[Config] = []
    loads = [0]
    with Client(f"k8s-volume://{writer.target}", cache=CachePolicy(ttl=0.001)) as client:

        def reader() -> None:
            while not stop.is_set():
                config = client.get_model("", Config)
                loads[0] += 1
                if len({config.k0, config.k1, config.k2, config.k3}) != 1:
                    mixed.append(config)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for version in range(1, 101):
                writer.write(_version_payload(version, keys=4))
        finally:
            stop.set()
            thread.join()
        # The last model may be served stale once while it refreshes in the background.
        assert wait_until(lambda: client.get_model("", Config).k0 == "v100")
    assert mixed == [] and loads[0] > 0


def test_a_directory_too_big_for_a_volume_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``k8s-volume:///`` by mistake must not read a whole file system into memory."""
    from veltrix.adapters import k8s_volume
    from veltrix.errors import BackendError

    monkeypatch.setattr(k8s_volume, "MAX_VOLUME_FILES", 3)
    for name in "abcd":
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(BackendError, match="not a ConfigMap or Secret volume"):
        _open(f"k8s-volume://{tmp_path}")


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1", "x"])
def test_poll_interval_must_be_a_finite_positive_number(volume: AtomicWriter, value: str) -> None:
    with pytest.raises(ConfigurationError, match="poll_interval"):
        _open(f"k8s-volume://{volume.target}?poll_interval={value}")


def test_unreadable_paths_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="too long"):
        _open("k8s-volume:///" + "a" * 5000)
