"""``python -m veltrix``: the command line."""

from veltrix.console import main

main()
