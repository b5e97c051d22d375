"""The volume store on a volume a real kubelet manages, only when asked for.

Inside a pod, ``VELTRIX_TEST_K8S_VOLUME=/etc/config`` names the mount path of a whole
ConfigMap volume (not ``subPath``). The test reads it the way the store does and
compares with what the kubelet's top-level links show. With
``VELTRIX_TEST_K8S_VOLUME_UPDATE=1`` as well, the test waits (up to 3 minutes: the
kubelet's sync period plus its cache TTL) for someone to change the ConfigMap and
checks that the change arrives as one swap; live tests are never required, also not
in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from veltrix.adapters.k8s_volume import DATA_LINK, KubernetesVolumeBackend
from veltrix.testing.conformance import ChangeRecorder

pytestmark = pytest.mark.live


@pytest.fixture
def mount() -> Path:
    value = os.environ.get("VELTRIX_TEST_K8S_VOLUME", "")
    if not value:
        pytest.skip("VELTRIX_TEST_K8S_VOLUME is not set: no live kubelet volume test")
    return Path(value)


def test_a_kubelet_volume_reads_as_its_files(mount: Path) -> None:
    assert (mount / DATA_LINK).is_symlink(), f"{mount} is not a whole ConfigMap volume"
    visible = {
        p.name: p.read_bytes()
        for p in mount.iterdir()
        if not p.name.startswith("..") and p.is_file()
    }
    store = KubernetesVolumeBackend.from_url(f"k8s-volume://{mount}")
    try:
        assert {e.key: e.value for e in store.list("") if "/" not in e.key} == visible
    finally:
        store.close()


def test_a_kubelet_update_arrives_as_one_swap(mount: Path) -> None:
    if os.environ.get("VELTRIX_TEST_K8S_VOLUME_UPDATE") != "1":
        pytest.skip("VELTRIX_TEST_K8S_VOLUME_UPDATE=1 is not set: nobody will change the ConfigMap")
    store = KubernetesVolumeBackend.from_url(f"k8s-volume://{mount}?watch=auto")
    recorder = ChangeRecorder()
    before = os.readlink(mount / DATA_LINK)
    watch = store.watch("", recorder)
    try:
        print(f"change the ConfigMap mounted at {mount} now (waiting up to 180 s)")
        assert recorder.wait_for(bool, 180)
        assert os.readlink(mount / DATA_LINK) != before
        after = {e.key: e.value for e in store.list("")}
        for change in recorder.changes:
            assert after.get(change.key) == (change.entry.value if change.entry else None)
    finally:
        watch.stop()
        store.close()
