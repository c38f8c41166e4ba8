"""The hand-off export as tables: the Cognito reads (botocore's Stubber, botocore's shapes), the
mapping of every ResourceConfig field, each renderer on one fixed view, secrets, bad flags.
No processes."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import yaml
from botocore.stub import Stubber

from backendauth_operator.aws.clients import ClientFactory
from backendauth_operator.aws.cognito import AuthView, Cognito, PoolIds, Pools
from backendauth_operator.commands import cli, handoff, handoff_mapping
from backendauth_operator.commands.handoff import CrossplaneOptions, Gen2Unsupported, Source
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.role import Role

REPO = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"
POOL = "eu-west-1_AbCdEf123"
WEB, NATIVE = "1webclient23456789abcdefghi", "2nativeclient3456789abcdefg"
IDENTITY = "eu-west-1:00000000-1111-2222-3333-444444444444"
AUTH_ROLE = "arn:aws:iam::111111111111:role/amplify-shop-staging-authRole"
UNAUTH_ROLE = "arn:aws:iam::111111111111:role/amplify-shop-staging-unauthRole"
ROLE = Role("arn:aws:iam::111111111111:role/backendauth-operator", "111111111111")
# Secret values the answers carry: none may ever come out.
NATIVE_SECRET = "native-app-client-secret-9f8e7d6c5b4a"
GOOGLE_SECRET = "google-oauth-secret-0a1b2c3d"
APPLE_KEY = "-----BEGIN PRIVATE KEY-----\nMIGTAgEAapple-private-key-77\n-----END PRIVATE KEY-----"
SECRETS = (NATIVE_SECRET, GOOGLE_SECRET, APPLE_KEY, "MIGTAgEAapple-private-key-77")
SOURCE = Source("d1a2b3c4d5e6f7", "staging", "shopauth", "shop", "shop-auth")


# ---- botocore-shaped answers -----------------------------------------------------------------------


def user_pool_answer() -> dict[str, Any]:
    return {
        "UserPool": {
            "Id": POOL,
            "Name": "shopusers",
            "Arn": f"arn:aws:cognito-idp:{REGION}:111111111111:userpool/{POOL}",
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": 12,
                    "RequireUppercase": False,
                    "RequireLowercase": False,
                    "RequireNumbers": True,
                    "RequireSymbols": True,
                    "TemporaryPasswordValidityDays": 7,
                }
            },
            "SchemaAttributes": [
                {
                    "Name": "sub",
                    "AttributeDataType": "String",
                    "Mutable": False,
                    "Required": True,
                    "DeveloperOnlyAttribute": False,
                    "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "2048"},
                },
                {
                    "Name": "email",
                    "AttributeDataType": "String",
                    "Mutable": True,
                    "Required": True,
                    "DeveloperOnlyAttribute": False,
                    "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "2048"},
                },
                {
                    "Name": "name",
                    "AttributeDataType": "String",
                    "Mutable": True,
                    "Required": True,
                    "DeveloperOnlyAttribute": False,
                    "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "2048"},
                },
                {
                    "Name": "nickname",
                    "AttributeDataType": "String",
                    "Mutable": True,
                    "Required": False,
                    "DeveloperOnlyAttribute": False,
                },
            ],
            "AutoVerifiedAttributes": ["email"],
            "UsernameAttributes": ["email"],
            "VerificationMessageTemplate": {
                "EmailMessage": "Your code is {####}",
                "EmailSubject": "Verify",
                "SmsMessage": "Your code is {####}",
                "DefaultEmailOption": "CONFIRM_WITH_CODE",
            },
            "SmsAuthenticationMessage": "Your sign-in code is {####}",
            "MfaConfiguration": "OPTIONAL",
            "SmsConfiguration": {
                "SnsCallerArn": "arn:aws:iam::111111111111:role/shopauth_sns-role",
                "ExternalId": "shopauth_role_external_id",
                "SnsRegion": REGION,
            },
            "EmailConfiguration": {"EmailSendingAccount": "COGNITO_DEFAULT"},
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
            "UserPoolTags": {"amplify-app": "shop"},
            "Domain": "shop-auth",
            "AccountRecoverySetting": {"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
            "DeletionProtection": "ACTIVE",
            "LambdaConfig": {
                "PreSignUp": "arn:aws:lambda:eu-west-1:111111111111:function:presignup",
                "PreTokenGenerationConfig": {
                    "LambdaVersion": "V2_0",
                    "LambdaArn": "arn:aws:lambda:eu-west-1:111111111111:function:pretoken",
                },
                "CustomSMSSender": {
                    "LambdaVersion": "V1_0",
                    "LambdaArn": "arn:aws:lambda:eu-west-1:111111111111:function:sms",
                },
                "KMSKeyID": "arn:aws:kms:eu-west-1:111111111111:key/abc",
            },
        }
    }


def mfa_answer() -> dict[str, Any]:
    return {"SoftwareTokenMfaConfiguration": {"Enabled": True}, "MfaConfiguration": "OPTIONAL"}


def client_answer(client_id: str, name: str, secret: str | None) -> dict[str, Any]:
    client: dict[str, Any] = {
        "UserPoolId": POOL, "ClientName": name, "ClientId": client_id, "RefreshTokenValidity": 30,
        "TokenValidityUnits": {"AccessToken": "hours", "IdToken": "hours", "RefreshToken": "days"},
        "ReadAttributes": ["email", "name"], "WriteAttributes": ["name"],
        "SupportedIdentityProviders": ["COGNITO", "Google", "SignInWithApple"],
        "CallbackURLs": ["https://shop.example.com/callback"], "LogoutURLs": ["https://shop.example.com/"],
        "AllowedOAuthFlows": ["code"], "AllowedOAuthScopes": ["openid", "email", "profile"],
        "AllowedOAuthFlowsUserPoolClient": True, "EnableTokenRevocation": True,
        "PreventUserExistenceErrors": "ENABLED",
    }  # fmt: skip
    if secret:
        client["ClientSecret"] = secret
    return {"UserPoolClient": client}


def domain_answer() -> dict[str, Any]:
    return {
        "DomainDescription": {
            "UserPoolId": POOL, "AWSAccountId": "111111111111", "Domain": "shop-auth",
            "CloudFrontDistribution": "d111111abcdef8.cloudfront.net", "Status": "ACTIVE",
        }
    }  # fmt: skip


def providers_answer() -> dict[str, Any]:
    return {
        "Providers": [
            {"ProviderName": "Google", "ProviderType": "Google"},
            {"ProviderName": "SignInWithApple", "ProviderType": "SignInWithApple"},
        ]
    }


def google_answer() -> dict[str, Any]:
    return {
        "IdentityProvider": {
            "UserPoolId": POOL, "ProviderName": "Google", "ProviderType": "Google",
            "ProviderDetails": {"client_id": "123.apps.googleusercontent.com", "client_secret": GOOGLE_SECRET,
                                "authorize_scopes": "openid email profile"},
            "AttributeMapping": {"email": "email", "username": "sub"},
        }
    }  # fmt: skip


def apple_answer() -> dict[str, Any]:
    return {
        "IdentityProvider": {
            "UserPoolId": POOL, "ProviderName": "SignInWithApple", "ProviderType": "SignInWithApple",
            "ProviderDetails": {"client_id": "com.example.shop", "team_id": "TEAM123456",
                                "key_id": "KEY1234567",
                                "private_key": APPLE_KEY, "authorize_scopes": "email name"},
            "AttributeMapping": {"email": "email"},
        }
    }  # fmt: skip


def identity_pool_answer() -> dict[str, Any]:
    return {
        "IdentityPoolId": IDENTITY, "IdentityPoolName": "shopidp", "AllowUnauthenticatedIdentities": False,
        "AllowClassicFlow": False,
        "CognitoIdentityProviders": [
            {"ProviderName": f"cognito-idp.{REGION}.amazonaws.com/{POOL}", "ClientId": WEB,
             "ServerSideTokenCheck": False},
            {"ProviderName": f"cognito-idp.{REGION}.amazonaws.com/{POOL}", "ClientId": NATIVE,
             "ServerSideTokenCheck": False},
        ],
    }  # fmt: skip


def roles_answer() -> dict[str, Any]:
    return {"IdentityPoolId": IDENTITY, "Roles": {"authenticated": AUTH_ROLE, "unauthenticated": UNAUTH_ROLE}}


CONFIG = {  # spec.resourceConfig as GetBackendAuth shows it (spec keys; secrets as refs)
    "authResources": "IDENTITY_POOL_AND_USER_POOL",
    "service": "COGNITO",
    "identityPoolConfigs": {"identityPoolName": "shopidp", "unauthenticatedLogin": False},
    "userPoolConfigs": {
        "userPoolName": "shopusers", "signInMethod": "EMAIL", "requiredSignUpAttributes": ["EMAIL", "NAME"],
        "mfa": {"mfaMode": "OPTIONAL",
                "settings": {"mfaTypes": ["TOTP"], "smsMessage": "Your code is {####}"}},
        "forgotPassword": {"deliveryMethod": "EMAIL",
                           "emailSettings": {"emailMessage": "Reset: {####}", "emailSubject": "Reset"}},
        "oAuth": {
            "domainPrefix": "shop-auth", "oAuthGrantType": "CODE", "oAuthScopes": ["OPENID", "EMAIL"],
            "redirectSignInURIs": ["https://shop.example.com/callback"],
            "redirectSignOutURIs": ["https://shop.example.com/"],
            "socialProviderSettings": {
                "google": {"clientId": "123.apps.googleusercontent.com",
                           "clientSecretRef": {"name": "shopauth-google", "key": "clientSecret"}},
            },
        },
    },
}  # fmt: skip


def stub_reads(stubber_idp: Stubber, stubber_identity: Stubber) -> None:
    """Every read of :meth:`Cognito.view`, in order, with the parameters botocore must send."""
    stubber_idp.add_response("describe_user_pool", user_pool_answer(), {"UserPoolId": POOL})
    stubber_idp.add_response("get_user_pool_mfa_config", mfa_answer(), {"UserPoolId": POOL})
    stubber_idp.add_response(
        "describe_user_pool_client", client_answer(WEB, "shopauth_app_clientWeb", None),
        {"UserPoolId": POOL, "ClientId": WEB},
    )  # fmt: skip
    stubber_idp.add_response(
        "describe_user_pool_client", client_answer(NATIVE, "shopauth_app_client", NATIVE_SECRET),
        {"UserPoolId": POOL, "ClientId": NATIVE},
    )  # fmt: skip
    stubber_identity.add_response(
        "describe_identity_pool", identity_pool_answer(), {"IdentityPoolId": IDENTITY}
    )
    stubber_identity.add_response("get_identity_pool_roles", roles_answer(), {"IdentityPoolId": IDENTITY})
    stubber_idp.add_response("describe_user_pool_domain", domain_answer(), {"Domain": "shop-auth"})
    stubber_idp.add_response(
        "list_identity_providers", providers_answer(), {"UserPoolId": POOL, "MaxResults": 60}
    )
    stubber_idp.add_response(
        "describe_identity_provider", google_answer(), {"UserPoolId": POOL, "ProviderName": "Google"}
    )
    stubber_idp.add_response(
        "describe_identity_provider", apple_answer(), {"UserPoolId": POOL, "ProviderName": "SignInWithApple"}
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "BACKENDAUTH_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def read_view(role: Role | None = ROLE) -> AuthView:
    clients = ClientFactory("http://127.0.0.1:9")
    idp = clients.reading(REGION, role, service="cognito-idp")
    identity = clients.reading(REGION, role, service="cognito-identity")
    with Stubber(idp) as s_idp, Stubber(identity) as s_identity:
        stub_reads(s_idp, s_identity)
        view = Cognito(clients, REGION, role, "111111111111").view(PoolIds(POOL, WEB, NATIVE, IDENTITY))
        s_idp.assert_no_pending_responses()
        s_identity.assert_no_pending_responses()
    assert not isinstance(view, Failure), view
    return view


@pytest.fixture(scope="module")
def view() -> Iterator[AuthView]:
    """Read once for the module (a botocore client costs a second or two to make)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("AWS_", "BACKENDAUTH_")):
                patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield read_view()


