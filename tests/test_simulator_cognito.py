"""The simulator's Cognito: the pools its jobs make, the reads that describe them (real boto3
clients, answers checked against botocore's output shapes), the mutating calls it refuses and
records, seeding pools made outside Amplify, and ImportBackendAuth."""

from __future__ import annotations

import json
import logging
import random
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.model import ListShape, MapShape, Shape, StructureShape

from backendauth_testbed.simulator import IMPORTED_RESOURCE_NAME, SimulatorConfig, SimulatorThread, cognito
from sim import mutating_calls, seed_pools, sim_calls, sim_state

APP, ENV, RES = "app1", "dev", "shopauth"
REGION = "eu-west-1"
OTHER_ACCOUNT = "111122223333"
GOOGLE_SECRET = "google-secret-value-1234"
FACEBOOK_SECRET = "facebook-secret-value-5678"
AMAZON_SECRET = "amazon-secret-value-9012"
APPLE_KEY = "-----BEGIN PRIVATE KEY-----MIGTAgEAapplekey-----END PRIVATE KEY-----"

USER_POOL_ID_RE = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d)_[0-9A-Za-z]{9}$")
CLIENT_ID_RE = re.compile(r"^[0-9a-z]{26}$")
IDENTITY_POOL_ID_RE = re.compile(
    r"^([a-z]{2}(?:-[a-z]+)+-\d):[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)

FULL_CONFIG: dict[str, Any] = {
    "AuthResources": "IDENTITY_POOL_AND_USER_POOL",
    "Service": "COGNITO",
    "IdentityPoolConfigs": {"IdentityPoolName": "shop_identity", "UnauthenticatedLogin": True},
    "UserPoolConfigs": {
        "UserPoolName": "shop_users",
        "SignInMethod": "EMAIL_AND_PHONE_NUMBER",
        "RequiredSignUpAttributes": ["EMAIL", "GIVEN_NAME", "FAMILY_NAME", "ZONE_INFO"],
        "PasswordPolicy": {
            "MinimumLength": 10.0,
            "AdditionalConstraints": ["REQUIRE_DIGIT", "REQUIRE_SYMBOL"],
        },
        "Mfa": {
            "MFAMode": "OPTIONAL",
            "Settings": {"MfaTypes": ["SMS", "TOTP"], "SmsMessage": "Code {####}"},
        },
        "ForgotPassword": {"DeliveryMethod": "EMAIL"},
        "VerificationMessage": {
            "DeliveryMethod": "EMAIL",
            "EmailSettings": {"EmailMessage": "Your code: {####}", "EmailSubject": "Welcome"},
        },
        "OAuth": {
            "DomainPrefix": "shop-login",
            "OAuthGrantType": "IMPLICIT",
            "OAuthScopes": ["OPENID", "EMAIL", "PHONE", "PROFILE", "AWS_COGNITO_SIGNIN_USER_ADMIN"],
            "RedirectSignInURIs": ["https://shop.example.com/callback", "myapp://callback"],
            "RedirectSignOutURIs": ["https://shop.example.com/"],
            "SocialProviderSettings": {
                "Google": {"ClientId": "google-id", "ClientSecret": GOOGLE_SECRET},
                "Facebook": {"ClientId": "facebook-id", "ClientSecret": FACEBOOK_SECRET},
                "LoginWithAmazon": {"ClientId": "amazon-id", "ClientSecret": AMAZON_SECRET},
                "SignInWithApple": {
                    "ClientId": "apple-id",
                    "TeamId": "TEAM123",
                    "KeyId": "KEY456",
                    "PrivateKey": APPLE_KEY,
                },
            },
        },
    },
}

SMALL_CONFIG: dict[str, Any] = {
    "AuthResources": "USER_POOL_ONLY",
    "Service": "COGNITO",
    "UserPoolConfigs": {
        "UserPoolName": "small",
        "SignInMethod": "USERNAME",
        "RequiredSignUpAttributes": ["EMAIL"],
    },
}


# ---- checking answers against botocore's output shapes ------------------------------------------


def shape_problems(shape: Shape, value: Any, path: str = "") -> list[str]:
    """Where ``value`` (a raw JSON answer) departs from ``shape``: unknown members, wrong types,
    enum values not in the model, missing required members."""
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        problems = [f"{path}.{k}: not in the model" for k in value if k not in shape.members]
        problems += [f"{path}.{k}: required, missing" for k in shape.required_members if k not in value]
        for key, item in value.items():
            if key in shape.members:
                problems += shape_problems(shape.members[key], item, f"{path}.{key}")
        return problems
    if kind == "list":
        assert isinstance(shape, ListShape)
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for i, item in enumerate(value) for p in shape_problems(shape.member, item, f"{path}[{i}]")]
    if kind == "map":
        assert isinstance(shape, MapShape)
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        return [p for k, item in value.items() for p in shape_problems(shape.value, item, f"{path}.{k}")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string"]
        enum = shape.metadata.get("enum")
        return [f"{path}: {value!r} not in {enum}"] if enum and value not in enum else []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    if kind in ("integer", "long"):
        return (
            [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: expected an integer"]
        )
    if kind == "timestamp":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected epoch seconds"]
    return [f"{path}: unexpected shape type {kind}"]


class Checked:
    """boto3 clients of one region and key whose every answer is checked against the model."""

    def __init__(
        self,
        url: str,
        region: str = REGION,
        key: str = "AKIDEXAMPLE",
        secret: str = "x",
        token: str | None = None,
    ) -> None:
        self.problems: list[str] = []
        self.answers = 0
        kwargs: dict[str, Any] = dict(
            region_name=region,
            endpoint_url=url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )
        self.idp = boto3.client("cognito-idp", **kwargs)
        self.identity = boto3.client("cognito-identity", **kwargs)
        self.amplify = boto3.client("amplifybackend", **kwargs)
        for client in (self.idp, self.identity):
            client.meta.events.register("after-call", self._check)

    def _check(self, http_response: Any, model: Any, **_: Any) -> None:
        if http_response.status_code != 200:
            return
        self.answers += 1
        raw = json.loads(http_response.content)
        self.problems += [f"{model.name}{p}" for p in shape_problems(model.output_shape, raw)]


def raw_cognito(
    url: str, target: str, body: dict[str, Any], region: str = REGION
) -> tuple[int, dict[str, Any]]:
    """One Cognito call by hand (to see the status and ``__type`` as sent)."""
    request = urllib.request.Request(
        url + "/",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/{region}/cognito-idp/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def control(url: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        f"{url}/_sim/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator knowing app1/dev whose jobs end at once."""
    with SimulatorThread(SimulatorConfig(apps=[(APP, ENV)], job_seconds=0.0, seed=7)) as s:
        yield s


def create(aws: Checked, config: dict[str, Any], name: str = RES) -> dict[str, str]:
    """CreateBackendAuth (jobs end at once) and return GetBackend's ``output`` ids for ``name``."""
    answer = aws.amplify.create_backend_auth(
        AppId=APP, BackendEnvironmentName=ENV, ResourceName=name, ResourceConfig=config
    )
    assert answer["Status"] == "COMPLETED"
    return outputs(aws, name)


def outputs(aws: Checked, name: str = RES) -> dict[str, str]:
    meta = json.loads(aws.amplify.get_backend(AppId=APP, BackendEnvironmentName=ENV)["AmplifyMetaConfig"])
    entry: dict[str, Any] = meta["auth"][name]
    return dict(entry["output"])


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


# ---- what a create job makes ----------------------------------------------------------------------


def test_a_create_job_makes_the_pools_in_its_region_with_the_ids_getbackend_shows(
    sim: SimulatorThread,
) -> None:
    aws = Checked(sim.url)
    ids = create(aws, FULL_CONFIG)
    assert USER_POOL_ID_RE.match(ids["UserPoolId"]).group(1) == REGION  # type: ignore[union-attr]
    assert CLIENT_ID_RE.match(ids["AppClientIDWeb"]) and CLIENT_ID_RE.match(ids["AppClientID"])
    assert IDENTITY_POOL_ID_RE.match(ids["IdentityPoolId"]).group(1) == REGION  # type: ignore[union-attr]
    pool_id = ids["UserPoolId"]

    pool = aws.idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert pool["Id"] == pool_id and pool["Name"] == "shop_users"
    assert pool["Arn"] == f"arn:aws:cognito-idp:{REGION}:000000000000:userpool/{pool_id}"
    assert pool["Policies"]["PasswordPolicy"] == {
        "MinimumLength": 10,
        "RequireUppercase": False,
        "RequireLowercase": False,
        "RequireNumbers": True,
        "RequireSymbols": True,
        "TemporaryPasswordValidityDays": 7,
    }
    assert isinstance(pool["Policies"]["PasswordPolicy"]["MinimumLength"], int)
    assert pool["MfaConfiguration"] == "OPTIONAL" and pool["SmsAuthenticationMessage"] == "Code {####}"
    assert "SoftwareTokenMfaConfiguration" not in pool  # DescribeUserPool does not show TOTP
    assert pool["UsernameAttributes"] == ["email", "phone_number"]
    required = {a["Name"] for a in pool["SchemaAttributes"] if a["Required"]}
    assert required == {"sub", "email", "given_name", "family_name", "zoneinfo"}
    assert pool["AutoVerifiedAttributes"] == ["email"]
    assert pool["VerificationMessageTemplate"]["EmailMessage"] == "Your code: {####}"
    assert pool["VerificationMessageTemplate"]["EmailSubject"] == "Welcome"
    assert pool["AccountRecoverySetting"] == {
        "RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]
    }
    assert pool["Domain"] == "shop-login"
    mfa = aws.idp.get_user_pool_mfa_config(UserPoolId=pool_id)
    assert mfa["SoftwareTokenMfaConfiguration"] == {"Enabled": True} and mfa["MfaConfiguration"] == "OPTIONAL"
    assert mfa["SmsMfaConfiguration"]["SmsAuthenticationMessage"] == "Code {####}"

    listed = aws.idp.list_user_pool_clients(UserPoolId=pool_id)["UserPoolClients"]
    assert {c["ClientId"] for c in listed} == {ids["AppClientIDWeb"], ids["AppClientID"]}
    web = aws.idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=ids["AppClientIDWeb"])[
        "UserPoolClient"
    ]
    native = aws.idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=ids["AppClientID"])[
        "UserPoolClient"
    ]
    assert "ClientSecret" not in web  # Amplify's web client has no secret, its native client has one
    assert re.fullmatch(r"[0-9a-z]{51}", native["ClientSecret"])
    assert web["ClientName"].endswith("_app_clientWeb") and native["ClientName"].endswith("_app_client")
    for client in (web, native):
        assert client["CallbackURLs"] == ["https://shop.example.com/callback", "myapp://callback"]
        assert client["LogoutURLs"] == ["https://shop.example.com/"]
        assert client["AllowedOAuthFlows"] == ["implicit"]
        assert client["AllowedOAuthScopes"] == [
            "openid",
            "email",
            "phone",
            "profile",
            "aws.cognito.signin.user.admin",
        ]
        assert client["AllowedOAuthFlowsUserPoolClient"] is True
        assert client["SupportedIdentityProviders"] == [
            "COGNITO",
            "Google",
            "Facebook",
            "LoginWithAmazon",
            "SignInWithApple",
        ]

    domain = aws.idp.describe_user_pool_domain(Domain="shop-login")["DomainDescription"]
    assert (domain["UserPoolId"], domain["Domain"], domain["Status"]) == (pool_id, "shop-login", "ACTIVE")
    assert domain["AWSAccountId"] == "000000000000"

    providers = aws.idp.list_identity_providers(UserPoolId=pool_id)["Providers"]
    assert {(p["ProviderName"], p["ProviderType"]) for p in providers} == {
        ("Google", "Google"),
        ("Facebook", "Facebook"),
        ("LoginWithAmazon", "LoginWithAmazon"),
        ("SignInWithApple", "SignInWithApple"),
    }
    google = aws.idp.describe_identity_provider(UserPoolId=pool_id, ProviderName="Google")["IdentityProvider"]
    assert google["ProviderDetails"]["client_id"] == "google-id"
    assert google["ProviderDetails"]["client_secret"] == GOOGLE_SECRET  # Cognito shows it, as AWS does
    assert google["ProviderDetails"]["authorize_scopes"] == "openid email profile"
    assert google["AttributeMapping"]["email"] == "email"
    apple = aws.idp.describe_identity_provider(UserPoolId=pool_id, ProviderName="SignInWithApple")[
        "IdentityProvider"
    ]
    assert {k: apple["ProviderDetails"][k] for k in ("client_id", "team_id", "key_id", "private_key")} == {
        "client_id": "apple-id",
        "team_id": "TEAM123",
        "key_id": "KEY456",
        "private_key": APPLE_KEY,
    }
    assert "client_secret" not in apple["ProviderDetails"]

    identity = aws.identity.describe_identity_pool(IdentityPoolId=ids["IdentityPoolId"])
    assert (
        identity["IdentityPoolName"] == "shop_identity" and identity["AllowUnauthenticatedIdentities"] is True
    )
    provider = f"cognito-idp.{REGION}.amazonaws.com/{pool_id}"
    assert [(p["ProviderName"], p["ClientId"]) for p in identity["CognitoIdentityProviders"]] == [
        (provider, ids["AppClientIDWeb"]),
        (provider, ids["AppClientID"]),
    ]
    roles = aws.identity.get_identity_pool_roles(IdentityPoolId=ids["IdentityPoolId"])
    assert roles["IdentityPoolId"] == ids["IdentityPoolId"]
    assert re.fullmatch(
        r"arn:aws:iam::000000000000:role/amplify-app1-dev-\d{6}-authRole", roles["Roles"]["authenticated"]
    )
    assert re.fullmatch(
        r"arn:aws:iam::000000000000:role/amplify-app1-dev-\d{6}-unauthRole", roles["Roles"]["unauthenticated"]
    )

    assert aws.answers == 11 and aws.problems == []


def test_user_pool_only_makes_no_identity_pool_and_the_sign_in_method_maps(sim: SimulatorThread) -> None:
    aws = Checked(sim.url, region="ap-southeast-2")
    ids = create(aws, SMALL_CONFIG)
    assert set(ids) == {"UserPoolId", "AppClientIDWeb", "AppClientID"}
    assert ids["UserPoolId"].startswith("ap-southeast-2_")
    pool = aws.idp.describe_user_pool(UserPoolId=ids["UserPoolId"])["UserPool"]
    assert pool["UsernameAttributes"] == [] and pool["MfaConfiguration"] == "OFF"
    assert "Domain" not in pool and "AccountRecoverySetting" not in pool
    assert aws.idp.get_user_pool_mfa_config(UserPoolId=ids["UserPoolId"])["MfaConfiguration"] == "OFF"
    web = aws.idp.describe_user_pool_client(UserPoolId=ids["UserPoolId"], ClientId=ids["AppClientIDWeb"])[
        "UserPoolClient"
    ]
    assert web["AllowedOAuthFlowsUserPoolClient"] is False and "CallbackURLs" not in web
    assert aws.idp.list_identity_providers(UserPoolId=ids["UserPoolId"])["Providers"] == []
    assert sim_state(sim.url)["cognito"]["identityPools"] == {}
    assert aws.problems == []


@pytest.mark.parametrize(
    ("sign_in", "username_attributes"),
    [
        ("EMAIL", ["email"]),
        ("PHONE_NUMBER", ["phone_number"]),
        ("EMAIL_AND_PHONE_NUMBER", ["email", "phone_number"]),
        ("USERNAME", []),
    ],
)
def test_sign_in_method_is_the_pools_username_attributes(
    sign_in: str, username_attributes: list[str]
) -> None:
    state = cognito.CognitoState()
    config = {
        "authResources": "USER_POOL_ONLY",
        "service": "COGNITO",
        "userPoolConfigs": {"userPoolName": "p", "signInMethod": sign_in, "requiredSignUpAttributes": []},
    }
    link = cognito.realise(
        config, cognito.Where("000000000000", REGION, APP, ENV, RES), state, random.Random(1)
    )
    assert state.user_pools[link.user_pool_id].description["UsernameAttributes"] == username_attributes


def test_every_required_sign_up_attribute_is_a_cognito_standard_attribute() -> None:
    state = cognito.CognitoState()
    every = sorted(cognito.SIGN_UP_ATTRIBUTES)
    model = botocore.session.get_session().get_service_model("amplifybackend")
    user_pool = model.shape_for("CreateBackendAuthUserPoolConfig")
    enum = user_pool.members["RequiredSignUpAttributes"].member.metadata["enum"]  # type: ignore[attr-defined]
    assert sorted(enum) == every  # the table names every value of AmplifyBackend's enum
    config = {
        "authResources": "USER_POOL_ONLY",
        "service": "COGNITO",
        "userPoolConfigs": {"userPoolName": "p", "signInMethod": "EMAIL", "requiredSignUpAttributes": every},
    }
    link = cognito.realise(
        config, cognito.Where("000000000000", REGION, APP, ENV, RES), state, random.Random(1)
    )
    schema = state.user_pools[link.user_pool_id].description["SchemaAttributes"]
    required = {a["Name"] for a in schema if a["Required"]}
    assert required == {"sub", *cognito.SIGN_UP_ATTRIBUTES.values()}
    assert "zoneinfo" in required and "ZONE_INFO" not in required


def test_forgot_password_by_sms_recovers_by_phone_and_code_grant_is_code() -> None:
    state = cognito.CognitoState()
    config = {
        "authResources": "USER_POOL_ONLY",
        "service": "COGNITO",
        "userPoolConfigs": {
            "userPoolName": "p",
            "signInMethod": "PHONE_NUMBER",
            "requiredSignUpAttributes": ["PHONE_NUMBER"],
            "forgotPassword": {"deliveryMethod": "SMS"},
            "verificationMessage": {"deliveryMethod": "SMS", "smsSettings": {"smsMessage": "Code {####}"}},
            "oAuth": {
                "oAuthGrantType": "CODE",
                "oAuthScopes": ["OPENID"],
                "redirectSignInURIs": ["a://b"],
                "redirectSignOutURIs": ["a://c"],
            },
        },
    }
    link = cognito.realise(
        config, cognito.Where("000000000000", REGION, APP, ENV, RES), state, random.Random(1)
    )
    pool = state.user_pools[link.user_pool_id]
    assert pool.description["AccountRecoverySetting"]["RecoveryMechanisms"] == [
        {"Priority": 1, "Name": "verified_phone_number"}
    ]
    assert pool.description["AutoVerifiedAttributes"] == ["phone_number"]
    assert pool.description["VerificationMessageTemplate"]["SmsMessage"] == "Code {####}"
    assert pool.clients[link.web_client_id]["AllowedOAuthFlows"] == ["code"]
    assert pool.clients[link.web_client_id]["SupportedIdentityProviders"] == ["COGNITO"]
    assert pool.domain is None


def test_an_update_changes_the_pools_in_place_and_a_delete_removes_them(sim: SimulatorThread) -> None:
    aws = Checked(sim.url)
    ids = create(aws, SMALL_CONFIG)
    pool_id = ids["UserPoolId"]
    secret = aws.idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=ids["AppClientID"])[
        "UserPoolClient"
    ]["ClientSecret"]
    update = {
        "AuthResources": "IDENTITY_POOL_AND_USER_POOL",
        "Service": "COGNITO",
        "IdentityPoolConfigs": {"UnauthenticatedLogin": False},
        "UserPoolConfigs": {"Mfa": {"MFAMode": "ON", "Settings": {"MfaTypes": ["TOTP"]}}},
    }
    job = aws.amplify.update_backend_auth(
        AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES, ResourceConfig=update
    )
    assert job["Status"] == "COMPLETED"
    after = outputs(aws)
    assert {k: after[k] for k in ("UserPoolId", "AppClientIDWeb", "AppClientID")} == {
        k: ids[k] for k in ("UserPoolId", "AppClientIDWeb", "AppClientID")
    }
    assert after["IdentityPoolId"].startswith(f"{REGION}:")  # the update added the identity pool
    assert aws.idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]["MfaConfiguration"] == "ON"
    assert (
        aws.idp.get_user_pool_mfa_config(UserPoolId=pool_id)["SoftwareTokenMfaConfiguration"]["Enabled"]
        is True
    )
    again = aws.idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=ids["AppClientID"])[
        "UserPoolClient"
    ]
    assert again["ClientSecret"] == secret  # an update keeps the app client's secret
    assert (
        aws.identity.describe_identity_pool(IdentityPoolId=after["IdentityPoolId"])["IdentityPoolName"]
        == "small_identitypool"
    )

    job = aws.amplify.delete_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert job["Status"] == "COMPLETED"
    meta = json.loads(aws.amplify.get_backend(AppId=APP, BackendEnvironmentName=ENV)["AmplifyMetaConfig"])
    assert meta == {}
    with pytest.raises(ClientError) as err:
        aws.idp.describe_user_pool(UserPoolId=pool_id)
    assert error_code(err) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        aws.identity.describe_identity_pool(IdentityPoolId=after["IdentityPoolId"])
    assert error_code(err) == "ResourceNotFoundException"
    assert aws.problems == []


