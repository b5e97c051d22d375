"""A wire-faithful Kubernetes API subset (core/v1 ConfigMaps and Secrets) for tests
(see ``docs/stores/kubernetes.md``).

Run it as a process: ``python -m tests.servers.kubernetes --host 127.0.0.1 --port 18800``.
"""

from tests.servers.kubernetes.server import KubernetesServer

__all__ = ["KubernetesServer"]
