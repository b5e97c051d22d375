"""``python -m veltrix``: the command line."""

from veltrix.cli import main

main()
