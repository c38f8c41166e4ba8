"""The boto3 request built from a spec, checked by botocore itself: parameter validation, then the
exact JSON body that would go on the wire to AWS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.stub import Stubber

from backendauth_operator.core.models import (
    SecretKeyRef,
    create_backend_auth_kwargs,
    parse_spec,
    update_backend_auth_kwargs,
)
from specs import AMAZON_SECRET, APPLE_KEY, FACEBOOK_SECRET, GOOGLE_SECRET, SECRETS, full_spec, minimal_spec


def resolve(ref: SecretKeyRef) -> str:
    return SECRETS[(ref.name, ref.key)]


class _Sent(Exception):
    """Raised from before-send to stop the request once botocore has serialised it."""

    def __init__(self, request: Any) -> None:
        self.request = request


@pytest.fixture
def client() -> Iterator[Any]:
    client = boto3.client(
        "amplifybackend",
        region_name="eu-west-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )

    def stop(request: Any, **_: Any) -> None:
        raise _Sent(request)

    client.meta.events.register("before-send.amplifybackend.*", stop)
    yield client


def wire(client: Any, operation: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What botocore would send: (URL path, JSON body)."""
    with pytest.raises(_Sent) as sent:
        getattr(client, operation)(**kwargs)
    request = sent.value.request
    return request.url.split(".amazonaws.com", 1)[1], json.loads(request.body)


def test_minimal_spec_create_request(client: Any) -> None:
    kwargs = create_backend_auth_kwargs(parse_spec(minimal_spec()), resolve)
    path, body = wire(client, "create_backend_auth", kwargs)
    assert path == "/backend/d1a2b3c4d5e6f7/auth"
    assert body == {
        "backendEnvironmentName": "staging",
        "resourceName": "shopauth",
        "resourceConfig": {
            "authResources": "USER_POOL_ONLY",
            "service": "COGNITO",
            "userPoolConfigs": {
                "userPoolName": "shopusers",
                "signInMethod": "EMAIL",
                "requiredSignUpAttributes": ["EMAIL"],
            },
        },
    }


def test_full_spec_create_request_has_every_field_on_the_wire(client: Any) -> None:
    kwargs = create_backend_auth_kwargs(parse_spec(full_spec()), resolve)
    _, body = wire(client, "create_backend_auth", kwargs)
    config = body["resourceConfig"]
    assert config["identityPoolConfigs"] == {"identityPoolName": "shopidp", "unauthenticatedLogin": False}
    upc = config["userPoolConfigs"]
    assert upc["mfa"] == {
        "MFAMode": "OPTIONAL",
        "settings": {"mfaTypes": ["SMS", "TOTP"], "smsMessage": "Your code is {####}"},
    }
    assert upc["passwordPolicy"] == {
        "minimumLength": 12.0,
        "additionalConstraints": ["REQUIRE_DIGIT", "REQUIRE_SYMBOL"],
    }
    assert upc["verificationMessage"]["emailSettings"] == {
        "emailSubject": "Verify",
        "emailMessage": "Your code is {####}",
    }
    assert upc["forgotPassword"]["deliveryMethod"] == "SMS"
    oauth = upc["oAuth"]
    assert oauth["domainPrefix"] == "shop-auth"
    assert oauth["oAuthGrantType"] == "CODE" and oauth["oAuthScopes"] == ["OPENID", "EMAIL", "PROFILE"]
    assert oauth["redirectSignInURIs"] == ["https://shop.example.com/callback", "myapp://callback"]
    assert oauth["redirectSignOutURIs"] == ["https://shop.example.com/", "http://localhost:3000/"]
    assert oauth["socialProviderSettings"] == {
        "Google": {"client_id": "123.apps.googleusercontent.com", "client_secret": GOOGLE_SECRET},
        "Facebook": {"client_id": "fb-app-1", "client_secret": FACEBOOK_SECRET},
        "LoginWithAmazon": {"client_id": "amzn1.application-oa2-client.1", "client_secret": AMAZON_SECRET},
        "SignInWithApple": {
            "client_id": "com.example.shop",
            "key_id": "ABC123DEFG",
            "team_id": "TEAM123456",
            "private_key": APPLE_KEY,
        },
    }


def test_full_spec_passes_botocore_parameter_validation() -> None:
    client = boto3.client(
        "amplifybackend", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    spec = parse_spec(full_spec())
    create = create_backend_auth_kwargs(spec, resolve)
    update = update_backend_auth_kwargs(spec, resolve)
    envelope = {
        "AppId": "d1a2b3c4d5e6f7",
        "BackendEnvironmentName": "staging",
        "JobId": "j1",
        "Operation": "CreateBackendAuth",
        "Status": "RUNNING",
    }
    with Stubber(client) as stub:  # the Stubber validates parameters against the service model
        stub.add_response("create_backend_auth", envelope, create)
        stub.add_response("update_backend_auth", {**envelope, "Operation": "UpdateBackendAuth"}, update)
        client.create_backend_auth(**create)
        client.update_backend_auth(**update)
        stub.assert_no_pending_responses()


def test_update_request_leaves_out_what_aws_cannot_change(client: Any) -> None:
    kwargs = update_backend_auth_kwargs(parse_spec(full_spec()), resolve)
    path, body = wire(client, "update_backend_auth", kwargs)
    assert path == "/backend/d1a2b3c4d5e6f7/auth/staging"
    upc = body["resourceConfig"]["userPoolConfigs"]
    assert not {"userPoolName", "signInMethod", "requiredSignUpAttributes"} & upc.keys()
    assert body["resourceConfig"]["identityPoolConfigs"] == {"unauthenticatedLogin": False}
    assert upc["mfa"]["MFAMode"] == "OPTIONAL"


def test_secret_refs_are_listed_and_resolved_only_through_the_resolver() -> None:
    spec = parse_spec(full_spec())
    assert [(r.name, r.key) for r in spec.secret_refs()] == [
        ("google-oauth", "clientSecret"),
        ("lwa", "secret"),
        ("apple", "key.p8"),
    ]
    asked: list[str] = []

    def recording(ref: SecretKeyRef) -> str:
        asked.append(ref.name)
        return "v"

    create_backend_auth_kwargs(spec, recording)
    assert sorted(asked) == ["apple", "google-oauth", "lwa"]


def test_inline_secrets_are_hidden_from_repr_and_dumps() -> None:
    spec = parse_spec(full_spec())
    assert FACEBOOK_SECRET not in repr(spec) and FACEBOOK_SECRET not in str(spec.model_dump())
