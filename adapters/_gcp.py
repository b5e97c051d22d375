"""What the GCP adapters share: client construction, calls bounded in time, and the
mapping of API statuses to Veltrix errors.

Secret Manager (:mod:`veltrix.adapters.gcp_secret_manager`) and Parameter Manager
(:mod:`veltrix.adapters.gcp_parameter_manager`) use generated clients of the same shape
(``google.api_core`` errors and retries, gRPC or REST transports, ``google.auth``
credentials), so one client factory and one error translation serve both. The key and
value codec lives apart in :mod:`veltrix.adapters.gcp_codec` (no Google libraries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any, ClassVar, TypeVar

import google_crc32c
import grpc
import requests
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.client_options import ClientOptions
from google.api_core.retry_async import AsyncRetry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.oauth2.credentials import Credentials as TokenCredentials

from veltrix.adapters._requests_env import settle_environment
from veltrix.backend import Change, Entry
from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
)
from veltrix.keys import join, normalize_prefix
from veltrix.log_events import event
from veltrix.log_redaction import protect_loggers
from veltrix.loop_bound import LoopBound
from veltrix.urls import Options, ParsedURL
from veltrix.watching import PollingWatch, WatchSet

ClientT = TypeVar("ClientT")
T = TypeVar("T")

#: Reads in flight at once on a store's asyncio client (``aget``); more wait for one.
#: Starting a call costs the loop a few hundred µs (request and response messages,
#: the client library's wrappers): bounding them bounds what one loop iteration does.
ASYNC_READS = 8

#: One API call a read needs: the client method's name and its request.
Call = tuple[str, dict[str, Any]]
#: A read written once for the blocking and the asyncio client: a generator that yields
#: the calls it needs and is sent each call's response, or thrown its ``ApiFailure``
#: (see :meth:`GcpStore._run` and :meth:`GcpStore._arun`).
Steps = Generator[Call, Any, T]


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli) of ``data``, as the API's ``data_crc32c`` fields carry it."""
    return int(google_crc32c.value(data))


# -- errors ------------------------------------------------------------------------------

_HTTP_STATUS = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
TRANSIENT_STATUS = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "UNKNOWN"}
)
DENIED_STATUS = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})

#: What the client library's retry (and the caching client's) treats as transient.
RETRYABLE: tuple[type[Exception], ...] = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.ResourceExhausted,
    gexc.InternalServerError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)
#: A backend's ``transient_errors``.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (*RETRYABLE, gexc.RetryError)


def status_of(exc: gexc.GoogleAPICallError) -> str:
    """The canonical status (``NOT_FOUND``...) of an API error, over gRPC or REST."""
    code = getattr(exc, "grpc_status_code", None)
    if code is not None:
        return str(code.name)
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            status = response.json().get("error", {}).get("status")
        except (ValueError, AttributeError):
            status = None
        if isinstance(status, str) and status:
            return status
    http = exc.code if isinstance(exc.code, int) else 0
    if http == 400:
        return "INVALID_ARGUMENT"
    return _HTTP_STATUS.get(http, "UNAVAILABLE" if http >= 500 else "UNKNOWN")


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def api_message(exc: gexc.GoogleAPICallError) -> str:
    """The server's message of an API error, without the REST client's request prefix."""
    message = exc.message or str(exc)
    # REST errors are prefixed with "GET http://host/v1/...: " by the client library.
    head, sep, tail = message.partition(": ")
    if sep and (head.startswith(("GET ", "POST ", "PATCH ", "DELETE "))):
        message = tail
    return one_line(message)


