"""The simulator's accounts: STS AssumeRole and GetCallerIdentity, AmplifyBackend state per
account, expiring credentials and the STS access rules, driven by real boto3 and botocore."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread
from harness import wait_until

APP, ENV, RES = "app1", "dev", "auth1"
ACCOUNT_A, ACCOUNT_B, BASE = "111111111111", "222222222222", "000000000000"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/backendauth-operator"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/backendauth-operator"
NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1})

CREATE: dict[str, Any] = {
    "AppId": APP,
    "BackendEnvironmentName": ENV,
    "ResourceName": RES,
    "ResourceConfig": {
        "AuthResources": "USER_POOL_ONLY",
        "Service": "COGNITO",
        "UserPoolConfigs": {
            "UserPoolName": "users",
            "SignInMethod": "EMAIL",
            "RequiredSignUpAttributes": ["EMAIL"],
        },
    },
}


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator accepting any app, with jobs that complete at once."""
    with SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=0)) as s:
        yield s


def sts_client(url: str, key: str = "testing", secret: str = "testing", token: str | None = None) -> Any:
    return boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=NO_RETRIES,
    )


def backend_client(url: str, credentials: dict[str, Any] | None = None) -> Any:
    """An amplifybackend client signed with ``credentials`` (AssumeRole's), else with 'testing'."""
    creds = credentials or {"AccessKeyId": "testing", "SecretAccessKey": "testing", "SessionToken": None}
    return boto3.client(
        "amplifybackend",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=NO_RETRIES,
    )


