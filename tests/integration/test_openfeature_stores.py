"""The OpenFeature provider over real stores: change events from the store's own watch.

Section 5 of the OpenFeature specification (provider events): a provider that can
learn of flag changes emits ``PROVIDER_CONFIGURATION_CHANGED`` with the changed flag
keys (5.1.1, ``flags_changed``). Here the change is written by *another* client (a
second process would do the same), so the event can only come from the store's watch:
the SQLite change-log poll and Redis keyspace notifications.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfeature import api
from openfeature.event import EventDetails, ProviderEvent
from openfeature.flag_evaluation import Reason

from benchmarks._stores import store_url
from tests.support import server_env
from veltrix import CachePolicy, Client
from veltrix.openfeature import VeltrixProvider


@pytest.fixture(params=["sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "redis":
        server_env("VELTRIX_TEST_REDIS_URL", "Redis server")
    found = store_url(request.param, tmp_path, [])
    assert found is not None
    yield found


def test_configuration_changed_names_the_flags_another_client_changed(url: str) -> None:
    """Requirements 5.1.1 (PROVIDER_CONFIGURATION_CHANGED) and 5.2.x (the handler gets
    the event details, with ``flags_changed``); 2.2.5 (the new value is served after
    the event)."""
    with Client(url) as writer:
        writer.put("flags/dark-mode/enabled", "false")
        writer.put("flags/max-items/value", 10)
        writer.put("other/key", "not a flag")
        with Client(url, cache=CachePolicy(ttl=60)) as reader:
            domain = f"veltrix-{uuid.uuid4().hex[:8]}"
            provider = VeltrixProvider(reader)
            api.set_provider_and_wait(provider, domain)
            flags = api.get_client(domain)
            assert flags.get_boolean_value("dark-mode", True) is False
            assert flags.get_integer_value("max-items", 0) == 10
            seen: list[EventDetails] = []
            arrived = threading.Condition()

            def on_change(details: EventDetails) -> None:
                with arrived:
                    seen.append(details)
                    arrived.notify_all()

            flags.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)

            def changed() -> list[str]:
                return [name for details in seen for name in details.flags_changed or []]

            writer.put("other/key", "still not a flag")
            writer.put("flags/dark-mode/enabled", "true")
            with arrived:
                assert arrived.wait_for(lambda: "dark-mode" in changed(), timeout=10), seen
            writer.put("flags/max-items/value", 25)
            with arrived:
                assert arrived.wait_for(lambda: "max-items" in changed(), timeout=10), seen
            assert set(changed()) == {"dark-mode", "max-items"}, "a non-flag key was reported"
            # The cache was updated before the event: the long TTL does not hide the change.
            details = flags.get_boolean_details("dark-mode", False)
            assert (details.value, details.reason) == (True, Reason.CACHED)
            assert flags.get_integer_value("max-items", 0) == 25
            provider.shutdown()
