"""`--web.config.file`: TLS, basic auth and response headers in the format of Prometheus' exporter-toolkit.

The file is the one every Go exporter reads (github.com/prometheus/exporter-toolkit,
docs/web-configuration.md): `tls_server_config`, `http_server_config`, `basic_auth_users` and
`rate_limit`. It is parsed as strictly as exporter-toolkit's `yaml.UnmarshalStrict` (an unknown or
repeated key is an error, every scalar is read as its text), and each value is checked before the
server starts: a file that cannot work is a `WebConfigError`, which `serve` turns into exit 2.

What Python's `ssl` module cannot express the way Go's crypto/tls does (docs/cli.md has the table):

- `client_auth_type`: OpenSSL verifies every certificate it asks for, so `RequestClientCert` asks for
  none (Go asks and ignores the answer: the same clients get in) and `RequireAnyClientCert` requires
  one that verifies against `client_ca_file` (stricter than Go; a CA is then required).
- `curve_preferences`: one curve restricts the key exchange to it, as in Go; with several, OpenSSL's
  default groups (which include all four of Go's) are kept and the order is not applied.
- `http_server_config.http2`: aiohttp speaks HTTP/1.1 only; ALPN offers `http/1.1`.
- `client_allowed_sans`: checked on each request (403, connection closed) instead of during the
  handshake.

Certificates are re-read without a restart, as exporter-toolkit re-reads them on every connection:
`WebSecurity.check` compares the files' identities (inode, size, mtime, following the symlinks that
Kubernetes Secret volumes swap) on each TLS handshake (at most once a second) and every
`CHECK_INTERVAL` seconds, and builds a new SSLContext from the new files. New connections get it
through the listening context's SNI callback, which OpenSSL calls on every ClientHello, with or without
SNI. A file that does not load keeps the previous certificate, with an error log line and
terway_exporter_web_config_reload_success 0. The listening socket's TLS parameters (versions, ciphers,
client auth type, curves) are fixed at start: a file that changes them is refused the same way until
the exporter restarts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import ssl
import struct
import tempfile
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import yaml
from aiohttp import web

log = logging.getLogger(__name__)

# How often the files are compared when no connection arrives (Prometheus keeps its connection open,
# so handshakes alone would leave a rotation and the reload metric unnoticed for hours).
CHECK_INTERVAL = 5.0
# A TLS handshake compares the files at most this often.
HANDSHAKE_CHECK_INTERVAL = 1.0
# Paths that need neither basic auth nor a rate-limit token: the kubelet's probes cannot send credentials.
UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/readyz"})
# Checked (user, hash, password) triples kept, as exporter-toolkit's cache (web/cache.go) does.
AUTH_CACHE_SIZE = 100
# bcrypt checks waiting for the one bcrypt thread; beyond this a request gets 503 instead of queueing.
MAX_PENDING_AUTH = 32
# exporter-toolkit's hash of "fakepassword", checked for unknown users so that timing does not tell
# which users exist.
FAKE_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"

# Go's crypto/tls CipherSuites() (the suites it calls secure) -> OpenSSL's name. None: a TLS 1.3
# suite, which neither Go nor OpenSSL lets a server configure through this list (both keep their
# TLS 1.3 defaults). Go's InsecureCipherSuites() (RC4, 3DES, CBC_SHA256, RSA key exchange) are
# unknown to exporter-toolkit, hence here.
GO_CIPHER_SUITES: dict[str, str | None] = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# exporter-toolkit's curve names -> OpenSSL's group names.
GO_CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# client_auth_type -> (verify mode, whether a client CA is required here). See the module doc.
CLIENT_AUTH_TYPES: dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireClientCert": ssl.CERT_REQUIRED,  # exporter-toolkit's old spelling of RequireAnyClientCert
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# The headers exporter-toolkit lets a file set (web/handler.go extraHTTPHeaders), with the values it
# accepts (None: any).
ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_BCRYPT_HASH = re.compile(rb"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_YAML_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})
_YAML_FALSE = frozenset({"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})
_YAML_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class WebConfigError(ValueError):
    """A web configuration file that cannot work; the message is one line naming the key."""


# ---------------------------------------------------------------- parsing


class _StrictLoader(yaml.BaseLoader):
    """Every scalar as its text (Go's yaml.v2 does the same for string fields); repeated keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)



@dataclass(frozen=True)
class TLSSettings:
    """`tls_server_config`, paths already joined with the file's directory."""

    cert_file: str = ""
    key_file: str = ""
    cert: str = ""
    key: str = field(default="", repr=False)
    client_ca_file: str = ""
    client_ca: str = ""
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()
    client_allowed_sans: tuple[str, ...] | None = None

    def fixed_at_start(self) -> tuple:
        """What the listening socket's SSLContext holds: changing it needs a restart."""
        return (self.client_auth_type, self.min_version, self.max_version, self.cipher_suites,
                self.prefer_server_cipher_suites, self.curve_preferences)

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        return CLIENT_AUTH_TYPES[self.client_auth_type]

    def files(self) -> tuple[str, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p)


@dataclass(frozen=True)
class WebConfig:
    path: str
    tls: TLSSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    http2: bool = True
    rate_limit_interval: float = 0.0  # seconds between two tokens; 0: no rate limit
    rate_limit_burst: int = 0


def read_web_config(path: str) -> WebConfig:
    """Parse and check the file (not the certificates: see `read_material`)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise WebConfigError(f"cannot read {path!r}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise WebConfigError(f"{path!r} is not UTF-8 text (byte {err.start})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - BaseLoader subclass: strings only
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WebConfigError(f"{path!r} is not valid YAML{where}: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise WebConfigError(f"{path!r} is not valid YAML: {_one_line(str(err))}") from None
    if data is None or data == "":
        data = {}
    top = _mapping(data, "the file", {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"})
    directory = os.path.dirname(os.path.abspath(path))
    tls = _tls_settings(top.get("tls_server_config"), directory)
    http = _mapping(top.get("http_server_config"), "http_server_config", {"http2", "headers"})
    headers = _headers(http.get("headers"))
    http2 = _bool(http.get("http2"), "http_server_config.http2", default=True)
    users = _users(top.get("basic_auth_users"))
    rate = _mapping(top.get("rate_limit"), "rate_limit", {"interval", "burst"})
    interval = _go_duration(rate.get("interval"), "rate_limit.interval")
    burst = _int(rate.get("burst"), "rate_limit.burst")
    if interval > 0 and burst < 1:
        raise WebConfigError("rate_limit.burst: must be at least 1 when rate_limit.interval is set "
                             "(a burst of 0 refuses every request)")
    return WebConfig(path=path, tls=tls, users=users, headers=headers, http2=http2,
                     rate_limit_interval=interval, rate_limit_burst=burst)


def _tls_settings(value: Any, directory: str) -> TLSSettings | None:
    keys = {f.name for f in fields(TLSSettings)}
    raw = _mapping(value, "tls_server_config", keys)
    where = "tls_server_config."
    text = {k: _string(raw.get(k), where + k) for k in
            ("cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca", "client_auth_type",
             "min_version", "max_version")}
    # exporter-toolkit's TLSConfig.IsEnabled: any of these turns TLS on; none leaves plain HTTP.
    if not any(text[k] for k in ("cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca",
                                 "client_auth_type")):
        for key in raw:
            if key not in text or text[key]:
                log.warning("web configuration: %s%s is ignored: TLS is off without a certificate", where, key)
        return None
    for name in ("cert_file", "key_file", "client_ca_file"):
        if text[name]:
            text[name] = os.path.join(directory, os.path.expanduser(text[name]))
    for file_key, inline_key in (("cert_file", "cert"), ("key_file", "key"), ("client_ca_file", "client_ca")):
        if text[file_key] and text[inline_key]:
            log.warning("web configuration: both %s%s and %s%s are set; %s is used, as exporter-toolkit does",
                        where, file_key, where, inline_key, file_key)
    if not (text["cert_file"] or text["cert"]):
        raise WebConfigError(f"{where}cert_file: missing one of cert or cert_file")
    if not (text["key_file"] or text["key"]):
        raise WebConfigError(f"{where}key_file: missing one of key or key_file")
    auth = text["client_auth_type"] or "NoClientCert"
    if auth not in CLIENT_AUTH_TYPES:
        raise WebConfigError(f"{where}client_auth_type: invalid ClientAuth {auth!r} "
                             f"(one of {', '.join(k for k in CLIENT_AUTH_TYPES if k != 'RequireClientCert')})")
    has_ca = bool(text["client_ca_file"] or text["client_ca"])
    if has_ca and auth == "NoClientCert":
        raise WebConfigError(f"{where}client_auth_type: client CA's have been configured without a Client Auth "
                             "Policy (set client_auth_type, e.g. RequireAndVerifyClientCert)")
    if auth in ("RequireAnyClientCert", "RequireClientCert") and not has_ca:
        raise WebConfigError(f"{where}client_auth_type: {auth} needs client_ca_file here: Python's ssl module "
                             "cannot require a client certificate without verifying it (use "
                             "RequireAndVerifyClientCert with the CA that signs your clients' certificates)")
    versions = []
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        version = text[name] or default
        if version not in TLS_VERSIONS:
            raise WebConfigError(f"{where}{name}: unknown TLS version: {version} (TLS10, TLS11, TLS12 or TLS13)")
        versions.append(version)
    if TLS_VERSIONS[versions[0]] > TLS_VERSIONS[versions[1]]:
        raise WebConfigError(f"{where}min_version: {versions[0]} is above max_version {versions[1]}")
    ciphers = tuple(_string(c, f"{where}cipher_suites")
                    for c in _list(raw.get("cipher_suites"), where + "cipher_suites"))
    unknown = [c for c in ciphers if c not in GO_CIPHER_SUITES]
    if unknown:
        raise WebConfigError(f"{where}cipher_suites: unknown cipher: {unknown[0]} (Go's crypto/tls "
                             f"CipherSuites(): {', '.join(GO_CIPHER_SUITES)})")
    if ciphers and not any(GO_CIPHER_SUITES[c] for c in ciphers) and versions[0] != "TLS13":
        raise WebConfigError(f"{where}cipher_suites: only TLS 1.3 suites, which are not configurable; list TLS 1.2 "
                             "suites or set min_version: TLS13")
    curves = tuple(_string(c, f"{where}curve_preferences") for c in
                   _list(raw.get("curve_preferences"), where + "curve_preferences"))
    bad_curves = [c for c in curves if c not in GO_CURVES]
    if bad_curves:
        raise WebConfigError(f"{where}curve_preferences: unknown curve: {bad_curves[0]} "
                             f"({', '.join(GO_CURVES)})")
    sans_raw = raw.get("client_allowed_sans")
    sans = None
    if sans_raw is not None and not (isinstance(sans_raw, str) and sans_raw in _YAML_NULL):
        sans = tuple(_string(s, f"{where}client_allowed_sans") for s in _list(sans_raw, where + "client_allowed_sans"))
        if auth == "RequestClientCert":
            raise WebConfigError(f"{where}client_allowed_sans: needs a client certificate, which Python's ssl module "
                                 "does not ask for with RequestClientCert; use VerifyClientCertIfGiven or "
                                 "RequireAndVerifyClientCert")
        if auth == "NoClientCert":
            log.warning("web configuration: %sclient_allowed_sans is ignored with client_auth_type NoClientCert, "
                        "as in exporter-toolkit", where)
            sans = None
    return TLSSettings(
        cert_file=text["cert_file"], key_file=text["key_file"], cert=text["cert"], key=text["key"],
        client_ca_file=text["client_ca_file"], client_ca=text["client_ca"], client_auth_type=auth,
        min_version=versions[0], max_version=versions[1], cipher_suites=ciphers,
        prefer_server_cipher_suites=_bool(raw.get("prefer_server_cipher_suites"),
                                          where + "prefer_server_cipher_suites", default=True),
        curve_preferences=curves, client_allowed_sans=sans,
    )


def _headers(value: Any) -> dict[str, str]:
    headers = {}
    for name, raw in _mapping(value, "http_server_config.headers", None).items():
        allowed = ALLOWED_HEADERS.get(name, ())
        if allowed == ():
            raise WebConfigError(f"http_server_config.headers: HTTP header {name!r} can not be configured "
                                 f"({', '.join(ALLOWED_HEADERS)})")
        text = _string(raw, f"http_server_config.headers.{name}")
        if allowed is not None and text not in allowed:
            raise WebConfigError(f"http_server_config.headers: invalid value for {name}. Expected one of: "
                                 f"{', '.join(allowed)}, but got: {text!r}")
        if text:
            headers[name] = text
    return headers


def _users(value: Any) -> dict[str, bytes]:
    users = {}
    for name, raw in _mapping(value, "basic_auth_users", None).items():
        hashed = _string(raw, f"basic_auth_users.{name}").encode()
        match = _BCRYPT_HASH.match(hashed)
        if not match or not 4 <= int(match.group(1)) <= 31:
            # Never echo the value: it may be a plaintext password put there by mistake.
            raise WebConfigError(f"basic_auth_users.{name}: not a bcrypt hash ($2y$10$... with 53 characters "
                                 "after the cost, e.g. from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
        users[str(name)] = hashed
    return users


def _mapping(value: Any, where: str, allowed: set[str] | None) -> dict[str, Any]:
    if value is None or (isinstance(value, str) and value in _YAML_NULL):
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where}: must be a mapping")
    if allowed is not None:
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            prefix = "" if where == "the file" else f"{where}."
            raise WebConfigError(f"{prefix}{unknown[0]}: unknown key (field {unknown[0]} not found; "
                                 f"known: {', '.join(sorted(allowed))})")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None or (isinstance(value, str) and value in _YAML_NULL):
        return []
    if not isinstance(value, list):
        raise WebConfigError(f"{where}: must be a list")
    return value


def _string(value: Any, where: str) -> str:
    if value is None or (isinstance(value, str) and value in _YAML_NULL):
        return ""
    if not isinstance(value, str):
        raise WebConfigError(f"{where}: must be a string, not a {'list' if isinstance(value, list) else 'mapping'}")
    return value


def _bool(value: Any, where: str, default: bool) -> bool:
    text = _string(value, where)
    if not text:
        return default
    if text in _YAML_TRUE:
        return True
    if text in _YAML_FALSE:
        return False
    raise WebConfigError(f"{where}: {text!r} is not true or false")


def _int(value: Any, where: str) -> int:
    text = _string(value, where)
    if not text:
        return 0
    try:
        return int(text, 0)
    except ValueError:
        raise WebConfigError(f"{where}: {text!r} is not an integer") from None


def _go_duration(value: Any, where: str) -> float:
    """Go's time.ParseDuration (`1s`, `1m30s`, `500ms`); a bare integer is nanoseconds, as yaml.v2 reads it."""
    text = _string(value, where).strip()
    if not text or text == "0":
        return 0.0
    if re.fullmatch(r"\d+", text):
        return int(text) * 1e-9
    if not re.fullmatch(f"(?:{_GO_DURATION_PART.pattern})+", text):
        raise WebConfigError(f"{where}: {text!r} is not a duration (examples: 1s, 100ms, 1m30s)")
    return sum(float(n) * _GO_DURATION_UNITS[u] for n, u in _GO_DURATION_PART.findall(text))


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- certificates


@dataclass(frozen=True)
class TLSMaterial:
    """The certificate chain, key and client CAs as read, checked, at one moment."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    ca_pem: bytes | None
    serial: int
    subject: str
    not_after: float  # unix seconds


def read_material(tls: TLSSettings) -> TLSMaterial:
    """Read and check the certificate, key and client CAs; WebConfigError names what is wrong."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    where = "tls_server_config."
    cert_pem = _read(tls.cert_file, where + "cert_file") if tls.cert_file else tls.cert.encode()
    key_pem = _read(tls.key_file, where + "key_file") if tls.key_file else tls.key.encode()
    cert_origin = f"{where}cert_file {tls.cert_file!r}" if tls.cert_file else f"{where}cert"
    key_origin = f"{where}key_file {tls.key_file!r}" if tls.key_file else f"{where}key"
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise WebConfigError(f"{cert_origin}: no PEM certificate could be read") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise WebConfigError(f"{key_origin}: the key is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise WebConfigError(f"{key_origin}: no PEM private key could be read") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise WebConfigError(f"{key_origin}: the private key does not match the certificate of {cert_origin}")
    ca_pem = None
    if tls.client_ca_file or tls.client_ca:
        ca_pem = _read(tls.client_ca_file, where + "client_ca_file") if tls.client_ca_file else tls.client_ca.encode()
        origin = f"{where}client_ca_file {tls.client_ca_file!r}" if tls.client_ca_file else f"{where}client_ca"
        try:
            x509.load_pem_x509_certificates(ca_pem)
        except ValueError:
            raise WebConfigError(f"{origin}: no PEM certificate could be read") from None
    leaf = chain[0]
    return TLSMaterial(cert_pem=cert_pem, key_pem=key_pem, ca_pem=ca_pem, serial=leaf.serial_number,
                       subject=leaf.subject.rfc4514_string(), not_after=leaf.not_valid_after_utc.timestamp())


def _read(path: str, where: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise WebConfigError(f"{where}: cannot read {path!r}: {err.strerror}") from None


def build_context(tls: TLSSettings, material: TLSMaterial) -> ssl.SSLContext:
    """An SSLContext for the settings and material (see the module doc for what maps how)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    openssl_names = [name for c in tls.cipher_suites if (name := GO_CIPHER_SUITES[c])]
    if openssl_names:
        try:
            ctx.set_ciphers(":".join(openssl_names))
        except ssl.SSLError:
            raise WebConfigError(
                f"tls_server_config.cipher_suites: none is available in {ssl.OPENSSL_VERSION}") from None
        available = {c["name"] for c in ctx.get_ciphers()}
        missing = [go for go in tls.cipher_suites if GO_CIPHER_SUITES[go] and GO_CIPHER_SUITES[go] not in available]
        if missing:
            raise WebConfigError(f"tls_server_config.cipher_suites: {missing[0]} is not available in "
                                 f"{ssl.OPENSSL_VERSION}")
    if len(tls.curve_preferences) == 1:
        try:
            ctx.set_ecdh_curve(GO_CURVES[tls.curve_preferences[0]])
        except (ValueError, ssl.SSLError):
            raise WebConfigError(f"tls_server_config.curve_preferences: {tls.curve_preferences[0]} is not available "
                                 f"in {ssl.OPENSSL_VERSION}") from None
    ctx.set_alpn_protocols(["http/1.1"])
    with _pem_path(material.cert_pem) as cert_path, _pem_path(material.key_pem) as key_path:
        try:
            ctx.load_cert_chain(cert_path, key_path, password=_refuse_password)
        except ssl.SSLError as err:
            raise WebConfigError(f"tls_server_config: OpenSSL refused the certificate and key: "
                                 f"{err.reason or _one_line(str(err))}") from None
    ctx.verify_mode = tls.verify_mode
    if tls.verify_mode != ssl.CERT_NONE:
        if material.ca_pem is not None:
            try:
                ctx.load_verify_locations(cadata=material.ca_pem.decode("ascii", "replace"))
            except ssl.SSLError as err:
                raise WebConfigError(f"tls_server_config.client_ca_file: OpenSSL refused the CA certificates: "
                                     f"{err.reason or _one_line(str(err))}") from None
        else:
            # Go verifies client certificates against the system roots when no client CA is given.
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return ctx


def _refuse_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    raise WebConfigError("tls_server_config: the key is encrypted; give an unencrypted PEM key")


@contextlib.contextmanager
def _pem_path(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read `data` from, without writing the key to disk where the OS allows."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("terway-exporter-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="terway-exporter-tls-")  # mode 0600
    try:
        os.write(fd, data)
        os.close(fd)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


# ---------------------------------------------------------------- the running server's side


class TokenBucket:
    """golang.org/x/time/rate.Limiter's Allow(): one token per `interval`, at most `burst`, starting full."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.burst, self.clock = interval, burst, clock
        self.tokens, self.stamp = float(burst), clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) / self.interval)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Reports each check's result: (succeeded, the serving certificate's notAfter or None).
