"""Every log record from Veltrix has a stable event name and never a value.

One scenario runs through the outage paths (the store goes down and comes
back, a background refresh is refused, a value that does not validate reaches
a bound model, a watch callback raises) while a handler on the ``veltrix``
logger collects every record, at every level.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

import veltrix
from tests.unit.stores import ControlledStore, wait_until
from veltrix.log_events import FailureLog, event

SECRET = "hunter2-super-secret"
BAD_VALUE = "not-a-number-zzz"
VALUES = (SECRET, "4242", BAD_VALUE, "7777")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[list[logging.LogRecord]]:
    handler = Collect()
    logger = logging.getLogger("veltrix")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(previous)


class Service(BaseModel):
    timeout_ms: int


def everything_in(record: logging.LogRecord) -> str:
    """The message, every extra field and any traceback, as one text."""
    formatter = logging.Formatter()
    parts = [record.getMessage(), record.name]
    parts += [str(value) for value in record.__dict__.values()]
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


def test_every_record_has_an_event_and_no_value(
    store: ControlledStore, collected: list[logging.LogRecord]
) -> None:
    store.put("app/password", SECRET.encode())
    store.put("app/limit", b"4242")
    store.put("svc/timeout_ms", b"7777")
    policy = veltrix.CachePolicy(
        ttl=0.05, stale_while_revalidate=0.5, error_backoff=0.05, retries=0
    )
    with veltrix.Client(store, cache=policy, secret_prefixes=["app/password"]) as client:  # type: ignore[arg-type]
        assert client.get("app/password") == SECRET
        assert client.get("app/limit") == "4242"
        bound = client.bind("svc", Service)

        def failing_callback(change: veltrix.Change) -> None:
            raise RuntimeError("callback bug")

        client.watch("app", failing_callback)
        # The store goes down: stale values are served, the state change is logged.
        store.go_down()
        time.sleep(0.1)
        assert client.get("app/password") == SECRET
        assert wait_until(lambda: not client.health().up, timeout=3)
        # It comes back.
        store.come_back()
        assert wait_until(
            lambda: client.get("app/limit") == "4242" and client.health().up, timeout=3
        )
        # A refresh the store refuses, in the background.
        store.deny()
        time.sleep(0.1)
        client.get("app/limit")
        assert wait_until(
            lambda: any(r.msg.startswith("background refresh") for r in collected), timeout=3
        )
        store.come_back()
        # A value that does not validate reaches the bound model (a decode failure).
        store.put("svc/timeout_ms", BAD_VALUE.encode())
        assert wait_until(lambda: client.stats().get("bind_errors", 0) >= 1, timeout=3)
        assert bound.timeout_ms == 7777
        # A watch callback raises.
        store.put("app/limit", b"1")
        assert wait_until(
            lambda: any(
                getattr(r, "event", "") == "veltrix.watch.callback_failed" for r in collected
            ),
            timeout=3,
        )

    events = {getattr(r, "event", None) for r in collected}
    for expected in (
        "veltrix.store.down",
        "veltrix.store.up",
        "veltrix.store.refresh_failed",
        "veltrix.bind.refresh_failed",
        "veltrix.watch.callback_failed",
    ):
        assert expected in events, sorted(str(e) for e in events)
    for record in collected:
        name = getattr(record, "event", None)
        assert isinstance(name, str) and name.startswith("veltrix."), record.getMessage()
        text = everything_in(record)
        for value in VALUES:
            assert value not in text, (name, record.getMessage())
    refresh = next(
        r for r in collected if r.__dict__.get("event") == "veltrix.store.refresh_failed"
    )
    assert refresh.__dict__["key"] == "app/limit"
    assert refresh.__dict__["error_type"] == "AccessDeniedError"
    assert refresh.__dict__["store"] == "memory://"


def test_failure_log_warns_once_per_state_change(collected: list[logging.LogRecord]) -> None:
    failures = FailureLog(logging.getLogger("veltrix.test"), "veltrix.test.poll", store="s")
    for _ in range(5):
        failures.failed("poll failed: %s", "ConnectionError", error=ConnectionError())
    failures.succeeded("poll works again")
    failures.succeeded("poll works again")
    failures.failed("poll failed: %s", "ConnectionError", error=ConnectionError())
    levels = [(r.levelname, r.__dict__["event"]) for r in collected]
    assert levels == [
        ("WARNING", "veltrix.test.poll.failed"),
        *[("DEBUG", "veltrix.test.poll.failed")] * 4,
        ("INFO", "veltrix.test.poll.recovered"),
        ("WARNING", "veltrix.test.poll.failed"),
    ]
    assert collected[0].__dict__["error_type"] == "ConnectionError"


def test_event_fields() -> None:
    assert event("veltrix.x", store="s", key=("svc", Service), error=KeyError("v")) == {
        "event": "veltrix.x",
        "store": "s",
        "key": "svc",
        "error_type": "KeyError",
    }


def test_unreachable_zookeeper_warns_once_not_per_attempt(
    collected: list[logging.LogRecord],
) -> None:
    pytest.importorskip("kazoo")
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"zookeeper://127.0.0.1:{port}/app?connect_timeout=0.2&reconnect_max_delay=0.1"
    with veltrix.Client(url, cache=veltrix.CachePolicy(retries=0)) as client:
        with pytest.raises(veltrix.BackendUnavailableError):
            client.get("k")
        time.sleep(2.0)  # kazoo keeps trying to connect, many times a second
    warnings = [r for r in collected if r.levelno >= logging.WARNING]
    # One from kazoo (the first dropped connection), one for the store going down.
    assert len(warnings) <= 2, [(r.name, r.getMessage()) for r in warnings]
    events = {r.__dict__.get("event") for r in warnings}
    assert events <= {"veltrix.zookeeper.client", "veltrix.store.down"}, events
    repeats = [r for r in collected if r.name == "veltrix.zookeeper.kazoo.repeats"]
    assert len(repeats) >= 3  # kazoo did retry, and its repeats went to DEBUG
    assert all(r.levelno == logging.DEBUG for r in repeats)
    assert all(isinstance(r.__dict__.get("event"), str) for r in collected)
