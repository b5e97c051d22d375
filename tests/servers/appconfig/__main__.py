"""``python -m tests.servers.appconfig --host 127.0.0.1 --port N``"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from tests.servers.appconfig.server import MAX_CONTENT_BYTES, TOKEN_TTL, State, make_server


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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    state = State(
        token_ttl=args.token_ttl,
        max_data_rps=args.max_data_rps,
        max_content_bytes=args.max_content_bytes,
        fail_create_call=args.fail_create_call,
    )
    server = make_server(args.host, args.port, state)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    logging.getLogger("appconfig-test-server").info(
        "listening on http://%s:%d", args.host, server.server_address[1]
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
