"""HTTP plumbing shared by the simulated cloud APIs: error bodies, request IDs, serving.

Error bodies look like the Alibaba Cloud RPC gateway's:
`{"RequestId", "HostId", "Code", "Message", "Recommend"}` with the HTTP status the API
references' error-code tables give for that code. The legacy SDK reads only the status, Code,
Message and RequestId (aliyunsdkcore/client.py, `_parse_error_info_from_response_body` and the
ServerException it raises), so those four must be exact; the rest is there so logs and curl
output look like the real thing. Statuses and messages not found in a reference are **unverified**.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json;charset=utf-8"

# code -> (HTTP status, Message), as the API references' error-code tables list them (STS-token codes
# as the gateway answers them; **unverified** where no reference lists the code). Forbidden.RAM also
# carries AccessDeniedDetail naming the action, see forbidden_ram().
KNOWN_ERRORS: dict[str, tuple[int, str]] = {
    "Throttling": (400, "You have made too many requests within a short time; "
                        "your request is denied due to request throttling."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "InternalError": (500, "The request processing has failed due to some unknown error, exception or failure."),
    "UnknownError": (400, "The request processing has failed due to some unknown error."),
    "Forbidden.RAM": (403, "User not authorized to operate on the specified resource, "
                           "or this API doesn't support RAM."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "MissingSecurityToken": (400, "SecurityToken is mandatory for this action."),
    "InvalidSecurityToken.Expired": (400, "Specified SecurityToken is expired."),
    "InvalidSecurityToken.MismatchWithAccessKey": (400, "Specified SecurityToken mismatch with the AccessKey."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "IllegalTimestamp": (400, "The input parameter \"Timestamp\" that is mandatory for processing "
                              "this request is not supplied or not valid."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "MissingParameter": (400, "The input parameter that is mandatory for processing this request is not supplied."),
    "InvalidParameter": (400, "The specified parameter is not valid."),
    "InvalidSecurityGroupId.NotFound": (404, "The specified security group does not exist."),
    "InvalidVSwitchId.NotFound": (404, "The specified VSwitchId does not exist."),
    "MissingProductCode": (400, "ProductCode is missing"),
    "QUOTA.NOT.FOUND": (400, "The quota does not exist."),
    "QUOTA.DIMENSION.MISS": (400, "The entered quota dimension is incomplete,Please complete the dimension."),
    "DryRunOperation": (400, "Request validation has been passed with DryRun flag set."),
}


@dataclass
class ApiError(Exception):
    """An error answer; raised anywhere while handling a request, rendered by the app."""

    code: str
    status: int = 0
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        status, message = KNOWN_ERRORS.get(self.code, (400, self.code))
        self.status = self.status or status
        self.message = self.message or message
        super().__init__(f"{self.code}: {self.message}")


def forbidden_ram(ram_action: str) -> ApiError:
    """Forbidden.RAM as current gateways send it: the classic Message plus AccessDeniedDetail."""
    return ApiError("Forbidden.RAM", extra={"AccessDeniedDetail": {
        "AuthAction": ram_action, "NoPermissionType": "ImplicitDeny", "AuthPrincipalType": "SubUser",
        "AuthPrincipalDisplayName": "terway-exporter", "PolicyType": "AccountLevelIdentityBasedPolicy",
        "EncodedDiagnosticMessage": "AQEAAAAAaSimulatedDiagnostic"}})


def invalid_parameter(name: str, value: str) -> ApiError:
    return ApiError("InvalidParameter", message=f"The specified parameter {name!s} ({value!r}) is not valid.")


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def error_response(err: ApiError, request_id: str, host_id: str, product: str) -> web.Response:
    body = {
        "RequestId": request_id, "HostId": host_id, "Code": err.code, "Message": err.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}&product={product}&requestId={request_id}",
        **err.extra,
    }
    return json_response(body, err.status, request_id)


def json_response(body: dict[str, Any], status: int, request_id: str) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=None,
                        headers={"Content-Type": JSON_CONTENT_TYPE, "x-acs-request-id": request_id})


async def start_app(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve `app` on host:port (0 = any free port); returns the runner (call cleanup()) and base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    return runner, f"http://{host}:{bound[1]}"
