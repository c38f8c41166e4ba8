"""The simulator's Cognito: the user pools, app clients, domains, identity providers and identity
pools behind its auth resources, and the read calls that describe them.

What the simulator models (from Amplify's auth CloudFormation template and its documentation):

- A CreateBackendAuth job that completes makes what Amplify's auth stack makes: one user pool,
  two app clients (``<name>_app_clientWeb`` without a secret, ``<name>_app_client`` with one), the
  OAuth domain when ``oAuth.domainPrefix`` is set, one identity provider per social provider, and,
  unless ``authResources`` is ``USER_POOL_ONLY``, an identity pool listing both clients with the
  environment's ``authRole``/``unauthRole``. Every id is in the region the job was started in.
- An UpdateBackendAuth job that completes changes them in place: ids, creation dates and the
  native client's secret stay.
- A DeleteBackendAuth job that completes on a created resource deletes them all: Amplify removes
  the auth category and its CloudFormation stack, which deletes the pools it made (and every user
  in them). On an imported resource it only unlinks: Amplify does not manage an imported
  resource's lifecycle, so the pools stay.
- Pools "made outside Amplify" can be seeded through ``/_sim/cognito/seed`` (see ``seed``).

The calls arrive on the simulator's one port as botocore's JSON 1.1 protocol (``POST /`` with
``X-Amz-Target: AWSCognitoIdentityProviderService.<Op>`` or ``AWSCognitoIdentityService.<Op>``).
Answers follow botocore's output shapes; errors are HTTP 400 with ``__type`` and ``message``.
Only reads are served (see ``READS``); any other operation of the two services is refused with
400 ``UnsupportedOperationException``, and recorded as a mutating call, since nothing that
drives the simulator should change Cognito.

Known differences from AWS: no users, groups, resource servers, custom domains, Lambda
triggers or WebAuthn; a pool's domain, name and schema are what Amplify would set, with
Cognito's defaults elsewhere; a pool or identity pool in another region than the call's is
"not found", as at AWS (ids carry their region); domains are per account (AWS: per region).
"""

from __future__ import annotations

import copy
import hashlib
import random
import string
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ServiceModel

IDP_TARGET = "AWSCognitoIdentityProviderService"
IDENTITY_TARGET = "AWSCognitoIdentityService"
#: X-Amz-Target prefix → botocore service name.
SERVICES = {IDP_TARGET: "cognito-idp", IDENTITY_TARGET: "cognito-identity"}

#: The read operations the simulator answers, per service.
READS = {
    "cognito-idp": frozenset(
        {
            "DescribeUserPool",
            "DescribeUserPoolClient",
            "DescribeUserPoolDomain",
            "ListIdentityProviders",
            "DescribeIdentityProvider",
            "ListUserPoolClients",
            "GetUserPoolMfaConfig",
        }
    ),
    "cognito-identity": frozenset({"DescribeIdentityPool", "GetIdentityPoolRoles"}),
}

#: Operations whose names read like reads but which make or hand out something.
_NOT_READS = frozenset(
    {"GetId", "GetCredentialsForIdentity", "GetOpenIdToken", "GetOpenIdTokenForDeveloperIdentity"}
)

DEFAULT_REGION = "us-east-1"

#: The Cognito attribute behind each value of AmplifyBackend's RequiredSignUpAttributes enum.
SIGN_UP_ATTRIBUTES = {
    "ADDRESS": "address",
    "BIRTHDATE": "birthdate",
    "EMAIL": "email",
    "FAMILY_NAME": "family_name",
    "GENDER": "gender",
    "GIVEN_NAME": "given_name",
    "LOCALE": "locale",
    "MIDDLE_NAME": "middle_name",
    "NAME": "name",
    "NICKNAME": "nickname",
    "PHONE_NUMBER": "phone_number",
    "PICTURE": "picture",
    "PREFERRED_USERNAME": "preferred_username",
    "PROFILE": "profile",
    "UPDATED_AT": "updated_at",
    "WEBSITE": "website",
    "ZONE_INFO": "zoneinfo",
}

USERNAME_ATTRIBUTES = {
    "EMAIL": ["email"],
    "PHONE_NUMBER": ["phone_number"],
    "EMAIL_AND_PHONE_NUMBER": ["email", "phone_number"],
    "USERNAME": [],
}

OAUTH_FLOWS = {"CODE": "code", "IMPLICIT": "implicit"}
OAUTH_SCOPES = {
    "OPENID": "openid",
    "EMAIL": "email",
    "PHONE": "phone",
    "PROFILE": "profile",
    "AWS_COGNITO_SIGNIN_USER_ADMIN": "aws.cognito.signin.user.admin",
}