Reporter = Callable[[bool, float | None], None]


class WebSecurity:
    """The web configuration in force: the TLS contexts, basic auth, headers and rate limit."""

    def __init__(self, config: WebConfig, report: Reporter | None = None) -> None:
        self.path = config.path
        self.config = config
        self.report = report or (lambda ok, not_after: None)
        self.material: TLSMaterial | None = None
        # The listening socket's context; `current` is handed to each new connection (sni_callback).
        self.ssl_context: ssl.SSLContext | None = None
        if config.tls:
            self.material = read_material(config.tls)
            self.ssl_context = build_context(config.tls, self.material)
        self.current = self.ssl_context
        if self.ssl_context is not None:
            self.ssl_context.sni_callback = self._on_client_hello
        self.limiter = self._limiter(config)
        self._seen = self._signature(config)
        self._last_check = time.monotonic()
        self._auth_cache: OrderedDict[bytes, bool] = OrderedDict()
        self._bcrypt: ThreadPoolExecutor | None = None
        self._pending_auth = 0
        self._warn_about(config)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def describe(self) -> str:
        parts = []
        if self.config.tls is not None:
            tls = self.config.tls
            parts.append(f"TLS {tls.min_version}-{tls.max_version}, client certificates {tls.client_auth_type}")
        if self.config.users:
            parts.append(f"basic auth ({len(self.config.users)} users; /healthz and /readyz open)")
        if self.config.rate_limit_interval > 0:
            parts.append(f"rate limit {1 / self.config.rate_limit_interval:g}/s burst {self.config.rate_limit_burst}")
        return ", ".join(parts) or "no TLS, no basic auth"

    # ------------------------------------------------------------ reloading

    def check(self) -> None:
        """Reload when a file changed; a file that does not load keeps what is in force."""
        self._last_check = time.monotonic()
        signature = self._signature(self.config)
        if signature == self._seen:
            return
        self._seen = signature
        try:
            config = read_web_config(self.path)
            new_tls, old_tls = config.tls, self.config.tls
            if (new_tls is None) != (old_tls is None):
                raise WebConfigError("turning TLS on or off needs a restart of the exporter")
            # From here old_tls is None exactly when new_tls is.
            if new_tls is not None and old_tls is not None and new_tls.fixed_at_start() != old_tls.fixed_at_start():
                raise WebConfigError("client_auth_type, min_version, max_version, cipher_suites, "
                                     "prefer_server_cipher_suites and curve_preferences are fixed at start: "
                                     "restart the exporter to change them")
            if config.http2 != self.config.http2:
                log.warning("web configuration: http_server_config.http2 changed; it has no effect here "
                            "(HTTP/1.1 only)")
            material: TLSMaterial | None = None
            context = self.current
            if config.tls:
                material = read_material(config.tls)
                if material != self.material or config.tls != self.config.tls:
                    context = build_context(config.tls, material)
        except WebConfigError as err:
            log.error("web configuration %s not reloaded, keeping the one in force: %s", self.path, err)
            self.report(False, None)
            return
        new_cert = material if (material is not None and self.material is not None
                                and material.serial != self.material.serial) else None
        if config.rate_limit_interval != self.config.rate_limit_interval or \
                config.rate_limit_burst != self.config.rate_limit_burst:
            self.limiter = self._limiter(config)
        self.config, self.material, self.current = config, material, context
        self._seen = self._signature(config)  # the files the new configuration names
        self._warn_about(config)
        if new_cert is not None:
            log.info("web configuration reloaded: serving certificate %s serial %x, valid until %s",
                     new_cert.subject, new_cert.serial, _utc(new_cert.not_after))
        else:
            log.info("web configuration reloaded from %s", self.path)
        self.report(True, material.not_after if material else None)

    def start_report(self) -> None:
        self.report(True, self.material.not_after if self.material else None)

    async def watch(self, interval: float = CHECK_INTERVAL) -> None:
        """Compare the files every `interval` seconds, for the lifetime of the server."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:  # never let a surprise end the server's task
                log.exception("web configuration check failed")

    def _on_client_hello(self, ssl_object: ssl.SSLObject, server_name: str | None,
                         context: ssl.SSLContext) -> None:
        # OpenSSL's servername callback runs on every ClientHello, with or without SNI: it is where a
        # connection can be handed a newer SSLContext (certificate, key and client CAs).
        try:
            if time.monotonic() - self._last_check >= HANDSHAKE_CHECK_INTERVAL:
                self.check()
            current = self.current
            assert current is not None, "the SNI callback is installed only when TLS is on"
            if current is not context:
                ssl_object.context = current
        except Exception:  # an exception here would fail the handshake: keep serving the old certificate
            log.exception("web configuration check during a TLS handshake failed")

    def _signature(self, config: WebConfig) -> tuple[tuple[str | int | None, ...], ...]:
        paths = (self.path, *(config.tls.files() if config.tls else ()))
        out: list[tuple[str | int | None, ...]] = []
        for path in paths:
            try:
                st = os.stat(path)  # follows the ..data symlink a Secret volume swaps
                out.append((path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError as err:
                out.append((path, err.errno))
        return tuple(out)

    @staticmethod
    def _limiter(config: WebConfig) -> TokenBucket | None:
        if config.rate_limit_interval <= 0:
            return None
        return TokenBucket(config.rate_limit_interval, config.rate_limit_burst)

    def _warn_about(self, config: WebConfig) -> None:
        tls = config.tls
        if tls is not None:
            if len(tls.curve_preferences) > 1:
                log.warning("web configuration: curve_preferences lists %d curves; Python's ssl module can restrict "
                            "the key exchange to one only, so OpenSSL's default groups (which include %s) are "
                            "used", len(tls.curve_preferences), ", ".join(tls.curve_preferences))
            if tls.client_auth_type == "RequestClientCert":
                log.warning("web configuration: RequestClientCert: no client certificate is asked for (Python's "
                            "ssl module cannot ask for one without verifying it); clients get in as with Go")
            if tls.client_auth_type in ("RequireAnyClientCert", "RequireClientCert"):
                log.warning("web configuration: %s: client certificates must verify against client_ca_file (Python's "
                            "ssl module cannot require one without verifying it)", tls.client_auth_type)
            if self.material is not None and self.material.not_after < time.time():
                log.warning("web configuration: the serving certificate %s expired at %s", self.material.subject,
                            _utc(self.material.not_after))
        if config.users and tls is None:
            log.warning("web configuration: basic auth without TLS sends passwords in clear text")

    # ------------------------------------------------------------ requests

    def install(self, app: web.Application) -> None:
        """Add the checks to an application that is not started yet."""

        @web.middleware
        async def web_config(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._guard(request, handler)

        app.middlewares.append(web_config)
        app.on_response_prepare.append(self._add_headers)
        app.on_cleanup.append(self._close)

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        for name, value in self.config.headers.items():
            response.headers[name] = value

    async def _close(self, app: web.Application) -> None:
        if self._bcrypt is not None:
            self._bcrypt.shutdown(wait=False, cancel_futures=True)
            self._bcrypt = None

    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        config = self.config
        if config.tls is not None and config.tls.client_allowed_sans is not None \
                and not _san_allowed(request, config.tls.client_allowed_sans):
            response = web.Response(status=403, text="Forbidden\n")
            response.force_close()
            return response
        if request.path in UNAUTHENTICATED_PATHS:
            return await handler(request)
        if self.limiter is not None and not self.limiter.allow():
            return web.Response(status=429, text="Too Many Requests\n")
        if config.users:
            verdict = await self._authenticate(request, config)
            if verdict is None:
                return web.Response(status=503, text="too many authentication checks pending\n",
                                    headers={"Retry-After": "1"})
            if not verdict:
                return web.Response(status=401, text="Unauthorized\n",
                                    headers={"WWW-Authenticate": 'Basic realm="terway-exporter"'})
        return await handler(request)

    async def _authenticate(self, request: web.Request, config: WebConfig) -> bool | None:
        """True or False; None when too many bcrypt checks are already waiting."""
        credentials = _basic_credentials(request.headers.get("Authorization", ""))
        if credentials is None:
            return False
        user, password = credentials
        name = user.decode("utf-8", "surrogateescape")
        stored = config.users.get(name)
        hashed = stored if stored is not None else FAKE_HASH
        # Keyed by a digest: the cache never holds a password.
        key = hashlib.sha256(b"".join(struct.pack(">I", len(p)) + p for p in (user, hashed, password))).digest()
        cached = self._auth_cache.get(key)
        if cached is None:
            if self._pending_auth >= MAX_PENDING_AUTH:
                return None
            self._pending_auth += 1
            try:
                if self._bcrypt is None:
                    # One thread, as exporter-toolkit's mutex: bcrypt is CPU-bound by design, and the
                    # default executor renders the metrics.
                    self._bcrypt = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
                cached = await asyncio.get_running_loop().run_in_executor(self._bcrypt, _bcrypt_check,
                                                                          password, hashed)
            finally:
                self._pending_auth -= 1
            self._auth_cache[key] = cached
            while len(self._auth_cache) > AUTH_CACHE_SIZE:
                self._auth_cache.popitem(last=False)
        else:
            self._auth_cache.move_to_end(key)
        return cached and stored is not None


def _bcrypt_check(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    # Go's bcrypt reads at most 72 bytes of a password; the Python package refuses longer ones.
    try:
        return bcrypt.checkpw(password[:72], hashed)  # compares in constant time
    except ValueError:
        return False


def _basic_credentials(header: str) -> tuple[bytes, bytes] | None:
    """net/http's Request.BasicAuth: `Basic base64(user:password)`, the scheme in any case."""
    if len(header) < 6 or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def _san_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    """exporter-toolkit's VerifyPeerCertificate: one of the client certificate's SANs is in the list."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return False
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "IP Address":
            with contextlib.suppress(ValueError):
                value = str(ipaddress.ip_address(value.strip()))  # Go prints IPs in their short form
        if value in allowed:
            return True
    return False


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def load_web_security(path: str | None, report: Reporter | None = None) -> WebSecurity | None:
    """The web configuration at start, or None without `--web.config.file`."""
    if not path:
        return None
    security = WebSecurity(read_web_config(path), report)
    security.start_report()
    return security
