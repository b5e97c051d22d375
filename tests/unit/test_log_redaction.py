"""The log filter that keeps values and credentials out of client libraries' records."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from kazoo.exceptions import ConnectionDropped
from kazoo.protocol.serialization import Auth, Create, SetData
from kazoo.security import make_digest_acl

from veltrix.log_redaction import RedactingFilter, protect_loggers


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger with the filter and a handler writing the formatted records."""
    buffer = io.StringIO()
    logger = logging.Logger("test.redaction")
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(1)
    logger.addFilter(RedactingFilter(lambda: ["alice:pw-123456"]))
    yield logger, buffer


def test_kazoo_requests_lose_their_data_and_credentials(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = logged
    logger.debug("Sending request(xid=%s): %s", 1, Auth(0, "digest", "alice:pw-123456"))
    logger.debug("Sending request(xid=%s): %s", 2, SetData("/app/k", b"value-secret", -1))
    acl = [make_digest_acl("alice", "pw-123456", all=True)]
    logger.debug("Sending request(xid=%s): %s", 3, Create("/app/k", b"value-secret", acl, 0))
    logger.log(5, "Read response %s", (b"value-secret", "stat"))
    text = buffer.getvalue()
    assert "pw-123456" not in text and "value-secret" not in text and "alice:" not in text
    assert "SetData(path='/app/k', data=***" in text and "Auth(" in text
    assert "<12 bytes>" in text


def test_mappings_keep_keys_and_mask_sensitive_values(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = logged
    params = {
        "url": "https://ssm.example/?token=tok-999",
        "headers": {"Authorization": "AWS4 sig-777", "X-Amz-Security-Token": "tok-888"},
        "body": b'{"Value": "value-secret"}',
        "method": "POST",
    }
    logger.debug("Making request with params: %s", params)
    logger.debug("CanonicalRequest:\n%s", "x-amz-security-token:tok-666\nhost:ssm")
    text = buffer.getvalue()
    for hidden in ("tok-999", "sig-777", "tok-888", "value-secret", "tok-666"):
        assert hidden not in text
    assert "'method': 'POST'" in text and "'url':" in text


def test_exceptions_keep_their_message_and_env_credentials_are_masked(
    logged: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "redis-pw-4242")
    logger, buffer = logged
    logger.warning("Connection dropped: %s", ConnectionDropped("socket closed"))
    logger.warning("auth with %s failed", "redis-pw-4242")
    try:
        raise ValueError("bad password redis-pw-4242")
    except ValueError:
        logger.exception("failed")
    text = buffer.getvalue()
    assert "Connection dropped: socket closed" in text
    assert "redis-pw-4242" not in text and "ValueError: bad password ***" in text


def test_protect_loggers_covers_existing_child_loggers() -> None:
    child = logging.getLogger("veltrixtestlib.sub.module")
    protect_loggers("veltrixtestlib")
    assert any(isinstance(f, RedactingFilter) for f in child.filters)
    assert any(isinstance(f, RedactingFilter) for f in logging.getLogger("veltrixtestlib").filters)
    protect_loggers("veltrixtestlib")  # idempotent
    assert sum(isinstance(f, RedactingFilter) for f in child.filters) == 1
