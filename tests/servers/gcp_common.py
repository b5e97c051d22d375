"""What the GCP test servers (Secret Manager, Parameter Manager) share: the command line
that starts one, the table of gRPC methods a store serves, and the pieces of request
handling both stores repeat (errors, filters, update masks, timestamps)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

import google_crc32c
from google.protobuf import timestamp_pb2

from tests.servers.gcp_secret_manager.filters import (
    FilterError,
    Lookup,
    Predicate,
    compile_filter,
)
from tests.servers.serving import configure_logging

if TYPE_CHECKING:  # the servers import this module (method_table)
    from tests.servers.gcp_secret_manager.server import Tokens

#: ``serve(host, rest_port, grpc_port, tokens)``: serve both transports until interrupted.
Serve = Callable[[str, int, int, "Tokens"], None]
#: gRPC method name -> (store method, request pb class, response pb class).
MethodTable = dict[str, tuple[Callable[[Any], Any], Any, Any]]


class ApiError(Exception):
    """A failed call: canonical status name (e.g. ``NOT_FOUND``) and message."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli) of ``data``, as the API's ``data_crc32c`` fields carry it."""
    return int(google_crc32c.value(data))


def now() -> Any:
    """The current time as a protobuf ``Timestamp``."""
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def copy_message(message: Any) -> Any:
    """A copy of a protobuf message (what a call returns must not share state)."""
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def request_filter(
    text: str, lookup: Lookup, fields: frozenset[str], maps: frozenset[str] = frozenset()
) -> Predicate:
    """:func:`compile_filter`, a bad filter being INVALID_ARGUMENT."""
    try:
        return compile_filter(text, lookup, fields, maps)
    except FilterError as exc:
        raise ApiError("INVALID_ARGUMENT", f"Invalid filter: {exc}") from exc


def update_paths(request: Any) -> list[str]:
    """The paths of an update request's ``update_mask`` (INVALID_ARGUMENT when none)."""
    paths = list(request.update_mask.paths)
    if not paths:
        raise ApiError("INVALID_ARGUMENT", "Field [update_mask] is required.")
    return paths


def _read(value: str) -> str:
    """A token given as is, or as @PATH of a file holding it."""
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as handle:
            return handle.read().strip()
    return value


def main(prog: str, serve: Serve, argv: list[str] | None = None) -> int:
    """The entry point of ``python -m <prog>``: parse the options, then ``serve``."""
    from tests.servers.gcp_secret_manager.server import Tokens

    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
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
    configure_logging(args.verbose)
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


def method_table(store: object, service: ModuleType, responses: dict[str, Any]) -> MethodTable:
    """The gRPC methods ``store`` serves: method name -> (the store's snake_case method,
    ``service.<Name>Request``, the response pb class). A response given as None is
    ``service.<Name>Response``."""
    table: MethodTable = {}
    for name, given in responses.items():
        handler = getattr(store, re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower())
        request = getattr(service, f"{name}Request").pb()
        response = getattr(service, f"{name}Response").pb() if given is None else given
        table[name] = (handler, request, response)
    return table