def user_pool_only(view: AuthView) -> AuthView:
    pools = view.pools
    return AuthView(Pools(pools.region, pools.user_pool, pools.web_client, pools.native_client, None),
                    view.domains, view.providers, view.account)  # fmt: skip


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


# ---- the reads ------------------------------------------------------------------------------------------


def test_the_reads_keep_what_the_export_needs_and_drop_every_secret(view: AuthView) -> None:
    pools = view.pools
    assert pools.user_pool.id == POOL and pools.user_pool.totp_enabled is True
    assert (
        pools.user_pool.password_policy is not None and pools.user_pool.password_policy.minimum_length == 12
    )
    assert pools.native_client is not None and pools.native_client.has_secret
    assert pools.web_client is not None and not pools.web_client.has_secret
    assert pools.identity_pool is not None and pools.identity_pool.auth_role_arn == AUTH_ROLE
    assert [d.domain for d in view.domains] == ["shop-auth"]
    google, apple = view.providers
    assert google.details == {
        "client_id": "123.apps.googleusercontent.com",
        "authorize_scopes": "openid email profile",
    }
    assert google.secret_keys == ("client_secret",) and apple.secret_keys == ("private_key",)
    assert apple.details["team_id"] == "TEAM123456" and "private_key" not in apple.details
    text = repr(view)
    assert not any(secret in text for secret in SECRETS)