def test_errors_are_400_with_type_as_aws_sends_them(sim: SimulatorThread) -> None:
    status, body = raw_cognito(
        sim.url, "AWSCognitoIdentityProviderService.DescribeUserPool", {"UserPoolId": f"{REGION}_nopenope1"}
    )
    assert status == 400 and body["__type"] == "ResourceNotFoundException" and REGION in body["message"]
    status, body = raw_cognito(
        sim.url,
        "AWSCognitoIdentityService.GetIdentityPoolRoles",
        {"IdentityPoolId": f"{REGION}:00000000-0000-4000-8000-000000000000"},
    )
    assert status == 400 and body["__type"] == "ResourceNotFoundException"
    status, body = raw_cognito(
        sim.url, "AWSCognitoIdentityProviderService.DescribeUserPoolClient", {"UserPoolId": "x"}
    )
    assert status == 400 and body["__type"] == "InvalidParameterException" and "clientId" in body["message"]
    # A domain nobody has: Cognito answers an empty description, not an error.
    aws = Checked(sim.url)
    assert aws.idp.describe_user_pool_domain(Domain="nobody-has-this")["DomainDescription"] == {}


def test_ids_carry_their_region_and_another_region_does_not_see_them(sim: SimulatorThread) -> None:
    ids = create(Checked(sim.url, region="eu-central-1"), SMALL_CONFIG)
    assert ids["UserPoolId"].startswith("eu-central-1_")
    elsewhere = Checked(sim.url, region="us-east-1")
    with pytest.raises(ClientError) as err:
        elsewhere.idp.describe_user_pool(UserPoolId=ids["UserPoolId"])
    assert error_code(err) == "ResourceNotFoundException"
    assert Checked(sim.url, region="eu-central-1").idp.describe_user_pool(UserPoolId=ids["UserPoolId"])