class ApiFailure(Exception):
    """A non-transient API error the caller decides about (NOT_FOUND, ALREADY_EXISTS...)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def veltrix(self) -> BackendError:
        return BackendError(self.message)


_TRANSPORT_ERRORS = (requests.exceptions.RequestException, auth_exceptions.TransportError)


def _local_failure(what: str, exc: Exception) -> BackendError:
    """A call that got no answer: the transport failed (unavailable) or the credentials
    were refused (denied; e.g. a 401 over REST makes the session refresh the credentials,
    which fails for anonymous or static-token credentials)."""
    if isinstance(exc, _TRANSPORT_ERRORS):
        return BackendUnavailableError(f"{what}: {one_line(exc)}")
    return AccessDeniedError(f"{what}: UNAUTHENTICATED: credentials refused ({type(exc).__name__})")


#: Turns an API error (its status and message) into a Veltrix error before the common
#: mapping does, or returns None to leave it to the common mapping.
Refine = Callable[[str, str, str], Exception | None]


def call_api(
    method: Callable[..., Any],
    request: dict[str, Any],
    *,
    what: str,
    service: str,
    retry: gretry.Retry | None,
    timeout: float,
    deadline: float,
    owner: object,
    closed: Callable[[], bool],
    refine: Refine | None = None,
) -> Any:
    """One API call bounded in time. Errors become Veltrix errors: denied statuses
    :class:`AccessDeniedError`, transient ones and transport failures
    :class:`BackendUnavailableError`; the rest is raised as :class:`ApiFailure` for the
    caller to decide about (NOT_FOUND, ALREADY_EXISTS...). ``refine(what, status,
    message)`` sees non-transient errors first."""
    if closed():
        raise BackendUnavailableError(f"{owner!r} is closed")
    try:
        return method(request=request, retry=retry, timeout=timeout)
    except CALL_ERRORS as exc:
        error = api_error(exc, what, service, deadline, owner, closed, refine)
        if error is exc:
            raise
        raise error from exc


async def acall_api(
    method: Callable[..., Awaitable[Any]],
    request: dict[str, Any],
    *,
    what: str,
    service: str,
    retry: AsyncRetry | None,
    timeout: float,
    deadline: float,
    owner: object,
    closed: Callable[[], bool],
    refine: Refine | None = None,
) -> Any:
    """:func:`call_api` for a method of a generated asyncio client: the same errors."""
    if closed():
        raise BackendUnavailableError(f"{owner!r} is closed")
    try:
        return await method(request=request, retry=retry, timeout=timeout)
    except CALL_ERRORS as exc:
        error = api_error(exc, what, service, deadline, owner, closed, refine)
        if error is exc:
            raise
        raise error from exc


#: The exceptions an API call may raise that :func:`api_error` knows about.
CALL_ERRORS: tuple[type[Exception], ...] = (
    gexc.RetryError,
    gexc.GoogleAPICallError,
    *_TRANSPORT_ERRORS,
    auth_exceptions.GoogleAuthError,
    ValueError,
)


def api_error(
    exc: Exception,
    what: str,
    service: str,
    deadline: float,
    owner: object,
    closed: Callable[[], bool],
    refine: Refine | None,
) -> Exception:
    """The error to raise for ``exc`` (one of :data:`CALL_ERRORS`) from an API call:
    ``exc`` itself when it is none of the library's (raise it unchanged)."""
    if isinstance(exc, gexc.RetryError):
        return BackendUnavailableError(
            f"{what}: {service} unreachable for {deadline:g} s: {one_line(exc.cause or exc)}"
        )
    if isinstance(exc, gexc.GoogleAPICallError):
        status = status_of(exc)
        message = api_message(exc)
        if status in TRANSIENT_STATUS:
            return BackendUnavailableError(f"{what}: {status}: {message}")
        refined = refine(what, status, message) if refine is not None else None
        if refined is not None:
            return refined
        if status in DENIED_STATUS:
            return AccessDeniedError(f"{what}: {status}: {message}")
        return ApiFailure(status, f"{what}: {status}: {message}")
    if isinstance(exc, (*_TRANSPORT_ERRORS, auth_exceptions.GoogleAuthError)):
        return _local_failure(what, exc)
    if closed():  # a ValueError, e.g. "Cannot invoke RPC on closed channel!"
        return BackendUnavailableError(f"{owner!r} is closed")
    return exc


def iterate_pages(pager: Any, what: str) -> Iterator[Any]:
    """Iterate a pager; fetching later pages is translated too (every API error there is
    :class:`AccessDeniedError` or :class:`BackendUnavailableError`)."""
    iterator = iter(pager)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except gexc.GoogleAPICallError as exc:
            status = status_of(exc)
            if status in DENIED_STATUS:
                raise AccessDeniedError(f"{what}: {status}: {api_message(exc)}") from exc
            raise BackendUnavailableError(f"{what}: {status}: {api_message(exc)}") from exc
        except (*_TRANSPORT_ERRORS, auth_exceptions.GoogleAuthError) as exc:
            raise _local_failure(what, exc) from exc


def _retry_settings(deadline: float) -> dict[str, Any]:
    return {
        "predicate": gretry.if_exception_type(*RETRYABLE),
        "initial": 0.1,
        "maximum": 1.0,
        "multiplier": 2.0,
        "timeout": deadline,
    }


def all_pages(method: str, request: dict[str, Any], field: str) -> Steps[list[Any]]:
    """Steps listing every page of ``method``: the items of each page's ``field``.
    (Pagers of either client delegate the first response's fields.)"""
    items: list[Any] = []
    token = ""
    while True:
        page = yield method, {**request, "page_token": token}
        items.extend(getattr(page, field))
        token = str(page.next_page_token)
        if not token:
            return items


