"""Command line entry point of the Parameter Manager test server."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from tests.servers.gcp_parameter_manager.server import serve
from tests.servers.gcp_secret_manager.server import Tokens


def _read(value: str) -> str:
    """A token given as is, or as @PATH of a file holding it."""
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as handle:
            return handle.read().strip()
    return value


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
    parser.add_argument(
        "--denied-token",
        action="append",
        default=[],
        help="a token of a known identity without access: PERMISSION_DENIED (or @PATH); "
        "any other token is UNAUTHENTICATED",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    tokens = Tokens(
        None if args.token is None else _read(args.token),
        tuple(_read(t) for t in args.denied_token),
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        serve(args.host, args.rest_port, args.grpc_port, tokens)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
