"""Pure parts of the L2 / last-known-good machinery: key parsing, sealing, breaker, snapshot file."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from veltrix import CachePolicy, Client
from veltrix.backend import Entry
from veltrix.errors import BackendUnavailableError, ConfigurationError
from veltrix.lkg import LastKnownGoodFile
from veltrix.secrets_crypto import SecretBox, box_from_env, parse_key
from veltrix.shared_cache import CircuitBreaker


def test_key_formats_and_errors() -> None:
    raw = os.urandom(32)
    assert parse_key(base64.b64encode(raw).decode(), name="K") == raw
    assert parse_key(base64.urlsafe_b64encode(raw).decode().rstrip("="), name="K") == raw
    assert parse_key(raw.hex(), name="K") == raw
    with pytest.raises(ConfigurationError) as info:
        parse_key("not-a-key-secretvalue", name="VELTRIX_CACHE_KEY")
    assert "secretvalue" not in str(info.value)
    assert box_from_env({}) is None


def test_seal_open_rotation_and_aad() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed = SecretBox([old]).seal(b"hunter2", b"k1")
    assert b"hunter2" not in sealed
    rotated = box_from_env(
        {
            "VELTRIX_CACHE_KEY": base64.b64encode(new).decode(),
            "VELTRIX_CACHE_OLD_KEYS": base64.b64encode(old).decode(),
        }
    )
    assert rotated is not None
    assert rotated.open(sealed, b"k1") == b"hunter2"
    assert rotated.open(sealed, b"k2") is None  # bound to its key name
    assert SecretBox([new]).open(sealed, b"k1") is None
    assert SecretBox([new]).open(b"\x01short", b"k1") is None
    assert "hunter2" not in repr(rotated)


def test_breaker_opens_probes_and_closes() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=0.05)
    assert breaker.allow()
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.is_open and not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()  # one probe
    assert not breaker.allow()  # only one
    breaker.failure()  # probe failed: longer cool-down
    assert not breaker.allow()
    time.sleep(0.11)
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open and breaker.allow()


def test_snapshot_round_trip_secrets_and_other_store(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    entries = {
        "a/b": (Entry("a/b", b"\x00bin", "7", "application/octet-stream"), 1000.0),
        "secrets/pw": (Entry("secrets/pw", b"hunter2", "3"), 1000.0),
    }

    def is_secret(key: str, entry: Entry | None) -> bool:
        return key.startswith("secrets/")

    plain = LastKnownGoodFile(path, store="sqlite:///x", box=None, is_secret=is_secret)
    assert plain.write(entries) == 1  # no key: the secret is left out
    assert b"hunter2" not in path.read_bytes()
    assert set(plain.load()) == {"a/b"}
    loaded, fetched = plain.load()["a/b"]
    assert (loaded.value, loaded.version, fetched) == (b"\x00bin", "7", 1000.0)
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    box = SecretBox([os.urandom(32)])
    sealed = LastKnownGoodFile(path, store="sqlite:///x", box=box, is_secret=is_secret)
    assert sealed.write(entries) == 2
    assert b"hunter2" not in path.read_bytes()
    assert sealed.load()["secrets/pw"][0].value == b"hunter2"
    assert set(plain.load()) == {"a/b"}  # without the key the secret is skipped
    assert (
        LastKnownGoodFile(path, store="sqlite:///other", box=box, is_secret=is_secret).load() == {}
    )
    path.write_text("{torn")
    assert sealed.load() == {}
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]


class _DownStore:
    """A store that is down (its reads raise its transient error)."""

    schemes = ("down",)
    transient_errors = (ConnectionError,)
    max_value_bytes = None
    url = "down://store"

    def get(self, key: str) -> Entry | None:
        raise ConnectionError("down")

    def close(self) -> None:
        pass


def test_client_serves_last_known_good_within_max_stale(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    LastKnownGoodFile(path, store="down://store", box=None, is_secret=lambda k, e: False).write(
        {
            "fresh/key": (Entry("fresh/key", b"1", "1"), time.time() - 10),
            "old/key": (Entry("old/key", b"2", "1"), time.time() - 10_000),
        }
    )
    policy = CachePolicy(ttl=5, max_stale=3600, retries=0)
    with Client(_DownStore(), cache=policy, last_known_good_path=path) as client:
        assert client.get("fresh/key") == "1"
        with pytest.raises(BackendUnavailableError):
            client.get("old/key")  # past max_stale
        assert client.stats()["last_known_good_served"] == 1
    document = json.loads(path.read_text())
    assert set(document["entries"]) == {"fresh/key", "old/key"}  # kept for the next start


def test_snapshot_path_is_a_deprecated_name_of_last_known_good_path(tmp_path: Path) -> None:
    path = tmp_path / "lkg.json"
    LastKnownGoodFile(path, store="down://store", box=None, is_secret=lambda k, e: False).write(
        {"k": (Entry("k", b"1", "1"), time.time())}
    )
    policy = CachePolicy(ttl=5, max_stale=3600, retries=0)
    with pytest.warns(DeprecationWarning, match="last_known_good_path"):
        client = Client(_DownStore(), cache=policy, snapshot_path=path)
    with client:
        assert client.get("k") == "1"
        assert client.stats()["last_known_good_served"] == 1
