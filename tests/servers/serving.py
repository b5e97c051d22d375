"""What the HTTP test servers' entry points share: tokens given on the command line or
in an environment variable, logging, and serving until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from socketserver import BaseServer
from types import FrameType


def token_option(parser: argparse.ArgumentParser, value: str | None, env: str | None) -> str | None:
    """The token given as ``value``, or read from the environment variable ``env`` (which
    keeps it out of ``ps`` output); an unset ``env`` is a usage error."""
    if env:
        value = os.environ.get(env)
        if not value:
            parser.error(f"{env} is not set")
    return value


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def serve_until_terminated(
    server: BaseServer, logger: str, listening: str, *, poll_interval: float = 0.5
) -> int:
    """Serve until SIGTERM (or Ctrl-C), then close the listening socket; 0 for ``main``."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    logging.getLogger(logger).info("listening on %s", listening)
    try:
        server.serve_forever(poll_interval=poll_interval)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
