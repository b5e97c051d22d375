"""The mounted-volume store passes the read-only conformance suite.

Content is published the way the kubelet does it (tests/kubelet_volume.py): a new
timestamped directory swapped in under ``..data``. No server is involved; the
store is run once with inotify (watchfiles), once polling, once as a Secret volume.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kubelet_volume import AtomicWriter
from veltrix.adapters.k8s_volume import KubernetesVolumeBackend
from veltrix.registry import open_backend
from veltrix.testing.conformance import Publish, ReadOnlyConformance


class _VolumeConformance(ReadOnlyConformance):
    options: str = ""
    watch_timeout = 5.0

    @pytest.fixture
    def writer(self, tmp_path: Path) -> AtomicWriter:
        writer = AtomicWriter(tmp_path / "config")
        writer.write({})
        return writer

    @pytest.fixture
    def backend(self, writer: AtomicWriter) -> Iterator[KubernetesVolumeBackend]:
        backend = open_backend(f"k8s-volume://{writer.target}{self.options}")
        assert isinstance(backend, KubernetesVolumeBackend)
        yield backend
        backend.close()

    @pytest.fixture
    def publish(self, writer: AtomicWriter) -> Publish:
        return writer.write


class TestVolumeInotifyConformance(_VolumeConformance):
    options = "?watch=inotify"


class TestVolumePollingConformance(_VolumeConformance):
    options = "?watch=poll&poll_interval=0.02"


class TestSecretVolumeConformance(_VolumeConformance):
    options = "?secret=true&watch=poll&poll_interval=0.02"