def test_pools_are_per_account(sim: SimulatorThread) -> None:
    sts = boto3.client(
        "sts", region_name=REGION, endpoint_url=sim.url, aws_access_key_id="x", aws_secret_access_key="x"
    )
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/operator", RoleSessionName="test")[
        "Credentials"
    ]
    other = Checked(
        sim.url, key=creds["AccessKeyId"], secret=creds["SecretAccessKey"], token=creds["SessionToken"]
    )
    control(sim.url, "apps", {"appId": APP, "backendEnvironmentName": ENV, "account": OTHER_ACCOUNT})
    ids = create(other, FULL_CONFIG)
    base = Checked(sim.url)
    with pytest.raises(ClientError) as err:
        base.idp.describe_user_pool(UserPoolId=ids["UserPoolId"])
    assert error_code(err) == "ResourceNotFoundException"
    with pytest.raises(ClientError):
        base.identity.get_identity_pool_roles(IdentityPoolId=ids["IdentityPoolId"])
    roles = other.identity.get_identity_pool_roles(IdentityPoolId=ids["IdentityPoolId"])["Roles"]
    assert roles["authenticated"].startswith(f"arn:aws:iam::{OTHER_ACCOUNT}:role/")
    assert (
        other.idp.describe_user_pool_domain(Domain="shop-login")["DomainDescription"]["AWSAccountId"]
        == OTHER_ACCOUNT
    )
    calls = sim_calls(sim.url)["byAccount"]
    assert calls[OTHER_ACCOUNT]["byOperation"]["GetIdentityPoolRoles"] == 1
    assert calls["000000000000"]["byOperation"]["GetIdentityPoolRoles"] == 1
    assert sim_state(sim.url, OTHER_ACCOUNT)["links"][f"{APP}/{ENV}/{RES}"]["UserPoolId"] == ids["UserPoolId"]
    assert sim_state(sim.url)["cognito"]["userPools"] == {}


