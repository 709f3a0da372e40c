"""Calls to the Alibaba Cloud RPC APIs through the legacy `aliyunsdkcore` client.

Every call: waits for the shared rate limiter, runs the blocking SDK call in a
bounded thread pool, is counted (`terway_exporter_cloud_api_requests_total`,
one count per attempt), and is retried with jittered exponential back-off on
throttling, 5xx and connection errors. The SDK's own retry is off: it retries
only some ECS codes, never VPC, and would hide attempts from the counters.

A call that finally fails logs exactly one line (API, code, RequestId, scrubbed
message) and raises `CloudApiError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import AcsRequest

from ...backoff import backoff_delay
from ...redact import scrub
from ...telemetry import ExporterCounters
from .credentials import CredentialsError, ProviderSigner
from .ratelimit import RateLimiter
from .settings import CloudSettings

log = logging.getLogger(__name__)

# Codes the client makes up for failures that have no server code.
CONNECTION_ERROR = "ConnectionError"
CREDENTIAL_ERROR = "CredentialError"
INVALID_RESPONSE = "InvalidResponse"
UNEXPECTED_ERROR = "UnexpectedError"
_RETRYABLE_CODES = frozenset({"ServiceUnavailable", "InternalError", "UnknownError", CONNECTION_ERROR})


class CloudApiError(Exception):
    """An API call that failed after its retries; every text field is scrubbed."""

    def __init__(self, api: str, code: str, request_id: str = "", http_status: int | None = None,
                 message: str = "", attempts: int = 1) -> None:
        super().__init__(api, code)
        self.api, self.code, self.request_id = api, code, request_id
        self.http_status, self.message, self.attempts = http_status, message, attempts

    def __str__(self) -> str:
        rid = f" (RequestId {self.request_id})" if self.request_id else ""
        return f"{self.api}: {self.code}{rid}"


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    request_id: str = ""
    http_status: int | None = None
    message: str = ""

    @property
    def throttled(self) -> bool:
        return self.code.startswith("Throttling")

    @property
    def retryable(self) -> bool:
        return (self.throttled or self.code in _RETRYABLE_CODES
                or (self.http_status is not None and self.http_status >= 500))


def classify(err: BaseException, secrets: tuple[str, ...] = ()) -> Failure:
    """The error code an exception from an SDK call stands for."""
    if isinstance(err, ServerException):
        return Failure(err.get_error_code() or UNEXPECTED_ERROR, err.get_request_id() or "",
                       err.get_http_status(), scrub(err.get_error_msg(), secrets))
    if isinstance(err, ClientException):
        code = err.get_error_code()
        return Failure(CONNECTION_ERROR if code == "SDK.HttpError" else code,
                       message=scrub(err.get_error_msg(), secrets))
    if isinstance(err, CredentialsError):
        return Failure(CREDENTIAL_ERROR, message=scrub(err, secrets))
    # e.g. the SDK's IndexError on a SignatureDoesNotMatch message without ':'.
    return Failure(UNEXPECTED_ERROR, message=scrub(f"{type(err).__name__}: {err}", secrets))


def endpoint_url(value: str | None, default_host: str) -> str:
    """`host[:port]` means HTTPS; a value with a scheme is used as it is."""
    value = (value or "").strip().rstrip("/")
    if not value:
        return f"https://{default_host}"
    return value if "://" in value else f"https://{value}"


def proxies_for(url: str, env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Proxies for one endpoint: the environment's, except for loopback and NO_PROXY hosts.

    Always a non-empty dict: given an empty one, the SDK would read HTTP(S)_PROXY
    itself and ignore NO_PROXY (aliyunsdkcore/http/http_response.py).
    """
    host = urlsplit(url).hostname or ""
    direct: dict[str, str | None] = {"http": None, "https": None}
    if _is_loopback(host):
        return direct
    proxies = _env_proxies(env)
    # proxy_bypass_environment exists at runtime (CPython's urllib/request.py) but typeshed omits it.
    if not proxies or urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]
        return direct
    return {"http": proxies.get("http"), "https": proxies.get("https")}


