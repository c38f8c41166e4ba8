"""BackendAuth specs shared by the tests: a minimal one and a full one with every field set."""

from __future__ import annotations

import copy
from typing import Any

GOOGLE_SECRET = "google-secret-value-0f9e8d"
APPLE_KEY = "-----BEGIN PRIVATE KEY-----\nMIGTAgEAtestkey\n-----END PRIVATE KEY-----"
FACEBOOK_SECRET = "facebook-inline-secret-7c6b"
AMAZON_SECRET = "amazon-secret-value-5a4b"


def minimal_spec(**overrides: Any) -> dict[str, Any]:
    """The smallest valid spec: a user pool only."""
    spec: dict[str, Any] = {
        "appId": "d1a2b3c4d5e6f7",
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
    spec.update(overrides)
    return spec


def full_spec() -> dict[str, Any]:
    """A spec with every field of resourceConfig set (secrets both inline and by reference)."""
    return copy.deepcopy(
        {
            "appId": "d1a2b3c4d5e6f7",
            "backendEnvironmentName": "staging",
            "resourceName": "shopauth",
            "region": "eu-west-1",
            "deletionPolicy": "Delete",
            "resourceConfig": {
                "authResources": "IDENTITY_POOL_AND_USER_POOL",
                "service": "COGNITO",
                "identityPoolConfigs": {"identityPoolName": "shopidp", "unauthenticatedLogin": False},
                "userPoolConfigs": {
                    "userPoolName": "shopusers",
                    "signInMethod": "EMAIL",
                    "requiredSignUpAttributes": ["EMAIL", "NAME"],
                    "mfa": {
                        "mfaMode": "OPTIONAL",
                        "settings": {"mfaTypes": ["SMS", "TOTP"], "smsMessage": "Your code is {####}"},
                    },
                    "passwordPolicy": {
                        "minimumLength": 12,
                        "additionalConstraints": ["REQUIRE_DIGIT", "REQUIRE_SYMBOL"],
                    },
                    "verificationMessage": {
                        "deliveryMethod": "EMAIL",
                        "emailSettings": {"emailSubject": "Verify", "emailMessage": "Your code is {####}"},
                        "smsSettings": {"smsMessage": "Your code is {####}"},
                    },
                    "forgotPassword": {
                        "deliveryMethod": "SMS",
                        "emailSettings": {"emailSubject": "Reset", "emailMessage": "Reset code {####}"},
                        "smsSettings": {"smsMessage": "Reset code {####}"},
                    },
                    "oAuth": {
                        "domainPrefix": "shop-auth",
                        "oAuthGrantType": "CODE",
                        "oAuthScopes": ["OPENID", "EMAIL", "PROFILE"],
                        "redirectSignInURIs": ["https://shop.example.com/callback", "myapp://callback"],
                        "redirectSignOutURIs": ["https://shop.example.com/", "http://localhost:3000/"],
                        "socialProviderSettings": {
                            "google": {
                                "clientId": "123.apps.googleusercontent.com",
                                "clientSecretRef": {"name": "google-oauth", "key": "clientSecret"},
                            },
                            "facebook": {"clientId": "fb-app-1", "clientSecret": FACEBOOK_SECRET},
                            "loginWithAmazon": {
                                "clientId": "amzn1.application-oa2-client.1",
                                "clientSecretRef": {"name": "lwa", "key": "secret"},
                            },
                            "signInWithApple": {
                                "clientId": "com.example.shop",
                                "keyId": "ABC123DEFG",
                                "teamId": "TEAM123456",
                                "privateKeyRef": {"name": "apple", "key": "key.p8"},
                            },
                        },
                    },
                },
            },
        }
    )


SECRETS = {
    ("google-oauth", "clientSecret"): GOOGLE_SECRET,
    ("lwa", "secret"): AMAZON_SECRET,
    ("apple", "key.p8"): APPLE_KEY,
}