#: Per social provider: the wire keys of its AmplifyBackend settings and the Cognito
#: ProviderDetails keys they go to (the same names), the scopes and attribute mapping Amplify
#: sets, and the endpoints Cognito adds.
SOCIAL: dict[str, dict[str, Any]] = {
    "Google": {
        "keys": ("client_id", "client_secret"),
        "scopes": "openid email profile",
        "mapping": {"email": "email", "username": "sub"},
        "details": {
            "attributes_url": "https://people.googleapis.com/v1/people/me?personFields=",
            "attributes_url_add_attributes": "true",
            "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
            "oidc_issuer": "https://accounts.google.com",
            "token_request_method": "POST",
            "token_url": "https://www.googleapis.com/oauth2/v4/token",
        },
    },
    "Facebook": {
        "keys": ("client_id", "client_secret"),
        "scopes": "email,public_profile",
        "mapping": {"email": "email", "username": "id"},
        "details": {
            "api_version": "v17.0",
            "attributes_url": "https://graph.facebook.com/v17.0/me?fields=",
            "attributes_url_add_attributes": "true",
            "authorize_url": "https://www.facebook.com/v17.0/dialog/oauth",
            "token_request_method": "GET",
            "token_url": "https://graph.facebook.com/v17.0/oauth/access_token",
        },
    },
    "LoginWithAmazon": {
        "keys": ("client_id", "client_secret"),
        "scopes": "profile profile:user_id",
        "mapping": {"email": "email", "username": "user_id"},
        "details": {
            "attributes_url": "https://api.amazon.com/user/profile",
            "attributes_url_add_attributes": "false",
            "authorize_url": "https://www.amazon.com/ap/oa",
            "token_request_method": "POST",
            "token_url": "https://api.amazon.com/auth/o2/token",
        },
    },
    "SignInWithApple": {
        "keys": ("client_id", "team_id", "key_id", "private_key"),
        "scopes": "email name",
        "mapping": {"email": "email"},
        "details": {
            "attributes_url_add_attributes": "false",
            "authorize_url": "https://appleid.apple.com/auth/authorize",
            "oidc_issuer": "https://appleid.apple.com",
            "token_request_method": "POST",
            "token_url": "https://appleid.apple.com/auth/token",
        },
    },
}

#: ProviderDetails keys that hold secrets (never logged; redacted in ``/_sim/state``).
SECRET_DETAILS = frozenset({"client_secret", "private_key"})

_STANDARD_STRINGS = (
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "address",
)

_ALNUM = string.ascii_letters + string.digits
_LOWER_ALNUM = string.ascii_lowercase + string.digits


class CognitoError(Exception):
    """An error answer of the JSON 1.1 protocol: HTTP status, ``__type`` and ``message``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@cache
def service_model(service: str) -> ServiceModel:
    """botocore's model of ``cognito-idp`` or ``cognito-identity``."""
    return botocore.session.get_session().get_service_model(service)


def is_read(service: str, op: str) -> bool:
    """Whether ``op`` only reads: its name (less an ``Admin`` prefix) starts with Describe, List
    or Get, and it is not one of the Gets that make something (``GetId`` and the like)."""
    del service  # the rule is the same for both services
    bare = op.removeprefix("Admin")
    return bare.startswith(("Describe", "List", "Get")) and op not in _NOT_READS


def region_of_id(resource_id: str) -> str | None:
    """The region a pool id (``eu-west-1_Ab12``) or identity pool id (``eu-west-1:uuid``) names."""
    for sep in ("_", ":"):
        head, found, _ = resource_id.partition(sep)
        if found and head:
            return head
    return None


# ---- ids ------------------------------------------------------------------------------------


def new_user_pool_id(rng: random.Random, region: str) -> str:
    return f"{region}_" + "".join(rng.choice(_ALNUM) for _ in range(9))


def new_client_id(rng: random.Random) -> str:
    return "".join(rng.choice(_LOWER_ALNUM) for _ in range(26))


def new_client_secret(rng: random.Random) -> str:
    return "".join(rng.choice(_LOWER_ALNUM) for _ in range(51))


def new_identity_pool_id(rng: random.Random, region: str) -> str:
    return f"{region}:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def role_arns(account: str, app: str, env: str) -> dict[str, str]:
    """The Amplify environment's ``authRole``/``unauthRole`` (made by its root stack, stable for
    the account/app/env): ``{"authenticated": arn, "unauthenticated": arn}``."""
    number = int(hashlib.sha256(f"{account}/{app}/{env}".encode()).hexdigest(), 16) % 1_000_000
    stem = f"amplify-{app}-{env}"[:40] + f"-{number:06d}"
    return {
        "authenticated": f"arn:aws:iam::{account}:role/{stem}-authRole",
        "unauthenticated": f"arn:aws:iam::{account}:role/{stem}-unauthRole",
    }


# ---- state ----------------------------------------------------------------------------------


@dataclass
class UserPool:
    """A user pool with its app clients, domain and identity providers."""

    id: str
    region: str
    account: str
    created: float
    description: dict[str, Any]  # UserPoolType, without the dates (added when answered)
    mfa: dict[str, Any]  # GetUserPoolMfaConfig's answer
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → UserPoolClientType
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name → IdentityProviderType
    domain: str | None = None
    modified: float = 0.0


@dataclass
class IdentityPool:
    """An identity pool and its roles."""

    id: str
    region: str
    description: dict[str, Any]  # DescribeIdentityPool's answer
    roles: dict[str, str]