def assume(url: str, role: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = sts_client(url).assume_role(RoleArn=role, RoleSessionName="tests", **extra)
    return result


def control(sim: SimulatorThread, path: str, body: Any = None) -> tuple[int, Any]:
    """POST (GET without a body) to a /_sim endpoint: (status, parsed JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{sim.url}/_sim/{path}", data=data, method="GET" if body is None else "POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response: Any = excinfo.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


# ---- STS -------------------------------------------------------------------------------------


def test_assume_role_issues_credentials_that_act_in_the_role_account(sim: SimulatorThread) -> None:
    result = assume(sim.url, ROLE_A)
    creds = result["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert creds["SecretAccessKey"] and creds["SessionToken"]
    assert isinstance(creds["Expiration"], datetime)  # botocore parsed the timestamp
    assert (
        result["AssumedRoleUser"]["Arn"]
        == f"arn:aws:sts::{ACCOUNT_A}:assumed-role/backendauth-operator/tests"
    )
    assert result["AssumedRoleUser"]["AssumedRoleId"].endswith(":tests")

    who = sts_client(sim.url, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    identity = who.get_caller_identity()
    assert identity["Account"] == ACCOUNT_A
    assert identity["Arn"] == result["AssumedRoleUser"]["Arn"]
    assert sts_client(sim.url).get_caller_identity()["Account"] == BASE  # a key it did not issue


def test_default_expiry_is_an_hour_and_duration_seconds_shortens_it(sim: SimulatorThread) -> None:
    before = time.time()
    default = assume(sim.url, ROLE_A)["Credentials"]["Expiration"].timestamp()
    assert before + 3600 - 5 <= default <= time.time() + 3600 + 5
    short = assume(sim.url, ROLE_A, DurationSeconds=900)["Credentials"]["Expiration"].timestamp()
    assert before + 900 - 5 <= short <= time.time() + 900 + 5


def test_malformed_role_arn_and_duration_are_validation_errors(sim: SimulatorThread) -> None:
    for role in ("arn:aws:iam::1234:role/x", "arn:aws:iam::111111111111:user/x", "not-an-arn-at-all-really"):
        with pytest.raises(ClientError) as excinfo:
            assume(sim.url, role)
        status, code, message = error_of(excinfo)
        assert (status, code) == (400, "ValidationError")
        assert role in message
    unchecked = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=sim.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=NO_RETRIES.merge(botocore.config.Config(parameter_validation=False)),
    )
    with pytest.raises(ClientError) as excinfo:  # botocore itself would refuse it
        unchecked.assume_role(RoleArn=ROLE_A, RoleSessionName="tests", DurationSeconds=60)
    status, code, message = error_of(excinfo)
    assert (status, code) == (400, "ValidationError") and "durationSeconds" in message


def test_deny_role_gives_access_denied_naming_the_role(sim: SimulatorThread) -> None:
    status, rules = control(sim, "deny_role", {"roleArn": ROLE_A, "denied": True})
    assert status == 200 and rules["deniedRoles"] == [ROLE_A]
    with pytest.raises(ClientError) as excinfo:
        assume(sim.url, ROLE_A)
    status, code, message = error_of(excinfo)
    assert (status, code) == (403, "AccessDenied")
    assert message.endswith(f"is not authorized to perform: sts:AssumeRole on resource: {ROLE_A}")
    assert assume(sim.url, ROLE_B)["Credentials"]  # another role is not affected

    assert control(sim, "deny_role", {"roleArn": ROLE_A, "denied": False})[0] == 200
    assert assume(sim.url, ROLE_A)["Credentials"]


def test_deny_role_refuses_credentials_already_issued_at_once(sim: SimulatorThread) -> None:
    """An explicit deny on the role: sessions issued before it are refused from then on, not
    when they expire (an hour later by default); allowing the role again lets them through."""
    creds_a = assume(sim.url, ROLE_A)["Credentials"]
    a, b = (
        backend_client(sim.url, creds_a),
        backend_client(sim.url, assume(sim.url, ROLE_B)["Credentials"]),
    )
    idp = boto3.client(
        "cognito-idp",
        region_name="us-east-1",
        endpoint_url=sim.url,
        aws_access_key_id=creds_a["AccessKeyId"],
        aws_secret_access_key=creds_a["SecretAccessKey"],
        aws_session_token=creds_a["SessionToken"],
        config=NO_RETRIES,
    )
    a.create_backend_auth(**CREATE)
    control(sim, "deny_role", {"roleArn": ROLE_A, "denied": True})
    with pytest.raises(ClientError) as excinfo:  # the Cognito reads of the same session too
        idp.describe_user_pool(UserPoolId="us-east-1_Nothing00")
    status, code, message = error_of(excinfo)
    assert code == "AccessDeniedException" and "cognito-idp:DescribeUserPool with an explicit deny" in message
    with pytest.raises(ClientError) as excinfo:
        a.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    status, code, message = error_of(excinfo)
    assert (status, code) == (403, "AccessDeniedException")
    assert message == (
        f"User: arn:aws:sts::{ACCOUNT_A}:assumed-role/backendauth-operator/tests is not authorized to "
        "perform: amplifybackend:GetBackendAuth with an explicit deny"
    )
    with pytest.raises(ClientError):  # a mutating call is refused too, and changes nothing
        a.delete_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert b.create_backend_auth(**CREATE)["Status"]  # another role's session is not affected
    assert backend_client(sim.url).create_backend_auth(**CREATE)["Status"]  # nor keys it did not issue
    assert [c["errorCode"] for c in control(sim, f"calls?account={ACCOUNT_A}")[1]["calls"]][-3:] == [
        "AccessDeniedException",
        "AccessDeniedException",
        "AccessDeniedException",
    ]

    control(sim, "deny_role", {"roleArn": ROLE_A, "denied": False})
    got = a.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert got["ResourceName"] == RES  # the same session works again, and nothing was deleted


def test_require_external_id(sim: SimulatorThread) -> None:
    status, rules = control(sim, "require_external_id", {"roleArn": ROLE_A, "externalId": "team-a-7f3"})
    assert status == 200 and rules["externalIdRoles"] == [ROLE_A]
    assert "team-a-7f3" not in json.dumps(rules)
    for extra in ({}, {"ExternalId": "team-a-wrong"}):
        with pytest.raises(ClientError) as excinfo:
            assume(sim.url, ROLE_A, **extra)
        status, code, message = error_of(excinfo)
        assert (status, code) == (403, "AccessDenied") and ROLE_A in message
    assert assume(sim.url, ROLE_A, ExternalId="team-a-7f3")["Credentials"]

    assert control(sim, "require_external_id", {"roleArn": ROLE_A, "externalId": None})[0] == 200
    assert assume(sim.url, ROLE_A)["Credentials"]


def test_access_rule_control_rejects_bad_input_naming_the_field(sim: SimulatorThread) -> None:
    status, body = control(sim, "deny_role", {"roleArn": "arn:aws:iam::1:role/x"})
    assert status == 400 and "roleArn" in body["message"]
    status, body = control(sim, "deny_role", {"roleArn": ROLE_A, "denied": "yes"})
    assert status == 400 and "denied" in body["message"]
    status, body = control(sim, "require_external_id", {"roleArn": ROLE_A, "externalId": "x"})
    assert status == 400 and "externalId" in body["message"]
    status, body = control(sim, "config", {"credential_ttl_seconds": 0.5})
    assert status == 400 and "credential_ttl_seconds" in body["message"]
    status, body = control(sim, "config", {"base_account": "12345"})
    assert status == 400 and "base_account" in body["message"]
    status, body = control(sim, "state?account=abc")
    assert status == 400 and "account" in body["message"]


# ---- state per account -----------------------------------------------------------------------


def test_same_resource_in_two_accounts_is_two_resources(sim: SimulatorThread) -> None:
    in_a = backend_client(sim.url, assume(sim.url, ROLE_A)["Credentials"])
    in_b = backend_client(sim.url, assume(sim.url, ROLE_B)["Credentials"])
    base = backend_client(sim.url)

    in_a.create_backend_auth(**CREATE)
    in_b.create_backend_auth(**CREATE)  # not "already exists": another account
    with pytest.raises(ClientError) as excinfo:
        in_a.create_backend_auth(**CREATE)
    assert error_of(excinfo)[:2] == (400, "BadRequestException")

    in_a.update_backend_auth(
        AppId=APP,
        BackendEnvironmentName=ENV,
        ResourceName=RES,
        ResourceConfig={"AuthResources": "USER_POOL_ONLY", "Service": "COGNITO", "UserPoolConfigs": {}},
    )
    in_b.delete_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    got = in_a.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert got["ResourceConfig"]["UserPoolConfigs"]["UserPoolName"] == "users"
    for client in (in_b, base):
        with pytest.raises(ClientError) as excinfo:
            client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
        assert error_of(excinfo)[:2] == (404, "NotFoundException")

    key = f"{APP}/{ENV}/{RES}"
    assert key in control(sim, f"state?account={ACCOUNT_A}")[1]["resources"]
    assert control(sim, f"state?account={ACCOUNT_B}")[1]["resources"] == {}
    assert control(sim, "state")[1]["resources"] == {}  # the base account
    assert key in sim.call(lambda s: s.backend.state(ACCOUNT_A))["resources"]


def test_keys_it_did_not_issue_act_in_the_base_account(sim: SimulatorThread) -> None:
    backend_client(sim.url).create_backend_auth(**CREATE)
    assert f"{APP}/{ENV}/{RES}" in control(sim, "state")[1]["resources"]
    assert control(sim, f"state?account={BASE}")[1]["resources"] == control(sim, "state")[1]["resources"]
    assert sim.call(lambda s: (APP, ENV, RES) in s.backend.resources)  # the base account's

    # base_account moves the unissued keys elsewhere; the old base state stays in its account.
    assert control(sim, "config", {"base_account": "333333333333"})[0] == 200
    with pytest.raises(ClientError) as excinfo:
        backend_client(sim.url).get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert error_of(excinfo)[:2] == (404, "NotFoundException")
    assert f"{APP}/{ENV}/{RES}" in control(sim, f"state?account={BASE}")[1]["resources"]


def test_pending_job_rule_hold_and_apps_are_per_account() -> None:
    config = SimulatorConfig(apps=[(APP, ENV)], job_seconds=0)
    with SimulatorThread(config) as sim:
        in_a = backend_client(sim.url, assume(sim.url, ROLE_A)["Credentials"])
        in_b = backend_client(sim.url, assume(sim.url, ROLE_B)["Credentials"])
        assert control(sim, "hold", {"held": True, "account": ACCOUNT_A})[0] == 200
        in_a.create_backend_auth(**CREATE)
        with pytest.raises(ClientError) as excinfo:  # A's job is held: A has a pending job
            in_a.create_backend_auth(**{**CREATE, "ResourceName": "other"})
        assert error_of(excinfo)[1] == "ValidationException"
        created = in_b.create_backend_auth(**CREATE)  # B is not held and has no pending job
        assert created["Status"] == "COMPLETED"

        # Configured apps exist in every account; a registered one only in its own.
        assert (
            control(sim, "apps", {"appId": "app2", "backendEnvironmentName": ENV, "account": ACCOUNT_B})[0]
            == 200
        )
        in_b.create_backend_auth(**{**CREATE, "AppId": "app2"})
        with pytest.raises(ClientError) as excinfo:
            in_a.get_backend_auth(AppId="app2", BackendEnvironmentName=ENV, ResourceName=RES)
        assert error_of(excinfo)[:2] == (404, "NotFoundException")

        assert control(sim, "hold", {"held": False, "account": ACCOUNT_A})[0] == 200
        wait_until(
            lambda: f"{APP}/{ENV}/{RES}" in control(sim, f"state?account={ACCOUNT_A}")[1]["resources"],
            timeout=10,
            what="A's held job to complete after release",
        )


def test_calls_by_account(sim: SimulatorThread) -> None:
    in_a = backend_client(sim.url, assume(sim.url, ROLE_A)["Credentials"])
    with pytest.raises(ClientError):
        assume(sim.url, "arn:aws:iam::1:role/bad")
    in_a.create_backend_auth(**CREATE)
    backend_client(sim.url).get_backend(AppId=APP, BackendEnvironmentName=ENV)
    sts_client(sim.url).get_caller_identity()

    status, calls = control(sim, "calls")
    assert status == 200
    # The top level is the base account, in the shape it always had.
    assert calls["byOperation"] == {"AssumeRole": 1, "GetBackend": 1, "GetCallerIdentity": 1}
    assert {c["account"] for c in calls["calls"]} == {BASE}
    by_account = calls["byAccount"]
    assert set(by_account) == {BASE, ACCOUNT_A}
    assert by_account[ACCOUNT_A]["byOperation"] == {"AssumeRole": 1, "CreateBackendAuth": 1}
    assert by_account[ACCOUNT_A]["byResource"] == {f"{APP}/{ENV}/{RES}": {"CreateBackendAuth": 1}}
    assumed = [c for c in by_account[ACCOUNT_A]["calls"] if c["operation"] == "AssumeRole"]
    assert assumed[0]["roleArn"] == ROLE_A and assumed[0]["httpStatus"] == 200
    assert (
        control(sim, f"calls?account={ACCOUNT_A}")[1]["byOperation"] == by_account[ACCOUNT_A]["byOperation"]
    )
    # Neither the issued secret nor the session token is in the call log.
    assert "SessionToken" not in json.dumps(calls) and "Secret" not in json.dumps(calls)


# ---- expiry and refresh ----------------------------------------------------------------------


def test_expired_credentials_get_expired_token(sim: SimulatorThread) -> None:
    assert control(sim, "config", {"credential_ttl_seconds": 4})[0] == 200
    result = assume(sim.url, ROLE_A)
    expires = result["Credentials"]["Expiration"].timestamp()
    assert expires <= time.time() + 4
    client = backend_client(sim.url, result["Credentials"])
    client.create_backend_auth(**CREATE)  # well within the four seconds
    wait_until(lambda: time.time() > expires, timeout=10, what="the credentials' expiry")
    with pytest.raises(ClientError) as excinfo:
        client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert error_of(excinfo) == (
        403,
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )
    with pytest.raises(ClientError) as excinfo:  # nor can it assume another role
        sts_client(
            sim.url,
            result["Credentials"]["AccessKeyId"],
            result["Credentials"]["SecretAccessKey"],
            result["Credentials"]["SessionToken"],
        ).get_caller_identity()
    assert error_of(excinfo)[:2] == (403, "ExpiredToken")
    expired_call = control(sim, f"calls?account={ACCOUNT_A}")[1]["calls"][-2]
    assert (expired_call["operation"], expired_call["errorCode"]) == (
        "GetBackendAuth",
        "ExpiredTokenException",
    )


def test_botocore_assume_role_provider_refreshes_across_expiry(
    sim: SimulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3's own AssumeRole provider (a profile with role_arn and credential_source), reaching
    STS by AWS_ENDPOINT_URL_STS, refreshes the short-lived credentials without an error."""
    assert control(sim, "config", {"credential_ttl_seconds": 2})[0] == 200
    config = tmp_path / "config"
    config.write_text(
        f"[profile team-a]\nrole_arn = {ROLE_A}\ncredential_source = Environment\n"
        "role_session_name = refresh-test\nregion = us-east-1\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sim.url)
    client = boto3.Session(profile_name="team-a").client(
        "amplifybackend", endpoint_url=sim.url, config=NO_RETRIES
    )

    client.create_backend_auth(**CREATE)
    deadline = time.time() + 2 + 1.5  # past the first credentials' expiry
    calls = 1
    while time.time() < deadline or calls < 3:
        client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
        calls += 1
        time.sleep(0.05)  # pacing only: the loop ends on the clock

    by_account = control(sim, "calls")[1]["byAccount"]
    ops = by_account[ACCOUNT_A]["byOperation"]
    assert ops["GetBackendAuth"] == calls - 1 and ops["CreateBackendAuth"] == 1
    assert ops["AssumeRole"] >= 2  # refreshed at least once
    assert all(c["httpStatus"] == 200 for c in by_account[ACCOUNT_A]["calls"])
    assert BASE not in by_account or "GetBackendAuth" not in by_account[BASE]["byOperation"]
