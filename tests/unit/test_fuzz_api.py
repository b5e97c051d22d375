"""Fuzzing the Python API: URLs, keys, values, conversions and policies.

Whatever the input, a call succeeds or raises a VeltrixError with a one-line
message; no background thread dies of it. Stores are real (memory://, SQLite,
and the client libraries' own URL handling for every scheme).
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.fuzz import (
    KEYS,
    OPTION_NAMES,
    VALUES,
    assert_clean_error,
    fuzz_settings,
    store_urls,
    thread_errors,
)
from veltrix import CachePolicy, Client
from veltrix.codecs import JSON
from veltrix.errors import ConfigurationError, InvalidKeyError, VeltrixError


class Limits(BaseModel):
    rate: int
    burst: float = 1.0


TARGETS: list[Any] = [
    str,
    bytes,
    int,
    float,
    bool,
    JSON,
    list[int],
    dict[str, int],
    Limits,
    [int],  # not a type
    5,
    "NoSuchName",
]


@pytest.fixture(scope="module")
def client() -> Any:
    with Client("memory://", cache=CachePolicy(ttl=30, watch=False)) as c:
        c.put("seed/a", "1")  # so the hot-path dicts hold entries
        c.get("seed/a")
        c.get("seed/a", type=int)
        yield c


@pytest.fixture
def scratch_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # sqlite:///relative.db files land here
    return tmp_path


@fuzz_settings(200)
@given(url=store_urls())
def test_any_store_url_opens_or_raises_a_typed_error(scratch_dir: Path, url: str) -> None:
    with thread_errors() as died:
        try:
            client = Client(url, cache=CachePolicy(ttl=0, watch=False))
        except BaseException as exc:
            assert_clean_error(exc)
        else:
            client.close()
    assert not died, f"a background thread died: {died!r}"


@fuzz_settings(60)
@given(url=store_urls(["redis", "rediss", "redis+cluster", "redis+sentinel", "http", "x"]))
def test_any_cache_url_opens_or_raises_a_typed_error(url: str) -> None:
    with thread_errors() as died:
        try:
            client = Client("memory://", cache_url=url)
        except BaseException as exc:
            assert_clean_error(exc)
        else:
            client.close()
    assert not died, f"a background thread died: {died!r}"


@fuzz_settings(300)
@given(key=KEYS)
def test_any_key_reads_writes_or_raises_a_typed_error(client: Client, key: Any) -> None:
    calls = [
        lambda: client.get(key),
        lambda: client.get(key, None),
        lambda: client.get(key, None, type=int),
        lambda: client.get_entry(key),
        lambda: client.put(key, "v"),
        lambda: client.delete(key),
        lambda: client.list(key),
        lambda: client.get_model(key, Limits),
        lambda: client.invalidate(key) if isinstance(key, str) else None,
    ]
    for call in calls:
        try:
            call()
        except BaseException as exc:
            assert_clean_error(exc)


@fuzz_settings(300)
@given(value=VALUES, target=st.sampled_from(TARGETS))
def test_any_value_is_stored_and_converted_or_raises_a_typed_error(
    client: Client, value: Any, target: Any
) -> None:
    try:
        client.put("fuzz/value", value)
    except BaseException as exc:
        assert_clean_error(exc)
        return
    for read in (
        lambda: client.get("fuzz/value", type=target),
        lambda: client.get("fuzz/value"),
        lambda: client.get_model("fuzz", Limits),
    ):
        try:
            read()
        except BaseException as exc:
            assert_clean_error(exc)


@fuzz_settings(80)
@given(text=st.text(min_size=1, max_size=60), target=st.sampled_from(TARGETS[2:9]))
def test_a_failed_typed_read_of_a_secret_does_not_chain_the_value(
    client: Client, text: str, target: Any
) -> None:
    """The whole traceback (message, __cause__ and __context__) never shows the value."""
    secret = f"S3CR3T-{text}-{len(text)}"
    client.put("fuzz/secret", secret)
    try:
        client.get("fuzz/secret", type=target)
    except VeltrixError as exc:
        shown = "".join(traceback.format_exception(exc))
        assert secret not in shown and repr(secret)[1:-1] not in shown
        assert exc.__cause__ is None and exc.__context__ is None, shown
    else:
        pytest.fail(f"{secret!r} converted to {target!r}")


DURATION_VALUES = st.one_of(
    st.floats(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
FIELD_VALUES = {
    f.name: (
        st.one_of(st.booleans(), st.integers(-2, 2), st.none())
        if f.type == "bool"
        else DURATION_VALUES
    )
    for f in dataclasses.fields(CachePolicy)
}


@fuzz_settings(300)
@given(options=st.fixed_dictionaries({}, optional=FIELD_VALUES))
def test_policy_accepts_only_sane_values(options: dict[str, Any]) -> None:
    try:
        policy = CachePolicy(**options)
    except BaseException as exc:
        assert_clean_error(exc)
        assert isinstance(exc, ConfigurationError)
        return
    for field in dataclasses.fields(policy):
        value = getattr(policy, field.name)
        if field.type == "bool":
            assert isinstance(value, bool), field.name
        else:
            assert not isinstance(value, bool) and isinstance(value, int | float), field.name
            assert math.isfinite(value) and value >= 0, field.name


@fuzz_settings(60)
@given(
    options=st.fixed_dictionaries(
        {},
        optional={
            "ttl": st.floats(0, 1e9) | st.just(3.1e8),
            "negative_ttl": st.floats(0, 1e9),
            "stale_while_revalidate": st.floats(0, 1e9),
            "max_stale": st.floats(0, 1e9),
            "error_backoff": st.floats(0, 1e9),
            "retries": st.integers(0, 200),
        },
    )
)
def test_an_accepted_policy_never_breaks_a_client(options: dict[str, Any]) -> None:
    """Huge but accepted durations must not overflow the expiry thread or a read."""
    with thread_errors() as died:
        try:
            policy = CachePolicy(**options)
        except ConfigurationError:
            return
        with Client("memory://", cache=policy) as client:
            client.put("a", "1")
            assert client.get("a") == "1"
            assert client.get("missing", None) is None
            assert client.get("a", type=int) == 1
    assert not died, f"a background thread died: {died!r}"


def test_unhashable_key_on_a_warm_cache_is_an_invalid_key(client: Client) -> None:
    with pytest.raises(InvalidKeyError):
        client.get(["seed", "a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        client.get({"k": 1}, type=int)  # type: ignore[arg-type]


def test_nul_in_a_sqlite_path_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot open SQLite store"):
        Client(f"sqlite:///{tmp_path}/a\x00b.db")


def test_control_characters_in_a_url_are_escaped_in_the_message() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Client("zookeeper://bad\x1bhost\u2028x:2181/app")
    message = str(caught.value)
    assert "\x1b" not in message and "\u2028" not in message
    assert "\\x1b" in message


ANYTHING = st.one_of(VALUES, KEYS)
# Passing one of these twice is a TypeError from Python itself, not from Veltrix.
CLIENT_PARAMETERS = {
    "self",
    "store",
    "cache",
    "secret_prefixes",
    "cache_url",
    "last_known_good_path",
}


@fuzz_settings(150)
@given(
    store=ANYTHING,
    prefixes=ANYTHING,
    lkg_path=st.one_of(st.none(), st.integers(), st.sampled_from(["a\x00b", "\ud800", "."])),
    cache_url=st.one_of(st.none(), ANYTHING),
    options=st.dictionaries(
        (st.sampled_from(["url", "cls", *OPTION_NAMES]) | st.text(max_size=8)).filter(
            lambda name: name not in CLIENT_PARAMETERS
        ),
        ANYTHING,
        max_size=2,
    ),
)
def test_client_constructor_takes_anything(
    scratch_dir: Path,
    store: Any,
    prefixes: Any,
    lkg_path: Any,
    cache_url: Any,
    options: dict[str, Any],
) -> None:
    try:
        client = Client(
            store,
            secret_prefixes=prefixes,
            last_known_good_path=lkg_path,
            cache_url=cache_url,
            **options,
        )
    except BaseException as exc:
        assert_clean_error(exc)
    else:
        client.close()


@fuzz_settings(150)
@given(name=ANYTHING, callback=ANYTHING, version=ANYTHING, terraform=ANYTHING)
def test_other_entry_points_take_anything(
    client: Client, name: Any, callback: Any, version: Any, terraform: Any
) -> None:
    calls = [
        lambda: client.flag(name),
        lambda: client.watch(name, callback).stop(),
        lambda: client.is_secret(name),
        lambda: client.put("seed/b", "1", if_version=version),
        lambda: client.delete("seed/none", if_version=version),
        lambda: Client.from_terraform(terraform),
    ]
    for call in calls:
        try:
            call()
        except BaseException as exc:
            assert_clean_error(exc)


def test_a_lone_string_is_not_taken_for_secret_prefixes() -> None:
    with pytest.raises(InvalidKeyError, match="list of prefixes"):
        Client("memory://", secret_prefixes="secrets")  # type: ignore[arg-type]


def test_a_store_url_is_shown_escaped_in_reprs_and_logs() -> None:
    with Client("memory://x\x1by", cache=CachePolicy(watch=False)) as escaped:
        assert "\x1b" not in escaped.source and "\\x1b" in escaped.source
        assert "\x1b" not in repr(escaped)


def test_zookeeper_hosts_are_checked_before_kazoo_starts() -> None:
    from veltrix.adapters.zookeeper import ZooKeeperBackend

    with thread_errors() as died:
        with pytest.raises(ConfigurationError, match="invalid host name"):
            ZooKeeperBackend("a" * 64 + ":2181")
        with pytest.raises(ConfigurationError, match="invalid host name"):
            Client("zookeeper://127.0.0.1:2181," + "b" * 64 + ":2181/app")
    assert not died


@fuzz_settings(100)
@given(
    document=st.lists(
        st.sampled_from(["[", "{", ": :", "\t", "'", '"', "\n  - x", "&a", "*b", "%"])
        | st.text(max_size=5),
        max_size=6,
    ).map("".join),
    content_type=st.sampled_from(["application/json", "application/x-yaml", "text/plain", None]),
)
def test_an_unparseable_appconfig_document_does_not_chain_its_text(
    document: str, content_type: str | None
) -> None:
    """A YAML error quotes the document around the problem: it must not be chained."""
    from veltrix.adapters.documents import parse_document

    secret = "S3CR3T-appconfig-value"
    content = f"password: {secret} {document}".encode("utf-8", "surrogatepass")
    try:
        parse_document(content, content_type)
    except BaseException as exc:
        assert_clean_error(exc)
        assert secret not in "".join(traceback.format_exception(exc))


STORE_ARGUMENTS = st.one_of(
    ANYTHING, st.sampled_from(["memory://fuzz-src", "memory://fuzz-dst", "snap.jsonl", ""])
)


@fuzz_settings(100)
@given(
    source=STORE_ARGUMENTS,
    destination=STORE_ARGUMENTS,
    prefix=ANYTHING,
    concurrency=st.one_of(st.integers(-2, 20), ANYTHING),
    prefixes=ANYTHING,
    dry_run=st.booleans(),
)
def test_migrate_and_diff_take_anything(
    scratch_dir: Path,
    source: Any,
    destination: Any,
    prefix: Any,
    concurrency: Any,
    prefixes: Any,
    dry_run: bool,
) -> None:
    from veltrix import migration

    with Client("memory://fuzz-src") as seeded:  # named memory stores live while open
        seeded.put("app/a", "1")
        seeded.put("secrets/b", "2")
        for call in (
            lambda: migration.migrate(
                source,
                destination,
                prefix=prefix,
                concurrency=concurrency,
                secret_prefixes=prefixes,
                dry_run=dry_run,
            ),
            lambda: migration.diff(source, destination, prefix, secret_prefixes=prefixes),
        ):
            try:
                call()
            except BaseException as exc:
                assert_clean_error(exc)


@fuzz_settings(150)
@given(key=KEYS, target=st.sampled_from(TARGETS), value=VALUES, name=ANYTHING)
def test_async_client_takes_anything(key: Any, target: Any, value: Any, name: Any) -> None:
    """veltrix.aio.AsyncClient: the same promise from coroutines."""
    import asyncio

    from veltrix.aio import AsyncClient

    async def scenario() -> None:
        async with AsyncClient("memory://", cache=CachePolicy(watch=False)) as client:
            await client.put("seed/a", "1")
            await client.get("seed/a")  # warm: the hot path holds entries
            await client.get("seed/a", type=int)
            calls = [
                lambda: client.get(key),
                lambda: client.get(key, None, type=target),
                lambda: client.get("seed/a", None, type=target),
                lambda: client.get_entry(key),
                lambda: client.get_model(key, Limits),
                lambda: client.get_model("seed", target),
                lambda: client.put(key, value),
                lambda: client.put("seed/b", value),
                lambda: client.delete(key),
                lambda: client.list(key),
                lambda: client.flag(name),
            ]
            for call in calls:
                try:
                    await call()
                except BaseException as exc:
                    assert_clean_error(exc)

    asyncio.run(scenario())