def test_a_user_pool_without_mfa_is_read_without_asking_for_its_mfa_config(aws_env: None) -> None:
    answer = user_pool_answer()
    answer["UserPool"]["MfaConfiguration"] = "OFF"
    clients = ClientFactory("http://127.0.0.1:9")
    idp = clients.reading(REGION, None, service="cognito-idp")
    with Stubber(idp) as stub:
        stub.add_response("describe_user_pool", answer, {"UserPoolId": POOL})
        pool = Cognito(clients, REGION).user_pool(POOL)
        stub.assert_no_pending_responses()
    assert not isinstance(pool, Failure) and pool.mfa_configuration == "OFF" and not pool.totp_enabled


@pytest.mark.parametrize(
    ("role", "who"),
    [(ROLE, f"role {ROLE.arn}"), (None, "the operator's own credentials")],
)
def test_access_denied_names_the_action_and_the_role(aws_env: None, role: Role | None, who: str) -> None:
    clients = ClientFactory("http://127.0.0.1:9")
    idp = clients.reading(REGION, role, service="cognito-idp")
    with Stubber(idp) as stub:
        stub.add_client_error(
            "describe_user_pool", "NotAuthorizedException" if role is None else "AccessDeniedException",
            "User is not authorized to perform: cognito-idp:DescribeUserPool", http_status_code=403,
        )  # fmt: skip
        failure = Cognito(clients, REGION, role).pools(PoolIds(POOL, WEB))
    assert isinstance(failure, Failure) and failure.reason == "AccessDenied"
    assert failure.message.startswith(f"cognito-idp:DescribeUserPool refused for {who}: ")


