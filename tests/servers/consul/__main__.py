"""``python -m tests.servers.consul --host 127.0.0.1 --port N [--acl-token T]``.

The ACL token may also come from the ``CONSUL_TEST_ACL_TOKEN`` environment
variable (``--acl-token-env``), which keeps it out of ``ps`` output.
"""

from __future__ import annotations

import argparse
import sys

from tests.servers.consul.server import KV_MAX_VALUE_SIZE, MAX_TXN_OPS, ConsulServer
from tests.servers.serving import configure_logging, serve_until_terminated, token_option


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.consul")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--acl-token", help="enable ACLs; the one token allowed everything")
    parser.add_argument(
        "--acl-token-env",
        metavar="VAR",
        help="enable ACLs with the token read from this environment variable",
    )
    parser.add_argument("--datacenter", default="dc1")
    parser.add_argument("--kv-max-value-size", type=int, default=KV_MAX_VALUE_SIZE)
    parser.add_argument("--txn-max-ops", type=int, default=MAX_TXN_OPS)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)

    token = token_option(parser, args.acl_token, args.acl_token_env)
    configure_logging(args.debug)
    server = ConsulServer(
        (args.host, args.port),
        acl_token=token,
        datacenter=args.datacenter,
        kv_max_value_size=args.kv_max_value_size,
        txn_max_ops=args.txn_max_ops,
    )
    return serve_until_terminated(
        server,
        "consul-test-server",
        f"{args.host}:{args.port} (ACLs {'on' if token else 'off'})",
    )


if __name__ == "__main__":
    sys.exit(main())