@dataclass
class Link:
    """What an auth resource of an app/env points at (as GetBackend's amplify-meta shows it)."""

    region: str
    user_pool_id: str
    web_client_id: str
    native_client_id: str
    identity_pool_id: str | None
    imported: bool = False

    def output(self) -> dict[str, str]:
        """The ``output`` of the amplify-meta ``auth`` entry, with the Amplify CLI's key names."""
        out = {
            "UserPoolId": self.user_pool_id,
            "AppClientIDWeb": self.web_client_id,
            "AppClientID": self.native_client_id,
        }
        if self.identity_pool_id:
            out["IdentityPoolId"] = self.identity_pool_id
        return out


@dataclass
class CognitoState:
    """The Cognito resources of one account (every region; ids carry theirs)."""

    user_pools: dict[str, UserPool] = field(default_factory=dict)
    identity_pools: dict[str, IdentityPool] = field(default_factory=dict)

    def domain_owner(self, domain: str) -> UserPool | None:
        return next((p for p in self.user_pools.values() if p.domain == domain), None)

    def delete(self, link: Link) -> None:
        """Delete the pools a link points at, with their clients, domain and providers."""
        self.user_pools.pop(link.user_pool_id, None)
        if link.identity_pool_id:
            self.identity_pools.pop(link.identity_pool_id, None)

    def redacted(self) -> dict[str, Any]:
        """Ids, names and client lists for ``/_sim/state``; no secrets."""
        return {
            "userPools": {
                pool_id: {
                    "name": pool.description.get("Name"),
                    "region": pool.region,
                    "domain": pool.domain,
                    "clients": {
                        cid: {"name": c.get("ClientName"), "hasSecret": "ClientSecret" in c}
                        for cid, c in pool.clients.items()
                    },
                    "identityProviders": sorted(pool.providers),
                }
                for pool_id, pool in self.user_pools.items()
            },
            "identityPools": {
                pool_id: {
                    "name": pool.description.get("IdentityPoolName"),
                    "region": pool.region,
                    "clients": [p["ClientId"] for p in pool.description.get("CognitoIdentityProviders", [])],
                }
                for pool_id, pool in self.identity_pools.items()
            },
        }


# ---- from a ResourceConfig to Cognito -------------------------------------------------------


def _schema(required: set[str]) -> list[dict[str, Any]]:
    """DescribeUserPool's SchemaAttributes: Cognito's standard attributes, ``required`` marked."""
    out: list[dict[str, Any]] = [
        {
            "Name": "sub",
            "AttributeDataType": "String",
            "DeveloperOnlyAttribute": False,
            "Mutable": False,
            "Required": True,
            "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "2048"},
        }
    ]
    for name in _STANDARD_STRINGS:
        out.append(
            {
                "Name": name,
                "AttributeDataType": "String",
                "DeveloperOnlyAttribute": False,
                "Mutable": True,
                "Required": name in required,
                "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "2048"},
            }
        )
        if name in ("email", "phone_number"):
            out.append(
                {
                    "Name": f"{name}_verified",
                    "AttributeDataType": "Boolean",
                    "DeveloperOnlyAttribute": False,
                    "Mutable": True,
                    "Required": False,
                }
            )
    out.append(
        {
            "Name": "updated_at",
            "AttributeDataType": "Number",
            "DeveloperOnlyAttribute": False,
            "Mutable": True,
            "Required": "updated_at" in required,
            "NumberAttributeConstraints": {"MinValue": "0"},
        }
    )
    out.append(
        {
            "Name": "identities",
            "AttributeDataType": "String",
            "DeveloperOnlyAttribute": False,
            "Mutable": True,
            "Required": False,
            "StringAttributeConstraints": {},
        }
    )
    return out


def _password_policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    policy = policy or {}
    constraints = set(policy.get("additionalConstraints") or [])
    return {
        # Amplify's minimumLength is a double; Cognito's MinimumLength an integer.
        "MinimumLength": int(policy.get("minimumLength", 8)),
        "RequireUppercase": "REQUIRE_UPPERCASE" in constraints,
        "RequireLowercase": "REQUIRE_LOWERCASE" in constraints,
        "RequireNumbers": "REQUIRE_DIGIT" in constraints,
        "RequireSymbols": "REQUIRE_SYMBOL" in constraints,
        "TemporaryPasswordValidityDays": 7,
    }


DEFAULT_SMS_MFA_MESSAGE = "Your authentication code is {####}"
DEFAULT_VERIFICATION_SUBJECT = "Your verification code"
DEFAULT_VERIFICATION_MESSAGE = "Your verification code is {####}"


def _short(resource_name: str) -> str:
    """The stem Amplify puts in front of its client and role names (at most 8 characters of the
    resource name, as the Amplify CLI shortens it)."""
    return resource_name[:8] or "auth"


@dataclass(frozen=True)
class Where:
    """Where a created auth resource lives: account, region, app, environment and its name."""

    account: str
    region: str
    app: str
    env: str
    name: str