def test_a_failure_on_the_identity_pool_names_cognito_identity(aws_env: None) -> None:
    clients = ClientFactory("http://127.0.0.1:9")
    identity = clients.reading(REGION, ROLE, service="cognito-identity")
    with Stubber(identity) as stub:
        stub.add_client_error("describe_identity_pool", "ResourceNotFoundException", "no such pool", 400)
        failure = Cognito(clients, REGION, ROLE).identity_pool(IDENTITY)
    assert isinstance(failure, Failure)
    assert failure.message.startswith(f"cognito-identity:DescribeIdentityPool failed with role {ROLE.arn}")


def test_cognito_endpoints_follow_botocores_own_overrides_else_the_one_endpoint(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = ClientFactory("http://127.0.0.1:4566")
    assert clients.reading(REGION, service="cognito-idp").meta.endpoint_url == "http://127.0.0.1:4566"
    assert clients.reading(REGION, service="cognito-identity").meta.endpoint_url == "http://127.0.0.1:4566"
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "http://127.0.0.1:5001")
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY", "http://127.0.0.1:5002")
    fresh = ClientFactory("http://127.0.0.1:4566")
    assert fresh.reading(REGION, service="cognito-idp").meta.endpoint_url == "http://127.0.0.1:5001"
    assert fresh.reading(REGION, service="cognito-identity").meta.endpoint_url == "http://127.0.0.1:5002"
    assert fresh.reading(REGION).meta.endpoint_url == "http://127.0.0.1:4566"  # AmplifyBackend


# ---- the mapping --------------------------------------------------------------------------------------


def test_every_resource_config_field_has_a_row_in_the_mapping() -> None:
    assert handoff_mapping.unnamed_fields() == []
    assert set(handoff_mapping.BY_PATH) == set(handoff_mapping.leaf_paths())


