"""The OpenFeature provider, driven through the OpenFeature SDK's client API.

Each test names the requirements of the OpenFeature specification it covers
(section 2: providers; section 5: events).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.event import EventDetails, ProviderEvent
from openfeature.flag_evaluation import ErrorCode, Reason

from tests.unit.stores import ControlledStore, wait_until
from veltrix import CachePolicy, Client
from veltrix.aio import AsyncClient
from veltrix.openfeature import VeltrixProvider

FLAGS = {
    "flags/new-checkout/enabled": b"true",
    "flags/dark-mode/enabled": b"false",
    "flags/banner/value": b"Welcome back",
    "flags/max-items/value": b"25",
    "flags/ratio/value": b"0.25",
    "flags/layout/value": b'{"columns": 3, "theme": "light"}',
    "flags/retired/enabled": b"false",
    "flags/retired/value": b"42",
    "flags/rollout/enabled": b"true",  # an AppConfig flag with attributes, no value key
    "flags/rollout/percent": b"30",
    "flags/rollout/region": b"eu",
    "flags/broken/enabled": b"maybe",
    "flags/pin/value": b"hunter2",  # a secret-looking value where a number is expected
}


@pytest.fixture
def store() -> Iterator[ControlledStore]:
    backend = ControlledStore()
    for key, value in FLAGS.items():
        backend.put(key, value)
    yield backend
    backend.close()


@pytest.fixture
def client(store: ControlledStore) -> Iterator[Client]:
    with Client(store, cache=CachePolicy(ttl=0.2, retries=0)) as veltrix_client:
        yield veltrix_client


def feature_client(provider: VeltrixProvider) -> OpenFeatureClient:
    domain = f"veltrix-{uuid.uuid4().hex[:8]}"
    api.set_provider_and_wait(provider, domain)
    return api.get_client(domain)


def test_metadata_names_the_provider(client: Client) -> None:
    """Requirement 2.1.1: metadata with a name."""
    assert VeltrixProvider(client).get_metadata().name == "veltrix"


def test_typed_resolution_with_reason_and_no_error(client: Client) -> None:
    """Requirements 2.2.1 and 2.2.2 (typed resolvers), 2.2.3 (value), 2.2.4 (variant),
    2.2.5 (reason), 2.2.6 (no error code), 2.3.2 (no error message)."""
    flags = feature_client(VeltrixProvider(client))
    flags.get_boolean_value("new-checkout", False)  # read from the store: STATIC
    details = flags.get_boolean_details("new-checkout", False)
    assert (details.value, details.reason, details.variant) == (True, Reason.CACHED, "on")
    assert details.error_code is None and details.error_message is None
    assert flags.get_boolean_value("dark-mode", True) is False
    assert flags.get_string_value("banner", "") == "Welcome back"
    assert flags.get_integer_value("max-items", 0) == 25
    assert flags.get_float_value("ratio", 0.0) == 0.25
    assert flags.get_object_value("layout", {}) == {"columns": 3, "theme": "light"}
    assert flags.get_object_value("rollout", {}) == {
        "enabled": True,
        "percent": 30,
        "region": "eu",
    }
    assert flags.get_boolean_details("new-checkout", False).flag_metadata["source"]


def test_a_disabled_flag_returns_the_default(client: Client) -> None:
    """Requirement 2.2.5: reason DISABLED."""
    details = feature_client(VeltrixProvider(client)).get_integer_details("retired", 7)
    assert (details.value, details.reason, details.error_code) == (7, Reason.DISABLED, None)


@pytest.mark.parametrize(
    ("flag", "kind", "code"),
    [
        ("undefined", "boolean", ErrorCode.FLAG_NOT_FOUND),
        ("no such flag", "string", ErrorCode.FLAG_NOT_FOUND),  # not even a valid name
        ("broken", "boolean", ErrorCode.TYPE_MISMATCH),
        ("banner", "integer", ErrorCode.PARSE_ERROR),
        ("max-items", "object", ErrorCode.TYPE_MISMATCH),
        ("pin", "float", ErrorCode.PARSE_ERROR),
    ],
)
def test_errors_have_codes_and_never_show_values(
    client: Client, flag: str, kind: str, code: ErrorCode
) -> None:
    """Requirements 2.2.7 (typed errors with a code), 2.3.3 (error message), 2.2.5
    (reason ERROR)."""
    flags = feature_client(VeltrixProvider(client))
    default = {"boolean": True, "string": "d", "integer": 1, "float": 1.5, "object": {"d": 1}}[kind]
    details = getattr(flags, f"get_{kind}_details")(flag, default)
    assert details.value == default
    assert details.reason == Reason.ERROR
    assert details.error_code == code
    assert "hunter2" not in (details.error_message or "")


def test_static_on_the_evaluation_that_read_the_store_then_cached(
    client: Client, store: ControlledStore
) -> None:
    """Requirement 2.2.5: reason STATIC when the evaluation read the store (no targeting
    rules: the value is the same for everyone), CACHED while the client's cache answers."""
    flags = feature_client(VeltrixProvider(client))
    for kind, flag, default in (("boolean", "new-checkout", False), ("integer", "max-items", 0)):
        get = getattr(flags, f"get_{kind}_details")
        reads = store.gets
        first = get(flag, default)
        assert store.gets > reads, "the first evaluation did not read the store"
        assert (first.reason, first.error_code) == (Reason.STATIC, None)
        reads = store.gets
        second = get(flag, default)
        assert store.gets == reads
        assert (second.value, second.reason) == (first.value, Reason.CACHED)