def make_retry(deadline: float) -> gretry.Retry:
    """The client library's retry of transient errors, for at most ``deadline`` seconds."""
    return gretry.Retry(**_retry_settings(deadline))


def make_async_retry(deadline: float) -> AsyncRetry:
    """:func:`make_retry` for an asyncio client."""
    return AsyncRetry(**_retry_settings(deadline))


# -- clients -----------------------------------------------------------------------------


class TokenInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds ``authorization: Bearer`` to every gRPC call on a plaintext test channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def __repr__(self) -> str:
        return "_TokenInterceptor(***)"

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return continuation(_CallDetails(details, metadata), request)


class _CallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, base: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class AsyncTokenInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """:class:`TokenInterceptor` for a ``grpc.aio`` channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def __repr__(self) -> str:
        return "_AsyncTokenInterceptor(***)"

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return await continuation(details._replace(metadata=metadata), request)


#: A plaintext test channel reconnects quickly after its server comes back.
_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def _insecure_transport(
    grpc_transport_class: Callable[..., Any], endpoint: str, token: str | None, *, on_loop: bool
) -> Any:
    """A gRPC transport on a plaintext channel, ``token`` added to each call's metadata
    *after* the transport's own interceptor has logged it (DEBUG, as record extras
    no log filter sees): the blocking transport wraps the channel given to it; the
    asyncio one appends its interceptor to the channel's list, so ours goes after it."""
    if not on_loop:
        channel = grpc.insecure_channel(endpoint, options=_RECONNECT)
        if token:
            channel = grpc.intercept_channel(channel, TokenInterceptor(token))
        return grpc_transport_class(channel=channel)
    aio_channel = grpc.aio.insecure_channel(endpoint, options=_RECONNECT)  # on the running loop
    transport = grpc_transport_class(channel=aio_channel)
    if token:
        interceptors = getattr(aio_channel, "_unary_unary_interceptors", None)
        if not isinstance(interceptors, list):  # pragma: no cover - another grpcio layout
            raise ConfigurationError("this grpcio cannot add a token to a grpc.aio channel")
        interceptors.append(AsyncTokenInterceptor(token))
    return transport


def _settled(client: ClientT, url: str) -> ClientT:
    """``client`` with its REST session (if any) reading the environment's proxies and
    CA bundle once rather than at every request (see ``_requests_env``)."""
    session = getattr(getattr(client, "_transport", None), "_session", None)
    if isinstance(session, requests.Session):
        settle_environment(session, url)
    return client


def make_client(
    client_class: Callable[..., ClientT],
    grpc_transport_class: Callable[..., Any],
    *,
    scheme: str,
    endpoint: str | None,
    default_endpoint: str,
    insecure: bool,
    transport: str,
    token: str | None,
    credentials: Credentials | None,
) -> ClientT:
    """A generated GCP client for ``endpoint``.

    ``insecure``: plaintext (a test server): over gRPC a channel that reconnects quickly,
    with ``token`` as a bearer header when given; over REST ``http://``, with
    ``credentials``, else the token, else anonymous credentials. Otherwise TLS with
    ``credentials``, else the token, else Application Default Credentials (their absence
    is a :class:`ConfigurationError` naming ``scheme``). Without ``endpoint``, the
    service's ``default_endpoint`` (an insecure client needs an explicit one).
    ``transport="grpc_asyncio"`` makes the asyncio client (``client_class`` and
    ``grpc_transport_class`` its asyncio ones) on the running event loop, with the
    same endpoint, TLS and credentials as the ``grpc`` one."""
    if endpoint is None:
        if insecure:
            raise ConfigurationError(f"{scheme}: insecure=true needs an endpoint=host:port")
        endpoint = default_endpoint
    try:
        if insecure:
            if transport in ("grpc", "grpc_asyncio"):
                on_loop = transport == "grpc_asyncio"
                made = _insecure_transport(grpc_transport_class, endpoint, token, on_loop=on_loop)
                return client_class(transport=made)
            creds: Credentials = (
                credentials
                or (TokenCredentials(token) if token else None)  # type: ignore[no-untyped-call]
                or AnonymousCredentials()  # type: ignore[no-untyped-call]
            )
            return _settled(
                client_class(
                    transport="rest",
                    credentials=creds,
                    client_options=ClientOptions(api_endpoint=f"http://{endpoint}"),
                ),
                f"http://{endpoint}",
            )
        if credentials is None and token:
            credentials = TokenCredentials(token)  # type: ignore[no-untyped-call]
        return _settled(
            client_class(
                transport=transport,
                credentials=credentials,
                client_options=ClientOptions(api_endpoint=endpoint),
            ),
            f"https://{endpoint}",
        )
    except auth_exceptions.DefaultCredentialsError as exc:
        raise ConfigurationError(
            f"{scheme}: no Google credentials found (Application Default Credentials); set "
            "GOOGLE_APPLICATION_CREDENTIALS or run 'gcloud auth application-default login'"
        ) from exc


