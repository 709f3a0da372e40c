"""Credentials for the cloud source: the standard Alibaba Cloud chain, bridged into
the legacy `aliyunsdkcore` client (errors are scrubbed with redact.py).

The chain mirrors `alibabacloud_credentials`' default chain (environment AK/STS →
RRSA OIDC → CLI profile → profile file → ECS RAM role → credentials URI) and uses
that library's providers, which refresh STS credentials 15 minutes before they
expire. It is rebuilt here rather than taken from `DefaultCredentialsProvider`
because that one reads the environment once, at import, and cannot point STS or
the metadata service anywhere else (tests, VPC endpoints).

`aliyunsdkcore` has no OIDC support and its signers never refresh, so
`ProviderSigner` asks the provider for one credential snapshot per request and
signs with it (the signer interface AcsClient calls for every request:
aliyunsdkcore/auth/signers/signer.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from alibabacloud_credentials.http import HttpOptions
from alibabacloud_credentials.provider import (
    CLIProfileCredentialsProvider,
    EcsRamRoleCredentialsProvider,
    OIDCRoleArnCredentialsProvider,
    ProfileCredentialsProvider,
    StaticAKCredentialsProvider,
    StaticSTSCredentialsProvider,
    URLCredentialsProvider,
)
from aliyunsdkcore.auth.signers.signer import Signer

from ...redact import scrub

log = logging.getLogger(__name__)

class CredentialsError(Exception):
    """No credential could be obtained; the message is already scrubbed."""


@dataclass(frozen=True, slots=True)
class Credential:
    access_key_id: str = field(repr=False)
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    provider: str = ""


@dataclass(frozen=True, slots=True)
class CredentialOptions:
    """Where the chain's network providers go; `None` means the library default.

    `sts_endpoint`: host[:port] of STS for AssumeRoleWithOIDC (HTTPS), also read from
    ALIBABA_CLOUD_STS_ENDPOINT (the ACK pod-identity webhook injects it; the library
    ignores it). `sts_ca_bundle`: extra CA file to trust for STS.
    `metadata_proxy`: HTTP proxy URL through which the ECS metadata service
    (100.100.100.200) is reached; a test points it at a simulated metadata server.
    """

    sts_endpoint: str | None = None
    sts_ca_bundle: str | None = None
    metadata_proxy: str | None = None
    role_session_name: str = "terway-exporter"


class CredentialsProvider(Protocol):
    """What the chain needs of an `alibabacloud_credentials` provider (that library has no type hints)."""

    def get_credentials(self) -> Any:  # -> alibabacloud_credentials Credentials, or None
        ...


class ChainProvider:
    """The first provider of the chain that yields a credential, then that one only
    (like the library's default chain with `reuse_last_provider_enabled`)."""

    def __init__(self, providers: list[tuple[str, CredentialsProvider]], problems: list[str] | None = None) -> None:
        self._providers = providers
        self._problems = list(problems or [])
        self._chosen: tuple[str, CredentialsProvider] | None = None
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._providers)

    def get_credentials(self):  # -> alibabacloud_credentials Credentials
        with self._lock:
            chosen = self._chosen
        if chosen is not None:
            return chosen[1].get_credentials()
        errors = list(self._problems)
        for name, provider in self._providers:
            try:
                cred = provider.get_credentials()
            except Exception as err:  # the library raises many kinds; each is one chain miss
                errors.append(f"{name}: {scrub(err)}")
                continue
            if cred is not None and cred.get_access_key_id():
                with self._lock:
                    self._chosen = (name, provider)
                return cred
        raise CredentialsError("no credentials from the chain: " + scrub("; ".join(errors) or "it is empty"))


