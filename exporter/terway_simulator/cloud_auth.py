"""Authentication of simulated RPC calls: the HMAC-SHA1 signature and the credential checks.

Verifies the RPC signature V2 (https://www.alibabacloud.com/help/en/sdk/product-overview/rpc-mechanism)
so that only a request the real gateway would accept passes: query and form-body parameters are both
signed, blank values are kept, the StringToSign uses the request's real method. The
secret comes from the World: its static AccessKey (unless the scenario says
`cloud.valid_credentials: false`) or a temporary credential the simulated STS / metadata
server issued (`World.temporary_credentials`).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import time
from collections import deque
from urllib.parse import parse_qsl, quote

from .cloud_http import ApiError
from .world import World

NONCE_WINDOW_SECONDS = 15 * 60  # simulator choice; the real window is not documented
TIMESTAMP_SKEW_SECONDS = 15 * 60


def parse_params(query_string: str, body: bytes, content_type: str) -> dict[str, str]:
    """Query parameters plus a form body's, blank values kept (SignatureType= is empty)."""
    params = dict(parse_qsl(query_string, keep_blank_values=True))
    if content_type.startswith("application/x-www-form-urlencoded") and body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as the RPC signature wants it: only A-Z a-z 0-9 - _ . ~ stay."""
    return quote(value, safe="-_.~")


def string_to_sign(method: str, params: dict[str, str]) -> str:
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
    return f"{method.upper()}&%2F&{percent_encode(canonical)}"


def sign(text: str, secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class NonceLedger:
    """Remembers recent SignatureNonce values so a replayed request is refused."""

    def __init__(self, window: float = NONCE_WINDOW_SECONDS) -> None:
        self.window = window
        self.seen: set[str] = set()
        self.order: deque[tuple[float, str]] = deque()

    def use(self, nonce: str, now: float) -> bool:
        while self.order and self.order[0][0] < now - self.window:
            self.seen.discard(self.order.popleft()[1])
        if nonce in self.seen:
            return False
        self.seen.add(nonce)
        self.order.append((now, nonce))
        return True


def secret_for(world: World, params: dict[str, str], now: float) -> str:
    """The secret to verify with, or the error the real gateway gives for these credentials."""
    access_key_id = params.get("AccessKeyId", "")
    if access_key_id == world.access_key_id and world.cloud.get("valid_credentials", True) is not False:
        return str(world.cloud.get("server_access_key_secret", world.access_key_secret))
    cred = world.temporary_credentials.get(access_key_id)
    if cred is None:
        raise ApiError("InvalidAccessKeyId.NotFound")
    token = params.get("SecurityToken", "")
    if not token:
        raise ApiError("MissingSecurityToken")
    if token != cred.security_token:
        raise ApiError("InvalidSecurityToken.MismatchWithAccessKey")
    if now >= cred.expires_at:
        raise ApiError("InvalidSecurityToken.Expired")
    return cred.access_key_secret


def authenticate(world: World, method: str, params: dict[str, str], nonces: NonceLedger, now: float) -> None:
    """Raise the real error when the request's credentials or signature are not acceptable."""
    if not all(params.get(key) for key in ("AccessKeyId", "Signature", "SignatureNonce")):
        raise ApiError("IncompleteSignature")
    check_timestamp(params.get("Timestamp", ""), now)
    secret = secret_for(world, params, now)
    expected_text = string_to_sign(method, params)
    if not hmac.compare_digest(sign(expected_text, secret), params["Signature"]):
        # aliyunsdkcore/client.py compares the text after the first ':' with its own StringToSign and,
        # when they match, reports InvalidAccessKeySecret instead.
        raise ApiError("SignatureDoesNotMatch", status=400, message=(
            "Specified signature is not matched with our calculation. server string to sign is:" + expected_text))
    if not nonces.use(params.get("SignatureNonce", ""), now):
        raise ApiError("SignatureNonceUsed")


def check_timestamp(value: str, now: float) -> None:
    try:
        stamp = calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise ApiError("IllegalTimestamp") from None
    if abs(now - stamp) > TIMESTAMP_SKEW_SECONDS:
        raise ApiError("IllegalTimestamp", message="Specified time stamp or date value is expired.")
