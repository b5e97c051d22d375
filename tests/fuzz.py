"""Shared pieces of the fuzz suites: the typed-error check and input strategies.

Every public entry point must either succeed or raise a :class:`VeltrixError`
whose message is one line with no control, format or separator character
(:func:`assert_clean_error`). Example counts are kept moderate so the fuzz and
leak suites together stay within about a minute on two cores; raise
``VELTRIX_FUZZ_SCALE`` to search longer locally.
"""

from __future__ import annotations

import ipaddress
import os
import string
import threading
import traceback
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from veltrix.errors import VeltrixError
from veltrix.registry import available_schemes

_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs"}
SCALE = float(os.environ.get("VELTRIX_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int) -> settings:
    """Bounded examples, no deadline (a first call imports a client library)."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
    )


def is_one_line(text: str) -> bool:
    return all(unicodedata.category(ch) not in _UNSAFE for ch in text)


def assert_clean_error(exc: BaseException) -> None:
    """``exc`` is a VeltrixError with a one-line, escaped message."""
    if not isinstance(exc, VeltrixError):
        detail = "".join(traceback.format_exception(exc))
        raise AssertionError(f"not a VeltrixError: {type(exc).__name__}\n{detail}")
    message = str(exc)
    assert is_one_line(message), f"message is not one clean line: {message!r}"


@contextmanager
def thread_errors() -> Iterator[list[BaseException]]:
    """Collect exceptions that kill background threads (they never reach the caller)."""
    caught: list[BaseException] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            caught.append(args.exc_value)

    threading.excepthook = hook
    try:
        yield caught
    finally:
        threading.excepthook = previous


def _dns_free(host: str) -> str:
    """A host the tests may hand to a client library without a DNS lookup.

    A name that passes the host check would be looked up by the library's
    connection thread; the tests never send such lookups anywhere, so valid names
    become ``localhost``. Invalid ones stay, to be rejected before any I/O.
    """
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(literal)
        return host
    except ValueError:
        pass
    try:
        host.encode("idna")  # what the socket layer does with a name first
    except UnicodeError:
        return host
    if not host.isprintable() or any(ch.isspace() for ch in host):
        return host
    return "localhost"


HOSTS = st.one_of(
    st.sampled_from(
        ["127.0.0.1", "localhost", "[::1]", "a" * 63, "a" * 64, "x." + "b" * 70, "a..b", "é" * 70]
    ),
    st.text(alphabet=string.ascii_lowercase + "-.", min_size=1, max_size=90),
    st.text(max_size=40),
).map(_dns_free)
PORTS = st.one_of(
    st.just(""),
    st.integers(min_value=-5, max_value=70000).map(lambda p: f":{p}"),
    st.text(max_size=6).map(lambda p: ":" + p),
)
OPTION_NAMES = [
    "timeout",
    "connect_timeout",
    "region",
    "endpoint_url",
    "endpoint",
    "insecure",
    "tls",
    "tls_ca",
    "watch_mode",
    "password_env",
    "token_env",
    "ca_file",
    "busy_timeout",
    "poll_interval",
    "session_timeout",
    "namespace",
    "lock_ttl",
    "consistency",
    "dc",
    "transport",
    "retain",
    "max_attempts",
    "password",
    "token",
]
OPTION_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1e999", "nan", "inf", "true", "yes", "abc", "", "1", "0.01"]),
    st.text(max_size=20),
)
QUERIES = st.lists(
    st.tuples(st.one_of(st.sampled_from(OPTION_NAMES), st.text(max_size=8)), OPTION_VALUES),
    max_size=3,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
PATHS = st.one_of(
    st.sampled_from(["", "/", "/app", "/a/b", "/0", "/svc/0", "/app/env/profile", "//x"]),
    st.text(max_size=30).map(lambda p: "/" + p),
)
USERINFO = st.sampled_from(["", "user@", ":pw@", "user:pw@"])


@st.composite
def store_urls(draw: Any, schemes: list[str] | None = None) -> str:
    """``scheme://[userinfo]host[:port][,host...]/path?query`` for every known scheme.

    SQLite paths are relative: run tests that open these URLs in a scratch directory.
    """
    scheme = draw(
        st.sampled_from(schemes or [*available_schemes(), "http", "nosuch"]) | st.text(max_size=8)
    )
    hosts = draw(st.lists(st.tuples(HOSTS, PORTS), min_size=1, max_size=3))
    netloc = ",".join(h + p for h, p in hosts)
    if scheme in ("appconfig", "gcpsm", "memory", "ssm", "sqlite"):  # names, not hosts
        netloc = draw(st.one_of(st.just(""), st.text(max_size=20), st.just(netloc)))
        if scheme == "sqlite":
            netloc = draw(st.sampled_from(["", netloc]))
    path = draw(PATHS)
    if scheme == "sqlite":  # a file below the working directory (the test's tmp_path)
        path = "/" + path.lstrip("/").replace("..", "_")
    query = draw(QUERIES)
    url = f"{scheme}://{draw(USERINFO)}{netloc}{path}"
    return url + ("?" + query if query else "")


KEYS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(["a", "a/b", "a//b", "/a", "a/", ".", "a/../b", "x" * 256, "ok.key-1_2"]),
    st.text(max_size=40),
    st.text(alphabet=string.ascii_letters + "/.-_", max_size=30),
    st.binary(max_size=10),
    st.integers(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)

JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(),
        st.binary(max_size=20),
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), children, max_size=4)
        | st.tuples(children, children)
        | st.sets(st.integers(), max_size=3)
        | st.frozensets(st.text(max_size=3), max_size=3)
    ),
    max_leaves=12,
)
VALUES: st.SearchStrategy[Any] = st.one_of(
    JSONISH,
    st.just("\ud800"),
    st.just(float("nan")),
    # built, not just(): hypothesis reprs just() values, and str() of this one raises
    st.builds(lambda: 10**5000),
    st.builds(object),
    st.just(Ellipsis),
    st.just(complex(1, 2)),
)

__all__ = [
    "HOSTS",
    "KEYS",
    "OPTION_NAMES",
    "VALUES",
    "assert_clean_error",
    "fuzz_settings",
    "is_one_line",
    "store_urls",
    "thread_errors",
]
