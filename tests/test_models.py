"""Validation of BackendAuth specs: each rule with a valid and an invalid case.

Every case is checked twice: by the operator's own validation (``parse_spec``) and by the CRD
(JSON schema + CEL, as the API server would), so that the two refuse the same specs.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from backendauth_operator.aws.service_model import service_model
from backendauth_operator.core.models import (
    BackendAuthSpec,
    InvalidSpecError,
    ResourceConfig,
    create_only,
    immutable_keys,
    parse_spec,
    spec_path,
)
from crd_check import crd_problems
from specs import FACEBOOK_SECRET, full_spec, minimal_spec

DELETE = object()


def mutated(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with the dotted ``path`` set to ``value`` (or removed with DELETE)."""
    spec = copy.deepcopy(spec)
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return spec


UPC = "resourceConfig.userPoolConfigs"
OAUTH = f"{UPC}.oAuth"
SOCIAL = f"{OAUTH}.socialProviderSettings"

# (id, path to change, value, field path expected in the message, words expected in the message)
INVALID = [
    (
        "identity-pool-needed",
        "resourceConfig.identityPoolConfigs",
        DELETE,
        "spec.resourceConfig.identityPoolConfigs",
        "required when authResources is IDENTITY_POOL_AND_USER_POOL",
    ),
    (
        "mfa-types-needed-on",
        f"{UPC}.mfa",
        {"mfaMode": "ON"},
        f"spec.{UPC}.mfa.settings.mfaTypes",
        "required when mfaMode is ON or OPTIONAL",
    ),
    (
        "mfa-types-needed-optional",
        f"{UPC}.mfa.settings.mfaTypes",
        [],
        f"spec.{UPC}.mfa.settings.mfaTypes",
        "required when mfaMode",
    ),
    (
        "verification-sms-needs-settings",
        f"{UPC}.verificationMessage",
        {"deliveryMethod": "SMS"},
        f"spec.{UPC}.verificationMessage.smsSettings",
        "smsSettings is required when deliveryMethod is SMS",
    ),
    (
        "verification-email-needs-settings",
        f"{UPC}.verificationMessage",
        {"deliveryMethod": "EMAIL"},
        f"spec.{UPC}.verificationMessage.emailSettings",
        "emailSettings is required",
    ),
    (
        "forgot-sms-needs-settings",
        f"{UPC}.forgotPassword",
        {"deliveryMethod": "SMS"},
        f"spec.{UPC}.forgotPassword.smsSettings",
        "smsSettings is required",
    ),
    (
        "social-needs-client-id",
        f"{SOCIAL}.facebook",
        {"clientSecret": "x"},
        f"spec.{SOCIAL}.facebook.clientId",
        "required",
    ),
    (
        "social-secret-and-ref",
        f"{SOCIAL}.facebook.clientSecretRef",
        {"name": "fb", "key": "s"},
        f"spec.{SOCIAL}.facebook.clientSecretRef",
        "exactly one of clientSecret and clientSecretRef",
    ),
    (
        "social-neither-secret-nor-ref",
        f"{SOCIAL}.google.clientSecretRef",
        DELETE,
        f"spec.{SOCIAL}.google.clientSecretRef",
        "exactly one of clientSecret and clientSecretRef",
    ),
    (
        "apple-neither-key-nor-ref",
        f"{SOCIAL}.signInWithApple.privateKeyRef",
        DELETE,
        f"spec.{SOCIAL}.signInWithApple.privateKeyRef",
        "exactly one of privateKey and privateKeyRef",
    ),
    (
        "apple-needs-team-id",
        f"{SOCIAL}.signInWithApple.teamId",
        DELETE,
        f"spec.{SOCIAL}.signInWithApple.teamId",
        "required",
    ),
    (
        "sms-verification-needs-code",
        f"{UPC}.verificationMessage.smsSettings.smsMessage",
        "Your code here",
        f"spec.{UPC}.verificationMessage.smsSettings.smsMessage",
        "{####}",
    ),
    (
        "mfa-sms-needs-code",
        f"{UPC}.mfa.settings.smsMessage",
        "Your MFA code",
        f"spec.{UPC}.mfa.settings.smsMessage",
        "{####}",
    ),
    (
        "sms-too-short",
        f"{UPC}.mfa.settings.smsMessage",
        "{###}",
        f"spec.{UPC}.mfa.settings.smsMessage",
        "at least 6",
    ),
    (
        "sms-too-long",
        f"{UPC}.mfa.settings.smsMessage",
        "{####}" + "x" * 140,
        f"spec.{UPC}.mfa.settings.smsMessage",
        "at most 140",
    ),
    (
        "email-needs-code",
        f"{UPC}.verificationMessage.emailSettings.emailMessage",
        "Welcome aboard",
        f"spec.{UPC}.verificationMessage.emailSettings.emailMessage",
        "{####}",
    ),
    (
        "email-subject-empty",
        f"{UPC}.verificationMessage.emailSettings.emailSubject",
        "",
        f"spec.{UPC}.verificationMessage.emailSettings.emailSubject",
        "at least 1",
    ),
    (
        "email-subject-too-long",
        f"{UPC}.verificationMessage.emailSettings.emailSubject",
        "s" * 141,
        f"spec.{UPC}.verificationMessage.emailSettings.emailSubject",
        "at most 140",
    ),
    (
        "password-too-short",
        f"{UPC}.passwordPolicy.minimumLength",
        5,
        f"spec.{UPC}.passwordPolicy.minimumLength",
        "greater than or equal to 6",
    ),
    (
        "password-too-long",
        f"{UPC}.passwordPolicy.minimumLength",
        100,
        f"spec.{UPC}.passwordPolicy.minimumLength",
        "less than or equal to 99",
    ),
    (
        "domain-prefix-uppercase",
        f"{OAUTH}.domainPrefix",
        "Shop-Auth",
        f"spec.{OAUTH}.domainPrefix",
        "DNS label",
    ),
    (
        "domain-prefix-trailing-hyphen",
        f"{OAUTH}.domainPrefix",
        "shop-",
        f"spec.{OAUTH}.domainPrefix",
        "DNS label",
    ),
    (
        "user-pool-name-bad-chars",
        f"{UPC}.userPoolName",
        "shop/users",
        f"spec.{UPC}.userPoolName",
        "letters, digits, spaces",
    ),
    ("user-pool-name-too-long", f"{UPC}.userPoolName", "u" * 129, f"spec.{UPC}.userPoolName", "at most 128"),
    ("user-pool-name-empty", f"{UPC}.userPoolName", "", f"spec.{UPC}.userPoolName", "at least 1"),
    (
        "redirect-relative",
        f"{OAUTH}.redirectSignInURIs",
        ["/callback"],
        f"spec.{OAUTH}.redirectSignInURIs[0]",
        "absolute URI",
    ),
    (
        "redirect-plain-http",
        f"{OAUTH}.redirectSignOutURIs",
        ["https://ok.example.com/", "http://shop.example.com/"],
        f"spec.{OAUTH}.redirectSignOutURIs[1]",
        "absolute URI",
    ),
    (
        "redirect-fragment",
        f"{OAUTH}.redirectSignInURIs",
        ["https://shop.example.com/#cb"],
        f"spec.{OAUTH}.redirectSignInURIs[0]",
        "without spaces or a fragment",
    ),
    (
        "secret-ref-name-dots",
        f"{OAUTH}.socialProviderSettings.google.clientSecretRef.name",
        "..",
        f"spec.{OAUTH}.socialProviderSettings.google.clientSecretRef.name",
        "Kubernetes object name",
    ),
    (
        "secret-ref-key-slash",
        f"{OAUTH}.socialProviderSettings.google.clientSecretRef.key",
        "a/b",
        f"spec.{OAUTH}.socialProviderSettings.google.clientSecretRef.key",
        "Secret key",
    ),
    (
        "redirect-space",
        f"{OAUTH}.redirectSignInURIs",
        ["https:// a"],
        f"spec.{OAUTH}.redirectSignInURIs[0]",
        "spaces",
    ),
    (
        "redirect-data",
        f"{OAUTH}.redirectSignInURIs",
        ["data://x"],
        f"spec.{OAUTH}.redirectSignInURIs[0]",
        "app scheme",
    ),
    (
        "identity-pool-name-unicode",
        "resourceConfig.identityPoolConfigs.identityPoolName",
        "ユーザー名",
        "spec.resourceConfig.identityPoolConfigs.identityPoolName",
        "letters, digits, spaces",
    ),
    ("bad-enum", f"{UPC}.signInMethod", "FOO", f"spec.{UPC}.signInMethod", "EMAIL"),
    (
        "bad-enum-in-list",
        f"{UPC}.requiredSignUpAttributes",
        ["EMAIL", "SHOE_SIZE"],
        f"spec.{UPC}.requiredSignUpAttributes[1]",
        "PHONE_NUMBER",
    ),
    ("missing-required", f"{UPC}.signInMethod", DELETE, f"spec.{UPC}.signInMethod", "required"),
    ("unknown-field", f"{UPC}.signinMethod", "EMAIL", f"spec.{UPC}.signinMethod", "unknown field"),
    ("bad-region", "region", "Europe", "spec.region", "AWS region"),
    ("bad-app-id", "appId", "D1-A2", "spec.appId", "lowercase letters and digits"),
]