def realise(
    config: dict[str, Any],
    where: Where,
    state: CognitoState,
    rng: random.Random,
    link: Link | None = None,
) -> Link:
    """Make (``link`` None) or change (``link`` given: ids, dates and secrets kept) the Cognito
    resources of a created auth resource from its wire ``resourceConfig``; return the link."""
    now = time.time()
    region = link.region if link else where.region
    upc: dict[str, Any] = config.get("userPoolConfigs") or {}
    old = state.user_pools.get(link.user_pool_id) if link else None
    pool_id = link.user_pool_id if link else new_user_pool_id(rng, region)
    while link is None and pool_id in state.user_pools:
        pool_id = new_user_pool_id(rng, region)
    pool = _user_pool(pool_id, upc, where, region, old.created if old else now)
    pool.modified = now
    # Clients: web (no secret) and native (with one), as Amplify's template makes them.
    web_id = link.web_client_id if link else new_client_id(rng)
    native_id = link.native_client_id if link else new_client_id(rng)
    old_native = old.clients.get(native_id) if old else None
    secret = (old_native or {}).get("ClientSecret") or new_client_secret(rng)
    short = _short(where.name)
    for client_id, name, client_secret in (
        (web_id, f"{short}_app_clientWeb", None),
        (native_id, f"{short}_app_client", secret),
    ):
        old_client = old.clients.get(client_id) if old else None
        pool.clients[client_id] = _client(
            pool_id,
            client_id,
            name,
            client_secret,
            upc,
            old_client["CreationDate"] if old_client else now,
            now,
        )
    # Domain and identity providers.
    oauth: dict[str, Any] = upc.get("oAuth") or {}
    pool.domain = oauth.get("domainPrefix") or None
    if pool.domain:
        pool.description["Domain"] = pool.domain
    for provider, settings in (oauth.get("socialProviderSettings") or {}).items():
        if provider in SOCIAL and isinstance(settings, dict):
            prev = old.providers.get(provider) if old else None
            pool.providers[provider] = _provider(
                pool_id, provider, settings, prev["CreationDate"] if prev else now, now
            )
    state.user_pools[pool_id] = pool
    # Identity pool (none for USER_POOL_ONLY).
    identity_pool_id = link.identity_pool_id if link else None
    if config.get("authResources") == "IDENTITY_POOL_AND_USER_POOL":
        ipc: dict[str, Any] = config.get("identityPoolConfigs") or {}
        old_ip = state.identity_pools.get(identity_pool_id) if identity_pool_id else None
        if identity_pool_id is None:
            identity_pool_id = new_identity_pool_id(rng, region)
        name = ipc.get("identityPoolName") or (
            old_ip.description["IdentityPoolName"]
            if old_ip
            else f"{upc.get('userPoolName', short)}_identitypool"
        )
        unauth = ipc.get("unauthenticatedLogin")
        if unauth is None:
            unauth = old_ip.description["AllowUnauthenticatedIdentities"] if old_ip else False
        state.identity_pools[identity_pool_id] = IdentityPool(
            id=identity_pool_id,
            region=region,
            description=_identity_pool(
                identity_pool_id, name, bool(unauth), region, pool_id, [web_id, native_id]
            ),
            roles=role_arns(where.account, where.app, where.env),
        )
    elif identity_pool_id is not None:
        state.identity_pools.pop(identity_pool_id, None)  # the update dropped the identity pool
        identity_pool_id = None
    return Link(region, pool_id, web_id, native_id, identity_pool_id)