def test_secrets_are_in_describe_answers_but_never_in_the_simulators_log_state_or_calls(
    sim: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    aws = Checked(sim.url)
    ids = create(aws, FULL_CONFIG)
    seeded = seed_pools(sim.url, region=REGION)
    shown: list[str] = []
    for pool_id, client_id in (
        (ids["UserPoolId"], ids["AppClientID"]),
        (seeded["userPoolId"], seeded["clients"]["native"]),
    ):
        shown.append(
            aws.idp.describe_user_pool_client(UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"][
                "ClientSecret"
            ]
        )
    for provider, key in (
        ("Google", "client_secret"),
        ("Facebook", "client_secret"),
        ("LoginWithAmazon", "client_secret"),
        ("SignInWithApple", "private_key"),
    ):
        shown.append(
            aws.idp.describe_identity_provider(UserPoolId=ids["UserPoolId"], ProviderName=provider)[
                "IdentityProvider"
            ]["ProviderDetails"][key]
        )
    assert shown[2:] == [GOOGLE_SECRET, FACEBOOK_SECRET, AMAZON_SECRET, APPLE_KEY]
    aws.amplify.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    with pytest.raises(ClientError):
        aws.idp.create_identity_provider(
            UserPoolId=ids["UserPoolId"],
            ProviderName="Google",
            ProviderType="Google",
            ProviderDetails={"client_secret": GOOGLE_SECRET},
        )
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("backendauth_testbed"))
    assert "DescribeUserPoolClient" in logged  # the log does record the calls
    published = json.dumps(sim_state(sim.url)) + json.dumps(sim_calls(sim.url))
    for secret in shown:
        assert secret not in logged
        assert secret not in published


