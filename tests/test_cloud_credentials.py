"""Every kind of credential, through the real providers and SDK, against the simulated
cloud, STS and ECS metadata service; and no credential ever in logs or metrics."""

from __future__ import annotations

import copy
import logging
from contextlib import asynccontextmanager

import pytest

from support.cloud import render, settings_for, simulated_cloud, static_env, targets_for
from support.waiting import wait_until_async
from terway_exporter.collectors import eni, vswitch
from terway_exporter.collectors.exporter import COLLECTORS as SELF_COLLECTORS
from terway_exporter.hub import SnapshotHub
from terway_exporter.logs import JsonFormatter, ScrubbingFormatter
from terway_exporter.redact import scrub
from terway_exporter.sources.cloud.credentials import CredentialOptions
from terway_exporter.sources.cloud.source import CloudSource
from terway_simulator.credentials_api import start_credentials_simulator
from terway_simulator.world import World, build_world, read_scenario

OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.sim-oidc-token-payload.c2lnbmF0dXJl"
ROLE_ARN = "acs:ram::1234567890123456:role/terway-exporter"
PROVIDER_ARN = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c-sim"


def fresh_world() -> World:
    return build_world(copy.deepcopy(read_scenario("healthy")))


@asynccontextmanager
async def credential_service(world: World, **options):
    runner, url = await start_credentials_simulator(world, **options)
    try:
        yield url
    finally:
        await runner.cleanup()


def make_source(world: World, cloud_url: str, env: dict[str, str], options: CredentialOptions | None = None,
                **settings) -> CloudSource:
    hub = SnapshotHub()
    return CloudSource(hub, settings_for(world, cloud_url, targets_for(world), **settings), env=env,
                       credential_options=options)


def oidc_env(token_file) -> dict[str, str]:
    return {"ALIBABA_CLOUD_ROLE_ARN": ROLE_ARN, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER_ARN,
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
            "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"}


async def poll(source: CloudSource) -> bool:
    try:
        return await source.poll_once()
    finally:
        source.close()


async def test_static_access_key():
    world = fresh_world()
    async with simulated_cloud(world) as sim:
        assert await poll(make_source(world, sim.url, static_env(world)))
        # Two signed calls: one vSwitch by ID to learn the VPC, then the VPC's listing.
        assert (await sim.calls())["actions"]["DescribeVSwitches"]["codes"] == {"Success": 2}


async def test_legacy_aliyun_env_vars_do_not_override_the_chain(monkeypatch, caplog):
    world = fresh_world()
    # The legacy SDK reads these from the process environment and would sign with them.
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_ID", "LTAIlegacyOverride")
    monkeypatch.setenv("ALIYUN_ACCESS_KEY_SECRET", "legacyOverrideSecret")
    env = {**static_env(world), "ALIYUN_ACCESS_KEY_ID": "LTAIlegacyOverride"}
    async with simulated_cloud(world) as sim:
        assert await poll(make_source(world, sim.url, env))
    assert any("ALIYUN_ACCESS_KEY_ID" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)


async def test_rrsa_token_file_and_assume_role_with_oidc(tmp_path):
    world = fresh_world()
    token_file = tmp_path / "token"
    token_file.write_text(OIDC_TOKEN)
    async with credential_service(world, oidc_token=OIDC_TOKEN) as sts_url, simulated_cloud(world) as sim:
        source = make_source(world, sim.url, oidc_env(token_file), CredentialOptions(sts_endpoint=sts_url))
        assert await poll(source)
    assert len(world.temporary_credentials) == 1  # one AssumeRoleWithOIDC, reused for every call
    assert source._signer.secrets()[0].startswith("STS.")


async def test_rrsa_sts_endpoint_from_the_webhook_env_var(tmp_path):
    world = fresh_world()
    token_file = tmp_path / "token"
    token_file.write_text(OIDC_TOKEN)
    async with credential_service(world, oidc_token=OIDC_TOKEN) as sts_url, simulated_cloud(world) as sim:
        env = {**oidc_env(token_file), "ALIBABA_CLOUD_STS_ENDPOINT": sts_url}
        assert await poll(make_source(world, sim.url, env))


async def test_ecs_ram_role_from_the_metadata_service_with_imdsv2():
    world = fresh_world()
    async with credential_service(world, require_imds_v2=True) as meta_url, simulated_cloud(world) as sim:
        env = {"ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"}
        source = make_source(world, sim.url, env, CredentialOptions(metadata_proxy=meta_url))
        assert await poll(source)
    assert source._provider.names[-1] == "ecs_ram_role"
    assert len(world.temporary_credentials) == 1


