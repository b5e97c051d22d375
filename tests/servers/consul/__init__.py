"""A wire-faithful Consul KV test server (see ``docs/stores/consul.md``).

Run it as a process: ``python -m tests.servers.consul --host 127.0.0.1 --port 18500``.
"""

from tests.servers.consul.server import ConsulServer

__all__ = ["ConsulServer"]