# ---- mutating calls ---------------------------------------------------------------------------


def test_mutating_cognito_calls_are_refused_and_recorded(sim: SimulatorThread) -> None:
    aws = Checked(sim.url)
    ids = create(aws, FULL_CONFIG)
    pool_id = ids["UserPoolId"]
    attempts = [
        (aws.idp.create_user_pool, {"PoolName": "x"}),
        (aws.idp.update_user_pool, {"UserPoolId": pool_id}),
        (aws.idp.delete_user_pool, {"UserPoolId": pool_id}),
        (aws.idp.update_user_pool_client, {"UserPoolId": pool_id, "ClientId": ids["AppClientID"]}),
        (aws.idp.delete_user_pool_domain, {"UserPoolId": pool_id, "Domain": "shop-login"}),
        (aws.idp.update_identity_provider, {"UserPoolId": pool_id, "ProviderName": "Google"}),
        (aws.idp.set_user_pool_mfa_config, {"UserPoolId": pool_id, "MfaConfiguration": "OFF"}),
        (aws.idp.admin_create_user, {"UserPoolId": pool_id, "Username": "u"}),
        (aws.identity.delete_identity_pool, {"IdentityPoolId": ids["IdentityPoolId"]}),
        (aws.identity.set_identity_pool_roles, {"IdentityPoolId": ids["IdentityPoolId"], "Roles": {}}),
    ]
    for method, kwargs in attempts:
        with pytest.raises(ClientError) as err:
            method(**kwargs)
        assert error_code(err) == "UnsupportedOperationException"
    # Nothing changed.
    assert aws.idp.describe_user_pool(UserPoolId=pool_id)["UserPool"]["Domain"] == "shop-login"
    with pytest.raises(ClientError):
        aws.idp.admin_get_user(UserPoolId=pool_id, Username="u")
    # An AmplifyBackend operation the simulator does not serve is recorded too.
    with pytest.raises(ClientError) as err:
        aws.amplify.delete_backend(AppId=APP, BackendEnvironmentName=ENV)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    mutating = mutating_calls(sim.url)
    assert [c["operation"] for c in mutating] == [
        "CreateBackendAuth",
        "CreateUserPool",
        "UpdateUserPool",
        "DeleteUserPool",
        "UpdateUserPoolClient",
        "DeleteUserPoolDomain",
        "UpdateIdentityProvider",
        "SetUserPoolMfaConfig",
        "AdminCreateUser",
        "DeleteIdentityPool",
        "SetIdentityPoolRoles",
        "DeleteBackend",
    ]
    assert [c["service"] for c in mutating].count("cognito-identity") == 2
    assert all(c["region"] == REGION for c in mutating)
    assert next(c for c in mutating if c["operation"] == "DeleteUserPool")["resourceId"] == pool_id
    summary = sim_calls(sim.url)
    assert summary["byOperation"]["DescribeUserPool"] == 1 and summary["byOperation"]["AdminGetUser"] == 1
    assert not any(
        c["mutating"]
        for c in summary["calls"]
        if c["operation"] in ("DescribeUserPool", "AdminGetUser", "GetBackend")
    )


