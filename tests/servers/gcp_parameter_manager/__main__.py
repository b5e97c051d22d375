"""Command line entry point of the Parameter Manager test server."""

from __future__ import annotations

import sys

from tests.servers.gcp_common import main
from tests.servers.gcp_parameter_manager.server import serve

if __name__ == "__main__":
    sys.exit(main("tests.servers.gcp_parameter_manager", serve))