def _user_pool(pool_id: str, upc: dict[str, Any], where: Where, region: str, created: float) -> UserPool:
    required = {
        SIGN_UP_ATTRIBUTES[a] for a in upc.get("requiredSignUpAttributes") or [] if a in SIGN_UP_ATTRIBUTES
    }
    mfa: dict[str, Any] = upc.get("mfa") or {}
    mfa_mode = mfa.get("MFAMode", "OFF")
    mfa_settings: dict[str, Any] = mfa.get("settings") or {}
    mfa_types = set(mfa_settings.get("mfaTypes") or [])
    sms_mfa_message = mfa_settings.get("smsMessage") or DEFAULT_SMS_MFA_MESSAGE
    verification: dict[str, Any] = upc.get("verificationMessage") or {}
    delivery = verification.get("deliveryMethod")
    email: dict[str, Any] = verification.get("emailSettings") or {}
    sms: dict[str, Any] = verification.get("smsSettings") or {}
    sign_in = upc.get("signInMethod", "USERNAME")
    if delivery == "EMAIL":
        auto_verified = ["email"]
    elif delivery == "SMS":
        auto_verified = ["phone_number"]
    else:
        auto_verified = [a for a in USERNAME_ATTRIBUTES.get(sign_in, []) if a == "email"]
    short = _short(where.name)
    sms_configuration = {
        "SnsCallerArn": f"arn:aws:iam::{where.account}:role/sns{short}-{where.env}",
        "ExternalId": f"{short}_role_external_id",
        "SnsRegion": region,
    }
    template = {
        "SmsMessage": sms.get("smsMessage") or DEFAULT_VERIFICATION_MESSAGE,
        "EmailMessage": email.get("emailMessage") or DEFAULT_VERIFICATION_MESSAGE,
        "EmailSubject": email.get("emailSubject") or DEFAULT_VERIFICATION_SUBJECT,
        "DefaultEmailOption": "CONFIRM_WITH_CODE",
    }
    description: dict[str, Any] = {
        "Id": pool_id,
        "Name": upc.get("userPoolName", ""),
        "Policies": {"PasswordPolicy": _password_policy(upc.get("passwordPolicy"))},
        "DeletionProtection": "INACTIVE",
        "LambdaConfig": {},
        "SchemaAttributes": _schema(required),
        "AutoVerifiedAttributes": auto_verified,
        "UsernameAttributes": list(USERNAME_ATTRIBUTES.get(sign_in, [])),
        "SmsVerificationMessage": template["SmsMessage"],
        "EmailVerificationMessage": template["EmailMessage"],
        "EmailVerificationSubject": template["EmailSubject"],
        "VerificationMessageTemplate": template,
        "SmsAuthenticationMessage": sms_mfa_message,
        "UserAttributeUpdateSettings": {"AttributesRequireVerificationBeforeUpdate": []},
        "MfaConfiguration": mfa_mode,
        "EstimatedNumberOfUsers": 0,
        "EmailConfiguration": {"EmailSendingAccount": "COGNITO_DEFAULT"},
        "UserPoolTags": {},
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False, "UnusedAccountValidityDays": 7},
        "UsernameConfiguration": {"CaseSensitive": False},
        "Arn": f"arn:aws:cognito-idp:{region}:{where.account}:userpool/{pool_id}",
        "UserPoolTier": "ESSENTIALS",
    }
    if (mfa_mode != "OFF" and "SMS" in mfa_types) or delivery == "SMS":
        description["SmsConfiguration"] = sms_configuration
    forgot: dict[str, Any] = upc.get("forgotPassword") or {}
    if forgot.get("deliveryMethod") in ("EMAIL", "SMS"):
        name = "verified_email" if forgot["deliveryMethod"] == "EMAIL" else "verified_phone_number"
        description["AccountRecoverySetting"] = {"RecoveryMechanisms": [{"Priority": 1, "Name": name}]}
    mfa_config: dict[str, Any] = {"MfaConfiguration": mfa_mode}
    if mfa_mode != "OFF":
        if "SMS" in mfa_types:
            mfa_config["SmsMfaConfiguration"] = {
                "SmsAuthenticationMessage": sms_mfa_message,
                "SmsConfiguration": sms_configuration,
            }
        mfa_config["SoftwareTokenMfaConfiguration"] = {"Enabled": "TOTP" in mfa_types}
    return UserPool(pool_id, region, where.account, created, description, mfa_config)


def _client(
    pool_id: str,
    client_id: str,
    name: str,
    secret: str | None,
    upc: dict[str, Any],
    created: float,
    now: float,
) -> dict[str, Any]:
    client: dict[str, Any] = {
        "UserPoolId": pool_id,
        "ClientName": name,
        "ClientId": client_id,
        "LastModifiedDate": now,
        "CreationDate": created,
        "RefreshTokenValidity": 30,
        "TokenValidityUnits": {"AccessToken": "hours", "IdToken": "hours", "RefreshToken": "days"},
        "ExplicitAuthFlows": ["ALLOW_CUSTOM_AUTH", "ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"],
        "AllowedOAuthFlowsUserPoolClient": False,
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": True,
        "EnablePropagateAdditionalUserContextData": False,
        "AuthSessionValidity": 3,
    }
    if secret is not None:
        client["ClientSecret"] = secret
    oauth: dict[str, Any] = upc.get("oAuth") or {}
    if oauth:
        social = [p for p in (oauth.get("socialProviderSettings") or {}) if p in SOCIAL]
        flow = OAUTH_FLOWS.get(oauth.get("oAuthGrantType", ""), "code")
        client.update(
            SupportedIdentityProviders=["COGNITO", *social],
            CallbackURLs=list(oauth.get("redirectSignInURIs") or []),
            LogoutURLs=list(oauth.get("redirectSignOutURIs") or []),
            AllowedOAuthFlows=[flow],
            AllowedOAuthScopes=[OAUTH_SCOPES[s] for s in oauth.get("oAuthScopes") or [] if s in OAUTH_SCOPES],
            AllowedOAuthFlowsUserPoolClient=True,
        )
    return client


def _provider(
    pool_id: str, provider: str, settings: dict[str, Any], created: float, now: float
) -> dict[str, Any]:
    spec = SOCIAL[provider]
    details = {k: str(settings[k]) for k in spec["keys"] if k in settings}
    details.update(spec["details"], authorize_scopes=spec["scopes"])
    return {
        "UserPoolId": pool_id,
        "ProviderName": provider,
        "ProviderType": provider,
        "ProviderDetails": dict(sorted(details.items())),
        "AttributeMapping": dict(spec["mapping"]),
        "IdpIdentifiers": [],
        "LastModifiedDate": now,
        "CreationDate": created,
    }


def _identity_pool(
    pool_id: str, name: str, unauth: bool, region: str, user_pool_id: str, client_ids: list[str]
) -> dict[str, Any]:
    return {
        "IdentityPoolId": pool_id,
        "IdentityPoolName": name,
        "AllowUnauthenticatedIdentities": unauth,
        "AllowClassicFlow": False,
        "CognitoIdentityProviders": [
            {
                "ProviderName": f"cognito-idp.{region}.amazonaws.com/{user_pool_id}",
                "ClientId": client_id,
                "ServerSideTokenCheck": False,
            }
            for client_id in client_ids
        ],
        "IdentityPoolTags": {},
    }