def test_a_read_only_session_makes_no_mutating_call(sim: SimulatorThread) -> None:
    aws = Checked(sim.url)
    ids = create(aws, FULL_CONFIG)
    before = len(mutating_calls(sim.url))
    aws.idp.describe_user_pool(UserPoolId=ids["UserPoolId"])
    aws.identity.get_identity_pool_roles(IdentityPoolId=ids["IdentityPoolId"])
    aws.amplify.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert len(mutating_calls(sim.url)) == before == 1


def test_calls_use_one_naming_style(sim: SimulatorThread) -> None:
    aws = Checked(sim.url)
    create(aws, SMALL_CONFIG)
    summary = sim_calls(sim.url)
    camel = re.compile(r"^[a-z][a-zA-Z]*$")
    keys = set(summary) | set(summary["byAccount"]["000000000000"]) | {k for c in summary["calls"] for k in c}
    assert all(camel.match(k) for k in keys), sorted(k for k in keys if not camel.match(k))
    assert set(summary) == {"calls", "byOperation", "byResource", "mutating", "byAccount"}


def test_faults_can_name_a_cognito_read(sim: SimulatorThread) -> None:
    aws = Checked(sim.url)
    ids = create(aws, SMALL_CONFIG)
    control(sim.url, "faults", {"operation": "DescribeUserPool", "fault": "access_denied"})
    with pytest.raises(ClientError) as err:
        aws.idp.describe_user_pool(UserPoolId=ids["UserPoolId"])
    assert error_code(err) == "AccessDeniedException"
    assert "cognito-idp:DescribeUserPool" in err.value.response["Error"]["Message"]
    control(sim.url, "faults", {"operation": "ListUserPoolClients", "fault": "throttle"})
    with pytest.raises(ClientError) as err:
        aws.idp.list_user_pool_clients(UserPoolId=ids["UserPoolId"])
    assert error_code(err) == "TooManyRequestsException"
    assert aws.idp.describe_user_pool(UserPoolId=ids["UserPoolId"])  # once only


def test_lists_paginate(sim: SimulatorThread) -> None:
    aws = Checked(sim.url)
    ids = create(aws, FULL_CONFIG)
    first = aws.idp.list_user_pool_clients(UserPoolId=ids["UserPoolId"], MaxResults=1)
    second = aws.idp.list_user_pool_clients(
        UserPoolId=ids["UserPoolId"], MaxResults=1, NextToken=first["NextToken"]
    )
    assert "NextToken" not in second
    assert {c["ClientId"] for c in first["UserPoolClients"] + second["UserPoolClients"]} == {
        ids["AppClientIDWeb"],
        ids["AppClientID"],
    }
    paginator = aws.idp.get_paginator("list_identity_providers")
    names = [
        p["ProviderName"]
        for page in paginator.paginate(UserPoolId=ids["UserPoolId"], PaginationConfig={"PageSize": 3})
        for p in page["Providers"]
    ]
    assert sorted(names) == ["Facebook", "Google", "LoginWithAmazon", "SignInWithApple"]
    assert aws.problems == []


# ---- seeding pools made outside Amplify -------------------------------------------------------------


def test_seeded_pools_are_described_as_made(sim: SimulatorThread) -> None:
    seeded = seed_pools(
        sim.url,
        region="us-west-2",
        user_pool_name="terraform_pool",
        clients=[
            {"name": "spa", "secret": True},
            {"name": "mobile", "secret": True},
            {"name": "admin", "secret": False},
        ],
        identity_pool={"name": "tf_identity", "clients": ["spa"], "allowUnauthenticated": True},
    )
    assert seeded["region"] == "us-west-2" and seeded["account"] == "000000000000"
    assert seeded["userPoolId"].startswith("us-west-2_") and set(seeded["clients"]) == {
        "spa",
        "mobile",
        "admin",
    }
    aws = Checked(sim.url, region="us-west-2")
    pool = aws.idp.describe_user_pool(UserPoolId=seeded["userPoolId"])["UserPool"]
    assert pool["Name"] == "terraform_pool"
    spa = aws.idp.describe_user_pool_client(
        UserPoolId=seeded["userPoolId"], ClientId=seeded["clients"]["spa"]
    )
    assert "ClientSecret" in spa["UserPoolClient"]
    admin = aws.idp.describe_user_pool_client(
        UserPoolId=seeded["userPoolId"], ClientId=seeded["clients"]["admin"]
    )
    assert "ClientSecret" not in admin["UserPoolClient"]
    identity = aws.identity.describe_identity_pool(IdentityPoolId=seeded["identityPoolId"])
    assert [p["ClientId"] for p in identity["CognitoIdentityProviders"]] == [seeded["clients"]["spa"]]
    assert identity["AllowUnauthenticatedIdentities"] is True
    assert aws.problems == []
    # Defaults: a web client without, a native one with a secret; no identity pool.
    plain = seed_pools(sim.url, account=OTHER_ACCOUNT)
    assert (
        plain["region"] == "us-east-1"
        and plain["identityPoolId"] is None
        and plain["account"] == OTHER_ACCOUNT
    )
    assert set(plain["clients"]) == {"web", "native"}
    assert plain["userPoolId"] in sim_state(sim.url, OTHER_ACCOUNT)["cognito"]["userPools"]
    assert mutating_calls(sim.url) == []  # seeding is not a call to AWS


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"clients": [{"name": "a", "secret": "yes"}]}, "clients[0].secret"),
        ({"clients": [{"name": "a"}, {"name": "a"}]}, "clients[1].name"),
        ({"identity_pool": {"clients": ["nope"]}}, "identityPool.clients"),
        ({"region": "eu_west"}, "region"),
        ({"account": "12"}, "account"),
    ],
)
def test_seeding_rejects_bad_input_naming_the_field(
    sim: SimulatorThread, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(field)):
        seed_pools(sim.url, **kwargs)


