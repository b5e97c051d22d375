"""``appconfig://application/environment/profile``: AWS AppConfig.

A configuration profile is one JSON (or YAML) document; Veltrix keys are paths
inside it (``payments/timeout_ms`` <-> ``{"payments": {"timeout_ms": 500}}``,
:mod:`veltrix.adapters.documents`) and listing flattens it. Reads go through an AppConfigData session: started once,
tokens chained, never polled before ``NextPollIntervalInSeconds`` has passed, the
last document kept (an empty body means "unchanged"), a new session started when
a token expired. Between polls reads are served from that document, as the
AppConfig Agent and Powertools do.

Writes create a new hosted configuration version of the whole document (based on
the latest version, with ``LatestVersionNumber`` as the server-side precondition)
and deploy it (strategy ``AppConfig.AllAtOnce`` unless ``strategy=`` says
otherwise). A key's version is a digest of its value, so it stays the same while
other keys change and every process computes the same one; compare-and-set
checks it against the version the write was based on, and a new hosted version
appearing meanwhile makes the write start over from that version.

Feature-flag profiles (``AWS.AppConfig.FeatureFlags``) read as ``flags/<flag>/enabled``
and ``flags/<flag>/<attribute>``; ``veltrix.Client.flag(name)`` reads
``flags/<name>/enabled``. They are read-only here.

Options: ``region``, ``endpoint_url`` (also ``data_endpoint_url``), ``poll_interval``
(seconds, default 60; AWS accepts 15 and up, test servers less), ``strategy``,
``max_document_bytes`` (default 2 MiB), ``timeout``, ``max_attempts``,
``feature_flags`` (``auto``/``true``/``false``).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Self

from veltrix.adapters._aws import BOTO_ERRORS, TRANSIENT_ERRORS, error_code, make_client, map_error
from veltrix.adapters.documents import (
    Batch,
    apply_batch,
    dump_document,
    flatten,
    parse_document,
    version_of,
)
from veltrix.backend import AbsentType, Change, Entry
from veltrix.errors import (
    BackendUnavailableError,
    ConfigurationError,
    DecodeError,
    UnsupportedOperationError,
    ValueTooLargeError,
    VeltrixError,
)
from veltrix.keys import in_prefix, normalize_prefix, validate_key
from veltrix.log_events import event
from veltrix.urls import Options, parse_url
from veltrix.values import check_value, prepare_batch
from veltrix.watching import PollingWatch

log = logging.getLogger("veltrix.appconfig")

DEFAULT_STRATEGY = "AppConfig.AllAtOnce"
DEFAULT_POLL_INTERVAL = 60.0
#: AWS rejects RequiredMinimumPollIntervalInSeconds below this.
AWS_MIN_POLL_INTERVAL = 15
DEFAULT_MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
#: Tokens live at most 24 hours; start a new session a little before that.
TOKEN_MAX_AGE = 23.5 * 3600
WRITE_ATTEMPTS = 8
#: Keys per ``put_many`` that callers batching writes should aim for: one hosted version
#: (and deployment) per batch, whatever its size; the document bounds the whole.
MAX_BATCH_OPS = 500
FEATURE_FLAGS_TYPE = "AWS.AppConfig.FeatureFlags"
WRITE_DESCRIPTION = "written by veltrix"
FLAGS_PREFIX = "flags"

ItemValue = bytes | None


# -- the adapter -------------------------------------------------------------------------------


class _Document:
    """The last document the session delivered, as keys (and as parsed)."""

    __slots__ = ("content_type", "document", "entries", "label")

    def __init__(
        self,
        entries: dict[str, Entry],
        content_type: str | None,
        label: str | None,
        document: Any = None,
    ) -> None:
        self.entries = entries
        self.content_type = content_type
        self.label = label
        self.document = document


class AppConfigBackend:
    """AWS AppConfig hosted configuration profiles, read through AppConfigData."""

    schemes: ClassVar[tuple[str, ...]] = ("appconfig",)
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    #: Largest single value; the whole document is bounded by ``max_document_bytes``.
    max_value_bytes: ClassVar[int | None] = 1024 * 1024
    #: A hint for callers batching writes through :meth:`put_many`.
    max_batch_ops: ClassVar[int] = MAX_BATCH_OPS

    def __init__(
        self,
        application: str,
        environment: str,
        profile: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        data_endpoint_url: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        strategy: str = DEFAULT_STRATEGY,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        timeout: float = 10.0,
        max_attempts: int = 4,
        feature_flags: str = "auto",
    ) -> None:
        for name, value in (
            ("application", application),
            ("environment", environment),
            ("profile", profile),
        ):
            if not value or len(value) > 128 or "/" in value:
                raise ConfigurationError(f"appconfig://: invalid {name} identifier {value!r}")
        if feature_flags not in ("auto", "true", "false"):
            raise ConfigurationError("appconfig://: feature_flags must be auto, true or false")
        self.application = application
        self.environment = environment
        self.profile = profile
        self.poll_interval = poll_interval
        self.strategy = strategy
        self.max_document_bytes = max_document_bytes
        self._feature_flags = feature_flags
        where = self.url
        self._control = make_client(
            "appconfig",
            region=region,
            endpoint_url=endpoint_url,
            timeout=timeout,
            max_attempts=max_attempts,
            where=where,
        )
        # AWS's floor for RequiredMinimumPollIntervalInSeconds is 15 s and botocore enforces
        # it; below that (test servers only) the data client skips client-side validation.
        self._data = make_client(
            "appconfigdata",
            region=region,
            endpoint_url=data_endpoint_url or endpoint_url,
            timeout=timeout,
            max_attempts=max_attempts,
            parameter_validation=poll_interval >= AWS_MIN_POLL_INTERVAL,
            where=where,
        )
        self._lock = threading.RLock()
        self._token: str | None = None
        self._token_started = 0.0
        self._next_poll = 0.0
        self._doc: _Document | None = None
        self._ids: tuple[str, str, str] | None = None
        self._profile_type: str | None = None
        self._profile_hosted = True
        self._watches: list[PollingWatch] = []
        self._closed = False
        #: Calls made to AWS, for tests and benchmarks.
        self.calls: dict[str, int] = {"sessions": 0, "polls": 0, "empty_polls": 0, "control": 0}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        parsed = parse_url(url, cls.schemes)
        opts = Options(parsed.query, options, where=parsed.redacted)
        parts = [p for p in parsed.path.split("/") if p]
        if not parsed.netloc or len(parts) != 2:
            raise ConfigurationError(
                f"{parsed.redacted}: expected appconfig://application/environment/profile"
            )
        backend = cls(
            parsed.netloc,
            parts[0],
            parts[1],
            region=opts.str("region"),
            endpoint_url=opts.str("endpoint_url"),
            data_endpoint_url=opts.str("data_endpoint_url"),
            poll_interval=opts.float("poll_interval", DEFAULT_POLL_INTERVAL, minimum=0.0),
            strategy=opts.str("strategy", DEFAULT_STRATEGY) or DEFAULT_STRATEGY,
            max_document_bytes=opts.int(
                "max_document_bytes", DEFAULT_MAX_DOCUMENT_BYTES, minimum=1
            ),
            timeout=opts.float("timeout", 10.0, minimum=0.1),
            max_attempts=opts.int("max_attempts", 4, minimum=1),
            feature_flags=opts.choice("feature_flags", "auto", ("auto", "true", "false")),
        )
        opts.finish()
        return backend

    @property
    def url(self) -> str:
        return f"appconfig://{self.application}/{self.environment}/{self.profile}"

    def __repr__(self) -> str:
        return f"AppConfigBackend({self.url!r})"

    # -- AWS calls ----------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        try:
            return fn(**kwargs)
        except BOTO_ERRORS as exc:
            raise map_error(exc, f"{self.url}: {what}") from exc

    def _missing_resource(self, exc: BaseException) -> ConfigurationError | None:
        """A ConfigurationError when AWS says the application/environment/profile is missing."""
        response = getattr(exc, "response", {})
        kind = str(response.get("ResourceType", ""))
        if kind in ("Application", "Environment", "ConfigurationProfile") or (
            error_code(exc) == "ResourceNotFoundException" and not kind
        ):
            return ConfigurationError(
                f"{self.url}: {kind or 'resource'} not found: "
                f"{response.get('Error', {}).get('Message', '')}".rstrip(": ")
            )
        return None

    def _start_session(self) -> None:
        kwargs: dict[str, Any] = {
            "ApplicationIdentifier": self.application,
            "EnvironmentIdentifier": self.environment,
            "ConfigurationProfileIdentifier": self.profile,
            "RequiredMinimumPollIntervalInSeconds": max(0, math.floor(self.poll_interval)),
        }
        if self._closed:
            raise BackendUnavailableError(f"{self!r} is closed")
        try:
            self.calls["sessions"] += 1
            response = self._data.start_configuration_session(**kwargs)
        except BOTO_ERRORS as exc:
            missing = self._missing_resource(exc)
            if missing is not None:
                raise missing from exc
            if error_code(exc) == "BadRequestException":
                raise ConfigurationError(
                    f"{self.url}: AWS rejected the session (poll_interval must be at least "
                    f"{AWS_MIN_POLL_INTERVAL} s on AWS): "
                    f"{getattr(exc, 'response', {}).get('Error', {}).get('Message', '')}"
                ) from exc
            raise map_error(exc, f"{self.url}: StartConfigurationSession") from exc
        self._token = response["InitialConfigurationToken"]
        self._token_started = time.monotonic()
        self._next_poll = 0.0

    def _poll(self) -> None:
        """One GetLatestConfiguration on the session (caller holds the lock)."""
        now = time.monotonic()
        if self._token is None or now - self._token_started > TOKEN_MAX_AGE:
            self._start_session()
        for attempt in (1, 2):
            try:
                self.calls["polls"] += 1
                response = self._data.get_latest_configuration(ConfigurationToken=self._token)
                break
            except BOTO_ERRORS as exc:
                problem = (
                    getattr(exc, "response", {})
                    .get("Details", {})
                    .get("InvalidParameters", {})
                    .get("ConfigurationToken", {})
                    .get("Problem")
                )
                if problem == "PollIntervalNotSatisfied":
                    self._next_poll = time.monotonic() + max(self.poll_interval, 1.0)
                    return
                if problem in ("Expired", "Corrupted") and attempt == 1:
                    log.info(
                        "%s: configuration token %s; starting a new session",
                        self.url,
                        problem.lower(),
                        extra=event("veltrix.appconfig.session_restarted", store=self.url),
                    )
                    self._start_session()
                    continue
                if error_code(exc) == "ResourceNotFoundException":
                    missing = (
                        self._missing_resource(exc)
                        if getattr(exc, "response", {}).get("ResourceType")
                        else None
                    )
                    if missing is not None:
                        self._token = None
                        raise missing from exc
                    # nothing deployed yet: an empty document; start afresh next time
                    self._token = None
                    self._next_poll = time.monotonic() + self.poll_interval
                    self._doc = _Document({}, None, None)
                    return
                if self._closed:
                    raise BackendUnavailableError(f"{self!r} is closed") from exc
                raise map_error(exc, f"{self.url}: GetLatestConfiguration") from exc
        self._token = response["NextPollConfigurationToken"]
        interval = float(response.get("NextPollIntervalInSeconds") or 0)
        self._next_poll = time.monotonic() + max(interval, self.poll_interval)
        body = response["Configuration"].read()
        if not body and self._doc is not None:
            self.calls["empty_polls"] += 1
            return
        self._set_document(body, response.get("ContentType"), response.get("VersionLabel"))

    def _set_document(self, body: bytes, content_type: str | None, label: str | None) -> None:
        parsed = parse_document(body, content_type)
        document = {FLAGS_PREFIX: parsed} if self._is_flags(parsed) else parsed
        if not isinstance(document, dict):
            raise DecodeError(f"{self.url}: the configuration is not a JSON/YAML object")
        entries = {
            key: Entry(key, value, version_of(value), source=f"{self.url}#{key}")
            for key, value in flatten(document).items()
        }
        self._doc = _Document(entries, content_type, label, parsed)

    def _is_flags(self, document: Any) -> bool:
        if self._feature_flags == "true":
            return True
        if self._feature_flags == "false":
            return False
        if self._profile_type is None:
            try:
                self._resolve()
            except VeltrixError as exc:  # no control-plane rights: assume freeform
                log.info(
                    "%s: cannot read the profile type (%s); assuming freeform",
                    self.url,
                    exc,
                    extra=event(
                        "veltrix.appconfig.profile_type_unknown", store=self.url, error=exc
                    ),
                )
                self._profile_type = "AWS.Freeform"
        return self._profile_type == FEATURE_FLAGS_TYPE

    def _current(self) -> _Document:
        with self._lock:
            if self._doc is None or time.monotonic() >= self._next_poll:
                self._poll()
            assert self._doc is not None
            return self._doc

    # -- reads ----------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        validate_key(key)
        return self._current().entries.get(key)

    def list(self, prefix: str) -> Iterator[Entry]:
        prefix = normalize_prefix(prefix)
        entries = self._current().entries
        return iter([entries[k] for k in sorted(entries) if in_prefix(k, prefix)])

    def _snapshot(self, prefix: str) -> Mapping[str, Entry]:
        entries = self._current().entries
        return {k: e for k, e in entries.items() if in_prefix(k, prefix)}

    def watch(self, prefix: str, on_change: Callable[[Change], None]) -> PollingWatch:
        prefix = normalize_prefix(prefix)
        watch = PollingWatch(
            lambda: self._snapshot(prefix),
            on_change,
            interval=max(self.poll_interval, 0.05),
            name=f"veltrix-appconfig-watch-{self.profile}",
        )
        self._watches.append(watch)
        return watch

    # -- writes ---------------------------------------------------------------------------------

    def _find(self, what: str, items: Iterator[dict[str, Any]], ident: str) -> dict[str, Any]:
        by_id = [i for i in items if ident in (i.get("Id"), i.get("Name"))]
        exact = [i for i in by_id if i.get("Id") == ident] or by_id
        if not exact:
            raise ConfigurationError(f"{self.url}: {what} {ident!r} not found")
        if len(exact) > 1:
            raise ConfigurationError(f"{self.url}: {what} name {ident!r} is ambiguous; use its id")
        return exact[0]

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            args = dict(kwargs, **({"NextToken": token} if token else {}))
            self.calls["control"] += 1
            page = self._call(operation, getattr(self._control, operation), **args)
            yield from page.get("Items", [])
            token = page.get("NextToken")
            if not token:
                return

    def _resolve(self) -> tuple[str, str, str]:
        """Control-plane ids of the application, environment and profile (cached)."""
        with self._lock:
            if self._ids is None:
                app = self._find("application", self._pages("list_applications"), self.application)
                env = self._find(
                    "environment",
                    self._pages("list_environments", ApplicationId=app["Id"]),
                    self.environment,
                )
                prof = self._find(
                    "configuration profile",
                    self._pages("list_configuration_profiles", ApplicationId=app["Id"]),
                    self.profile,
                )
                self._profile_type = str(prof.get("Type") or "AWS.Freeform")
                self._profile_hosted = prof.get("LocationUri") == "hosted"
                self._ids = (app["Id"], env["Id"], prof["Id"])
            return self._ids

    def _latest_version(self, app_id: str, profile_id: str) -> int | None:
        newest: int | None = None
        for index, item in enumerate(
            self._pages(
                "list_hosted_configuration_versions",
                ApplicationId=app_id,
                ConfigurationProfileId=profile_id,
                MaxResults=50,
            )
        ):
            number = int(item["VersionNumber"])
            if index == 1 and newest is not None and number < newest:
                return newest  # listed newest first: the first item is the latest
            newest = number if newest is None else max(newest, number)
        return newest

    def _check_document_size(self, body: bytes) -> None:
        if len(body) > self.max_document_bytes:
            raise ValueTooLargeError(
                f"{self.url}: the document would be {len(body)} bytes; the profile holds "
                f"at most {self.max_document_bytes}"
            )

    def _write(self, change: Callable[[dict[str, Any]], bool]) -> bool:
        """Apply ``change`` (which checks compare-and-set itself and says whether it
        changed anything) to the latest hosted version; create and deploy the result."""
        app_id, env_id, profile_id = self._resolve()
        if self._profile_type == FEATURE_FLAGS_TYPE:
            raise UnsupportedOperationError(
                f"{self.url}: feature-flag profiles are read-only through Veltrix"
            )
        if not self._profile_hosted:
            raise UnsupportedOperationError(
                f"{self.url}: only profiles in the AppConfig hosted store can be written"
            )
        for _ in range(WRITE_ATTEMPTS):
            latest = self._latest_version(app_id, profile_id)
            content_type = "application/json"
            document: Any = {}
            if latest is not None:
                self.calls["control"] += 1
                hosted = self._call(
                    "GetHostedConfigurationVersion",
                    self._control.get_hosted_configuration_version,
                    ApplicationId=app_id,
                    ConfigurationProfileId=profile_id,
                    VersionNumber=latest,
                )
                content_type = hosted.get("ContentType") or content_type
                document = parse_document(hosted["Content"].read(), content_type)
            if not isinstance(document, dict):
                raise DecodeError(f"{self.url}: the configuration is not a JSON/YAML object")
            if not change(document):
                return False
            body = dump_document(document, content_type)
            self._check_document_size(body)
            if self._create_and_deploy((app_id, env_id, profile_id), body, content_type, latest):
                return True
        raise BackendUnavailableError(
            f"{self.url}: {WRITE_ATTEMPTS} concurrent writers kept changing the profile; retry"
        )

    def _create_and_deploy(
        self, ids: tuple[str, str, str], body: bytes, content_type: str, latest: int | None
    ) -> bool:
        """False when another version appeared since ``latest`` (start over)."""
        app_id, env_id, profile_id = ids
        args: dict[str, Any] = {
            "ApplicationId": app_id,
            "ConfigurationProfileId": profile_id,
            "Content": body,
            "ContentType": content_type,
            "Description": WRITE_DESCRIPTION,
        }
        if latest is not None:
            args["LatestVersionNumber"] = latest
        try:
            self.calls["control"] += 1
            number = int(self._control.create_hosted_configuration_version(**args)["VersionNumber"])
        except BOTO_ERRORS as exc:
            code = error_code(exc)
            if code == "ConflictException":
                own = self._own_version(app_id, profile_id, latest, body, content_type)
                if own is None:
                    return False
                number = own
            elif code == "PayloadTooLargeException":
                raise ValueTooLargeError(
                    f"{self.url}: AppConfig refused the document as too large"
                ) from exc
            elif code == "BadRequestException":
                raise ConfigurationError(
                    f"{self.url}: AppConfig rejected the document: {exc}"
                ) from exc
            else:
                raise map_error(exc, f"{self.url}: CreateHostedConfigurationVersion") from exc
        try:
            self.calls["control"] += 1
            deployment = self._control.start_deployment(
                ApplicationId=app_id,
                EnvironmentId=env_id,
                DeploymentStrategyId=self.strategy,
                ConfigurationProfileId=profile_id,
                ConfigurationVersion=str(number),
                Description="deployed by veltrix",
            )
        except BOTO_ERRORS as exc:
            # a failed write writes nothing: drop the version nobody will deploy
            try:
                self._control.delete_hosted_configuration_version(
                    ApplicationId=app_id, ConfigurationProfileId=profile_id, VersionNumber=number
                )
            except BOTO_ERRORS:
                log.warning(
                    "%s: could not delete undeployed version %d",
                    self.url,
                    number,
                    extra=event("veltrix.appconfig.cleanup_failed", store=self.url),
                )
            if error_code(exc) == "ConflictException":
                raise BackendUnavailableError(
                    f"{self.url}: another deployment to this environment is in progress"
                ) from exc
            if error_code(exc) in ("ResourceNotFoundException", "BadRequestException"):
                raise ConfigurationError(f"{self.url}: deployment refused: {exc}") from exc
            raise map_error(exc, f"{self.url}: StartDeployment") from exc
        if float(deployment.get("PercentageComplete") or 0) >= 100.0:
            with self._lock:  # served to everyone already: read your own write
                self._set_document(body, content_type, None)
        return True

    def _own_version(
        self, app_id: str, profile_id: str, latest: int | None, body: bytes, content_type: str
    ) -> int | None:
        """After a ConflictException: ``latest + 1`` when that version holds exactly this
        write's document, else None.

        CreateHostedConfigurationVersion takes no idempotency token, and the SDK retries
        it after a timeout or a 5xx. When the first attempt was stored but its reply was
        lost, the retry fails the ``LatestVersionNumber`` precondition this write set
        itself: the version after ``latest`` is then this write's, and it is deployed
        instead of being written a second time (which would also turn a compare-and-set
        into a false conflict with itself).
        """
        if latest is None:
            return None
        try:
            self.calls["control"] += 1
            hosted = self._control.get_hosted_configuration_version(
                ApplicationId=app_id, ConfigurationProfileId=profile_id, VersionNumber=latest + 1
            )
            same = (
                hosted.get("ContentType") == content_type
                and hosted.get("Description") == WRITE_DESCRIPTION
                and hosted["Content"].read() == body
            )
        except BOTO_ERRORS:
            return None
        return latest + 1 if same else None

    def put(self, key: str, value: bytes, *, if_version: str | AbsentType | None = None) -> str:
        batch = self._batch([(key, value)], None if if_version is None else {key: if_version})
        self._write(lambda document: apply_batch(document, batch))
        _, written, _ = batch[0]
        return version_of(written or b"")

    def delete(self, key: str, *, if_version: str | None = None) -> bool:
        batch = self._batch([(key, None)], None if if_version is None else {key: if_version})
        return self._write(lambda document: apply_batch(document, batch))

    def _batch(
        self,
        items: Mapping[str, ItemValue] | Iterable[tuple[str, ItemValue]],
        if_versions: Mapping[str, str | AbsentType] | None,
    ) -> Batch:
        """Validate a batch before any I/O: keys, value sizes, duplicates, versions."""
        return prepare_batch(
            items, if_versions, lambda key, raw: check_value(key, raw, self.max_value_bytes)
        )

    def check_batch(self, items: Mapping[str, ItemValue] | Iterable[tuple[str, ItemValue]]) -> None:
        """Pre-flight of :meth:`put_many` without writing: raise when a key or value is
        refused, or :class:`ValueTooLargeError` when the document, with ``items``
        applied (``None`` deletes), would exceed ``max_document_bytes``.

        The document is the one last delivered through the session (read now if
        none was); the write itself bases the new version on the latest hosted version
        and checks the size again, with the same rule, before creating it.
        """
        batch = self._batch(items, None)
        current = self._current()
        document = copy.deepcopy(current.document)
        if not isinstance(document, dict):
            document = {}
        apply_batch(document, batch)
        self._check_document_size(
            dump_document(document, current.content_type or "application/json")
        )

    def put_many(
        self,
        items: Mapping[str, ItemValue] | Iterable[tuple[str, ItemValue]],
        *,
        atomic: bool = True,
        if_versions: Mapping[str, str | AbsentType] | None = None,
    ) -> dict[str, str | None]:
        """Write many keys as ONE new hosted version (and one deployment); ``None`` deletes.

        Returns ``{key: new version}`` (``None`` for deletes). ``if_versions`` adds
        compare-and-set per key (a version, or :data:`Absent` for create-only),
        checked against the hosted version the write is based on; one lost compare
        raises :class:`VersionConflictError` and nothing is written. A document over
        ``max_document_bytes`` raises :class:`ValueTooLargeError` before any version is
        created. The batch is always all or nothing (one version), so ``atomic=False``
        changes nothing; a batch that only deletes absent keys creates no version.
        """
        del atomic  # one hosted version holds the whole batch either way
        batch = self._batch(items, if_versions)
        if batch:
            self._write(lambda document: apply_batch(document, batch))
        return {key: None if value is None else version_of(value) for key, value, _ in batch}

    def close(self) -> None:
        if self._closed:
            return
        for watch in self._watches:
            watch.stop()
        self._watches.clear()
        self._closed = True
        self._control.close()
        self._data.close()


__all__ = ["AppConfigBackend", "flatten", "parse_document", "version_of"]
