"""The ``veltrix`` console script and ``python -m veltrix``: the command line, or how
to install it.

The command line's libraries (typer, rich) are the ``cli`` extra, so a service that
only embeds the client does not install them; without them the command says what to
install (exit code 3, as for a store whose extra is missing) instead of a traceback.
"""

from __future__ import annotations

import sys

#: The distributions of the ``cli`` extra (and what they import).
CLI_MODULES = frozenset({"typer", "rich", "click"})


def main() -> None:
    try:
        from veltrix.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in CLI_MODULES:
            raise
        sys.stderr.write(
            f"veltrix: the command line needs {exc.name}: pip install 'veltrix[cli]'\n"
        )
        sys.exit(3)
    cli_main()


__all__ = ["main"]