def test_the_shape_check_catches_a_departure() -> None:
    shape = (
        botocore.session.get_session()
        .get_service_model("cognito-idp")
        .operation_model("DescribeUserPool")
        .output_shape
    )
    assert shape is not None
    bad = {
        "UserPool": {
            "Id": 1,
            "MfaConfiguration": "MAYBE",
            "Policies": {"PasswordPolicy": {"MinimumLength": 8.5}},
            "Extra": True,
        }
    }
    assert sorted(shape_problems(shape, bad)) == [
        ".UserPool.Extra: not in the model",
        ".UserPool.Id: expected a string",
        ".UserPool.MfaConfiguration: 'MAYBE' not in ['OFF', 'ON', 'OPTIONAL']",
        ".UserPool.Policies.PasswordPolicy.MinimumLength: expected an integer",
    ]


# ---- ImportBackendAuth ------------------------------------------------------------------------------


def import_auth(
    aws: Checked, ids: dict[str, Any], web: str = "web", native: str = "native"
) -> dict[str, Any]:
    kwargs = {
        "AppId": APP,
        "BackendEnvironmentName": ENV,
        "UserPoolId": ids["userPoolId"],
        "WebClientId": ids["clients"][web],
        "NativeClientId": ids["clients"][native],
    }
    if ids.get("identityPoolId"):
        kwargs["IdentityPoolId"] = ids["identityPoolId"]
    answer: dict[str, Any] = aws.amplify.import_backend_auth(**kwargs)
    return answer


