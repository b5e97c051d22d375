"""``python -m tests.servers.kubernetes --host H --port P [--token T] [--read-only-token T]``.

Tokens may also come from environment variables (``--token-env``,
``--read-only-token-env``), which keeps them out of ``ps`` output. Without a token
every request is allowed (as an API server with anonymous access as admin); with
one, a request without it gets 401 and the read-only token gets 403 on writes.
"""

from __future__ import annotations

import argparse
import sys

from tests.servers.kubernetes.server import KubernetesServer
from tests.servers.serving import configure_logging, serve_until_terminated, token_option


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.kubernetes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18800)
    parser.add_argument("--token", help="bearer token allowed everything")
    parser.add_argument("--token-env", metavar="VAR", help="read --token from this variable")
    parser.add_argument("--read-only-token", help="bearer token allowed get/list/watch only")
    parser.add_argument("--read-only-token-env", metavar="VAR")
    parser.add_argument("--history", type=int, default=1000, help="watch events kept (older: 410)")
    parser.add_argument("--bookmark-interval", type=float, default=5.0, help="seconds")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="and this key")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    token = token_option(parser, args.token, args.token_env)
    reader = token_option(parser, args.read_only_token, args.read_only_token_env)
    if reader and not token:
        parser.error("--read-only-token needs --token")
    configure_logging(args.debug)
    server = KubernetesServer(
        (args.host, args.port),
        token=token,
        read_only_token=reader,
        history=args.history,
        bookmark_interval=args.bookmark_interval,
        tls=(args.tls_cert, args.tls_key) if args.tls_cert else None,
    )

    return serve_until_terminated(
        server,
        "kubernetes-test-server",
        f"{args.host}:{args.port} (auth {'on' if token else 'off'})",
    )


if __name__ == "__main__":
    sys.exit(main())