def _env_proxies(env: Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return urllib.request.getproxies_environment()
    found: dict[str, str] = {}
    for key, value in env.items():  # lower case wins, as in urllib
        name = key.lower()
        if value and name.endswith("_proxy"):
            if key == name or name[:-6] not in found:
                found[name[:-6]] = value
    return found


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _DropFilter(logging.Filter):
    """Drops a library's own records: the SDK client's ERROR lines and the credential
    library's refresh warnings repeat the one line we log per failure (and may carry the
    StringToSign); the SDK's DEBUG lines carry the SecurityToken."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


class _ScrubFilter(logging.Filter):
    """Keeps a record but folds it into one scrubbed line: the HTTP libraries log request
    URLs at DEBUG, and those hold the Signature, the SecurityToken or the OIDC token."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


# Logger names as the libraries create them (`logging.getLogger(__name__)`).
_LIBRARY_LOGGERS: tuple[tuple[str, type[logging.Filter]], ...] = (
    ("aliyunsdkcore.client", _DropFilter),
    ("credentials", _DropFilter),  # alibabacloud_credentials
    ("urllib3.connectionpool", _ScrubFilter),  # requests under alibabacloud_credentials (Tea)
    ("aliyunsdkcore.vendored.requests.packages.urllib3.connectionpool", _ScrubFilter),
)


def quiet_sdk_loggers() -> None:
    """Install the filters once per process (idempotent)."""
    for name, kind in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


class CloudClient:
    """Async access to ECS, VPC and Quota Center for one region."""

    def __init__(
        self,
        settings: CloudSettings,
        region_id: str,
        counters: ExporterCounters,
        signer: ProviderSigner,
        limiter: RateLimiter,
        executor: Executor,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.region_id = region_id
        self._settings = settings
        self._counters = counters
        self._signer = signer
        self._limiter = limiter
        self._executor = executor
        self.endpoints = {
            "ecs": endpoint_url(settings.ecs_endpoint, f"ecs.{region_id}.aliyuncs.com"),
            "vpc": endpoint_url(settings.vpc_endpoint, f"vpc.{region_id}.aliyuncs.com"),
            "quotas": endpoint_url(settings.quotas_endpoint, "quotas.aliyuncs.com"),
        }
        quiet_sdk_loggers()
        self._acs = {product: self._acs_client(url, env) for product, url in self.endpoints.items()}

    def _acs_client(self, url: str, env: Mapping[str, str] | None) -> AcsClient:
        client = AcsClient(
            region_id=self.region_id,
            auto_retry=False,
            # A placeholder: the real signer is installed below. (The legacy factory
            # accepts only its own credential classes.)
            credential=StsTokenCredential("placeholder", "placeholder", "placeholder"),
            timeout=self._settings.request_timeout,
            connect_timeout=self._settings.connect_timeout,
            pool_size=self._settings.max_workers,
            proxy=proxies_for(url, env),
        )
        if not hasattr(client, "_signer"):
            raise RuntimeError("aliyunsdkcore.AcsClient has no _signer: unsupported SDK version")
        # Also defeats ALIYUN_ACCESS_KEY_* env vars, which the factory prefers to `credential`.
        client._signer = self._signer
        return client

    async def call(self, api: str, build: Callable[[], AcsRequest]) -> dict[str, Any]:
        """Call `api` with a request from `build` (a new request per attempt: signing
        mutates it); return the parsed JSON body or raise CloudApiError."""
        loop = asyncio.get_running_loop()
        attempts = self._settings.max_attempts
        for attempt in range(1, attempts + 1):
            waited = await self._limiter.acquire()
            if waited > 0:
                self._counters.add_rate_limit_wait(api, waited)
            request = build()
            product = (request.get_product() or "").lower()
            request.set_endpoint(self.endpoints[product])
            start = time.monotonic()
            try:
                body = await loop.run_in_executor(self._executor, self._acs[product].do_action_with_exception, request)
                result = _parse_body(body)
            except Exception as err:  # every SDK failure is classified, none escapes unscrubbed
                failure = classify(err, self._signer.secrets())
            else:
                self._counters.count_cloud_request(api, "Success", time.monotonic() - start)
                return result
            self._counters.count_cloud_request(api, failure.code, time.monotonic() - start)
            if failure.throttled:
                self._limiter.penalize()
            if not failure.retryable or attempt == attempts:
                log.warning("cloud API call failed: api=%s code=%s http_status=%s request_id=%s attempts=%d message=%s",
                            api, failure.code, failure.http_status or "-", failure.request_id or "-", attempt,
                            failure.message or "-")
                raise CloudApiError(api, failure.code, failure.request_id, failure.http_status, failure.message,
                                    attempt)
            await asyncio.sleep(self._backoff(attempt, failure))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, failure: Failure) -> float:
        # A throttled call starts from twice the delay: the limit is per minute (ratelimit.py).
        initial = self._settings.retry_base_delay * (2 if failure.throttled else 1)
        return backoff_delay(attempt, initial, self._settings.retry_max_delay)


class _InvalidResponse(ClientException):
    def __init__(self, message: str) -> None:
        super().__init__(INVALID_RESPONSE, message)


def _parse_body(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, TypeError) as err:
        raise _InvalidResponse(f"response is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise _InvalidResponse("response is not a JSON object")
    return data
