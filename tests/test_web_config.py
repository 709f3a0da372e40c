"""--web.config.file (exporter-toolkit's format): parsing, TLS, client certificates, basic auth, headers,
the rate limit and certificate reloads, against the real aiohttp server on 127.0.0.1.

Certificates are made per test with `cryptography` (tests/support/certs.py). Clients are raw HTTP/1.1
over asyncio streams, one connection per request, so each request is a new TLS handshake and shows the
certificate, protocol and cipher it got. tests/test_web_config_e2e.py has a real Prometheus scrape.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from support.certs import NOW, bcrypt_hash, issue, make_ca, write_atomically
from support.stack import free_port
from support.waiting import wait_until_async
from terway_exporter import webconfig
from terway_exporter.collectors.exporter import COLLECTORS as SELF_COLLECTORS
from terway_exporter.config import resolve
from terway_exporter.hub import SnapshotHub
from terway_exporter.render import Renderer
from terway_exporter.server import make_app
from terway_exporter.webconfig import WebConfigError, WebSecurity, load_web_security, read_web_config

PASSWORD = "correct horse battery staple"
PLAINTEXT = "hunter2-plaintext-password"  # put where a hash belongs: must never be printed


# ----------------------------------------------------------------------------- fixtures


class PKI:
    """A server CA, a server certificate in `dir`, and a separate CA for client certificates."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = make_ca("server CA")
        self.client_ca = make_ca("client CA")
        self.other_ca = make_ca("someone else's CA")
        self.server = issue(self.ca, "terway-exporter", serial=1001)
        self.server.write(directory, "tls")
        write_atomically(directory / "ca.crt", self.ca.cert_pem)
        write_atomically(directory / "client-ca.crt", self.client_ca.cert_pem)
        self.client = issue(self.client_ca, "prometheus", client=True,
                            sans=[x509.DNSName("prometheus.monitoring.svc")])
        self.client.write(directory, "client")
        self.stranger = issue(self.other_ca, "prometheus", client=True,
                              sans=[x509.DNSName("prometheus.monitoring.svc")])
        self.stranger.write(directory, "stranger")

    def client_context(self, cert: str | None = None, **versions: ssl.TLSVersion) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca.cert_pem.decode())
        for name, version in versions.items():
            setattr(ctx, name, version)
        if cert:
            ctx.load_cert_chain(self.dir / f"{cert}.crt", self.dir / f"{cert}.key")
        return ctx


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI(tmp_path)


def write_config(directory: Path, config: dict | str, name: str = "web-config.yml") -> Path:
    text = config if isinstance(config, str) else yaml.safe_dump(config)
    return write_atomically(directory / name, text.encode())


TLS = {"cert_file": "tls.crt", "key_file": "tls.key"}


class Server:
    def __init__(self, runner: web.AppRunner, security: WebSecurity, hub: SnapshotHub) -> None:
        self.runner, self.security, self.hub = runner, security, hub
        self.port = runner.addresses[0][1]

    def exposition(self) -> str:
        return Renderer(SELF_COLLECTORS).render(self.hub.state(), 1).text.decode()


async def start(path: Path) -> Server:
    hub = SnapshotHub()
    security = load_web_security(str(path), hub.counters.report_web_config)
    exposition = Renderer(SELF_COLLECTORS).render(hub.state(), 1)
    runner = web.AppRunner(make_app(hub, lambda: exposition, security=security), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=security.ssl_context).start()
    return Server(runner, security, hub)


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, serial: int | None,
                 version: str | None, cipher: str | None) -> None:
        self.status, self.headers, self.body = status, headers, body
        self.serial, self.version, self.cipher = serial, version, cipher