async def test_sts_token_rotating_mid_run_is_picked_up():
    world = fresh_world()
    # Credentials live 2 s; the metadata service hands out a new one after half of that.
    async with credential_service(world, expiration_seconds=2) as meta_url, simulated_cloud(world) as sim:
        env = {"ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"}
        source = make_source(world, sim.url, env, CredentialOptions(metadata_proxy=meta_url))
        results = []

        async def rotated_twice() -> bool:
            # Time passes for the expiry itself: the credentials' provider reads the wall clock.
            results.append(await source.poll_once())
            return len(world.temporary_credentials) >= 3

        try:
            await wait_until_async(rotated_twice, 10, "the credentials to rotate twice", interval=0.2, ignore=())
        finally:
            source.close()
        codes = {code for a in (await sim.calls())["actions"].values() for code in a["codes"]}
    assert all(results) and codes == {"Success"}
    assert len(world.temporary_credentials) >= 3
    used = {s for s in source._signer.secrets() if s.startswith("STS.")}
    assert len(used) >= 2  # the signer moved to new credentials without a restart


async def test_no_credentials_at_all_is_a_credential_error(tmp_path):
    world = fresh_world()
    env = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
           "ALIBABA_CLOUD_CREDENTIALS_FILE": str(tmp_path / "absent-credentials")}  # inside the test's directory
    async with simulated_cloud(world) as sim:
        source = make_source(world, sim.url, env)
        assert not await poll(source)
        assert (await sim.calls())["total"] == 0
    assert "CredentialError" in source.sink.sources["cloud_vswitches"].error
    assert source.sink.counters.snapshot().cloud_requests[("DescribeVSwitches", "CredentialError")] == 1


# --------------------------------------------------------------------------- secrets stay secret


def test_scrub_removes_string_to_sign_parameters_and_known_values():
    token = "CAIS+tok/en==Secret"
    message = ("Specified signature is not matched with our calculation. server string to sign is:"
               "POST&%2F&AccessKeyId%3DSTS.abc%26SecurityToken%3DCAIS%252Btok")
    assert "STS.abc" not in scrub(message)
    assert "CAIS" not in scrub(message)
    text = scrub(f'url=/?AccessKeyId=LTAIx&Signature=abc%3D&SecurityToken={token} body {{"AccessKeySecret": "s3cr3t"}}',
                 secrets=(token,))
    for secret in ("LTAIx", "abc%3D", token, "s3cr3t"):
        assert secret not in text
    assert "\n" not in scrub("line one\nline two")


@pytest.mark.parametrize("formatter", [ScrubbingFormatter("%(message)s"), JsonFormatter()])
def test_log_records_go_through_the_same_scrubber(formatter):
    """One scrubber for error strings and log lines: a traceback keeps its lines, loses its secrets."""
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "call failed: %s\nnext line",
                               ("url=/?AccessKeyId=LTAI5tAbCdEfGh&Signature=abc%3D Authorization: Bearer eyJhbGc.x",),
                               None)
    line = formatter.format(record)
    for secret in ("LTAI5tAbCdEfGh", "abc%3D", "eyJhbGc.x"):
        assert secret not in line
    assert "call failed" in line and "next line" in line


def secrets_of(world: World, *extra: str) -> set[str]:
    values = {world.access_key_id, world.access_key_secret, *extra}
    for cred in world.temporary_credentials.values():
        values |= {cred.access_key_id, cred.access_key_secret, cred.security_token}
    return {v for v in values if v}


@pytest.mark.parametrize("case", ["wrong_secret", "revoked_sts", "bad_oidc_token"])
async def test_no_credential_in_logs_or_metrics(case, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    world = fresh_world()
    token_file = tmp_path / "token"
    token_file.write_text(OIDC_TOKEN)
    wrong_secret = "WrongSecretValue0000000000000x"
    async with credential_service(world, oidc_token="another-token") as cred_url, simulated_cloud(world) as sim:
        if case == "wrong_secret":
            source = make_source(world, sim.url, static_env(world, secret=wrong_secret))
        elif case == "revoked_sts":
            env = {"ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"}
            source = make_source(world, sim.url, env, CredentialOptions(metadata_proxy=cred_url))
            assert await source.poll_once()
            issued = dict(world.temporary_credentials)
            world.temporary_credentials.clear()  # revoked: the cloud no longer knows them
        else:
            source = make_source(world, sim.url, oidc_env(token_file), CredentialOptions(sts_endpoint=cred_url))
        assert not await poll(source)
        if case == "revoked_sts":
            world.temporary_credentials.update(issued)
    errors = {s.error for s in source.sink.sources.values()}
    assert any(errors)
    text = render(source.sink.state(), (*vswitch.COLLECTORS, *eni.COLLECTORS, *SELF_COLLECTORS))
    captured = capfd.readouterr()
    haystack = "\n".join([caplog.text, captured.out, captured.err, text, *errors])
    for secret in secrets_of(world, wrong_secret, OIDC_TOKEN):
        assert secret not in haystack, f"{case}: a credential leaked"
