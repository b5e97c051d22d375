"""Secret prefixes for stores that have no secret notion of their own.

SQLite, memory, ZooKeeper, Consul, Redis and AppConfig hold plain bytes: nothing in
them says a value is a secret. A store URL may say it instead, with
``?secret_prefixes=secrets,creds`` (comma-separated), and so may the environment
variable ``VELTRIX_SECRET_PREFIXES`` (the same comma-separated form, or a JSON list)
for every store a process opens. :func:`veltrix.registry.open_backend` then returns
the store wrapped in :class:`SecretFlagging`, which flags every entry under those
prefixes ``secret`` as it comes out of the store, so everything downstream (the
CLI's masking, the shared cache's encryption, ``export``'s warning, migration's
secret handling) treats it as a store-flagged secret.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

from veltrix.backend import Backend, Change, Entry
from veltrix.errors import ConfigurationError, InvalidKeyError
from veltrix.keys import in_prefix, normalize_prefixes

ENV_VAR = "VELTRIX_SECRET_PREFIXES"
URL_OPTION = "secret_prefixes"


def parse_prefixes(text: str, where: str) -> tuple[str, ...]:
    """``"a,b/c"`` (or a JSON list of strings) -> canonical prefixes."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise ConfigurationError(f"{where}: not a JSON list of prefixes") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigurationError(f"{where}: not a JSON list of prefixes")
    else:
        items = [part for part in text.split(",") if part.strip()]
    try:
        return tuple(p for p in normalize_prefixes([i.strip() for i in items]) if p)
    except InvalidKeyError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def from_env() -> tuple[str, ...]:
    text = os.environ.get(ENV_VAR, "")
    return parse_prefixes(text, ENV_VAR) if text.strip() else ()


def split_url(url: str) -> tuple[str, tuple[str, ...]]:
    """``url`` without its ``secret_prefixes`` option, and the prefixes it named."""
    base, _, query = url.partition("?")  # by hand: urlunsplit would drop sqlite:///'s "//"
    if URL_OPTION not in query:
        return url, ()
    pairs = parse_qsl(query, keep_blank_values=True)
    given = [value for name, value in pairs if name == URL_OPTION]
    if len(given) > 1:
        raise ConfigurationError(f"option {URL_OPTION!r} given twice")
    rest = urlencode([(name, value) for name, value in pairs if name != URL_OPTION])
    stripped = f"{base}?{rest}" if rest else base
    return stripped, parse_prefixes(given[0], f"URL option {URL_OPTION}") if given else ()


class SecretFlagging:
    """A store whose entries under :attr:`secret_prefixes` come out flagged secret.

    Everything else is the wrapped store's own: attribute look-ups fall through, so
    the optional abilities (``list``, ``watch``, ``put_many``...) are exactly the
    store's (``isinstance(x, SupportsWatch)`` stays truthful), and so is its ``url``
    (provenance names the store, not the prefixes).
    """

    def __init__(self, backend: Backend, prefixes: tuple[str, ...]) -> None:
        self._backend = backend
        self.secret_prefixes = prefixes

    @property
    def wrapped(self) -> Backend:
        return self._backend

    def _flag(self, entry: Entry) -> Entry:
        if entry.secret or not any(in_prefix(entry.key, p) for p in self.secret_prefixes):
            return entry
        return dataclasses.replace(entry, secret=True)

    def get(self, key: str) -> Entry | None:
        entry = self._backend.get(key)
        return None if entry is None else self._flag(entry)

    def close(self) -> None:
        self._backend.close()

    def __repr__(self) -> str:
        return repr(self._backend)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._backend, name)
        if name == "list":
            return self._list(attribute)
        if name == "watch":
            return self._watch(attribute)
        return attribute

    def _list(self, listing: Callable[[str], Iterator[Entry]]) -> Callable[[str], Iterator[Entry]]:
        def list_flagged(prefix: str) -> Iterator[Entry]:
            return (self._flag(entry) for entry in listing(prefix))

        return list_flagged

    def _watch(self, watching: Callable[..., Any]) -> Callable[..., Any]:
        def watch_flagged(prefix: str, on_change: Callable[[Change], None]) -> Any:
            def flagged(change: Change) -> None:
                if change.entry is not None:
                    change = dataclasses.replace(change, entry=self._flag(change.entry))
                on_change(change)

            return watching(prefix, flagged)

        return watch_flagged


def with_secret_prefixes(url: str, open_store: Callable[[str], Backend]) -> Backend:
    """Open ``url`` (minus its ``secret_prefixes`` option) with ``open_store``; wrapped in
    :class:`SecretFlagging` when the URL or :data:`ENV_VAR` names secret prefixes."""
    stripped, prefixes = split_url(url)
    prefixes = tuple(dict.fromkeys((*prefixes, *from_env())))
    backend = open_store(stripped)
    if not prefixes:
        return backend
    return SecretFlagging(backend, prefixes)  # type: ignore[return-value]