def test_the_walk_finds_a_field_the_table_does_not_name(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {
        k: v for k, v in handoff_mapping.BY_PATH.items() if not k.endswith("passwordPolicy.minimumLength")
    }
    monkeypatch.setattr(handoff_mapping, "BY_PATH", rows)
    assert handoff_mapping.unnamed_fields() == ["resourceConfig.userPoolConfigs.passwordPolicy.minimumLength"]


def test_every_row_that_carries_nothing_says_why() -> None:
    for row in handoff_mapping.ROWS:
        for target in (row.crossplane, row.ack, row.gen2):
            if isinstance(target, handoff_mapping.NotCarried):
                assert len(target.reason) > 20, row.path
            else:
                assert target.paths, row.path


def test_the_committed_mapping_page_is_the_generators_output() -> None:
    page = REPO / "docs" / "reference" / "handoff-mapping.md"
    assert page.read_text() == handoff_mapping.markdown(), (
        "regenerate: python -m backendauth_operator.commands.handoff_mapping"
        " > docs/reference/handoff-mapping.md"
    )


def test_not_carried_lines_name_the_fields_set_and_the_reason() -> None:
    lines = handoff.not_carried(CONFIG, "ack")
    joined = "\n".join(lines)
    assert (
        "resourceConfig.userPoolConfigs.oAuth.redirectSignInURIs: ACK's Cognito controller has no" in joined
    )
    assert "identityPoolConfigs.identityPoolName: ACK has no identity pool controller" in joined
    assert "forgotPassword.emailSettings.emailMessage: Cognito has no field" in joined
    assert "passwordPolicy" not in joined  # not set in CONFIG
    xp = "\n".join(handoff.not_carried(CONFIG, "crossplane"))
    assert "google.clientSecretRef: a secret is never printed" in xp and "oAuthScopes" not in xp


# ---- Crossplane --------------------------------------------------------------------------------------


def test_crossplane_default_observes_every_resource_by_its_external_name(view: AuthView) -> None:
    text = handoff.crossplane(view, SOURCE, CONFIG)
    docs = docs_of(text)
    kinds = by_kind(docs)
    assert [(d["kind"], d["metadata"]["annotations"]["crossplane.io/external-name"]) for d in docs] == [
        ("UserPool", POOL),
        ("UserPoolClient", WEB),
        ("UserPoolClient", NATIVE),
        ("UserPoolDomain", "shop-auth"),
        ("IdentityProvider", f"{POOL}:Google"),
        ("IdentityProvider", f"{POOL}:SignInWithApple"),
        ("Pool", IDENTITY),
        ("PoolRolesAttachment", IDENTITY),
    ]
    assert kinds["UserPool"][0]["apiVersion"] == "cognitoidp.aws.upbound.io/v1beta2"
    assert kinds["Pool"][0]["apiVersion"] == "cognitoidentity.aws.upbound.io/v1beta1"
    for doc in docs:
        assert doc["spec"]["managementPolicies"] == ["Observe"] and doc["spec"]["deletionPolicy"] == "Orphan"
        assert doc["spec"]["forProvider"]["region"] == REGION
        assert doc["metadata"]["name"].startswith("shop-shop-auth-")
    assert kinds["UserPoolClient"][0]["spec"]["forProvider"] == {"region": REGION, "userPoolId": POOL}
    assert kinds["PoolRolesAttachment"][0]["spec"]["forProvider"] == {
        "region": REGION,
        "identityPoolId": IDENTITY,
    }
    native = kinds["UserPoolClient"][1]
    assert native["spec"]["writeConnectionSecretToRef"] == {
        "name": "shop-shop-auth-native-client",
        "namespace": "crossplane-system",
    }
    assert "writeConnectionSecretToRef" not in kinds["UserPoolClient"][0]["spec"]
    assert "key attribute.client_secret" in text and "Nothing to fill in" in text
    assert "# not carried: resourceConfig.userPoolConfigs.forgotPassword.emailSettings.emailMessage" in text


def test_crossplane_manage_carries_the_whole_configuration(view: AuthView) -> None:
    options = CrossplaneOptions(manage=True, secret_namespace="auth-secrets", provider_config="aws-{account}")
    text = handoff.crossplane(view, SOURCE, CONFIG, options)
    kinds = by_kind(docs_of(text))
    pool = kinds["UserPool"][0]["spec"]
    assert pool["managementPolicies"] == ["Observe", "Update"] and pool["deletionPolicy"] == "Orphan"
    assert pool["providerConfigRef"] == {"name": "aws-111111111111"}
    fp = pool["forProvider"]
    assert fp["name"] == "shopusers" and fp["mfaConfiguration"] == "OPTIONAL"
    assert fp["softwareTokenMfaConfiguration"] == {"enabled": True}
    assert fp["passwordPolicy"] == {
        "minimumLength": 12, "requireLowercase": False, "requireNumbers": True, "requireSymbols": True,
        "requireUppercase": False, "temporaryPasswordValidityDays": 7,
    }  # fmt: skip
    assert fp["usernameAttributes"] == ["email"] and fp["autoVerifiedAttributes"] == ["email"]
    assert [a["name"] for a in fp["schema"]] == ["email", "name"]  # the required ones (sub: always)
    assert fp["verificationMessageTemplate"]["emailMessage"] == "Your code is {####}"
    assert fp["accountRecoverySetting"] == {"recoveryMechanism": [{"name": "verified_email", "priority": 1}]}
    assert fp["smsConfiguration"]["snsCallerArn"].endswith("shopauth_sns-role")
    assert fp["lambdaConfig"]["preSignUp"].endswith(":presignup") and fp["lambdaConfig"]["kmsKeyId"]
    assert fp["lambdaConfig"]["customSmsSender"]["lambdaArn"].endswith(":sms")
    web = kinds["UserPoolClient"][0]["spec"]["forProvider"]
    assert web["callbackUrls"] == ["https://shop.example.com/callback"] and web["logoutUrls"]
    assert web["allowedOauthFlows"] == ["code"] and web["allowedOauthScopes"] == [
        "openid",
        "email",
        "profile",
    ]
    assert web["supportedIdentityProviders"] == ["COGNITO", "Google", "SignInWithApple"]
    assert web["tokenValidityUnits"] == [{"accessToken": "hours", "idToken": "hours", "refreshToken": "days"}]
    assert "generateSecret" not in kinds["UserPoolClient"][1]["spec"]["forProvider"]
    assert kinds["UserPoolClient"][1]["spec"]["writeConnectionSecretToRef"]["namespace"] == "auth-secrets"
    assert kinds["UserPoolDomain"][0]["spec"]["forProvider"]["domain"] == "shop-auth"
    assert kinds["Pool"][0]["spec"]["forProvider"]["identityPoolName"] == "shopidp"
    assert kinds["PoolRolesAttachment"][0]["spec"]["forProvider"]["roles"] == {
        "authenticated": AUTH_ROLE,
        "unauthenticated": UNAUTH_ROLE,
    }
    for idp in kinds["IdentityProvider"]:
        assert idp["spec"]["managementPolicies"] == ["Observe"]
        assert "providerDetails" not in idp["spec"]["forProvider"]
    assert text.count("It stays Observe even with --manage: the provider takes no Secret reference") == 2


def test_every_crossplane_path_of_the_mapping_is_in_the_managed_output(view: AuthView) -> None:
    """The table and the renderer agree: each path the table names is set by --manage."""
    docs = by_kind(docs_of(handoff.crossplane(view, SOURCE, CONFIG, CrossplaneOptions(manage=True))))
    for row in handoff_mapping.ROWS:
        if not isinstance(row.crossplane, handoff_mapping.Carried):
            continue
        for path in row.crossplane.paths:
            kind, _, dotted = path.partition(" ")
            assert kind in docs, (row.path, kind)
            if not dotted or kind == "IdentityProvider":  # IdentityProviders stay Observe
                continue
            node: Any = docs[kind][0]
            for part in dotted.split("."):
                node = node[0] if isinstance(node, list) else node
                assert part in node, (row.path, path)
                node = node[part]


# ---- ACK ------------------------------------------------------------------------------------------------


def test_ack_adopts_the_user_pool_by_id_retains_it_and_names_what_holds_the_rest(view: AuthView) -> None:
    text = handoff.ack(view, SOURCE, CONFIG, "shop")
    (doc,) = docs_of(text)
    assert (
        doc["apiVersion"] == "cognitoidentityprovider.services.k8s.aws/v1alpha1" and doc["kind"] == "UserPool"
    )
    annotations = doc["metadata"]["annotations"]
    assert annotations["services.k8s.aws/adoption-policy"] == "adopt"
    assert yaml.safe_load(annotations["services.k8s.aws/adoption-fields"]) == {"id": POOL}
    assert annotations["services.k8s.aws/deletion-policy"] == "retain"
    assert doc["metadata"]["namespace"] == "shop"
    spec = doc["spec"]
    assert spec["name"] == "shopusers" and spec["policies"]["passwordPolicy"]["minimumLength"] == 12
    assert spec["smsConfiguration"]["snsCallerARN"].endswith("shopauth_sns-role")
    for line in (
        f"# - the web app client {WEB}: UserPoolClient shop-shop-auth-web-client",
        "UserPoolClient shop-shop-auth-native-client",
        "# - the domain shop-auth:",
        "IdentityProvider shop-shop-auth-idp-google (Observe)",
        f"# - the identity pool {IDENTITY} and its roles:",
        "# - TOTP (software token MFA, on): ACK's UserPool has no such setting: UserPool shop-shop-auth-user",
    ):
        assert line in text, line


# ---- Gen 2 -----------------------------------------------------------------------------------------


def test_gen2_references_the_pools_by_id(view: AuthView) -> None:
    text = handoff.gen2(view, SOURCE)
    assert "import { referenceAuth } from '@aws-amplify/backend';" in text
    assert "export const auth = referenceAuth({\n" in text
    for line in (
        f'  userPoolId: "{POOL}",',
        f'  userPoolClientId: "{WEB}",',
        f'  identityPoolId: "{IDENTITY}",',
        f'  authRoleArn: "{AUTH_ROLE}",',
        f'  unauthRoleArn: "{UNAUTH_ROLE}",',
    ):
        assert line in text
    assert all(line.startswith("//") for line in text.split("import")[0].splitlines())


def test_gen2_of_a_user_pool_alone_says_why_instead_of_printing_code(view: AuthView) -> None:
    with pytest.raises(Gen2Unsupported) as raised:
        handoff.gen2(user_pool_only(view), SOURCE)
    message = str(raised.value)
    assert "needs an identity pool" in message and "amplify-backend#2252" in message


def test_gen2_renderer_is_a_pure_function_of_ids() -> None:
    text = handoff.gen2_resource_ts(
        user_pool_id="us-east-1_x", user_pool_client_id="c", identity_pool_id="us-east-1:i",
        auth_role_arn="arn:aws:iam::1:role/a", unauth_role_arn="arn:aws:iam::1:role/u",
    )  # fmt: skip
    assert text.startswith("import { referenceAuth }") and '"us-east-1:i"' in text


# ---- secrets, everywhere ---------------------------------------------------------------------------


def test_no_secret_in_any_output(view: AuthView) -> None:
    outputs = [
        handoff.crossplane(view, SOURCE, CONFIG),
        handoff.crossplane(view, SOURCE, CONFIG, CrossplaneOptions(manage=True)),
        handoff.ack(view, SOURCE, CONFIG),
        handoff.gen2(view, SOURCE),
    ]
    for text in outputs:
        assert not any(secret in text for secret in SECRETS)


# ---- the renderers' output against the providers' CRDs (schema, structurally) -------------------------


def upstream_crds() -> Path:
    for folder in (
        os.environ.get("BACKENDAUTH_UPSTREAM_CRDS", ""),
        *(str(up / "shared" / "upstream-crds") for up in REPO.parents[:2]),
    ):
        if folder and Path(folder, "cognitoidp.aws.upbound.io_userpools.yaml").exists():
            return Path(folder)
    where = "the providers' CRDs ($BACKENDAUTH_UPSTREAM_CRDS, or shared/upstream-crds beside the checkout)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{where} are missing")
    pytest.skip(f"{where} are not here")


