"""URL parsing, option handling and redaction shared by every adapter.

Adapters take options from the URL query string and from keyword arguments; an
option nobody consumed is a :class:`~veltrix.errors.ConfigurationError` with a
"did you mean" hint, never silently ignored.
"""

from __future__ import annotations

import builtins
import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from veltrix.errors import ConfigurationError, one_line

_SENSITIVE_QUERY = re.compile(r"(token|password|passwd|secret|key|credential|auth)", re.I)
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# A URL's userinfo in free text: ``scheme://user:password@`` (the user is kept).
# One slash is enough: a URL given as a file path comes back as ``redis:/:pw@host``.
_USERINFO_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*:/+[^\s/@:]*):[^\s/@]*@")
# A sensitive query option in free text: ``?token=...`` / ``&password=...``.
_QUERY_IN_TEXT = re.compile(
    r"([?&][^=&\s#]*(?:token|password|passwd|secret|key|credential|auth)[^=&\s#]*=)[^&\s#]*",
    re.I,
)


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it, and sensitive query values, masked.

    For messages Veltrix does not build itself (a command-line parser's usage
    error quoting an argument, for example), where the URLs cannot be redacted
    one by one with :func:`redact_url`.
    """
    text = _USERINFO_IN_TEXT.sub(r"\1:***@", text)
    return _QUERY_IN_TEXT.sub(r"\1***", text)


def check_host(host: str, where: str) -> str:
    """Return ``host`` if it can name a server, else raise :class:`ConfigurationError`.

    An IP address, or a name whose dot-separated labels are 1-63 characters and
    valid IDNA. Checked when a URL is parsed, because the socket layer raises
    ``UnicodeError`` for such a name at connect time, deep inside a client
    library's thread (kazoo's connection thread dies of it; redis-py raises it
    from a read).
    """
    if not host.isprintable() or any(ch.isspace() for ch in host):
        raise ConfigurationError(f"{where}: invalid host name {host!r}")
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(literal.split("%", 1)[0])
        return host
    except ValueError:
        pass
    try:
        host.encode("idna")
    except UnicodeError:
        pass  # raised below, unchained: nothing in the codec's error is worth keeping
    else:
        return host
    raise ConfigurationError(
        f"{where}: invalid host name {host!r} (each dot-separated label must be "
        "1 to 63 characters of a valid internationalized domain name)"
    )


def redact_url(url: str) -> str:
    """The URL to display: any password and sensitive query values replaced by ``***``,
    control characters escaped (the result goes into messages and log lines)."""
    return one_line(_redact_url(url))


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if "@" not in parts.netloc and not any(_SENSITIVE_QUERY.search(name) for name, _ in pairs):
        return url  # nothing to hide: keep the URL exactly as written
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostinfo}" if ":" in userinfo else f"{user}@{hostinfo}"
    query = "&".join(
        f"{name}={'***' if _SENSITIVE_QUERY.search(name) else value}" for name, value in pairs
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class ParsedURL:
    """A store URL split into the parts adapters need."""

    url: str
    scheme: str
    netloc: str
    path: str
    query: dict[str, str] = field(default_factory=dict)

    @property
    def redacted(self) -> str:
        return redact_url(self.url)

    def hosts(self, default_port: int) -> list[tuple[str, int]]:
        """``h1:p1,h2`` -> ``[(h1, p1), (h2, default_port)]``."""
        if not self.netloc:
            raise ConfigurationError(f"{self.redacted}: no host given")
        result = []
        for item in self.netloc.split(","):
            host, sep, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
            if not sep:
                host, port = item, ""
            if not host:
                raise ConfigurationError(f"{self.redacted}: empty host in {self.netloc!r}")
            check_host(host, self.redacted)
            try:
                number = int(port) if port else default_port
            except ValueError as exc:
                raise ConfigurationError(f"{self.redacted}: bad port {port!r}") from exc
            if not 0 < number < 65536:
                raise ConfigurationError(f"{self.redacted}: port {number} out of range")
            result.append((host, number))
        return result


def parse_url(url: str, schemes: Iterable[str] | None = None) -> ParsedURL:
    """Split ``url``; reject credentials in it and duplicate query options."""
    if not isinstance(url, str):
        raise ConfigurationError(f"not a store URL: a {type(url).__name__} (expected a string)")
    if "://" not in url:
        raise ConfigurationError(f"not a store URL: {redact_url(url)!r} (expected scheme://...)")
    scheme = url.split("://", 1)[0].lower()
    if not _SCHEME_RE.match(scheme):
        raise ConfigurationError(f"invalid URL scheme {scheme!r}")
    if schemes is not None and scheme not in tuple(schemes):
        raise ConfigurationError(f"URL scheme {scheme!r} is not one of {', '.join(schemes)}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(f"malformed URL {redact_url(url)!r}: {exc}") from exc
    if "@" in parts.netloc:
        raise ConfigurationError(
            f"{redact_url(url)}: credentials do not belong in URLs; use the store's usual "
            "environment variables or credential files"
        )
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name in query:
            raise ConfigurationError(f"{redact_url(url)}: option {name!r} given twice")
        query[name] = value
    return ParsedURL(url=url, scheme=scheme, netloc=parts.netloc, path=parts.path, query=query)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Options:
    """Options from a URL query string merged with keyword arguments.

    Read each option with a typed getter, then call :meth:`finish`; leftovers raise.
    Keyword arguments win over the query string.
    """

    def __init__(self, query: Mapping[str, str], kwargs: Mapping[str, Any], *, where: str) -> None:
        self._values: dict[str, Any] = {**query, **kwargs}
        self._known: set[str] = set()
        self._where = where

    def _take(self, name: str) -> Any:
        self._known.add(name)
        return self._values.pop(name, None)

    def _bad(self, name: str, value: Any, expected: str) -> ConfigurationError:
        shown = "***" if _SENSITIVE_QUERY.search(name) else repr(value)
        return ConfigurationError(f"{self._where}: option {name}={shown} must be {expected}")

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str | None:
        value = self._take(name)
        return default if value is None else builtins.str(value)

    def int(
        self, name: builtins.str, default: builtins.int, *, minimum: builtins.int | None = None
    ) -> builtins.int:
        value = self._take(name)
        if value is None:
            return default
        try:
            number = builtins.int(value)
        except (TypeError, ValueError) as exc:
            raise self._bad(name, value, "an integer") from exc
        if minimum is not None and number < minimum:
            raise self._bad(name, value, f"at least {minimum}")
        return number

    def float(
        self, name: builtins.str, default: builtins.float, *, minimum: builtins.float | None = None
    ) -> builtins.float:
        value = self._take(name)
        if value is None:
            return default
        try:
            number = builtins.float(value)
        except (TypeError, ValueError) as exc:
            raise self._bad(name, value, "a number") from exc
        if minimum is not None and number < minimum:
            raise self._bad(name, value, f"at least {minimum}")
        return number

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self._take(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = builtins.str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._bad(name, value, "true or false")

    def choice(
        self, name: builtins.str, default: builtins.str, choices: Iterable[builtins.str]
    ) -> builtins.str:
        allowed = tuple(choices)
        value = self.str(name, default)
        if value is None or value not in allowed:
            raise self._bad(name, value, "one of " + ", ".join(allowed))
        return value

    def finish(self) -> None:
        """Raise for every option that no getter consumed."""
        if self._values:
            name = sorted(self._values)[0]
            hint = did_you_mean(name, self._known)
            known = ", ".join(sorted(self._known)) or "none"
            raise ConfigurationError(
                f"{self._where}: unknown option {name!r}{hint}; known options: {known}"
            )


__all__ = [
    "Options",
    "ParsedURL",
    "check_host",
    "did_you_mean",
    "parse_url",
    "redact_text",
    "redact_url",
]