# ---- seeding pools made outside Amplify -----------------------------------------------------


def seed(state: CognitoState, account: str, body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Make a user pool "outside Amplify" (``/_sim/cognito/seed``); return its ids.

    ``body``: ``region`` (default us-east-1), ``userPoolName`` (default ``seeded``), ``clients``
    (a list of ``{"name": str, "secret": bool}``, default a web client without and a native
    client with a secret), ``identityPool`` (absent or null: none; ``{"name": str,
    "clients": [client names], "allowUnauthenticated": bool}``; ``clients`` defaults to all).
    Answer: ``{"account", "region", "userPoolId", "clients": {name: id}, "identityPoolId"}``
    (``identityPoolId`` null without one). ValueError names a bad field.
    """
    known = {"region", "userPoolName", "clients", "identityPool"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field; known: {', '.join(sorted(known))}")
    region = body.get("region", DEFAULT_REGION)
    if not isinstance(region, str) or not region or "_" in region or ":" in region:
        raise ValueError("region must be a region name such as eu-west-1")
    name = body.get("userPoolName", "seeded")
    if not isinstance(name, str) or not name:
        raise ValueError("userPoolName must be a non-empty string")
    clients = body.get("clients", [{"name": "web", "secret": False}, {"name": "native", "secret": True}])
    if not isinstance(clients, list) or not clients:
        raise ValueError("clients must be a non-empty list of {name, secret}")
    names: list[str] = []
    for i, c in enumerate(clients):
        if not isinstance(c, dict) or set(c) - {"name", "secret"}:
            raise ValueError(f"clients[{i}] must be an object with name and secret")
        if not isinstance(c.get("name"), str) or not c["name"] or c["name"] in names:
            raise ValueError(f"clients[{i}].name must be a non-empty string, unique in the pool")
        if not isinstance(c.get("secret", False), bool):
            raise ValueError(f"clients[{i}].secret must be a boolean")
        names.append(c["name"])
    identity = body.get("identityPool")
    if identity is not None:
        if not isinstance(identity, dict) or set(identity) - {"name", "clients", "allowUnauthenticated"}:
            raise ValueError(
                "identityPool must be null or an object with name, clients, allowUnauthenticated"
            )
        listed = identity.get("clients", names)
        if not isinstance(listed, list) or any(n not in names for n in listed):
            raise ValueError(f"identityPool.clients must name clients of the pool ({', '.join(names)})")
        if not isinstance(identity.get("allowUnauthenticated", False), bool):
            raise ValueError("identityPool.allowUnauthenticated must be a boolean")
        if not isinstance(identity.get("name", "seeded_identitypool"), str):
            raise ValueError("identityPool.name must be a string")
    now = time.time()
    pool_id = new_user_pool_id(rng, region)
    while pool_id in state.user_pools:
        pool_id = new_user_pool_id(rng, region)
    where = Where(account, region, "", "", name)
    upc = {"userPoolName": name, "signInMethod": "EMAIL", "requiredSignUpAttributes": ["EMAIL"]}
    pool = _user_pool(pool_id, upc, where, region, now)
    pool.modified = now
    ids: dict[str, str] = {}
    for c in clients:
        client_id = new_client_id(rng)
        ids[c["name"]] = client_id
        secret = new_client_secret(rng) if c.get("secret") else None
        pool.clients[client_id] = _client(pool_id, client_id, c["name"], secret, {}, now, now)
    state.user_pools[pool_id] = pool
    identity_pool_id = None
    if identity is not None:
        identity_pool_id = new_identity_pool_id(rng, region)
        listed = identity.get("clients", names)
        state.identity_pools[identity_pool_id] = IdentityPool(
            id=identity_pool_id,
            region=region,
            description=_identity_pool(
                identity_pool_id,
                identity.get("name", "seeded_identitypool"),
                identity.get("allowUnauthenticated", False),
                region,
                pool_id,
                [ids[n] for n in listed],
            ),
            roles={
                "authenticated": f"arn:aws:iam::{account}:role/{name}-authRole"[:2048],
                "unauthenticated": f"arn:aws:iam::{account}:role/{name}-unauthRole"[:2048],
            },
        )
    return {
        "account": account,
        "region": region,
        "userPoolId": pool_id,
        "clients": ids,
        "identityPoolId": identity_pool_id,
    }


def import_problem(state: CognitoState, region: str, ids: dict[str, Any]) -> str | None:
    """Why ImportBackendAuth of ``ids`` (wire names) cannot link them, None if it can: what the
    Amplify CLI's import checks (the pool and clients exist, the web client has no secret, the
    identity pool lists both clients)."""
    pool_id = ids["userPoolId"]
    pool = state.user_pools.get(pool_id)
    if pool is None or pool.region != region:
        return f"User pool {pool_id} does not exist in {region}"
    for which in ("webClientId", "nativeClientId"):
        if ids[which] not in pool.clients:
            return f"App client {ids[which]} ({which}) does not exist in user pool {pool_id}"
    if "ClientSecret" in pool.clients[ids["webClientId"]]:
        return f"The web app client {ids['webClientId']} has a client secret; a web client must have none"
    identity_pool_id = ids.get("identityPoolId")
    if identity_pool_id:
        ip = state.identity_pools.get(identity_pool_id)
        if ip is None or ip.region != region:
            return f"Identity pool {identity_pool_id} does not exist in {region}"
        listed = {
            (p.get("ProviderName"), p.get("ClientId"))
            for p in ip.description.get("CognitoIdentityProviders", [])
        }
        provider = f"cognito-idp.{region}.amazonaws.com/{pool_id}"
        for which in ("webClientId", "nativeClientId"):
            if (provider, ids[which]) not in listed:
                return f"Identity pool {identity_pool_id} does not list app client {ids[which]} of {pool_id}"
    return None


# ---- the read calls -------------------------------------------------------------------------


def _page(items: list[Any], body: dict[str, Any], key: str) -> dict[str, Any]:
    token = body.get("NextToken") or "0"
    size = body.get("MaxResults") or 60
    if not isinstance(token, str) or not token.isdigit():
        raise CognitoError("InvalidParameterException", "Invalid NextToken")
    if not isinstance(size, int) or not 1 <= size <= 60:
        raise CognitoError("InvalidParameterException", "MaxResults must be between 1 and 60")
    start = int(token)
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["NextToken"] = str(start + size)
    return out


def _in_region(resource_id: str, resource_region: str, region: str | None) -> bool:
    return region is None or resource_region == region


def answer(
    state: CognitoState, service: str, op: str, body: dict[str, Any], region: str | None
) -> dict[str, Any]:
    """Answer one read call ``op`` of ``service`` from ``state``, as the call's ``region`` sees it
    (None: any). Raises CognitoError."""
    problems = _validate(service, op, body)
    if problems:
        count = f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} detected: "
        raise CognitoError("InvalidParameterException", count + "; ".join(problems))
    if service == "cognito-identity":
        identity_pool_id = body["IdentityPoolId"]
        ip = state.identity_pools.get(identity_pool_id)
        if ip is None or not _in_region(identity_pool_id, ip.region, region):
            raise CognitoError("ResourceNotFoundException", f"IdentityPool '{identity_pool_id}' not found.")
        if op == "DescribeIdentityPool":
            return copy.deepcopy(ip.description)
        return {"IdentityPoolId": ip.id, "Roles": dict(ip.roles)}
    if op == "DescribeUserPoolDomain":
        owner = state.domain_owner(body["Domain"])
        if owner is None or not _in_region(owner.id, owner.region, region):
            return {"DomainDescription": {}}  # what Cognito answers for a domain nobody has
        return {
            "DomainDescription": {
                "UserPoolId": owner.id,
                "AWSAccountId": owner.account,
                "Domain": body["Domain"],
                "S3Bucket": f"aws-cognito-prod-{owner.region}-assets",
                "CloudFrontDistribution": hashlib.sha256(owner.id.encode()).hexdigest()[:14]
                + ".cloudfront.net",
                "Version": time.strftime("%Y%m%d%H%M%S", time.gmtime(owner.created)),
                "Status": "ACTIVE",
                "ManagedLoginVersion": 1,
            }
        }
    pool_id = body["UserPoolId"]
    pool = state.user_pools.get(pool_id)
    if pool is None or not _in_region(pool_id, pool.region, region):
        raise CognitoError("ResourceNotFoundException", f"User pool {pool_id} does not exist.")
    if op == "DescribeUserPool":
        description = copy.deepcopy(pool.description)
        description.update(CreationDate=pool.created, LastModifiedDate=pool.modified or pool.created)
        return {"UserPool": description}
    if op == "GetUserPoolMfaConfig":
        return copy.deepcopy(pool.mfa)
    if op == "DescribeUserPoolClient":
        client = pool.clients.get(body["ClientId"])
        if client is None:
            raise CognitoError(
                "ResourceNotFoundException", f"User pool client {body['ClientId']} does not exist."
            )
        return {"UserPoolClient": copy.deepcopy(client)}
    if op == "ListUserPoolClients":
        items = [
            {"ClientId": c["ClientId"], "UserPoolId": pool_id, "ClientName": c["ClientName"]}
            for c in pool.clients.values()
        ]
        return _page(items, body, "UserPoolClients")
    if op == "ListIdentityProviders":
        items = [
            {k: p[k] for k in ("ProviderName", "ProviderType", "LastModifiedDate", "CreationDate")}
            for p in pool.providers.values()
        ]
        return _page(items, body, "Providers")
    if op == "DescribeIdentityProvider":
        provider = pool.providers.get(body["ProviderName"])
        if provider is None:
            raise CognitoError(
                "ResourceNotFoundException", f"Identity provider {body['ProviderName']} does not exist."
            )
        return {"IdentityProvider": copy.deepcopy(provider)}
    raise CognitoError("UnknownOperationException", f"The simulator does not serve {op}")  # pragma: no cover


def _validate(service: str, op: str, body: dict[str, Any]) -> list[str]:
    """Required members present and of the model's type (strings and integers only: the read
    inputs have nothing else)."""
    shape = service_model(service).operation_model(op).input_shape
    problems: list[str] = []
    if shape is None:
        return problems
    for name in shape.required_members:
        if name not in body:
            wire = name[0].lower() + name[1:]
            problems.append(f"Value null at '{wire}' failed to satisfy constraint: Member must not be null")
    for name, value in body.items():
        member = shape.members.get(name)
        if member is None:
            continue  # AWS ignores unknown members of a JSON request
        kind = member.type_name
        wrong_string = kind == "string" and not isinstance(value, str)
        wrong_integer = kind == "integer" and (not isinstance(value, int) or isinstance(value, bool))
        if wrong_string or wrong_integer:
            wire = name[0].lower() + name[1:]
            problems.append(f"Value at '{wire}' failed to satisfy constraint: Member must be a {kind}")
    return problems


# ---- back from Cognito to a ResourceConfig (GetBackendAuth of an imported resource) ---------


def config_of(state: CognitoState, link: Link) -> dict[str, Any]:
    """A wire ``resourceConfig`` read back from the pools ``link`` points at: what GetBackendAuth
    answers for an imported resource when the simulator is told to answer (whether AWS does is
    unknown). Social providers' secrets are included, as GetBackendAuth includes them."""
    pool = state.user_pools.get(link.user_pool_id)
    if pool is None:
        return {"authResources": "USER_POOL_ONLY", "service": "COGNITO", "userPoolConfigs": {}}
    d = pool.description
    username = sorted(d.get("UsernameAttributes") or [])
    sign_in = {(): "USERNAME", ("email",): "EMAIL", ("phone_number",): "PHONE_NUMBER"}.get(
        tuple(username), "EMAIL_AND_PHONE_NUMBER"
    )
    by_attribute = {v: k for k, v in SIGN_UP_ATTRIBUTES.items()}
    required = [
        by_attribute[a["Name"]]
        for a in d.get("SchemaAttributes") or []
        if a.get("Required") and a["Name"] in by_attribute
    ]
    policy = (d.get("Policies") or {}).get("PasswordPolicy") or {}
    flags = {
        "RequireNumbers": "REQUIRE_DIGIT",
        "RequireLowercase": "REQUIRE_LOWERCASE",
        "RequireSymbols": "REQUIRE_SYMBOL",
        "RequireUppercase": "REQUIRE_UPPERCASE",
    }
    upc: dict[str, Any] = {
        "userPoolName": d.get("Name", ""),
        "signInMethod": sign_in,
        "requiredSignUpAttributes": required,
        "passwordPolicy": {
            "minimumLength": float(policy.get("MinimumLength", 8)),
            "additionalConstraints": [v for k, v in flags.items() if policy.get(k)],
        },
    }
    mfa_types = [
        t
        for t, on in (
            ("SMS", "SmsMfaConfiguration" in pool.mfa),
            ("TOTP", (pool.mfa.get("SoftwareTokenMfaConfiguration") or {}).get("Enabled")),
        )
        if on
    ]
    upc["mfa"] = {"MFAMode": pool.mfa.get("MfaConfiguration", "OFF")}
    if mfa_types:
        upc["mfa"]["settings"] = {"mfaTypes": mfa_types, "smsMessage": d.get("SmsAuthenticationMessage", "")}
    verified = d.get("AutoVerifiedAttributes") or []
    template = d.get("VerificationMessageTemplate") or {}
    if "email" in verified:
        upc["verificationMessage"] = {
            "deliveryMethod": "EMAIL",
            "emailSettings": {
                "emailMessage": template.get("EmailMessage", ""),
                "emailSubject": template.get("EmailSubject", ""),
            },
        }
    elif "phone_number" in verified:
        upc["verificationMessage"] = {
            "deliveryMethod": "SMS",
            "smsSettings": {"smsMessage": template.get("SmsMessage", "")},
        }
    web = pool.clients.get(link.web_client_id) or {}
    if web.get("AllowedOAuthFlowsUserPoolClient"):
        flows = {v: k for k, v in OAUTH_FLOWS.items()}
        scopes = {v: k for k, v in OAUTH_SCOPES.items()}
        oauth: dict[str, Any] = {
            "oAuthGrantType": flows.get((web.get("AllowedOAuthFlows") or ["code"])[0], "CODE"),
            "oAuthScopes": [scopes[s] for s in web.get("AllowedOAuthScopes") or [] if s in scopes],
            "redirectSignInURIs": list(web.get("CallbackURLs") or []),
            "redirectSignOutURIs": list(web.get("LogoutURLs") or []),
        }
        if pool.domain:
            oauth["domainPrefix"] = pool.domain
        social = {
            name: {k: v for k, v in p["ProviderDetails"].items() if k in SOCIAL[name]["keys"]}
            for name, p in pool.providers.items()
            if name in SOCIAL
        }
        if social:
            oauth["socialProviderSettings"] = social
        upc["oAuth"] = oauth
    config: dict[str, Any] = {
        "authResources": "IDENTITY_POOL_AND_USER_POOL" if link.identity_pool_id else "USER_POOL_ONLY",
        "service": "COGNITO",
        "userPoolConfigs": upc,
    }
    ip = state.identity_pools.get(link.identity_pool_id or "")
    if ip is not None:
        config["identityPoolConfigs"] = {
            "identityPoolName": ip.description["IdentityPoolName"],
            "unauthenticatedLogin": ip.description["AllowUnauthenticatedIdentities"],
        }
    return config
