"""What the Kubernetes adapter does beyond the shared conformance suite: the key
encoding (reversible, valid object names and data keys), per-key versions within one
object, the object size limit, objects written by other tools, typed errors for 401/403
with no secret in messages or logs, and watches that survive 410 Gone.

Most tests use the test server started by ``scripts/services up kubernetes``; the
watch-history tests start one in this process with a short event history (the same
server code, over real HTTP)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integration.test_kubernetes_conformance import fresh_backend, server_kubeconfig
from tests.servers.kubernetes.server import KubernetesServer
from tests.servers.kubernetes.store import data_key_errors, is_subdomain
from veltrix.adapters.kubernetes import (
    MAX_VALUE_BYTES,
    KubernetesBackend,
    decode_data_key,
    decode_name,
    encode_data_key,
    encode_name,
)
from veltrix.backend import Absent
from veltrix.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidKeyError,
    ValueTooLargeError,
    VersionConflictError,
)
from veltrix.registry import open_backend
from veltrix.testing.conformance import ChangeRecorder

SEGMENT = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
PATHS = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)


@given(PATHS)
@settings(max_examples=120, deadline=None)
def test_object_names_are_valid_and_reversible(path: str) -> None:
    name = encode_name(path)
    assert is_subdomain(name), name
    assert decode_name(name) == path


@given(st.one_of(st.just(""), PATHS))
@settings(max_examples=120, deadline=None)
def test_data_keys_are_valid_and_reversible(rest: str) -> None:
    data_key = encode_data_key(rest)
    assert data_key_errors(data_key) == [], data_key
    assert decode_data_key(data_key) == rest


def test_distinct_keys_never_share_a_name_or_data_key() -> None:
    names = ["a", "A", "a_", "a-", "a.", "a/b", "a-3b", "-a", "_a", ".a", "a--b"]
    assert len({encode_name(n) for n in names}) == len(names)
    assert len({encode_data_key(n) for n in names}) == len(names)
    assert decode_name("vx-a-9") is None and decode_name("configmap") is None
    assert decode_data_key("a_x") is None and decode_data_key("_") == ""


def test_urls_refuse_credentials_and_bad_namespaces() -> None:
    for url in ("k8s://Bad_NS/app", "k8s://-ns/app", "k8s:///app", "k8s://ns/app?token=abc"):
        with pytest.raises(ConfigurationError):
            open_backend(url, kubeconfig=server_kubeconfig())
    with pytest.raises(ConfigurationError, match="unknown option"):
        open_backend("k8s://ns/app?kindd=secret", kubeconfig=server_kubeconfig())


def test_missing_kubeconfig_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="kubeconfig"):
        open_backend("k8s://default/app", kubeconfig=str(tmp_path / "absent"))


@pytest.fixture
def backend() -> Iterator[KubernetesBackend]:
    yield from fresh_backend(server_kubeconfig())


def test_sibling_writes_keep_a_keys_version(backend: KubernetesBackend) -> None:
    v1 = backend.put("app/one", b"1")
    backend.put("app/two", b"2")  # same object (first segment "app")
    entry = backend.get("app/one")
    assert entry is not None and entry.version == v1
    v2 = backend.put("app/one", b"1b", if_version=v1)  # CAS still holds
    with pytest.raises(VersionConflictError):
        backend.put("app/one", b"1c", if_version=v1)
    assert backend.delete("app/one", if_version=v2)
    two = backend.get("app/two")
    assert two is not None and two.value == b"2"


def test_object_over_one_mib_is_refused_whole(backend: KubernetesBackend) -> None:
    backend.put("big/a", b"a" * (600 * 1024))
    with pytest.raises(ValueTooLargeError):
        backend.put("big/b", b"b" * (600 * 1024))
    assert backend.get("big/b") is None
    kept = backend.get("big/a")
    assert kept is not None and len(kept.value) == 600 * 1024
    with pytest.raises(ValueTooLargeError):
        backend.put("big/c", b"c" * (MAX_VALUE_BYTES + 1))


def test_too_long_keys_are_invalid_before_io(backend: KubernetesBackend) -> None:
    with pytest.raises(InvalidKeyError, match="object name"):
        backend.put("A" * 200, b"x")  # uppercase letters take two characters each
    with pytest.raises(InvalidKeyError, match="data key"):
        backend.check_key("a/" + "_" * 200)


def test_binary_and_text_values_use_the_right_fields(backend: KubernetesBackend) -> None:
    from kubernetes import client

    backend.put("mix/text", "zoë".encode())
    backend.put("mix/bin", b"\xff\x00")
    api = client.CoreV1Api(backend._api_client)
    obj = api.read_namespaced_config_map(encode_name(f"{backend.prefix}/mix"), "default")
    assert obj.data == {"text": "zoë"}
    assert obj.binary_data == {"bin": "/wA="}
    assert obj.metadata.labels["app.kubernetes.io/managed-by"] == "veltrix"
    backend.put("mix/bin", b"now text")  # moves from binaryData to data
    obj = api.read_namespaced_config_map(encode_name(f"{backend.prefix}/mix"), "default")
    assert obj.data == {"text": "zoë", "bin": "now text"} and not obj.binary_data


def test_keys_written_by_other_tools(backend: KubernetesBackend) -> None:
    """A data key another tool added is read (version ``rv...``) when it decodes, and
    ignored when it does not; compare-and-set works with that version."""
    from kubernetes import client

    backend.put("ext/own", b"mine")
    api = client.CoreV1Api(backend._api_client)
    name = encode_name(f"{backend.prefix}/ext")
    api.patch_namespaced_config_map(name, "default", {"data": {"added": "x", "a_x": "foreign"}})
    entry = backend.get("ext/added")
    assert entry is not None and entry.value == b"x" and entry.version.startswith("rv")
    assert {e.key for e in backend.list("ext")} == {"ext/own", "ext/added"}
    backend.put("ext/added", b"y", if_version=entry.version)
    with pytest.raises(VersionConflictError):
        backend.put("ext/added", b"z", if_version=Absent)
    backend.delete("ext/own")
    backend.delete("ext/added")
    leftover = api.read_namespaced_config_map(name, "default")  # the foreign key stays
    assert leftover.data == {"a_x": "foreign"}
    api.delete_namespaced_config_map(name, "default")


def test_read_only_credentials_are_access_denied(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = "k8s://default/veltrix/denied?kind=secret"
    other_secret = b"hunter2" + b"-other-secret"  # not literal on the failing line
    writer = open_backend(url, kubeconfig=server_kubeconfig())
    reader = open_backend(url, kubeconfig=server_kubeconfig(), context="veltrix-test-reader")
    try:
        writer.put("db/password", b"hunter2-very-secret")
        entry = reader.get("db/password")
        assert entry is not None and entry.secret and entry.value == b"hunter2-very-secret"
        with pytest.raises(AccessDeniedError) as caught:
            reader.put("db/password", other_secret)
        chain: list[BaseException] = []
        error: BaseException | None = caught.value
        while error is not None:
            chain.append(error)
            error = error.__cause__ or error.__context__
        tokens = [
            line.split("token:", 1)[1].strip()
            for line in Path(server_kubeconfig()).read_text().splitlines()
            if "token:" in line
        ]
        import traceback

        shown = "".join(traceback.format_exception(caught.value)) + caplog.text
        shown += repr(reader) + reader.url  # type: ignore[attr-defined]
        for error in chain:
            assert "hunter2" not in str(error) and "hunter2" not in repr(error)
        assert "403" in str(caught.value)
        for planted in ["hunter2", *tokens]:
            assert planted not in shown
    finally:
        writer.delete("db/password")
        writer.close()
        reader.close()


def test_wrong_token_is_access_denied(tmp_path: Path) -> None:
    text = Path(server_kubeconfig()).read_text()
    wrong = tmp_path / "kubeconfig"
    wrong.write_text(
        "\n".join(
            "    token: not-the-token" if "token:" in line else line for line in text.splitlines()
        )
        + "\n"
    )
    backend = open_backend("k8s://default/veltrix/anon", kubeconfig=str(wrong))
    with pytest.raises(AccessDeniedError, match="401"):
        backend.get("any/key")
    backend.close()


# -- watches against a short event history (a server in this process) -------------------


@pytest.fixture
def short_history_server(tmp_path: Path) -> Iterator[tuple[KubernetesServer, str]]:
    def start(bookmark_interval: float) -> tuple[KubernetesServer, str]:
        server = KubernetesServer(("127.0.0.1", 0), history=3, bookmark_interval=bookmark_interval)
        threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
        servers.append(server)
        config = tmp_path / f"kubeconfig-{len(servers)}"
        config.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: t, cluster: {{server: 'http://127.0.0.1:{server.server_port}'}}}}]\n"
            "users: [{name: t, user: {}}]\n"
            "contexts: [{name: t, context: {cluster: t, user: t}}]\ncurrent-context: t\n"
        )
        return server, str(config)

    servers: list[KubernetesServer] = []
    yield start  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("bookmarks", [False, True], ids=["relist-on-410", "bookmarks"])
def test_watch_survives_an_expired_resource_version(
    short_history_server: object, bookmarks: bool
) -> None:
    """Changes elsewhere push the watch's version out of the kept history. Without
    bookmarks the renewed watch gets 410 Gone and relists; with them (every 0.2 s) the
    version stays recent and no 410 happens. Either way changes keep arriving."""
    server, kubeconfig = short_history_server(0.2 if bookmarks else 60.0)  # type: ignore[operator]
    backend = open_backend("k8s://default/app?watch_timeout=1", kubeconfig=kubeconfig)
    backend.put("watched/a", b"0")
    recorder = ChangeRecorder()
    watch = backend.watch("watched", recorder)
    try:
        time.sleep(0.5)  # the watch request is open (else its very first request may get 410)
        for i in range(8):  # another object: not sent to this watch, but fills the history
            backend.put("other/x", str(i).encode())
        time.sleep(2.5)  # the server ends the watch request after 1 s; it is renewed
        backend.put("watched/a", b"1")
        assert recorder.wait_for(lambda ch: ("watched/a", b"1") in recorder.states(), 10)
        assert recorder.states() == [("watched/a", b"1")]
        assert (server.expired_watches > 0) is not bookmarks
    finally:
        watch.stop()
        backend.close()


def test_watch_relists_what_changed_while_the_server_was_down(tmp_path: Path) -> None:
    """The API server goes away (its watch streams drop); while it is down the watched
    key changes and the history is compacted; a server on the same address with the
    same state comes back. The watch reconnects, relists and delivers the change."""
    from tests.servers.kubernetes.store import merge_patch

    first = KubernetesServer(("127.0.0.1", 0), history=3, bookmark_interval=60.0)
    threading.Thread(target=first.serve_forever, args=(0.1,), daemon=True).start()
    port = first.server_port
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: t, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: t, user: {}}]\n"
        "contexts: [{name: t, context: {cluster: t, user: t}}]\ncurrent-context: t\n"
    )
    backend = open_backend("k8s://default/app", kubeconfig=str(config), timeout=2)
    backend.put("watched/a", b"0")
    backend.put("watched/b", b"0")
    recorder = ChangeRecorder()
    watch = backend.watch("watched", recorder)
    second: KubernetesServer | None = None
    try:
        time.sleep(0.5)
        first.shutdown()
        first.server_close()
        store = first.store
        name = encode_name("app/watched")
        store.patch("configmaps", "default", name, lambda o: merge_patch(o, {"data": {"a": "1"}}))
        store.patch("configmaps", "default", name, lambda o: merge_patch(o, {"data": {"b": None}}))
        store.compact()
        second = KubernetesServer(("127.0.0.1", port), history=3)
        second.store = store
        threading.Thread(target=second.serve_forever, args=(0.1,), daemon=True).start()
        assert recorder.wait_for(lambda ch: len(ch) >= 2, 15), recorder.states()
        assert recorder.states() == [("watched/a", b"1"), ("watched/b", None)]
        backend.put("watched/a", b"2")  # and the renewed stream delivers again
        assert recorder.wait_for(lambda ch: len(ch) >= 3, 10), recorder.states()
        assert recorder.states()[-1] == ("watched/a", b"2")
    finally:
        watch.stop()
        backend.close()
        if second is not None:
            second.shutdown()
            second.server_close()
