"""The Kubernetes adapter passes the shared conformance suite against the Kubernetes
test server process (``scripts/services up kubernetes``), for ConfigMaps and for
Secrets, and, when ``VELTRIX_TEST_KUBECONFIG`` names a real cluster's kubeconfig,
against that cluster (namespace ``VELTRIX_TEST_K8S_NAMESPACE``, default ``default``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support import server_env, unique_name
from veltrix.adapters.kubernetes import KubernetesBackend
from veltrix.registry import open_backend
from veltrix.testing.conformance import BackendConformance


def server_kubeconfig() -> str:
    return server_env("VELTRIX_TEST_K8S_KUBECONFIG", "Kubernetes test server")


def fresh_backend(
    kubeconfig: str, namespace: str = "default", query: str = ""
) -> Iterator[KubernetesBackend]:
    """A backend on a fresh random prefix; its objects are removed afterwards."""
    prefix = unique_name("conf")
    url = f"k8s://{namespace}/veltrix/{prefix}" + (f"?{query}" if query else "")
    backend = open_backend(url, kubeconfig=kubeconfig)
    assert isinstance(backend, KubernetesBackend)
    yield backend
    cleanup = open_backend(url, kubeconfig=kubeconfig)
    assert isinstance(cleanup, KubernetesBackend)
    for entry in list(cleanup.list("")):
        cleanup.delete(entry.key)
    cleanup.close()
    backend.close()


class TestKubernetesConfigMapConformance(BackendConformance):
    watch_timeout = 10.0

    @pytest.fixture
    def backend(self) -> Iterator[KubernetesBackend]:
        yield from fresh_backend(server_kubeconfig())


class TestKubernetesSecretConformance(BackendConformance):
    watch_timeout = 10.0

    @pytest.fixture
    def backend(self) -> Iterator[KubernetesBackend]:
        yield from fresh_backend(server_kubeconfig(), query="kind=secret")


@pytest.mark.live
class TestRealKubernetesConformance(BackendConformance):
    """Runs only with VELTRIX_TEST_KUBECONFIG (a kubeconfig whose current context may
    create and delete ConfigMaps in VELTRIX_TEST_K8S_NAMESPACE)."""

    watch_timeout = 15.0

    @pytest.fixture
    def backend(self) -> Iterator[KubernetesBackend]:
        kubeconfig = os.environ.get("VELTRIX_TEST_KUBECONFIG")
        if not kubeconfig:
            pytest.skip("VELTRIX_TEST_KUBECONFIG is not set (no real Kubernetes cluster)")
        namespace = os.environ.get("VELTRIX_TEST_K8S_NAMESPACE", "default")
        yield from fresh_backend(kubeconfig, namespace)
