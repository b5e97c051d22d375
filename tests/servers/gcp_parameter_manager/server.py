"""REST and gRPC front ends over one :class:`ParameterStore` and its :class:`SecretStore`.

REST follows the HTTP bindings of the Parameter Manager v1 API
(``/v1/{name=projects/*/locations/*/parameters/*}`` and friends) plus those of Secret
Manager v1; gRPC serves both services with generic handlers over the client packages'
own messages. Both transports share the machinery of the Secret Manager test server.
"""

from __future__ import annotations

import logging
import re

from tests.servers.gcp_parameter_manager.store import SERVICE, ParameterStore, methods
from tests.servers.gcp_secret_manager import server as sm_server
from tests.servers.gcp_secret_manager.store import SecretStore
from tests.servers.gcp_secret_manager.store import methods as secret_methods

log = logging.getLogger("gcppm-test-server")

_L = r"projects/[^/:]+/locations/[^/:]+"
_P = rf"{_L}/parameters/[^/:]+"
_V = rf"{_P}/versions/[^/:]+"

ROUTES: list[sm_server.Route] = [
    ("GET", re.compile(rf"/v1/({_L})/parameters"), "ListParameters", "parent", None),
    ("POST", re.compile(rf"/v1/({_L})/parameters"), "CreateParameter", "parent", "parameter"),
    ("GET", re.compile(rf"/v1/({_P})"), "GetParameter", "name", None),
    ("PATCH", re.compile(rf"/v1/({_P})"), "UpdateParameter", "parameter.name", "parameter"),
    ("DELETE", re.compile(rf"/v1/({_P})"), "DeleteParameter", "name", None),
    ("GET", re.compile(rf"/v1/({_P})/versions"), "ListParameterVersions", "parent", None),
    (
        "POST",
        re.compile(rf"/v1/({_P})/versions"),
        "CreateParameterVersion",
        "parent",
        "parameter_version",
    ),
    ("GET", re.compile(rf"/v1/({_V})"), "GetParameterVersion", "name", None),
    (
        "PATCH",
        re.compile(rf"/v1/({_V})"),
        "UpdateParameterVersion",
        "parameter_version.name",
        "parameter_version",
    ),
    ("DELETE", re.compile(rf"/v1/({_V})"), "DeleteParameterVersion", "name", None),
    ("GET", re.compile(rf"/v1/({_V}):render"), "RenderParameterVersion", "name", None),
]


def serve(host: str, rest_port: int, grpc_port: int, token: sm_server.Tokens | None) -> None:
    """Serve Parameter Manager and Secret Manager on both transports until interrupted."""
    secrets = SecretStore()
    parameters = ParameterStore(secrets)
    table = {**secret_methods(secrets), **methods(parameters)}
    grpc_srv = sm_server.grpc_server(
        {SERVICE: methods(parameters), sm_server.SERVICE: secret_methods(secrets)},
        host,
        grpc_port,
        token,
    )
    rest_srv = sm_server.rest_server(ROUTES + sm_server.ROUTES, table, host, rest_port, token)
    log.info("Parameter Manager + Secret Manager on REST %d, gRPC %d", rest_port, grpc_port)
    sm_server.run_both(grpc_srv, rest_srv)


__all__ = ["ROUTES", "serve"]