@functools.cache
def _crd(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return loaded


def schema_of(api_version: str, kind: str) -> dict[str, Any]:
    group, version = api_version.split("/")
    for path in sorted(upstream_crds().glob(f"{group}_*.yaml")):
        crd = _crd(path)
        if crd["spec"]["names"]["kind"] == kind:
            for served in crd["spec"]["versions"]:
                if served["name"] == version:
                    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
                    return schema
    raise AssertionError(f"no CRD for {api_version} {kind}")


def check(value: Any, schema: dict[str, Any], at: str) -> list[str]:
    """Structural schema check: unknown fields, types, enums, required fields."""
    kind = schema.get("type")
    problems = []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{at}: not an object"]
        properties = schema.get("properties")
        for key in schema.get("required") or []:
            if key not in value:
                problems.append(f"{at}.{key}: required")
        for key, sub in value.items():
            if properties is not None:
                if key not in properties:
                    problems.append(f"{at}.{key}: unknown field")
                else:
                    problems += check(sub, properties[key], f"{at}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += check(sub, schema["additionalProperties"], f"{at}.{key}")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{at}: not a list"]
        for i, item in enumerate(value):
            problems += check(item, schema.get("items") or {}, f"{at}[{i}]")
    elif kind == "string" and not isinstance(value, str):
        problems.append(f"{at}: not a string")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{at}: not a boolean")
    elif kind in ("number", "integer") and (isinstance(value, bool) or not isinstance(value, int | float)):
        problems.append(f"{at}: not a number")
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{at}: {value!r} not one of {schema['enum']}")
    return problems


@pytest.mark.parametrize("manage", [False, True])
def test_crossplane_output_fits_the_providers_crds(view: AuthView, manage: bool) -> None:
    for doc in docs_of(handoff.crossplane(view, SOURCE, CONFIG, CrossplaneOptions(manage=manage))):
        schema = schema_of(doc["apiVersion"], doc["kind"])
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
        assert check(body, schema, doc["kind"]) == []


def test_ack_output_fits_ack_crd(view: AuthView) -> None:
    (doc,) = docs_of(handoff.ack(view, SOURCE, CONFIG))
    schema = schema_of(doc["apiVersion"], doc["kind"])
    assert check({"spec": doc["spec"]}, schema, "UserPool") == []


def test_every_mapped_path_exists_in_the_crds() -> None:
    kinds = {
        "UserPool": ("cognitoidp.aws.upbound.io/v1beta2",),
        "UserPoolClient": ("cognitoidp.aws.upbound.io/v1beta1",),
        "UserPoolDomain": ("cognitoidp.aws.upbound.io/v1beta1",),
        "IdentityProvider": ("cognitoidp.aws.upbound.io/v1beta1",),
        "Pool": ("cognitoidentity.aws.upbound.io/v1beta1",),
        "PoolRolesAttachment": ("cognitoidentity.aws.upbound.io/v1beta1",),
    }
    for row in handoff_mapping.ROWS:
        for column, api in (
            ("crossplane", None),
            ("ack", "cognitoidentityprovider.services.k8s.aws/v1alpha1"),
        ):
            target = getattr(row, column)
            if not isinstance(target, handoff_mapping.Carried):
                continue
            for path in target.paths:
                kind, _, dotted = path.partition(" ")
                if not dotted:
                    continue
                node = schema_of(api or kinds[kind][0], kind)
                for part in dotted.split("."):
                    node = node.get("items", node) if node.get("type") == "array" else node
                    assert part in (node.get("properties") or {}), (row.path, column, path)
                    node = node["properties"][part]


# ---- the command line: bad flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--to", "crossplane"], "--app and --env are required (or --from-cluster)"),
        (["--to", "ack", "--manage", "--app", "a", "--env", "e"], "--manage applies to --to crossplane only"),
        (
            ["--to", "gen2", "--secret-namespace", "x", "--app", "a", "--env", "e"],
            "--secret-namespace applies",
        ),
        (["--to", "crossplane", "--from-cluster", "--app", "a"], "--app cannot be used with --from-cluster"),
        (["--to", "crossplane", "--from-namespace", "ns", "--resource", "r"], "--resource cannot be used"),
        (["--from-cluster"], "--from-cluster exports to crossplane, ack or gen2"),
        (["--to", "ack", "--from-namespace", ""], "--from-namespace needs a namespace name"),
    ],
)
def test_bad_flag_combinations_say_which_flag_in_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(["export", *argv]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_an_unknown_target_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.main(["export", "--to", "terraform", "--app", "a", "--env", "e"])
    assert raised.value.code == 2 and "--to: invalid choice: 'terraform'" in capsys.readouterr().err


def test_the_view_is_unchanged_by_rendering(view: AuthView) -> None:
    before = copy.deepcopy(view)
    handoff.crossplane(view, SOURCE, CONFIG, CrossplaneOptions(manage=True))
    handoff.ack(view, SOURCE, CONFIG)
    assert view == before


def test_a_client_error_is_classified_not_raised(aws_env: None) -> None:
    clients = ClientFactory("http://127.0.0.1:9")
    idp = clients.reading(REGION, None, service="cognito-idp")
    with Stubber(idp) as stub:
        stub.add_client_error("describe_user_pool_client", "ResourceNotFoundException", "gone", 400)
        failure = Cognito(clients, REGION).app_client(POOL, WEB)
    assert isinstance(failure, Failure) and "DescribeUserPoolClient" in failure.message
    assert not isinstance(failure, botocore.exceptions.ClientError)


def test_the_domain_prefix_of_the_config_and_a_custom_domain_are_both_exported(aws_env: None) -> None:
    """A pool whose answer names no prefix domain is still looked up by the spec's domainPrefix;
    a custom domain is a UserPoolDomain of its own, with its certificate."""
    answer = user_pool_answer()
    del answer["UserPool"]["Domain"]
    answer["UserPool"]["CustomDomain"] = "auth.example.com"
    answer["UserPool"]["MfaConfiguration"] = "OFF"
    custom = {
        "DomainDescription": {
            "UserPoolId": POOL, "Domain": "auth.example.com", "Status": "ACTIVE",
            "CustomDomainConfig": {"CertificateArn": "arn:aws:acm:us-east-1:111111111111:certificate/abc"},
        }
    }  # fmt: skip
    clients = ClientFactory("http://127.0.0.1:9")
    idp = clients.reading(REGION, None, service="cognito-idp")
    with Stubber(idp) as stub:
        stub.add_response("describe_user_pool", answer, {"UserPoolId": POOL})
        stub.add_response("describe_user_pool_domain", domain_answer(), {"Domain": "shop-auth"})
        stub.add_response("describe_user_pool_domain", custom, {"Domain": "auth.example.com"})
        stub.add_response(
            "list_identity_providers", {"Providers": []}, {"UserPoolId": POOL, "MaxResults": 60}
        )
        view = Cognito(clients, REGION).view(PoolIds(POOL), domain_prefix="shop-auth")
        stub.assert_no_pending_responses()
    assert not isinstance(view, Failure)
    docs = [d for d in docs_of(handoff.crossplane(view, SOURCE, None, CrossplaneOptions(manage=True)))]
    domains = {d["metadata"]["name"]: d["spec"]["forProvider"] for d in docs if d["kind"] == "UserPoolDomain"}
    assert domains["shop-shop-auth-domain"]["domain"] == "shop-auth"
    assert domains["shop-shop-auth-custom-domain"]["certificateArn"].startswith("arn:aws:acm:us-east-1:")
    assert "UserPoolClient" not in {d["kind"] for d in docs} and "Pool" not in {d["kind"] for d in docs}


def test_the_schema_check_catches_an_unknown_field_and_a_wrong_type() -> None:
    schema = schema_of("cognitoidp.aws.upbound.io/v1beta2", "UserPool")
    body = {
        "spec": {"forProvider": {"region": "eu-west-1", "passwordPolicy": [{"minimumLength": 8}], "bogus": 1}}
    }
    assert check(body, schema, "UserPool") == [
        "UserPool.spec.forProvider.passwordPolicy: not an object",
        "UserPool.spec.forProvider.bogus: unknown field",
    ]


def test_cognito_reads_are_paced_with_the_account_and_region(aws_env: None) -> None:
    from backendauth_operator.aws import clients

    keys: list[clients.PaceKey] = []

    class Recording(clients.Pacers):
        def of(self, key: clients.PaceKey) -> clients.Pacer:
            keys.append(key)
            return super().of(key)

    factory = ClientFactory("http://127.0.0.1:9", pacers=Recording())
    identity = factory.reading(REGION, ROLE, service="cognito-identity")
    with Stubber(identity) as stub:
        stub.add_response("describe_identity_pool", identity_pool_answer(), {"IdentityPoolId": IDENTITY})
        stub.add_response("get_identity_pool_roles", roles_answer(), {"IdentityPoolId": IDENTITY})
        found = Cognito(factory, REGION, ROLE, "111111111111").identity_pool(IDENTITY)
    assert not isinstance(found, Failure) and found.unauth_role_arn == UNAUTH_ROLE
    assert keys == [clients.pace_key("111111111111", REGION)] * 2


def test_an_output_dir_that_cannot_be_written_is_named_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, view: AuthView, tmp_path: Path
) -> None:
    from backendauth_operator.commands import export

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    found = [export.Found(SOURCE, REGION)]
    monkeypatch.setattr(export, "from_app", lambda clients, selection, region: (found, []))
    monkeypatch.setattr(export, "read_view", lambda clients, item: (view, CONFIG))
    monkeypatch.setenv("AWS_REGION", REGION)
    argv = ["export", "--to", "ack", "--app", "a", "--env", "e", "--output-dir", str(blocker / "out")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--output-dir {blocker / 'out'}: " in err
    assert cli.main([*argv[:-1], str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "shop" / "shop-auth.yaml").read_text().startswith("---\n# Hand-off to ACK")


def test_the_listed_iam_actions_are_exactly_the_calls_the_reads_make(monkeypatch: pytest.MonkeyPatch) -> None:
    from backendauth_operator.aws import cognito
    from backendauth_operator.commands import export

    made: set[str] = set()
    real = ClientFactory.call

    def recording(self: ClientFactory, client: Any, method: str, **kwargs: Any) -> dict[str, Any]:
        prefix = client.meta.service_model.signing_name
        made.add(f"{prefix}:{client.meta.method_to_api_mapping[method]}")
        return real(self, client, method, **kwargs)

    monkeypatch.setattr(ClientFactory, "call", recording)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        read_view()
    assert made == set(cognito.ACTIONS)
    assert set(export.HANDOFF_ACTIONS) == {
        "amplifybackend:GetBackend",
        "amplifybackend:GetBackendAuth",
        *made,
    }


def test_long_names_are_shortened_apart() -> None:
    long = "a-namespace-with-a-rather-long-name"
    first = Source("app", "env", "res", long, "backendauth-number-one").base
    second = Source("app", "env", "res", long, "backendauth-number-two").base
    assert first != second and len(first) <= 40 and len(second) <= 40
    assert first.startswith("a-namespace-with-a-rather-long-na")
    assert Source("app", "staging", "shopauth").base == "shopauth-staging"