async def get(port: int, path: str = "/metrics", ctx: ssl.SSLContext | None = None,
              auth: tuple[str, str] | None = None, header: str | None = None) -> Reply:
    """One request on a new connection (so a new TLS handshake)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname="localhost" if ctx else None)
    try:
        serial = version = cipher = None
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            serial = x509.load_der_x509_certificate(ssl_object.getpeercert(binary_form=True)).serial_number
            version, cipher = ssl_object.version(), ssl_object.cipher()[0]
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        if auth is not None:
            lines.append("Authorization: Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        if header is not None:
            lines.append(header)
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass
    if not raw:
        raise ConnectionResetError("the server closed the connection without answering")
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), headers, body, serial, version, cipher)


async def refused(port: int, ctx: ssl.SSLContext, path: str = "/healthz") -> BaseException:
    """The TLS handshake (or, in TLS 1.3, the first read after it) fails."""
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)) as raised:
        await get(port, path, ctx)
    return raised.value


async def wait_for(predicate, what: str, timeout: float = 20.0):
    # A TLS error is an answer here, not "not yet": it fails the test at once.
    return await wait_until_async(predicate, timeout, what, interval=0.1, ignore=())


# ----------------------------------------------------------------------------- the file format


def test_exporter_toolkit_example_files_parse(pki: PKI) -> None:
    # The shapes of exporter-toolkit's docs/web-config.yml and web/testdata/*.good.yml.
    d = pki.dir
    cases = {
        "users": {"tls_server_config": TLS, "basic_auth_users": {
            "alice": "$2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby",
            "bob": "$2y$18$4VeFDzXIoPHKnKTU3O3GH.N.vZu06CVqczYZ8WvfzrddFU6tGqjR."}},
        "all_ciphers": {"tls_server_config": {**TLS, "client_auth_type": "VerifyClientCertIfGiven",
                                              "cipher_suites": list(webconfig.GO_CIPHER_SUITES)}},
        "some_ciphers": {"tls_server_config": {**TLS, "client_auth_type": "VerifyClientCertIfGiven",
                                               "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                                                 "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"],
                                               "min_version": "TLS12", "max_version": "TLS12",
                                               "prefer_server_cipher_suites": False}},
        "all_curves": {"tls_server_config": {**TLS, "curve_preferences": list(webconfig.GO_CURVES)}},
        "one_curve": {"tls_server_config": {**TLS, "curve_preferences": ["CurveP521"]}},
        "inline": {"tls_server_config": {"cert": pki.server.cert_pem.decode(), "key": pki.server.key_pem.decode(),
                                         "client_auth_type": "RequireAndVerifyClientCert",
                                         "client_ca": pki.client_ca.cert_pem.decode()}},
        "headers": {"http_server_config": {"http2": False, "headers": {
            "X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
            "X-Content-Type-Options": "nosniff", "X-XSS-Protection": 1,
            "Content-Security-Policy": "default-src 'self' *.test.example.net"}}},
        "rate_limit": {"rate_limit": {"interval": "1s", "burst": 20}},
        "empty": "",
        "sans": {"tls_server_config": {**TLS, "client_auth_type": "RequireAndVerifyClientCert",
                                       "client_ca_file": "client-ca.crt",
                                       "client_allowed_sans": ["prometheus.monitoring.svc"]}},
    }
    for name, config in cases.items():
        path = write_config(d, config, f"{name}.yml")
        security = load_web_security(str(path))
        assert security is not None, name
    assert read_web_config(str(d / "empty.yml")).tls is None
    rate = read_web_config(str(d / "rate_limit.yml"))
    assert (rate.rate_limit_interval, rate.rate_limit_burst) == (1.0, 20)
    headers = read_web_config(str(d / "headers.yml")).headers
    assert headers["X-XSS-Protection"] == "1"  # yaml.v2 reads a scalar as its text
    assert read_web_config(str(d / "all_ciphers.yml")).tls.cipher_suites == tuple(webconfig.GO_CIPHER_SUITES)


def test_relative_paths_are_relative_to_the_file(pki: PKI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_config(pki.dir, {"tls_server_config": TLS})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert read_web_config(str(path)).tls.cert_file == str(pki.dir / "tls.crt")


def expired(pki: PKI) -> None:
    old = issue(pki.ca, "expired", not_before=NOW - datetime.timedelta(days=10),
                not_after=NOW - datetime.timedelta(days=1))
    old.write(pki.dir, "tls")


def encrypted_key(pki: PKI) -> None:
    pem = pki.server.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"passphrase"))
    write_atomically(pki.dir / "tls.key", pem)


def other_key(pki: PKI) -> None:
    write_atomically(pki.dir / "tls.key", issue(pki.ca, "x").key_pem)


# name -> (file content, something to do to the certificates first, what the one-line error says)
BAD_FILES: dict[str, tuple[dict | str, object, str]] = {
    "invalid_yaml": ("tls_server_config:\n\tcert_file: x\n", None, "not valid YAML at line 2"),
    "not_a_mapping": ("- a\n- b\n", None, "the file: must be a mapping"),
    "unknown_top_key": ({"tls_server_confg": TLS}, None, "tls_server_confg: unknown key"),
    "unknown_tls_key": ({"tls_server_config": {"cert_filse": "tls.crt"}}, None,
                        "tls_server_config.cert_filse: unknown key"),
    "unknown_http_key": ({"http_server_config": {"http3": True}}, None, "http_server_config.http3: unknown key"),
    "repeated_key": ("basic_auth_users:\n  a: x\n  a: y\n", None, "'a' appears twice"),
    "missing_cert_file": ({"tls_server_config": {"cert_file": "nope.crt", "key_file": "tls.key"}}, None,
                          "tls_server_config.cert_file: cannot read"),
    "key_without_cert": ({"tls_server_config": {"key_file": "tls.key"}}, None, "missing one of cert or cert_file"),
    "cert_without_key": ({"tls_server_config": {"cert_file": "tls.crt"}}, None, "missing one of key or key_file"),
    "not_a_certificate": ({"tls_server_config": {"cert_file": "tls.key", "key_file": "tls.key"}}, None,
                          "no PEM certificate could be read"),
    "key_mismatch": ({"tls_server_config": TLS}, other_key, "the private key does not match the certificate"),
    "encrypted_key": ({"tls_server_config": TLS}, encrypted_key, "the key is encrypted"),
    "bad_hash": ({"basic_auth_users": {"john": PLAINTEXT}}, None, "basic_auth_users.john: not a bcrypt hash"),
    "unknown_cipher": ({"tls_server_config": {**TLS, "cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]}}, None,
                       "unknown cipher: TLS_RSA_WITH_RC4_128_SHA"),
    "invented_cipher": ({"tls_server_config": {**TLS, "cipher_suites": ["TLS_INVENTED_CIPHER"]}}, None,
                        "unknown cipher: TLS_INVENTED_CIPHER"),
    "only_tls13_ciphers": ({"tls_server_config": {**TLS, "cipher_suites": ["TLS_AES_128_GCM_SHA256"]}}, None,
                           "only TLS 1.3 suites"),
    "unknown_curve": ({"tls_server_config": {**TLS, "curve_preferences": ["CurveP999"]}}, None,
                      "unknown curve: CurveP999"),
    "unknown_version": ({"tls_server_config": {**TLS, "min_version": "TLS111"}}, None,
                        "min_version: unknown TLS version: TLS111"),
    "min_above_max": ({"tls_server_config": {**TLS, "min_version": "TLS13", "max_version": "TLS12"}}, None,
                      "TLS13 is above max_version TLS12"),
    "unknown_client_auth": ({"tls_server_config": {**TLS, "client_auth_type": "Sometimes"}}, None,
                            "invalid ClientAuth 'Sometimes'"),
    "ca_without_client_auth": ({"tls_server_config": {**TLS, "client_ca_file": "client-ca.crt"}}, None,
                               "client CA's have been configured without a Client Auth Policy"),
    "require_any_without_ca": ({"tls_server_config": {**TLS, "client_auth_type": "RequireAnyClientCert"}}, None,
                               "RequireAnyClientCert needs client_ca_file"),
    "empty_ca": ({"tls_server_config": {**TLS, "client_auth_type": "RequireAndVerifyClientCert",
                                        "client_ca_file": "/dev/null"}}, None,
                 "client_ca_file '/dev/null': no PEM certificate"),
    "sans_with_request": ({"tls_server_config": {**TLS, "client_auth_type": "RequestClientCert",
                                                 "client_allowed_sans": ["x"]}}, None,
                          "client_allowed_sans: needs a client certificate"),
    "forbidden_header": ({"http_server_config": {"headers": {"Server": "nginx"}}}, None,
                         "HTTP header 'Server' can not be configured"),
    "bad_header_value": ({"http_server_config": {"headers": {"X-Frame-Options": "allow"}}}, None,
                         "invalid value for X-Frame-Options"),
    "bad_http2": ({"http_server_config": {"http2": "maybe"}}, None, "http_server_config.http2: 'maybe'"),
    "bad_interval": ({"rate_limit": {"interval": "soon", "burst": 1}}, None, "rate_limit.interval: 'soon'"),
    "zero_burst": ({"rate_limit": {"interval": "1s"}}, None, "rate_limit.burst: must be at least 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_is_refused_naming_what_is_wrong(pki: PKI, case: str) -> None:
    config, prepare, expected = BAD_FILES[case]
    if prepare is not None:
        prepare(pki)
    path = write_config(pki.dir, config)
    with pytest.raises(WebConfigError) as raised:
        load_web_security(str(path))
    message = str(raised.value)
    assert expected in message, message
    assert "\n" not in message and PLAINTEXT not in message


def test_a_key_file_that_is_not_pem_is_named(pki: PKI) -> None:
    """A garbage key is a configuration error naming the key file (it once raised AttributeError:
    the except clause named an exception class that does not exist)."""
    (pki.dir / "garbage.key").write_bytes(b"\x00\x01 not a key at all")
    path = write_config(pki.dir, {"tls_server_config": {**TLS, "key_file": "garbage.key"}})
    with pytest.raises(WebConfigError, match=r"key_file.*no PEM private key could be read"):
        load_web_security(str(path))


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read .*No such file"):
        load_web_security(str(tmp_path / "missing.yml"))


def test_the_option_follows_the_table_conventions(pki: PKI, tmp_path: Path) -> None:
    path = write_config(pki.dir, {"tls_server_config": TLS})
    assert resolve("serve", {}, {}).web_config_file is None
    assert resolve("serve", {}, {"TERWAY_EXPORTER_WEB_CONFIG_FILE": str(path)}).web_config_file == str(path)
    config = tmp_path / "config.yaml"
    for key in ("web.config.file", "web_config_file"):
        config.write_text(yaml.safe_dump({key: str(path)}))
        assert resolve("serve", {"config": str(config)}, {}).web_config_file == str(path)
    # collect does not take the option: its variable is not read there.
    assert resolve("collect", {}, {"TERWAY_EXPORTER_WEB_CONFIG_FILE": str(path)}).web_config_file is None


# ----------------------------------------------------------------------------- start-up errors: exit 2


def run_serve(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TERWAY_EXPORTER_", "KUBERNETES_"))}
    return subprocess.run([sys.executable, "-m", "terway_exporter", "serve", "--no-kubernetes", "--region",
                           "cn-hangzhou", "--listen-address", f"127.0.0.1:{free_port()}", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd, env={**clean, **(env or {})})


# One serve process per case: the fast loop keeps one, CI runs them all.
@pytest.mark.parametrize("case", ["invalid_yaml", *(pytest.param(case, marks=pytest.mark.slow) for case in (
    "unknown_tls_key", "missing_cert_file", "bad_hash", "unknown_cipher", "key_mismatch"))])
def test_serve_exits_2_with_one_line_on_a_bad_file(pki: PKI, case: str) -> None:
    config, prepare, expected = BAD_FILES[case]
    if prepare is not None:
        prepare(pki)
    path = write_config(pki.dir, config)
    result = run_serve(pki.dir, "--web.config.file", str(path))
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("terway-exporter serve: invalid configuration: --web.config.file: "), lines[0]
    assert expected in lines[0]
    assert PLAINTEXT not in result.stderr + result.stdout


def test_serve_exits_2_on_an_unreadable_file_from_the_environment(tmp_path: Path) -> None:
    result = run_serve(tmp_path, env={"TERWAY_EXPORTER_WEB_CONFIG_FILE": str(tmp_path / "missing.yml")})
    assert result.returncode == 2
    assert "--web.config.file (from environment TERWAY_EXPORTER_WEB_CONFIG_FILE)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- basic auth and headers


async def test_basic_auth_guards_everything_but_the_probes(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(pki.dir, {"tls_server_config": TLS, "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
                                  "http_server_config": {"headers": {"X-Frame-Options": "deny",
                                                                     "X-Content-Type-Options": "nosniff"}}})
    server = await start(path)
    checks = []
    real_check = webconfig._bcrypt_check
    monkeypatch.setattr(webconfig, "_bcrypt_check", lambda p, h: checks.append(1) or real_check(p, h))
    ctx = pki.client_context()
    try:
        for creds in (None, ("prometheus", "wrong"), ("nobody", PASSWORD), ("PROMETHEUS", PASSWORD)):
            for where in ("/metrics", "/"):
                reply = await get(server.port, where, ctx, auth=creds)
                assert reply.status == 401, (creds, where)
                assert reply.headers["www-authenticate"].startswith("Basic")
                assert reply.headers["x-frame-options"] == "deny"
        for broken in ("Authorization: Bearer abc", "Authorization: Basic !!!", "Authorization: Basic " +
                       base64.b64encode(b"no-colon").decode()):
            assert (await get(server.port, "/metrics", ctx, header=broken)).status == 401
        reply = await get(server.port, "/metrics", ctx, auth=("prometheus", PASSWORD))
        assert reply.status == 200 and b"terway_exporter_build_info" in reply.body
        assert reply.headers["x-content-type-options"] == "nosniff"
        # The scheme is case-insensitive, as in net/http.
        token = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
        assert (await get(server.port, "/metrics", ctx, header=f"Authorization: bAsIc {token}")).status == 200
        assert (await get(server.port, "/healthz", ctx)).status == 200
        assert (await get(server.port, "/readyz", ctx)).status == 503  # no source yet, but not 401
        # A checked (user, password) is not hashed again: scrapes stay cheap.
        before = len(checks)
        for _ in range(3):
            assert (await get(server.port, "/metrics", ctx, auth=("prometheus", PASSWORD))).status == 200
            assert (await get(server.port, "/metrics", ctx, auth=("prometheus", "wrong"))).status == 401
        assert len(checks) == before
    finally:
        await server.runner.cleanup()


async def test_basic_auth_without_tls_and_a_long_password(tmp_path: Path) -> None:
    # Go's bcrypt reads 72 bytes of a password; the same hash accepts the same passwords here.
    long_password = "p" * 80
    path = write_config(tmp_path, {"basic_auth_users": {"u": bcrypt_hash(long_password[:72])}})
    server = await start(path)
    try:
        assert server.security.scheme == "http"
        assert (await get(server.port, auth=("u", long_password))).status == 200
        assert (await get(server.port, auth=("u", "p" * 71))).status == 401
    finally:
        await server.runner.cleanup()


async def test_rate_limit_spares_the_probes(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"rate_limit": {"interval": "1h", "burst": 2}})
    server = await start(path)
    try:
        assert [(await get(server.port)).status for _ in range(3)] == [200, 200, 429]
        assert (await get(server.port, "/healthz")).status == 200
    finally:
        await server.runner.cleanup()


def test_token_bucket_refills_like_x_time_rate() -> None:
    now = [0.0]
    bucket = webconfig.TokenBucket(interval=2.0, burst=2, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    now[0] = 1.0
    assert not bucket.allow()
    now[0] = 2.0
    assert bucket.allow() and not bucket.allow()
    now[0] = 100.0
    assert [bucket.allow() for _ in range(3)] == [True, True, False]


# ----------------------------------------------------------------------------- TLS settings


async def test_tls_versions_and_cipher_suites(pki: PKI) -> None:
    path = write_config(pki.dir, {"tls_server_config": {
        **TLS, "min_version": "TLS12", "max_version": "TLS12",
        "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"],
        "curve_preferences": ["X25519"]}})
    server = await start(path)
    try:
        reply = await get(server.port, "/healthz", pki.client_context())
        assert (reply.version, reply.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
        only_chacha = pki.client_context()
        only_chacha.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
        assert (await get(server.port, "/healthz", only_chacha)).cipher == "ECDHE-ECDSA-CHACHA20-POLY1305"
        not_listed = pki.client_context()
        not_listed.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        await refused(server.port, not_listed)
        await refused(server.port, pki.client_context(minimum_version=ssl.TLSVersion.TLSv1_3))
    finally:
        await server.runner.cleanup()
    path = write_config(pki.dir, {"tls_server_config": {**TLS, "min_version": "TLS13"}})
    server = await start(path)
    try:
        assert (await get(server.port, "/healthz", pki.client_context())).version == "TLSv1.3"
        await refused(server.port, pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2))
        # HTTP/2 is offered by Prometheus through ALPN; this server answers HTTP/1.1.
        h2 = pki.client_context()
        h2.set_alpn_protocols(["h2", "http/1.1"])
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=h2, server_hostname="localhost")
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        writer.close()
    finally:
        await server.runner.cleanup()


async def test_plain_http_to_a_tls_port_gets_no_answer(pki: PKI) -> None:
    server = await start(write_config(pki.dir, {"tls_server_config": TLS}))
    try:
        with pytest.raises((ConnectionError, ValueError, IndexError)):
            await get(server.port, "/healthz")
    finally:
        await server.runner.cleanup()


async def test_an_expired_certificate_is_served_and_clients_refuse_it(pki: PKI,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    expired(pki)
    with caplog.at_level(logging.WARNING, logger="terway_exporter.webconfig"):
        server = await start(write_config(pki.dir, {"tls_server_config": TLS}))
    try:
        assert "the serving certificate CN=expired expired at" in caplog.text
        error = await refused(server.port, pki.client_context())
        assert isinstance(error, ssl.SSLCertVerificationError) and "expired" in error.verify_message
    finally:
        await server.runner.cleanup()


# ----------------------------------------------------------------------------- client certificates


async def test_require_and_verify_client_cert(pki: PKI) -> None:
    path = write_config(pki.dir, {"tls_server_config": {**TLS, "client_auth_type": "RequireAndVerifyClientCert",
                                                        "client_ca_file": "client-ca.crt"}})
    server = await start(path)
    try:
        assert (await get(server.port, "/metrics", pki.client_context("client"))).status == 200
        await refused(server.port, pki.client_context())  # no certificate: not even /healthz
        await refused(server.port, pki.client_context("stranger"))  # signed by another CA
        # TLS 1.2 too (the failure shows during the handshake there).
        await refused(server.port, pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2))
    finally:
        await server.runner.cleanup()


async def test_verify_client_cert_if_given(pki: PKI) -> None:
    path = write_config(pki.dir, {"tls_server_config": {**TLS, "client_auth_type": "VerifyClientCertIfGiven",
                                                        "client_ca_file": "client-ca.crt"}})
    server = await start(path)
    try:
        assert (await get(server.port, "/metrics", pki.client_context())).status == 200
        assert (await get(server.port, "/metrics", pki.client_context("client"))).status == 200
        await refused(server.port, pki.client_context("stranger"))
    finally:
        await server.runner.cleanup()


async def test_require_any_client_cert_maps_to_verified_and_request_to_none(pki: PKI,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    path = write_config(pki.dir, {"tls_server_config": {**TLS, "client_auth_type": "RequireAnyClientCert",
                                                        "client_ca_file": "client-ca.crt"}})
    with caplog.at_level(logging.WARNING, logger="terway_exporter.webconfig"):
        server = await start(path)
    try:
        assert "must verify against client_ca_file" in caplog.text
        assert (await get(server.port, "/metrics", pki.client_context("client"))).status == 200
        await refused(server.port, pki.client_context())
        await refused(server.port, pki.client_context("stranger"))  # stricter than Go, as documented
    finally:
        await server.runner.cleanup()
    server = await start(write_config(pki.dir, {"tls_server_config": {**TLS, "client_auth_type": "RequestClientCert"}}))
    try:
        assert server.security.ssl_context.verify_mode == ssl.CERT_NONE
        assert (await get(server.port, "/metrics", pki.client_context())).status == 200
        assert (await get(server.port, "/metrics", pki.client_context("stranger"))).status == 200
    finally:
        await server.runner.cleanup()


async def test_client_allowed_sans(pki: PKI) -> None:
    other = issue(pki.client_ca, "vmagent", client=True, sans=[x509.DNSName("vmagent.monitoring.svc")])
    other.write(pki.dir, "other")
    path = write_config(pki.dir, {"tls_server_config": {
        **TLS, "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": "client-ca.crt",
        "client_allowed_sans": ["prometheus.monitoring.svc", "127.0.0.1"]}})
    server = await start(path)
    try:
        assert (await get(server.port, "/metrics", pki.client_context("client"))).status == 200
        reply = await get(server.port, "/healthz", pki.client_context("other"))
        assert reply.status == 403 and reply.headers.get("connection") == "close"
    finally:
        await server.runner.cleanup()


# ----------------------------------------------------------------------------- reloading


def value(server: Server, name: str) -> float | None:
    for line in server.exposition().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def test_a_rotated_certificate_is_served_without_restart(pki: PKI, caplog: pytest.LogCaptureFixture) -> None:
    server = await start(write_config(pki.dir, {"tls_server_config": TLS}))
    ctx = pki.client_context()
    try:
        assert (await get(server.port, "/healthz", ctx)).serial == 1001
        assert value(server, "terway_exporter_web_config_reload_success") == 1
        assert value(server, "terway_exporter_web_tls_certificate_not_after_timestamp_seconds") == \
            pki.server.cert.not_valid_after_utc.timestamp()
        # cert-manager renews: the Secret volume's files are swapped. New connections get the new
        # certificate (checked on a handshake, at most once a second) with no restart and no call here.
        renewed = issue(pki.ca, "terway-exporter", serial=2002, not_after=NOW + datetime.timedelta(days=60))
        with caplog.at_level(logging.INFO, logger="terway_exporter.webconfig"):
            renewed.write(pki.dir, "tls")

            async def new_serial() -> bool:
                return (await get(server.port, "/healthz", ctx)).serial == 2002
            await wait_for(new_serial, "the renewed certificate to be served")
        assert "serving certificate CN=terway-exporter serial 7d2" in caplog.text
        assert value(server, "terway_exporter_web_tls_certificate_not_after_timestamp_seconds") == \
            renewed.cert.not_valid_after_utc.timestamp()
        assert value(server, "terway_exporter_web_config_reload_failures_total") == 0

        # A broken renewal (half-written file): the previous certificate stays, with a log line and the metric.
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="terway_exporter.webconfig"):
            write_atomically(pki.dir / "tls.crt", renewed.cert_pem[:200])
            server.security.check()
        assert "not reloaded, keeping the one in force" in caplog.text and "no PEM certificate" in caplog.text
        assert value(server, "terway_exporter_web_config_reload_success") == 0
        assert value(server, "terway_exporter_web_config_reload_failures_total") == 1
        assert (await get(server.port, "/healthz", ctx)).serial == 2002
        # Unchanged files are not re-read: the failure is counted once.
        server.security.check()
        assert value(server, "terway_exporter_web_config_reload_failures_total") == 1

        # Fixed: served and reported.
        third = issue(pki.ca, "terway-exporter", serial=3003)
        third.write(pki.dir, "tls")
        server.security.check()
        assert (await get(server.port, "/healthz", ctx)).serial == 3003
        assert value(server, "terway_exporter_web_config_reload_success") == 1
    finally:
        await server.runner.cleanup()


async def test_the_watch_task_reloads_without_any_connection(pki: PKI) -> None:
    server = await start(write_config(pki.dir, {"tls_server_config": TLS}))
    watch = asyncio.create_task(server.security.watch(interval=0.05))
    try:
        write_atomically(pki.dir / "tls.crt", b"garbage")

        async def reported_broken() -> bool:
            return server.hub.counters.snapshot().web_config.reload_success is False
        await wait_for(reported_broken, "the watch task to report the broken certificate")
    finally:
        watch.cancel()
        await server.runner.cleanup()


async def test_client_ca_rotation_drops_the_old_ca(pki: PKI) -> None:
    path = write_config(pki.dir, {"tls_server_config": {**TLS, "client_auth_type": "RequireAndVerifyClientCert",
                                                        "client_ca_file": "client-ca.crt"}})
    server = await start(path)
    try:
        assert (await get(server.port, "/healthz", pki.client_context("client"))).status == 200
        write_atomically(pki.dir / "client-ca.crt", pki.other_ca.cert_pem)
        server.security.check()
        assert (await get(server.port, "/healthz", pki.client_context("stranger"))).status == 200
        await refused(server.port, pki.client_context("client"))
    finally:
        await server.runner.cleanup()


async def test_users_and_headers_reload_but_tls_parameters_need_a_restart(pki: PKI,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    path = write_config(pki.dir, {"tls_server_config": TLS, "basic_auth_users": {"a": bcrypt_hash("one")}})
    server = await start(path)
    ctx = pki.client_context()
    try:
        write_config(pki.dir, {"tls_server_config": TLS, "basic_auth_users": {"b": bcrypt_hash("two")},
                               "http_server_config": {"headers": {"X-Frame-Options": "sameorigin"}}})
        server.security.check()
        assert (await get(server.port, "/metrics", ctx, auth=("a", "one"))).status == 401
        reply = await get(server.port, "/metrics", ctx, auth=("b", "two"))
        assert reply.status == 200 and reply.headers["x-frame-options"] == "sameorigin"

        with caplog.at_level(logging.ERROR, logger="terway_exporter.webconfig"):
            write_config(pki.dir, {"tls_server_config": {**TLS, "min_version": "TLS13"},
                                   "basic_auth_users": {"c": bcrypt_hash("three")}})
            server.security.check()
        assert "fixed at start: restart the exporter" in caplog.text
        assert value(server, "terway_exporter_web_config_reload_success") == 0
        assert (await get(server.port, "/metrics", ctx, auth=("b", "two"))).status == 200  # still in force
        with caplog.at_level(logging.ERROR, logger="terway_exporter.webconfig"):
            write_config(pki.dir, {"basic_auth_users": {"b": bcrypt_hash("two")}})
            server.security.check()
        assert "turning TLS on or off needs a restart" in caplog.text
    finally:
        await server.runner.cleanup()


async def test_no_web_config_means_no_metrics_about_it() -> None:
    hub = SnapshotHub()
    text = Renderer(SELF_COLLECTORS).render(hub.state(), 1).text.decode()
    assert "terway_exporter_web_config" not in text and "terway_exporter_web_tls" not in text


async def test_a_secret_volume_update_is_followed(pki: PKI) -> None:
    # The kubelet's atomic writer: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/; an update writes
    # a new timestamped directory and swaps the ..data symlink (the file paths themselves never change).
    volume = pki.dir / "volume"
    volume.mkdir()

    def publish(version: str, issued) -> None:
        target = volume / f"..{version}"
        target.mkdir()
        issued.write(target, "tls")
        link = volume / "..data_tmp"
        os.symlink(target.name, link)
        os.replace(link, volume / "..data")

    publish("2026_01_01", pki.server)
    for name in ("tls.crt", "tls.key"):
        os.symlink(f"..data/{name}", volume / name)
    server = await start(write_config(pki.dir, {"tls_server_config": {"cert_file": "volume/tls.crt",
                                                                      "key_file": "volume/tls.key"}}))
    try:
        assert (await get(server.port, "/healthz", pki.client_context())).serial == 1001
        publish("2026_02_01", issue(pki.ca, "terway-exporter", serial=4004))
        server.security.check()
        assert (await get(server.port, "/healthz", pki.client_context())).serial == 4004
    finally:
        await server.runner.cleanup()
