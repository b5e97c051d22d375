"""Loads the variables written by ``scripts/services up`` so fixtures find servers."""

from __future__ import annotations

import os

from tests.support import SERVICES_DIR


def _load_services_env() -> None:
    env_file = SERVICES_DIR / "env"
    if not env_file.exists():
        return
    for line in env_file.read_text().splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.startswith("VELTRIX_"):
            os.environ.setdefault(name, value)


_load_services_env()
