"""Where each ``resourceConfig`` field goes when the pools are handed over: the one table.

Every leaf of the ``ResourceConfig`` model (walked recursively; a Secret reference counts as
one leaf) has a row: the field of the Crossplane managed resource (Upbound's AWS provider) that
carries it, the field of ACK's UserPool, what Amplify Gen 2's ``referenceAuth`` does with it,
or why it is not carried. The export reads the table to say, in its output, what a resource's
configuration loses on the way; :func:`markdown` renders it for the docs; a test fails on a
field that has no row.

Paths of a target read ``Kind spec.path.to.field`` (the kind of the managed resource, then the
path in it); a test checks each against the providers' CRDs.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from backendauth_operator.core.models import ResourceConfig, SecretKeyRef


@dataclass(frozen=True)
class Carried:
    """Carried over, to ``paths`` (``Kind spec.path``); ``note`` says how, when it is not 1:1."""

    paths: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class NotCarried:
    """Not carried over, because ``reason``."""

    reason: str


Target = Carried | NotCarried


@dataclass(frozen=True)
class Row:
    """One ``resourceConfig`` field (``path``, as the spec spells it) and its three targets."""

    path: str
    crossplane: Target
    ack: Target
    gen2: Target


RC = "resourceConfig"
UP = f"{RC}.userPoolConfigs"
IP = f"{RC}.identityPoolConfigs"
OA = f"{UP}.oAuth"
SOCIAL = f"{OA}.socialProviderSettings"

_XP_POOL = "UserPool spec.forProvider"
_XP_CLIENT = "UserPoolClient spec.forProvider"
_ACK_POOL = "UserPool spec"

# Gen 2's referenceAuth refers to the existing resources by id; their settings stay in Cognito.
_GEN2_POOL = Carried(
    ("referenceAuth userPoolId",), "stays in the user pool, which referenceAuth refers to by id"
)
_GEN2_CLIENT = Carried(
    ("referenceAuth userPoolClientId",), "stays in the web app client, which referenceAuth refers to by id"
)
_GEN2_IDENTITY = Carried(
    ("referenceAuth identityPoolId",), "stays in the identity pool, which referenceAuth refers to by id"
)

_NO_ACK_CLIENT = NotCarried(
    "ACK's Cognito controller has no UserPoolClient in the CRDs this export targets: the Crossplane "
    "export holds it (UserPoolClient)"
)
_NO_ACK_DOMAIN = NotCarried("ACK has no UserPoolDomain: the Crossplane export holds it (UserPoolDomain)")
_NO_ACK_IDP = NotCarried(
    "ACK has no IdentityProvider: the Crossplane export holds it (IdentityProvider, Observe)"
)
_NO_ACK_IDENTITY = NotCarried(
    "ACK has no identity pool controller: the Crossplane export holds it (Pool, PoolRolesAttachment)"
)
_SECRET_XP = NotCarried(
    "a secret is never printed; the provider takes no Secret reference for an IdentityProvider's "
    "providerDetails, so the IdentityProvider stays Observe (managed without its secret, sign-in "
    "through the provider would break)"
)
_SECRET_ACK = NotCarried("a secret is never printed; ACK has no IdentityProvider")
_SECRET_GEN2 = NotCarried("a secret is never printed; it stays in the user pool's identity provider")
_FORGOT_MESSAGE = NotCarried(
    "Cognito has no field for a separate password-reset message: the reset code goes out with the "
    "pool's verification message (carried under verificationMessage), or a CustomMessage Lambda "
    "trigger's; no read shows what Amplify made of it"
)


def _xp(*paths: str, note: str = "", kind: str = _XP_POOL) -> Carried:
    return Carried(tuple(f"{kind}.{p}" for p in paths), note)


def _ack(*paths: str, note: str = "") -> Carried:
    return Carried(tuple(f"{_ACK_POOL}.{p}" for p in paths), note)


def _social_rows() -> list[Row]:
    rows = []
    for provider in ("facebook", "google", "loginWithAmazon"):
        at = f"{SOCIAL}.{provider}"
        rows.append(
            Row(
                f"{at}.clientId",
                Carried(
                    (
                        "IdentityProvider spec.forProvider.providerDetails",
                        f"{_XP_CLIENT}.supportedIdentityProviders",
                    ),
                    "providerDetails.client_id; the IdentityProvider stays Observe (its secret cannot be "
                    "given)",
                ),
                _NO_ACK_IDP,
                _GEN2_POOL,
            )
        )
        for secret in ("clientSecret", "clientSecretRef"):
            rows.append(Row(f"{at}.{secret}", _SECRET_XP, _SECRET_ACK, _SECRET_GEN2))
    at = f"{SOCIAL}.signInWithApple"
    for key, detail in (("clientId", "client_id"), ("keyId", "key_id"), ("teamId", "team_id")):
        rows.append(
            Row(
                f"{at}.{key}",
                Carried(
                    ("IdentityProvider spec.forProvider.providerDetails",),
                    f"providerDetails.{detail}; the IdentityProvider stays Observe (its private key "
                    "cannot be given)",
                ),
                _NO_ACK_IDP,
                _GEN2_POOL,
            )
        )
    for secret in ("privateKey", "privateKeyRef"):
        rows.append(Row(f"{at}.{secret}", _SECRET_XP, _SECRET_ACK, _SECRET_GEN2))
    return rows


ROWS: tuple[Row, ...] = (
    Row(
        f"{RC}.authResources",
        Carried(
            ("Pool", "PoolRolesAttachment"),
            "IDENTITY_POOL_AND_USER_POOL: a Pool and a PoolRolesAttachment are exported; "
            "USER_POOL_ONLY: none",
        ),
        _NO_ACK_IDENTITY,
        Carried(
            ("referenceAuth identityPoolId", "referenceAuth authRoleArn", "referenceAuth unauthRoleArn"),
            "USER_POOL_ONLY cannot be exported: referenceAuth needs an identity pool and both of its roles "
            "(a user pool alone is the open request aws-amplify/amplify-backend#2252)",
        ),
    ),
    Row(
        f"{RC}.service",
        Carried(("UserPool", "Pool"), "always COGNITO: the exported kinds are Cognito's"),
        Carried(("UserPool",), "always COGNITO: the exported kind is Cognito's"),
        Carried(("referenceAuth",), "always COGNITO: referenceAuth refers to Cognito pools"),
    ),
    Row(
        f"{IP}.identityPoolName",
        _xp("identityPoolName", kind="Pool spec.forProvider"),
        _NO_ACK_IDENTITY,
        _GEN2_IDENTITY,
    ),
    Row(
        f"{IP}.unauthenticatedLogin",
        _xp("allowUnauthenticatedIdentities", kind="Pool spec.forProvider"),
        _NO_ACK_IDENTITY,
        _GEN2_IDENTITY,
    ),
    Row(
        f"{UP}.forgotPassword.deliveryMethod",
        _xp(
            "accountRecoverySetting.recoveryMechanism",
            note="EMAIL → verified_email, SMS → verified_phone_number",
        ),
        _ack(
            "accountRecoverySetting.recoveryMechanisms",
            note="EMAIL → verified_email, SMS → verified_phone_number",
        ),
        _GEN2_POOL,
    ),
    Row(f"{UP}.forgotPassword.emailSettings.emailMessage", _FORGOT_MESSAGE, _FORGOT_MESSAGE, _FORGOT_MESSAGE),
    Row(f"{UP}.forgotPassword.emailSettings.emailSubject", _FORGOT_MESSAGE, _FORGOT_MESSAGE, _FORGOT_MESSAGE),
    Row(f"{UP}.forgotPassword.smsSettings.smsMessage", _FORGOT_MESSAGE, _FORGOT_MESSAGE, _FORGOT_MESSAGE),
    Row(f"{UP}.mfa.mfaMode", _xp("mfaConfiguration"), _ack("mfaConfiguration"), _GEN2_POOL),
    Row(
        f"{UP}.mfa.settings.mfaTypes",
        _xp(
            "softwareTokenMfaConfiguration.enabled",
            "smsConfiguration.snsCallerArn",
            note="TOTP → softwareTokenMfaConfiguration; SMS → smsConfiguration (the SNS role Amplify made)",
        ),
        _ack(
            "smsConfiguration.snsCallerARN",
            note="SMS only: ACK's UserPool has no TOTP setting, so TOTP stays as Cognito has it",
        ),
        _GEN2_POOL,
    ),
    Row(
        f"{UP}.mfa.settings.smsMessage",
        _xp("smsAuthenticationMessage"),
        _ack("smsAuthenticationMessage"),
        _GEN2_POOL,
    ),
    Row(
        f"{OA}.domainPrefix",
        Carried(("UserPoolDomain spec.forProvider.domain",), "also its crossplane.io/external-name"),
        _NO_ACK_DOMAIN,
        _GEN2_POOL,
    ),
    Row(
        f"{OA}.oAuthGrantType",
        _xp(
            "allowedOauthFlows",
            "allowedOauthFlowsUserPoolClient",
            kind=_XP_CLIENT,
            note="CODE → code, IMPLICIT → implicit",
        ),
        _NO_ACK_CLIENT,
        _GEN2_CLIENT,
    ),
    Row(
        f"{OA}.oAuthScopes",
        _xp(
            "allowedOauthScopes",
            kind=_XP_CLIENT,
            note="as Cognito spells them (openid, aws.cognito.signin.user.admin)",
        ),
        _NO_ACK_CLIENT,
        _GEN2_CLIENT,
    ),
    Row(f"{OA}.redirectSignInURIs", _xp("callbackUrls", kind=_XP_CLIENT), _NO_ACK_CLIENT, _GEN2_CLIENT),
    Row(f"{OA}.redirectSignOutURIs", _xp("logoutUrls", kind=_XP_CLIENT), _NO_ACK_CLIENT, _GEN2_CLIENT),
    *_social_rows(),
    Row(
        f"{UP}.passwordPolicy.additionalConstraints",
        _xp(
            "passwordPolicy.requireNumbers",
            "passwordPolicy.requireLowercase",
            "passwordPolicy.requireSymbols",
            "passwordPolicy.requireUppercase",
        ),
        _ack(
            "policies.passwordPolicy.requireNumbers",
            "policies.passwordPolicy.requireLowercase",
            "policies.passwordPolicy.requireSymbols",
            "policies.passwordPolicy.requireUppercase",
        ),
        _GEN2_POOL,
    ),
    Row(
        f"{UP}.passwordPolicy.minimumLength",
        _xp("passwordPolicy.minimumLength"),
        _ack("policies.passwordPolicy.minimumLength"),
        _GEN2_POOL,
    ),
    Row(
        f"{UP}.requiredSignUpAttributes",
        _xp("schema", note="each attribute with required: true"),
        _ack("schema", note="each attribute with required: true"),
        _GEN2_POOL,
    ),
    Row(
        f"{UP}.signInMethod",
        _xp("usernameAttributes", note="USERNAME → none; EMAIL_AND_PHONE_NUMBER → both"),
        _ack("usernameAttributes", note="USERNAME → none; EMAIL_AND_PHONE_NUMBER → both"),
        _GEN2_POOL,
    ),
    Row(f"{UP}.userPoolName", _xp("name"), _ack("name"), _GEN2_POOL),
    Row(
        f"{UP}.verificationMessage.deliveryMethod",
        _xp("autoVerifiedAttributes", note="EMAIL → email, SMS → phone_number"),
        _ack("autoVerifiedAttributes", note="EMAIL → email, SMS → phone_number"),
        _GEN2_POOL,
    ),
    Row(
        f"{UP}.verificationMessage.emailSettings.emailMessage",
        _xp("verificationMessageTemplate.emailMessage"),
        _ack("verificationMessageTemplate.emailMessage"),
        _GEN2_POOL,
    ),
    Row(
        f"{UP}.verificationMessage.emailSettings.emailSubject",
        _xp("verificationMessageTemplate.emailSubject"),
        _ack("verificationMessageTemplate.emailSubject"),
        _GEN2_POOL,
    ),
    Row(
        f"{UP}.verificationMessage.smsSettings.smsMessage",
        _xp("verificationMessageTemplate.smsMessage"),
        _ack("verificationMessageTemplate.smsMessage"),
        _GEN2_POOL,
    ),
)

BY_PATH: dict[str, Row] = {row.path: row for row in ROWS}


@dataclass(frozen=True)
class Implicit:
    """What Amplify makes with no ``resourceConfig`` field of its own, and where it goes."""

    what: str
    crossplane: str
    ack: str
    gen2: str


IMPLICIT: tuple[Implicit, ...] = (
    Implicit(
        "the web app client (no secret)",
        "UserPoolClient, external name = its client id",
        "not held: ACK has no UserPoolClient here",
        "referenceAuth userPoolClientId",
    ),
    Implicit(
        "the native app client (with a secret)",
        "UserPoolClient, external name = its client id; its secret goes to the connection Secret "
        "(writeConnectionSecretToRef, key attribute.client_secret), written by the provider, never printed",
        "not held: ACK has no UserPoolClient here",
        "not referenced (referenceAuth takes one client: the web client)",
    ),
    Implicit(
        "the identity pool's Cognito providers (the two clients)",
        "Pool spec.forProvider.cognitoIdentityProviders",
        "not held: ACK has no identity pool",
        "referenceAuth identityPoolId",
    ),
    Implicit(
        "the authenticated and unauthenticated roles",
        "PoolRolesAttachment spec.forProvider.roles, external name = the identity pool id",
        "not held: ACK has no identity pool",
        "referenceAuth authRoleArn, unauthRoleArn",
    ),
    Implicit(
        "attribute mapping and authorize scopes of each social provider",
        "IdentityProvider (Observe: Crossplane reads them into status.atProvider)",
        "not held: ACK has no IdentityProvider",
        "stays in the user pool",
    ),
)


# ---- the walk -----------------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (through Optional, Annotated, list...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def leaf_paths(model: type[BaseModel] = ResourceConfig, prefix: str = RC) -> Iterator[str]:
    """Every leaf field of ``model`` as a spec path (a Secret reference is one leaf)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        models = [m for m in _models_in(info.annotation) if m is not SecretKeyRef]
        if models:
            for sub in models:
                yield from leaf_paths(sub, path)
        else:
            yield path