def test_a_defined_flag_without_a_value_gives_the_default(client: Client) -> None:
    """Requirement 2.2.5: reason DEFAULT. ``rollout`` is defined and enabled but holds
    attributes only, no ``value``: a string or number evaluation yields the caller's
    default, which is not an error (requirement 2.2.6: no error code)."""
    flags = feature_client(VeltrixProvider(client))
    for kind, default in (("string", "d"), ("integer", 3), ("float", 0.5)):
        details = getattr(flags, f"get_{kind}_details")("rollout", default)
        assert (details.value, details.reason) == (default, Reason.DEFAULT)
        assert details.error_code is None and details.error_message is None
    undefined = flags.get_string_details("never-defined", "d")
    assert (undefined.reason, undefined.error_code) == (Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)


def test_stale_values_while_the_store_is_down(client: Client, store: ControlledStore) -> None:
    """Requirement 2.2.5 (reason STALE) and section 5 (PROVIDER_STALE, then PROVIDER_READY)."""
    provider = VeltrixProvider(client)
    flags = feature_client(provider)
    events: list[ProviderEvent] = []
    flags.add_handler(
        ProviderEvent.PROVIDER_STALE, lambda d: events.append(ProviderEvent.PROVIDER_STALE)
    )
    flags.add_handler(
        ProviderEvent.PROVIDER_READY, lambda d: events.append(ProviderEvent.PROVIDER_READY)
    )
    assert flags.get_boolean_value("new-checkout", False) is True
    events.clear()
    store.go_down()
    assert wait_until(
        lambda: flags.get_boolean_details("new-checkout", False).reason == Reason.STALE
    )
    assert flags.get_boolean_value("new-checkout", False) is True  # last-known-good
    assert wait_until(lambda: ProviderEvent.PROVIDER_STALE in events), events
    store.come_back()
    assert wait_until(
        lambda: flags.get_boolean_details("new-checkout", False).reason == Reason.CACHED,
        timeout=5,
    )
    assert wait_until(lambda: events[-1] == ProviderEvent.PROVIDER_READY), events


def test_configuration_changed_events_name_the_flag(client: Client, store: ControlledStore) -> None:
    """Section 5: PROVIDER_CONFIGURATION_CHANGED with the changed flags, from the watch."""
    flags = feature_client(VeltrixProvider(client))
    seen: list[EventDetails] = []
    arrived = threading.Event()

    def on_change(details: EventDetails) -> None:
        seen.append(details)
        arrived.set()

    flags.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    store.put("flags/dark-mode/enabled", b"true")
    assert arrived.wait(5)
    assert seen[0].flags_changed == ["dark-mode"]
    assert wait_until(lambda: flags.get_boolean_value("dark-mode", False) is True)


def test_async_evaluation_through_the_async_client(store: ControlledStore) -> None:
    """Requirements 2.2.1 and 2.2.5 (STATIC, then CACHED) for the SDK's async API."""

    async def scenario() -> None:
        async with AsyncClient(store, cache=CachePolicy(ttl=60)) as client:
            flags = feature_client(VeltrixProvider(client))
            first = await flags.get_boolean_details_async("new-checkout", False)
            assert (first.value, first.reason) == (True, Reason.STATIC)
            again = await flags.get_boolean_details_async("new-checkout", False)
            assert (again.value, again.reason) == (True, Reason.CACHED)
            assert await flags.get_integer_value_async("max-items", 0) == 25
            assert await flags.get_object_value_async("rollout", {}) == {
                "enabled": True,
                "percent": 30,
                "region": "eu",
            }
            details = await flags.get_string_details_async("undefined", "d")
            assert (details.value, details.error_code) == ("d", ErrorCode.FLAG_NOT_FOUND)

    asyncio.run(scenario())