# -- URLs --------------------------------------------------------------------------------


def connection_options(opts: Options, default_token_env: str) -> dict[str, Any]:
    """The options every GCP store URL takes (``transport``, ``endpoint``, ``insecure``,
    ``token_env``, ``timeout``, ``deadline``, ``poll_interval``), as keyword arguments of
    the backend's constructor."""
    return {
        "transport": opts.choice("transport", "grpc", ("grpc", "rest")),
        "endpoint": opts.str("endpoint") or None,
        "insecure": opts.bool("insecure", False),
        "token_env": opts.str("token_env", default_token_env) or default_token_env,
        "timeout": opts.float("timeout", 5.0, minimum=0.01),
        "deadline": opts.float("deadline", 8.0, minimum=0.01),
        "poll_interval": opts.float("poll_interval", 10.0, minimum=0.01),
    }


def project_and_prefix(parsed: ParsedURL) -> tuple[str, str]:
    """The project (the URL's host part) and the key prefix (its path) of a store URL."""
    if not parsed.netloc:
        raise ConfigurationError(
            f"{parsed.redacted}: no project; use {parsed.scheme}://PROJECT[/prefix]"
        )
    try:
        prefix: str = normalize_prefix(parsed.path.lstrip("/"))
    except InvalidKeyError as exc:
        raise ConfigurationError(f"{parsed.redacted}: bad prefix: {exc}") from exc
    return parsed.netloc, prefix


# -- the stores' common half -------------------------------------------------------------