def unnamed_fields() -> list[str]:
    """Leaves of ``ResourceConfig`` the table has no row for (a test wants none)."""
    return [path for path in leaf_paths() if path not in BY_PATH]


def set_paths(config: Any, prefix: str = RC) -> Iterator[str]:
    """The leaf paths set in a ``spec.resourceConfig`` dict (spec keys)."""
    if not isinstance(config, dict):
        return
    for key, value in config.items():
        path = f"{prefix}.{key}"
        if path in BY_PATH:
            if value not in (None, "", [], {}):
                yield path
        elif isinstance(value, dict):
            yield from set_paths(value, path)


# ---- the docs -----------------------------------------------------------------------------------


def _cell(target: Target) -> str:
    if isinstance(target, NotCarried):
        return f"not carried: {target.reason}"
    text = "<br>".join(f"`{p}`" for p in target.paths)
    return f"{text}<br>({target.note})" if target.note else text


def markdown() -> str:
    """The table as Markdown (``docs/reference/handoff-mapping.md``)."""
    lines = [
        "# Hand-off mapping",
        "",
        "<!-- Generated from operator/backendauth_operator/commands/handoff_mapping.py by",
        "     `python -m backendauth_operator.commands.handoff_mapping > docs/reference/handoff-mapping.md`;",
        "     a test fails when this file differs from what the table renders. -->",
        "",
        "Where `backendauth-operator export --to crossplane|ack|gen2` puts each field of a",
        "BackendAuth's `spec.resourceConfig`. Values come from Cognito itself (read-only calls), not",
        "from the spec. Crossplane: the managed resources of Upbound's AWS provider",
        "(`cognitoidp.aws.upbound.io`, `cognitoidentity.aws.upbound.io`); with `--manage`, every",
        "field listed is set in `spec.forProvider`. ACK: `cognitoidentityprovider.services.k8s.aws`",
        "UserPool. Gen 2: `referenceAuth` in `amplify/auth/resource.ts`.",
        "",
        "| field | Crossplane | ACK | Gen 2 |",
        "|---|---|---|---|",
    ]
    for row in ROWS:
        cells = [
            f"`{row.path.removeprefix(RC + '.')}`",
            _cell(row.crossplane),
            _cell(row.ack),
            _cell(row.gen2),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "## Made by Amplify without a field of its own",
        "",
        "| resource | Crossplane | ACK | Gen 2 |",
        "|---|---|---|---|",
    ]
    for item in IMPLICIT:
        lines.append(f"| {item.what} | {item.crossplane} | {item.ack} | {item.gen2} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(markdown())