def job_of(aws: Checked, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = aws.amplify.get_backend_job(AppId=APP, BackendEnvironmentName=ENV, JobId=job_id)
    return answer


def test_an_import_is_a_job_that_links_the_pools_and_a_delete_unlinks_and_keeps_them(
    sim: SimulatorThread,
) -> None:
    seeded = seed_pools(sim.url, region=REGION, identity_pool={"name": "tf_identity"})
    aws = Checked(sim.url)
    control(sim.url, "hold", {"held": True})
    job = import_auth(aws, seeded)
    assert (job["Operation"], job["Status"]) == ("ImportBackendAuth", "RUNNING")
    # One pending job per app/env: a second import, or a create, waits.
    for attempt in (
        lambda: import_auth(aws, seeded),
        lambda: aws.amplify.create_backend_auth(
            AppId=APP, BackendEnvironmentName=ENV, ResourceName="other", ResourceConfig=SMALL_CONFIG
        ),
    ):
        with pytest.raises(ClientError) as err:
            attempt()
        assert error_code(err) == "ValidationException" and "pending job" in str(err.value)
    assert (
        json.loads(aws.amplify.get_backend(AppId=APP, BackendEnvironmentName=ENV)["AmplifyMetaConfig"]) == {}
    )
    control(sim.url, "hold", {"held": False})
    assert job_of(aws, job["JobId"])["Status"] == "COMPLETED"

    meta = json.loads(aws.amplify.get_backend(AppId=APP, BackendEnvironmentName=ENV)["AmplifyMetaConfig"])
    entry = meta["auth"][IMPORTED_RESOURCE_NAME]
    assert entry["serviceType"] == "imported"
    assert entry["output"] == {
        "UserPoolId": seeded["userPoolId"],
        "AppClientIDWeb": seeded["clients"]["web"],
        "AppClientID": seeded["clients"]["native"],
        "IdentityPoolId": seeded["identityPoolId"],
    }
    # By default GetBackendAuth does not answer for an imported resource (unknown at AWS) ...
    with pytest.raises(ClientError) as err:
        aws.amplify.get_backend_auth(
            AppId=APP, BackendEnvironmentName=ENV, ResourceName=IMPORTED_RESOURCE_NAME
        )
    assert error_code(err) == "NotFoundException"
    # ... and told to, it answers with the pools' configuration.
    control(sim.url, "config", {"imported_get_backend_auth": "config"})
    config = aws.amplify.get_backend_auth(
        AppId=APP, BackendEnvironmentName=ENV, ResourceName=IMPORTED_RESOURCE_NAME
    )["ResourceConfig"]
    assert config["AuthResources"] == "IDENTITY_POOL_AND_USER_POOL"
    assert config["UserPoolConfigs"]["UserPoolName"] == "seeded"
    assert config["IdentityPoolConfigs"] == {"IdentityPoolName": "tf_identity", "UnauthenticatedLogin": False}
    # An app/env with an auth resource takes no import; an imported resource takes no update.
    with pytest.raises(ClientError) as err:
        import_auth(aws, seeded)
    assert error_code(err) == "BadRequestException" and IMPORTED_RESOURCE_NAME in str(err.value)
    with pytest.raises(ClientError) as err:
        aws.amplify.update_backend_auth(
            AppId=APP,
            BackendEnvironmentName=ENV,
            ResourceName=IMPORTED_RESOURCE_NAME,
            ResourceConfig={"AuthResources": "USER_POOL_ONLY", "Service": "COGNITO", "UserPoolConfigs": {}},
        )
    assert error_code(err) == "BadRequestException" and "imported" in str(err.value)

    job = aws.amplify.delete_backend_auth(
        AppId=APP, BackendEnvironmentName=ENV, ResourceName=IMPORTED_RESOURCE_NAME
    )
    assert job_of(aws, job["JobId"])["Status"] == "COMPLETED"
    assert (
        json.loads(aws.amplify.get_backend(AppId=APP, BackendEnvironmentName=ENV)["AmplifyMetaConfig"]) == {}
    )
    # Amplify does not manage an imported resource's lifecycle: the pools stay.
    assert aws.idp.describe_user_pool(UserPoolId=seeded["userPoolId"])["UserPool"]["Name"] == "seeded"
    assert aws.idp.describe_user_pool_client(
        UserPoolId=seeded["userPoolId"], ClientId=seeded["clients"]["native"]
    )
    assert aws.identity.describe_identity_pool(IdentityPoolId=seeded["identityPoolId"])
    assert [c["operation"] for c in mutating_calls(sim.url)] == [
        "ImportBackendAuth",
        "ImportBackendAuth",
        "CreateBackendAuth",
        "ImportBackendAuth",
        "UpdateBackendAuth",
        "DeleteBackendAuth",
    ]
    # Linked again after the unlink: the same pools, a new import.
    job = import_auth(aws, seeded)
    assert job_of(aws, job["JobId"])["Status"] == "COMPLETED"
    assert aws.problems == []


def test_an_import_without_an_identity_pool_links_the_user_pool_only(sim: SimulatorThread) -> None:
    seeded = seed_pools(sim.url, region=REGION)
    aws = Checked(sim.url)
    assert import_auth(aws, seeded)["Status"] == "COMPLETED"
    output = outputs(aws, IMPORTED_RESOURCE_NAME)
    assert output == {
        "UserPoolId": seeded["userPoolId"],
        "AppClientIDWeb": seeded["clients"]["web"],
        "AppClientID": seeded["clients"]["native"],
    }
    assert sim_state(sim.url)["links"][f"{APP}/{ENV}/{IMPORTED_RESOURCE_NAME}"]["imported"] is True


@pytest.mark.parametrize(
    ("seed", "region", "web", "native", "error"),
    [
        (
            {"clients": [{"name": "web", "secret": True}, {"name": "native", "secret": True}]},
            REGION,
            "web",
            "native",
            "has a client secret",
        ),
        (
            {
                "clients": [{"name": "web", "secret": False}, {"name": "native", "secret": True}],
                "identity_pool": {"clients": ["web"]},
            },
            REGION,
            "web",
            "native",
            "does not list app client",
        ),
        ({}, "us-west-2", "web", "native", "does not exist in us-west-2"),
        ({"account": OTHER_ACCOUNT}, REGION, "web", "native", "does not exist in eu-west-1"),
    ],
)
def test_an_import_of_pools_that_cannot_be_linked_fails_its_job_naming_why(
    sim: SimulatorThread, seed: dict[str, Any], region: str, web: str, native: str, error: str
) -> None:
    seeded = seed_pools(sim.url, region=REGION, **seed)
    aws = Checked(sim.url, region=region)
    job = import_auth(aws, seeded, web, native)
    ended = job_of(aws, job["JobId"])
    assert ended["Status"] == "FAILED" and error in ended["Error"]
    assert (
        json.loads(aws.amplify.get_backend(AppId=APP, BackendEnvironmentName=ENV)["AmplifyMetaConfig"]) == {}
    )


def test_an_import_of_a_client_the_pool_does_not_have_fails(sim: SimulatorThread) -> None:
    seeded = seed_pools(sim.url, region=REGION)
    other = seed_pools(sim.url, region=REGION)
    seeded["clients"]["native"] = other["clients"]["native"]
    aws = Checked(sim.url)
    ended = job_of(aws, import_auth(aws, seeded)["JobId"])
    assert ended["Status"] == "FAILED" and other["clients"]["native"] in ended["Error"]


def test_import_honours_the_fault_rates_and_the_ambiguous_timeout(sim: SimulatorThread) -> None:
    seeded = seed_pools(sim.url, region=REGION)
    aws = Checked(sim.url)
    control(sim.url, "faults", {"operation": "ImportBackendAuth", "fault": "throttle"})
    with pytest.raises(ClientError) as err:
        import_auth(aws, seeded)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert sim_state(sim.url)["jobs"] == []  # refused: nothing started
    control(sim.url, "faults", {"operation": "ImportBackendAuth", "fault": "ambiguous"})
    with pytest.raises(ClientError) as err:
        import_auth(aws, seeded)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 504
    # Carried out although the answer was lost: the job is there, and the link with it.
    jobs = aws.amplify.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)["Jobs"]
    assert [(j["Operation"], j["Status"]) for j in jobs] == [("ImportBackendAuth", "COMPLETED")]
    assert outputs(aws, IMPORTED_RESOURCE_NAME)["UserPoolId"] == seeded["userPoolId"]
    with SimulatorThread(SimulatorConfig(apps=[(APP, ENV)], job_seconds=0.0, throttle_rate=1.0)) as throttled:
        seed = seed_pools(throttled.url, region=REGION)
        with pytest.raises(ClientError) as err:
            import_auth(Checked(throttled.url), seed)
        assert error_code(err) == "TooManyRequestsException"


def test_the_imported_get_backend_auth_setting_is_checked(sim: SimulatorThread) -> None:
    request = urllib.request.Request(
        f"{sim.url}/_sim/config",
        data=json.dumps({"imported_get_backend_auth": "maybe"}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 400 and "imported_get_backend_auth" in json.loads(err.value.read())["message"]