def _being_cancelled() -> bool:
    """Whether the running task is being cancelled (by its caller)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class GcpStore:
    """What a GCP store does the same whatever the service: its connection settings,
    API calls bounded in time, watches that poll the store's own listing, and closing.

    A subclass names its ``scheme`` and ``service``, calls :meth:`_open` then
    :meth:`_connect` from its constructor, and implements ``list``.
    """

    scheme: ClassVar[str]
    #: The service's name in error messages ("Secret Manager").
    service: ClassVar[str]
    _client: Any

    def _open(
        self,
        project: str,
        prefix: str,
        location: str | None,
        *,
        transport: str,
        timeout: float,
        deadline: float,
        poll_interval: float,
    ) -> None:
        if not project or any(c in project for c in "/?#"):
            raise ConfigurationError(f"{self.scheme}: invalid project {project!r}")
        self.project = project
        self.prefix: str = normalize_prefix(prefix)
        self.location = location
        self.transport = transport
        self._timeout = timeout
        self._deadline = max(deadline, timeout)
        self._poll_interval = poll_interval
        self._retry = make_retry(self._deadline)
        self._aretry = make_async_retry(self._deadline)
        self._closed = False
        self._watches: WatchSet[PollingWatch] = WatchSet()
        # The asyncio client of ``aget`` (gRPC only) and the event loop it belongs to.
        self._connect_async: Callable[[], Any] | None = None
        self.native_async = False
        # With its read slots, on the loop it belongs to.
        self._async: LoopBound[tuple[Any, asyncio.Semaphore]] = LoopBound(self, "client")

    def _connect(
        self,
        client_class: Callable[..., ClientT],
        grpc_transport_class: Callable[..., Any],
        *,
        default_endpoint: str,
        endpoint: str | None,
        insecure: bool,
        token_env: str,
        credentials: Credentials | None,
        async_classes: tuple[Callable[..., Any], Callable[..., Any]] | None = None,
    ) -> ClientT:
        """The service's client (see :func:`make_client`); the token comes from the
        environment variable ``token_env`` when it is set. ``async_classes`` (the
        asyncio client and its gRPC transport) make the store ``native_async`` over
        gRPC: :meth:`_arun` opens that client on first use."""
        protect_loggers("grpc", "google", "urllib3")  # their DEBUG records may show payloads
        settings: dict[str, Any] = {
            "scheme": self.scheme,
            "endpoint": endpoint,
            "default_endpoint": default_endpoint,
            "insecure": insecure,
            "token": os.environ.get(token_env) or None,
            "credentials": credentials,
        }
        client = make_client(
            client_class, grpc_transport_class, transport=self.transport, **settings
        )
        if async_classes is not None and self.transport == "grpc":
            async_client, async_transport = async_classes

            def connect_async() -> Any:
                return make_client(
                    async_client, async_transport, transport="grpc_asyncio", **settings
                )

            self._connect_async = connect_async
            self.native_async = True
        return client

    def _call(
        self, what: str, method: Callable[..., Any], request: dict[str, Any], *, retry: bool
    ) -> Any:
        """One API call bounded in time; errors become Veltrix errors, except the ones the
        caller decides about (NOT_FOUND, ALREADY_EXISTS...), raised as ``ApiFailure``."""
        retrying = self._retry if retry else None
        return call_api(method, request, what=what, retry=retrying, **self._call_settings())

    def _call_settings(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "timeout": self._timeout,
            "deadline": self._deadline,
            "owner": self,
            "closed": lambda: self._closed,
            "refine": self._refine_error,
        }

    def _run(self, what: str, steps: Steps[T]) -> T:
        """Run a read's ``steps`` through the blocking client (calls retried)."""
        try:
            call = next(steps)
            while True:
                method, request = call
                try:
                    reply = self._call(what, getattr(self._client, method), request, retry=True)
                except ApiFailure as failure:
                    call = steps.throw(failure)
                else:
                    call = steps.send(reply)
        except StopIteration as done:
            result: T = done.value
            return result

    async def _arun(self, what: str, steps: Steps[T]) -> T:
        """:meth:`_run` through the asyncio client, on the running event loop; at most
        :data:`ASYNC_READS` at once (the others wait for a slot)."""
        opened = self._async_client()
        client, slots = opened
        async with slots:
            try:
                call = next(steps)
                while True:
                    method, request = call
                    if self._async.value is not opened:  # aclose() came meanwhile
                        raise BackendUnavailableError(f"{self!r}: asyncio client closed")
                    try:
                        reply = await acall_api(
                            getattr(client, method),
                            request,
                            what=what,
                            retry=self._aretry,
                            **self._call_settings(),
                        )
                    except ApiFailure as failure:
                        call = steps.throw(failure)
                    except asyncio.CancelledError:
                        if self._async.value is opened or _being_cancelled():
                            raise
                        # aclose() closed the channel under the call, not our caller.
                        raise BackendUnavailableError(f"{self!r}: asyncio client closed") from None
                    else:
                        call = steps.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result

    def _async_client(self) -> tuple[Any, asyncio.Semaphore]:
        """The asyncio client and its read slots, opened on first use; they belong to
        that event loop."""
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        connect = self._connect_async
        if connect is None:
            raise ConfigurationError(f"{self!r} has no asyncio client (native_async)")
        return self._async.get(lambda: (connect(), asyncio.Semaphore(ASYNC_READS)))

    async def aclose(self) -> None:
        """Close the asyncio client's channel; the next read opens another, on its own
        loop. From another loop than the channel's, it is only dropped (it closes with
        its loop, or when collected)."""
        opened, loop = self._async.release()
        if opened is not None and loop is asyncio.get_running_loop():
            with contextlib.suppress(Exception):
                await opened[0].transport.close()

    def _refine_error(self, what: str, status: str, message: str) -> BackendError | None:
        """A more precise error for a failed call than its status gives (``None``: none)."""
        return None

    def _pages(self, pager: Any, what: str) -> Iterator[Any]:
        """Iterate a pager; fetching later pages is bounded and translated too."""
        return iterate_pages(pager, what)

    def list(self, prefix: str) -> Iterator[Entry]:
        raise NotImplementedError

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> PollingWatch:
        """Changes under ``prefix``, found by comparing listings (the GCP services
        publish no change stream a client can follow)."""
        prefix = normalize_prefix(prefix)

        def listing() -> dict[str, Entry]:
            return {entry.key: entry for entry in self.list(prefix)}

        watch = PollingWatch(
            listing,
            on_change,
            interval=self._poll_interval,
            name=f"veltrix-{self.scheme}-watch-{join(self.prefix, prefix) or '/'}",
            max_backoff=max(30.0, self._poll_interval),
            on_stop=self._watches.discard,
        )
        return self._watches.add(watch)

    def close(self) -> None:
        if self._closed:
            return
        self._watches.stop_all()
        self._closed = True
        # An asyncio client not closed with aclose() on its loop is dropped here.
        self._async.release()
        try:
            self._client.transport.close()
        except Exception as exc:  # pragma: no cover - closing must not raise
            logging.getLogger(f"veltrix.{self.scheme}").debug(
                "closing the %s transport failed: %s",
                self.service,
                exc,
                extra=event(f"veltrix.{self.scheme}.close_failed", error=exc),
            )