def default_provider(env: Mapping[str, str] | None = None, options: CredentialOptions | None = None) -> ChainProvider:
    """The credential chain, configured from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    options = options or CredentialOptions()
    providers: list[tuple[str, CredentialsProvider]] = []
    problems: list[str] = []

    def add(name: str, build: Callable[[], CredentialsProvider]) -> None:
        try:
            providers.append((name, build()))
        except (ValueError, OSError) as err:  # misconfiguration: report it if nothing else works
            problems.append(f"{name}: {scrub(err)}")

    if env.get("ALIYUN_ACCESS_KEY_ID") or env.get("ALIYUN_ACCESS_KEY_SECRET"):
        # The legacy core would let these silently win over every other credential.
        log.warning("ALIYUN_ACCESS_KEY_ID/ALIYUN_ACCESS_KEY_SECRET are ignored; "
                    "use ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    ak, sk, token = (env.get("ALIBABA_CLOUD_ACCESS_KEY_ID"), env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
                     env.get("ALIBABA_CLOUD_SECURITY_TOKEN"))
    if ak and sk and token:
        add("env_sts", lambda: StaticSTSCredentialsProvider(
            access_key_id=ak, access_key_secret=sk, security_token=token))
    elif ak and sk:
        add("env", lambda: StaticAKCredentialsProvider(access_key_id=ak, access_key_secret=sk))
    if all(env.get(k) for k in ("ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                                "ALIBABA_CLOUD_OIDC_TOKEN_FILE")):
        add("oidc_role_arn", lambda: _oidc_provider(env, options))
    add("cli_profile", CLIProfileCredentialsProvider)
    add("profile", ProfileCredentialsProvider)
    if env.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "").lower() != "true":
        add("ecs_ram_role", lambda: EcsRamRoleCredentialsProvider(
            role_name=env.get("ALIBABA_CLOUD_ECS_METADATA") or None,
            disable_imds_v1=env.get("ALIBABA_CLOUD_IMDSV1_DISABLED", "").lower() == "true",
            http_options=HttpOptions(proxy=options.metadata_proxy),
            # The library's async mode starts a scheduler thread per provider;
            # refreshing on use (15 min before expiry) is enough for us.
            async_update_enabled=False,
        ))
    if env.get("ALIBABA_CLOUD_CREDENTIALS_URI"):
        add("credentials_uri", lambda: URLCredentialsProvider(uri=env["ALIBABA_CLOUD_CREDENTIALS_URI"]))
    return ChainProvider(providers, problems)


def _oidc_provider(env: Mapping[str, str], options: CredentialOptions) -> OIDCRoleArnCredentialsProvider:
    provider = OIDCRoleArnCredentialsProvider(
        role_arn=env["ALIBABA_CLOUD_ROLE_ARN"],
        oidc_provider_arn=env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"],
        oidc_token_file_path=env["ALIBABA_CLOUD_OIDC_TOKEN_FILE"],
        role_session_name=env.get("ALIBABA_CLOUD_ROLE_SESSION_NAME") or options.role_session_name,
        sts_endpoint=options.sts_endpoint or env.get("ALIBABA_CLOUD_STS_ENDPOINT") or None,
        sts_region_id=env.get("ALIBABA_CLOUD_STS_REGION") or None,
        enable_vpc=env.get("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "").lower() == "true",
    )
    if options.sts_ca_bundle:
        # Tea's runtime option `ca` (a CA bundle path); the provider does not expose it.
        provider._runtime_options["ca"] = options.sts_ca_bundle
    return provider


class ProviderSigner(Signer):
    """Signs each legacy-SDK request with a fresh snapshot from a credentials provider.

    Runs in the worker thread that makes the call, so a refresh (an STS or metadata
    round trip) blocks only that thread. Remembers the last few credentials so the
    client can scrub them from error messages.
    """

    def __init__(self, provider) -> None:
        self._provider = provider
        self._lock = threading.Lock()
        self._recent: list[str] = []

    def current(self) -> Credential:
        try:
            cred = self._provider.get_credentials()
        except CredentialsError:
            raise
        except Exception as err:  # refresh failures surface as many exception types
            raise CredentialsError(scrub(err, self.secrets())) from None
        if cred is None or not cred.get_access_key_id() or not cred.get_access_key_secret():
            raise CredentialsError("the credential provider returned an empty AccessKey")
        result = Credential(cred.get_access_key_id(), cred.get_access_key_secret(),
                            cred.get_security_token() or None, cred.get_provider_name() or "")
        self._remember(result)
        return result

    def sign(self, region_id, request):
        cred = self.current()
        if cred.security_token:
            if request.get_style() == "RPC":
                request.add_query_param("SecurityToken", cred.security_token)
            else:
                request.add_header("x-acs-security-token", cred.security_token)
        header = request.get_signed_header(region_id, cred.access_key_id, cred.access_key_secret)
        url = request.get_url(region_id, cred.access_key_id, cred.access_key_secret)
        return header, url

    def secrets(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._recent)

    def _remember(self, cred: Credential) -> None:
        values = [v for v in (cred.access_key_id, cred.access_key_secret, cred.security_token) if v]
        with self._lock:
            if all(v in self._recent for v in values):
                return
            self._recent = (values + [v for v in self._recent if v not in values])[:12]