# (id, path, value): specs that must be accepted, each next to an invalid case above.
VALID = [
    ("user-pool-only-without-identity-pool", "resourceConfig", minimal_spec()["resourceConfig"]),
    ("mfa-off-without-settings", f"{UPC}.mfa", {"mfaMode": "OFF"}),
    (
        "verification-sms-with-settings",
        f"{UPC}.verificationMessage",
        {"deliveryMethod": "SMS", "smsSettings": {"smsMessage": "Code: {####}"}},
    ),
    ("social-secret-inline", f"{SOCIAL}.google", {"clientId": "g", "clientSecret": "s3cr3t"}),
    (
        "apple-key-inline",
        f"{SOCIAL}.signInWithApple",
        {"clientId": "c", "keyId": "k", "teamId": "t", "privateKey": "---key---"},
    ),
    ("sms-exactly-140", f"{UPC}.mfa.settings.smsMessage", "{####}" + "x" * 134),
    ("sms-exactly-6", f"{UPC}.mfa.settings.smsMessage", "{####}x"),
    ("email-subject-140", f"{UPC}.verificationMessage.emailSettings.emailSubject", "s" * 140),
    ("password-6", f"{UPC}.passwordPolicy.minimumLength", 6),
    ("password-99", f"{UPC}.passwordPolicy.minimumLength", 99),
    ("domain-prefix-digits", f"{OAUTH}.domainPrefix", "shop-2-auth"),
    ("user-pool-name-allowed-chars", f"{UPC}.userPoolName", "Shop users+=,.@-_1"),
    ("user-pool-name-128", f"{UPC}.userPoolName", "u" * 128),
    (
        "redirect-localhost-http",
        f"{OAUTH}.redirectSignInURIs",
        ["http://localhost:3000/cb", "http://127.0.0.1/"],
    ),
    ("redirect-app-scheme", f"{OAUTH}.redirectSignInURIs", ["myapp://callback"]),
    ("no-region", "region", DELETE),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "words"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_spec_is_refused_naming_the_field(path: str, value: Any, field: str, words: str) -> None:
    spec = mutated(full_spec(), path, value)
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec)
    assert any(p.startswith(f"{field}:") and words in p for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("path", "value", "field", "words"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_crd_refuses_the_same_invalid_spec(path: str, value: Any, field: str, words: str) -> None:
    if words == "unknown field":
        pytest.skip("the API server prunes unknown fields; kubectl's strict field validation refuses them")
    problems = crd_problems(mutated(full_spec(), path, value))
    leaf = field.rsplit(".", 1)[-1].split("[")[0]
    assert any(leaf in p for p in problems), problems


@pytest.mark.parametrize(("path", "value"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_variant_is_accepted_by_operator_and_crd(path: str, value: Any) -> None:
    spec = mutated(full_spec(), path, value)
    parse_spec(spec)
    assert crd_problems(spec) == []


def test_minimal_and_full_specs_are_valid() -> None:
    for spec in (minimal_spec(), full_spec()):
        parse_spec(spec)
        assert crd_problems(spec) == []


def test_every_problem_is_reported_not_only_the_first() -> None:
    spec = mutated(minimal_spec(region="nowhere"), "resourceConfig.userPoolConfigs.signInMethod", "FOO")
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec)
    fields = sorted(p.split(":")[0] for p in caught.value.problems)
    assert fields == ["spec.region", f"spec.{UPC}.signInMethod"]


def test_messages_never_echo_the_input_value() -> None:
    # A secret pasted into the wrong field must not come back in status or events.
    spec = mutated(full_spec(), f"{SOCIAL}.facebook.clientSecret", 12345)
    spec = mutated(spec, f"{SOCIAL}.facebook.clientId", {"oops": FACEBOOK_SECRET})
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(spec)
    assert FACEBOOK_SECRET not in str(caught.value)
    assert "12345" not in str(caught.value)


IMMUTABLE_PATHS = [
    ("appId", "d9z8y7"),
    ("backendEnvironmentName", "prod"),
    ("resourceName", "otherauth"),
    ("region", "us-east-1"),
    (f"{UPC}.userPoolName", "otherusers"),
    (f"{UPC}.signInMethod", "USERNAME"),
    (f"{UPC}.requiredSignUpAttributes", ["EMAIL"]),
    ("resourceConfig.identityPoolConfigs.identityPoolName", "otheridp"),
]


@pytest.mark.parametrize(("path", "value"), IMMUTABLE_PATHS, ids=[p for p, _ in IMMUTABLE_PATHS])
def test_crd_refuses_changing_an_immutable_field(path: str, value: Any) -> None:
    old = full_spec()
    problems = crd_problems(mutated(old, path, value), old_spec=old)
    assert any(p.startswith(f"spec.{path}") and "immutable" in p for p in problems), problems


def test_crd_allows_changing_a_mutable_field() -> None:
    old = full_spec()
    assert crd_problems(mutated(old, f"{UPC}.passwordPolicy.minimumLength", 14), old_spec=old) == []


def test_crd_refuses_adding_or_removing_region() -> None:
    old = full_spec()
    assert any(
        "region cannot be added or removed" in p for p in crd_problems(mutated(old, "region", DELETE), old)
    )


@pytest.mark.parametrize(
    "uri",
    [
        "MyApp://callback",
        "com.googleusercontent.apps.123:/oauth2redirect",
        "http://localhost?x=1",
        "http://[::1]:3000/",
        "HTTPS://Shop.Example.com/cb",
    ],
)
def test_redirect_uris_cognito_accepts_are_accepted(uri: str) -> None:
    spec = full_spec()
    spec["resourceConfig"]["userPoolConfigs"]["oAuth"]["redirectSignInURIs"] = [uri]
    parse_spec(spec)


def test_identity_pool_names_take_cognitos_characters() -> None:
    spec = full_spec()
    spec["resourceConfig"]["identityPoolConfigs"]["identityPoolName"] = "my-identities@shop.example"
    parse_spec(spec)


# ---- create-only fields: the IMMUTABLE marks inside resourceConfig --------------------------


def _boto_paths(shape: Any, prefix: str = "") -> set[str]:
    """Every member path of a botocore structure shape (``UserPoolConfigs.SignInMethod``)."""
    if shape.type_name == "list":
        return _boto_paths(shape.member, prefix)
    if shape.type_name != "structure":
        return set()
    paths = set()
    for key, member in shape.members.items():
        paths |= {prefix + key} | _boto_paths(member, f"{prefix}{key}.")
    return paths


def test_the_create_only_fields_are_the_immutable_ones_update_backend_auth_does_not_carry() -> None:
    model = service_model()
    create = _boto_paths(model.shape_for("CreateBackendAuthResourceConfig"))
    update = _boto_paths(model.shape_for("UpdateBackendAuthResourceConfig"))
    not_updatable = {spec_path(path.split(".")) for path in create - update}
    assert not_updatable == {
        "resourceConfig.identityPoolConfigs.identityPoolName",
        "resourceConfig.userPoolConfigs.requiredSignUpAttributes",
        "resourceConfig.userPoolConfigs.signInMethod",
        "resourceConfig.userPoolConfigs.userPoolName",
    }
    assert {path.rsplit(".", 1)[-1] for path in not_updatable} == immutable_keys(ResourceConfig)
    assert all(create_only(path) for path in not_updatable)
    assert not create_only("resourceConfig.userPoolConfigs.passwordPolicy.minimumLength")


def test_every_field_marked_immutable_is_found() -> None:
    assert immutable_keys(BackendAuthSpec) == {
        "appId", "backendEnvironmentName", "resourceName", "region",  # region: marked inside "| None"
        "identityPoolName", "requiredSignUpAttributes", "signInMethod", "userPoolName",
    }  # fmt: skip


# ---- outputs: one description of the ids, from amplify-meta to status --------------------------


def test_every_output_field_names_its_amplify_meta_key() -> None:
    from backendauth_operator.core.models import AMPLIFY_META_OUTPUTS, AuthOutputs

    assert AMPLIFY_META_OUTPUTS == {
        "UserPoolId": "userPoolId",
        "AppClientIDWeb": "appClientIdWeb",
        "AppClientID": "appClientId",
        "IdentityPoolId": "identityPoolId",
    }
    assert set(AMPLIFY_META_OUTPUTS.values()) == {f.alias for f in AuthOutputs.model_fields.values()}


def test_amplify_meta_outputs_become_the_status_outputs() -> None:
    from backendauth_operator.aws.amplify import auth_outputs
    from backendauth_operator.core.models import AuthOutputs

    meta = {
        "auth": {
            "shopauth": {
                "output": {
                    "UserPoolId": "eu-west-1_abc", "AppClientIDWeb": "web1", "AppClientID": "native1",
                    "IdentityPoolId": "eu-west-1:1234", "UserPoolArn": "arn:aws:cognito-idp:...",
                }
            }
        }
    }  # fmt: skip
    outputs = auth_outputs(json.dumps(meta), "shopauth")
    assert outputs == {
        "userPoolId": "eu-west-1_abc", "appClientIdWeb": "web1", "appClientId": "native1",
        "identityPoolId": "eu-west-1:1234",
    }  # fmt: skip
    assert AuthOutputs.model_validate(outputs).model_dump(by_alias=True) == outputs
    assert auth_outputs("not json", "shopauth") == {} and auth_outputs(meta, "other") == {}


def test_one_reader_of_amplify_meta_lists_the_auth_resources_with_their_ids_and_kind() -> None:
    from backendauth_operator.aws.amplify import AuthMeta, amplify_meta_auth

    meta = {
        "auth": {
            "shopauth": {"serviceType": "managed", "output": {"UserPoolId": "eu-west-1_abc"}},
            "imported": {"serviceType": "imported", "output": {"UserPoolId": "pool2", "AppClientID": "n"}},
            "broken": "not an object",
        },
        "api": {"shopapi": {"output": {}}},
    }  # fmt: skip
    assert amplify_meta_auth(json.dumps(meta)) == {
        "shopauth": AuthMeta("shopauth", {"userPoolId": "eu-west-1_abc"}, "managed"),
        "imported": AuthMeta("imported", {"userPoolId": "pool2", "appClientId": "n"}, "imported"),
        "broken": AuthMeta("broken", {}, ""),
    }
    for unreadable in (None, "", "not json", "[]", "null", json.dumps({"auth": ["shopauth"]})):
        assert amplify_meta_auth(unreadable) == {}, unreadable
