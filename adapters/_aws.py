"""What the AWS adapters share: client construction and botocore error mapping.

Throttling and 5xx answers are retried by botocore itself (its ``standard``
retry mode with the attempts given here), never by a hand-written loop; what is
still failing afterwards becomes :class:`~veltrix.errors.BackendUnavailableError`.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from veltrix.errors import (
    AccessDeniedError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    VeltrixError,
)
from veltrix.log_redaction import protect_loggers

ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "AuthFailure",
        "NotAuthorized",
    }
)
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalServerException",
        "InternalFailure",
    }
)

#: Client-library exceptions that mean "try again later" (network level).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_status(exc: BaseException) -> int:
    if isinstance(exc, botocore.exceptions.ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def _message(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        text = str(exc.response.get("Error", {}).get("Message", "")) or error_code(exc)
    else:
        text = str(exc)
    return " ".join(text.split())[:300]


def map_error(exc: BaseException, what: str) -> VeltrixError:
    """The Veltrix error for a botocore failure; raise it ``from exc``."""
    code = error_code(exc)
    if isinstance(exc, botocore.exceptions.ClientError):
        if code in ACCESS_DENIED_CODES or error_status(exc) in (401, 403):
            return AccessDeniedError(f"{what}: access denied ({code}): {_message(exc)}")
        if code in THROTTLING_CODES or error_status(exc) >= 500 or error_status(exc) == 429:
            return BackendUnavailableError(f"{what}: {code or 'server error'}: {_message(exc)}")
        return BackendError(f"{what}: {code}: {_message(exc)}")
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return AccessDeniedError(f"{what}: no usable AWS credentials: {_message(exc)}")
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return ConfigurationError(f"{what}: no AWS region; pass ?region= or set AWS_REGION")
    if isinstance(exc, botocore.exceptions.ConnectionError):  # refused, DNS, timed out
        return BackendUnavailableError(
            f"{what}: endpoint unreachable: {type(exc).__name__}: {_message(exc)}"
        )
    if isinstance(exc, TRANSIENT_ERRORS):
        return BackendUnavailableError(f"{what}: {type(exc).__name__}: {_message(exc)}")
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return ConfigurationError(f"{what}: {_message(exc)}")
    return BackendError(f"{what}: {type(exc).__name__}: {_message(exc)}")


#: Everything botocore raises that :func:`map_error` understands.
BOTO_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.BotoCoreError,
    botocore.exceptions.ClientError,
)


def make_client(
    service: str,
    *,
    region: str | None,
    endpoint_url: str | None,
    timeout: float,
    max_attempts: int,
    parameter_validation: bool = True,
    where: str,
) -> Any:
    """A boto3 client with botocore's standard retries and bounded timeouts."""
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=timeout,
        read_timeout=timeout,
        parameter_validation=parameter_validation,
    )
    try:
        session = boto3.session.Session(region_name=region)
        client = session.client(service, endpoint_url=endpoint_url, config=config)
    except botocore.exceptions.NoRegionError as exc:
        raise ConfigurationError(
            f"{where}: no AWS region; pass ?region= or set AWS_REGION / AWS_DEFAULT_REGION"
        ) from exc
    except ValueError as exc:  # bad endpoint URL and similar
        raise ConfigurationError(f"{where}: {exc}") from exc
    # botocore logs request parameters and response bodies (values) at DEBUG.
    protect_loggers("botocore", "boto3", "urllib3")
    return client


__all__ = ["BOTO_ERRORS", "TRANSIENT_ERRORS", "error_code", "make_client", "map_error"]
