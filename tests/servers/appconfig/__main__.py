"""``python -m tests.servers.appconfig --host 127.0.0.1 --port N``"""

from __future__ import annotations

import argparse
import sys

from tests.servers.appconfig.server import MAX_CONTENT_BYTES, TOKEN_TTL, State, make_server
from tests.servers.serving import configure_logging, serve_until_terminated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.appconfig")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18600)
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=TOKEN_TTL,
        help="seconds a configuration token stays valid (AWS: 24 h)",
    )
    parser.add_argument(
        "--max-data-rps",
        type=float,
        default=0.0,
        help="AppConfigData calls per second before ThrottlingException (0: off)",
    )
    parser.add_argument(
        "--max-content-bytes",
        type=int,
        default=MAX_CONTENT_BYTES,
        help="largest hosted configuration version (AWS default quota: 2 MB)",
    )
    parser.add_argument(
        "--fail-create-call",
        type=int,
        default=0,
        metavar="N",
        help="the N-th CreateHostedConfigurationVersion call stores its version, then "
        "answers 500 (tests of SDK retries; 0: never)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    state = State(
        token_ttl=args.token_ttl,
        max_data_rps=args.max_data_rps,
        max_content_bytes=args.max_content_bytes,
        fail_create_call=args.fail_create_call,
    )
    server = make_server(args.host, args.port, state)

    return serve_until_terminated(
        server,
        "appconfig-test-server",
        f"http://{args.host}:{server.server_address[1]}",
        poll_interval=0.2,
    )


if __name__ == "__main__":
    sys.exit(main())
