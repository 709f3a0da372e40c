"""Simulated credential issuers: STS AssumeRoleWithOIDC (RRSA) and the ECS metadata service.

Both mint temporary credentials into `World.temporary_credentials`, the registry the
simulated cloud (cloud_api.py) checks, so what they issue is accepted there until it
expires. One app serves both, on one port:

- STS: `GET|POST /?Action=AssumeRoleWithOIDC&RoleArn=..&OIDCProviderArn=..&OIDCToken=..`
  (unsigned, as alibabacloud-credentials sends it). The provider forces https, but an
  `sts_endpoint` given with a scheme wins: `sts_endpoint="http://127.0.0.1:PORT"`.
- ECS metadata (IMDS): `PUT /latest/api/token` (header
  `X-aliyun-ecs-metadata-token-ttl-seconds`), `GET /latest/meta-data/ram/security-credentials/`
  (the role name) and `.../security-credentials/<role>` (the credential JSON). The real
  host is the fixed 100.100.100.200, so a client reaches this server as an HTTP proxy
  (`HttpOptions(proxy="http://127.0.0.1:PORT")`); absolute-form request lines work.

`expiration_seconds` sets how long issued credentials live (the real minimum is 900 s; a
test sets a few seconds to watch rotation). Control endpoints for tests and the soak:

- `GET /_sim/credentials/calls`: requests counted by action (and `refused:<code>` for STS refusals);
- `GET /_sim/credentials/issued`: every temporary credential issued so far, secret and token
  included (so a test can look for them in an exporter's output), with when it was issued;
- `POST /_sim/credentials/config`: body `{"oidc_token": T, "expiration_seconds": S}`, either key
  optional, `null` to clear: from now on STS accepts only OIDC token T (a rotated projected
  token) and credentials live S seconds. Credentials already issued keep their expiry.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .cloud_http import ApiError, error_response, json_response, new_request_id, start_app
from .cloud_params import iso_time
from .world import World, WorldCredential

METADATA_TOKEN_HEADER = "X-aliyun-ecs-metadata-token"
METADATA_TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
STS_HOST = "sts.aliyuncs.com"


@dataclass
class CredentialsState:
    world: World
    role_name: str
    expiration_seconds: float | None  # None: honour DurationSeconds (STS) / 6 h (metadata)
    oidc_token: str | None  # when set, AssumeRoleWithOIDC accepts only this token
    require_imds_v2: bool
    clock: Callable[[], float] = time.time
    metadata_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    role_credential: WorldCredential | None = None  # what the metadata service hands out now
    calls: dict[str, int] = field(default_factory=dict)
    issued_at: dict[str, float] = field(default_factory=dict)  # AccessKeyId -> when issued

    def count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1

    def issue(self, duration: float) -> WorldCredential:
        now = self.clock()
        cred = self.world.issue_temporary_credential(self.expiration_seconds or duration, now=now)
        self.issued_at[cred.access_key_id] = now
        return cred


CREDENTIALS_STATE = web.AppKey("credentials_state", CredentialsState)


def make_credentials_app(world: World, *, role_name: str = "terway-exporter-role",
                         expiration_seconds: float | None = None, oidc_token: str | None = None,
                         require_imds_v2: bool = False, clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application()
    app[CREDENTIALS_STATE] = CredentialsState(world, role_name, expiration_seconds, oidc_token, require_imds_v2, clock)
    app.router.add_put("/latest/api/token", _metadata_token)
    app.router.add_get("/latest/meta-data/ram/security-credentials/", _role_name)
    app.router.add_get("/latest/meta-data/ram/security-credentials/{role}", _role_credentials)
    app.router.add_get("/_sim/credentials/calls", _calls)
    app.router.add_get("/_sim/credentials/issued", _issued)
    app.router.add_post("/_sim/credentials/config", _config)
    app.router.add_route("*", "/", _sts)
    return app


async def start_credentials_simulator(world: World, host: str = "127.0.0.1", port: int = 0,
                                      **options: Any) -> tuple[web.AppRunner, str]:
    """Serve STS + metadata for `world`; options as make_credentials_app. Returns (runner, base_url)."""
    return await start_app(make_credentials_app(world, **options), host, port)


# --------------------------------------------------------------------------- STS


async def _sts(request: web.Request) -> web.Response:
    state = request.app[CREDENTIALS_STATE]
    params = dict(request.query)
    if request.content_type == "application/x-www-form-urlencoded":
        # A form field that is a file upload is not a parameter the service reads: kept as its text.
        params.update({k: v if isinstance(v, str) else str(v) for k, v in (await request.post()).items()})
    request_id = new_request_id()
    state.count(params.get("Action", "(none)"))
    try:
        body = _assume_role_with_oidc(state, params)
    except ApiError as err:
        state.count(f"refused:{err.code}")
        return error_response(err, request_id, STS_HOST, "Sts")
    return json_response({"RequestId": request_id, **body}, 200, request_id)


def _assume_role_with_oidc(state: CredentialsState, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("Action") != "AssumeRoleWithOIDC":
        raise ApiError("InvalidAction.NotFound")
    for name in ("RoleArn", "OIDCProviderArn", "OIDCToken"):
        if not params.get(name):
            raise ApiError("MissingParameter", message=f"The input parameter \"{name}\" is not supplied.")
    duration = _duration(params.get("DurationSeconds", "3600"))
    if state.oidc_token is not None and params["OIDCToken"] != state.oidc_token:
        # Code as STS documents it for a token its OIDC provider cannot verify (unverified spelling).
        raise ApiError("AuthenticationFail.OIDCToken.Invalid", status=400, message="The OIDCToken is invalid.")
    cred = state.issue(duration)
    session = params.get("RoleSessionName") or "sim-session"
    role = str(params["RoleArn"])
    return {
        "Credentials": _credential_json(cred),
        "AssumedRoleUser": {"AssumedRoleId": f"300000000000000000:{session}",
                            "Arn": role.replace(":role/", ":assumed-role/", 1) + f"/{session}"},
        "OIDCTokenInfo": {"Subject": "system:serviceaccount:kube-system:terway-exporter",
                          "Issuer": "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou-internal.aliyuncs.com/sim",
                          "ClientIds": "sts.aliyuncs.com", "IssuanceTime": iso_time(state.clock()),
                          "ExpirationTime": iso_time(cred.expires_at)},
        "SourceIdentity": "",
    }


def _duration(raw: str) -> float:
    try:
        duration = float(raw)
    except ValueError:
        duration = 0.0
    if not 900 <= duration <= 43200:
        raise ApiError("InvalidParameter.DurationSeconds", status=400,
                       message="The Min/Max value of DurationSeconds is 15min/12hr.")
    return duration


def _credential_json(cred: WorldCredential) -> dict[str, str]:
    return {"AccessKeyId": cred.access_key_id, "AccessKeySecret": cred.access_key_secret,
            "SecurityToken": cred.security_token, "Expiration": iso_time(cred.expires_at)}


# --------------------------------------------------------------------------- ECS metadata


async def _metadata_token(request: web.Request) -> web.Response:
    state = request.app[CREDENTIALS_STATE]
    state.count("metadata_token")
    try:
        ttl = int(request.headers.get(METADATA_TTL_HEADER, ""))
    except ValueError:
        ttl = 0
    if not 1 <= ttl <= 21600:
        return web.Response(status=400, text="X-aliyun-ecs-metadata-token-ttl-seconds must be 1..21600")
    token = secrets.token_urlsafe(32)
    state.metadata_tokens[token] = state.clock() + ttl
    return web.Response(text=token)


def _metadata_refusal(request: web.Request) -> web.Response | None:
    """401 for a bad or expired IMDSv2 token, 403 for none when IMDSv2 is enforced; else None."""
    state = request.app[CREDENTIALS_STATE]
    token = request.headers.get(METADATA_TOKEN_HEADER)
    if token is None:
        return web.Response(status=403, text="Forbidden") if state.require_imds_v2 else None
    expiry = state.metadata_tokens.get(token)
    if expiry is None or expiry <= state.clock():
        return web.Response(status=401, text="Unauthorized")
    return None


async def _role_name(request: web.Request) -> web.Response:
    state = request.app[CREDENTIALS_STATE]
    state.count("metadata_role_name")
    return _metadata_refusal(request) or web.Response(text=state.role_name)


async def _role_credentials(request: web.Request) -> web.Response:
    state = request.app[CREDENTIALS_STATE]
    state.count("metadata_credentials")
    refusal = _metadata_refusal(request)
    if refusal is not None:
        return refusal
    if request.match_info["role"] != state.role_name:
        return web.Response(status=404, text="Not Found")
    cred = _current_role_credential(state)
    body = {"Code": "Success", "LastUpdated": iso_time(state.clock()), **_credential_json(cred)}
    return web.json_response(body)


def _current_role_credential(state: CredentialsState) -> WorldCredential:
    """Like the real service: the same credential until half its life is gone, then a new one."""
    lifetime = state.expiration_seconds or 6 * 3600
    cred = state.role_credential
    if cred is None or cred.expires_at - state.clock() < lifetime / 2:
        cred = state.role_credential = state.issue(lifetime)
    return cred


async def _calls(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[CREDENTIALS_STATE].calls))


async def _issued(request: web.Request) -> web.Response:
    state = request.app[CREDENTIALS_STATE]
    return web.json_response({"credentials": [
        {"access_key_id": c.access_key_id, "access_key_secret": c.access_key_secret,
         "security_token": c.security_token, "expires_at": c.expires_at,
         "issued_at": state.issued_at.get(c.access_key_id)}
        for c in state.world.temporary_credentials.values()]})


async def _config(request: web.Request) -> web.Response:
    state = request.app[CREDENTIALS_STATE]
    body = await request.json() if request.can_read_body else {}
    if not isinstance(body, dict) or set(body) - {"oidc_token", "expiration_seconds"}:
        return web.json_response({"error": "body: {\"oidc_token\": str|null, \"expiration_seconds\": number|null}"},
                                 status=400)
    if "oidc_token" in body:
        state.oidc_token = None if body["oidc_token"] is None else str(body["oidc_token"])
    if "expiration_seconds" in body:
        state.expiration_seconds = None if body["expiration_seconds"] is None else float(body["expiration_seconds"])
    return web.json_response({"oidc_token_required": state.oidc_token is not None,
                              "expiration_seconds": state.expiration_seconds})
