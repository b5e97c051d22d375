"""Command line entry point of the Parameter Manager test server."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from tests.servers.gcp_parameter_manager.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.gcp_parameter_manager")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rest-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument(
        "--token",
        default=None,
        help="require 'Authorization: Bearer TOKEN' (or read it from the file @PATH)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    token = args.token
    if token is not None and token.startswith("@"):
        with open(token[1:], encoding="utf-8") as handle:
            token = handle.read().strip()

    def stop(signum: int, frame: FrameType | None) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        serve(args.host, args.rest_port, args.grpc_port, token)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
