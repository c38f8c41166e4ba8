"""The one typed description of a BackendAuth: spec, status, validation and the boto3 request.

Everything that must agree is derived from the models below:

* the CRD's ``openAPIV3Schema`` (``commands/crd.py`` translates ``model_json_schema()``);
* the CEL rules of the CRD and the operator's own checks: each :class:`Rule` and
  :class:`CrossRule` is written once and yields both a ``x-kubernetes-validations`` entry and a
  Python check, so ``kubectl apply`` and the operator refuse the same things with the same words;
* the keyword arguments of ``create_backend_auth`` / ``update_backend_auth``
  (:func:`create_backend_auth_kwargs`, :func:`update_backend_auth_kwargs`).

Spec keys are the boto3 keys in lowerCamelCase. The boto3 key of a field is its
alias with the first letter upper-cased; ``mfaMode`` → ``MFAMode`` is the only exception.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# --------------------------------------------------------------------------------------------
# Rules written once, enforced twice (CEL in the CRD, Python in the operator)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A rule on one value: a CEL expression for the CRD and the same check in Python.

    Used as ``Annotated[str, Rule(...)]``. The message names no field: the API server and the
    operator both prefix it with the field's path.
    """

    cel: str
    message: str
    check: Callable[[Any], bool]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any) -> Any:
            if not self.check(value):
                raise PydanticCustomError("spec_rule", "{message}", {"message": self.message, "field": ""})
            return value

        return core_schema.no_info_after_validator_function(validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("x-kubernetes-validations", []).append(
            {"rule": self.cel, "message": self.message}
        )
        return json_schema


@dataclass(frozen=True)
class CrossRule:
    """A rule across fields of one object, reported at ``field`` (relative to that object)."""

    cel: str
    message: str
    field: str
    check: Callable[[Any], bool]


def exactly_one(first: str, second: str) -> CrossRule:
    """Exactly one of two optional fields (spec keys) must be set."""
    return CrossRule(
        cel=f"has(self.{first}) != has(self.{second})",
        message=f"exactly one of {first} and {second} must be set",
        field=second,
        check=lambda m: (getattr(m, to_snake(first)) is None) != (getattr(m, to_snake(second)) is None),
    )


def kept_once_set(field: str, why: str) -> CrossRule:
    """A transition rule: an optional block that AWS cannot take away stays once set (the API
    server checks it on update; a new object may leave it out)."""
    return CrossRule(
        cel=f"!has(oldSelf.{field}) || has(self.{field})",
        message=f"{field} cannot be removed once set: {why}",
        field=field,
        check=lambda _: True,
    )


_AWS_KEEPS = "UpdateBackendAuth changes only what it is sent, so AWS would keep it"

IMMUTABLE = Rule(cel="self == oldSelf", message="is immutable", check=lambda _: True)
"""A transition rule: only the API server can check it, as only it sees the old object."""


class SpecModel(BaseModel):
    """Base of every spec model: frozen, camelCase keys, unknown keys refused, cross-field rules."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,  # as the API server: 0 is no boolean, "12" no number
        alias_generator=to_camel,
        populate_by_name=True,
        json_schema_extra=lambda schema, cls: _add_cross_rules(schema, cls),
    )

    cross_rules: ClassVar[tuple[CrossRule, ...]] = ()

    @model_validator(mode="after")
    def _check_cross_rules(self) -> SpecModel:
        for rule in self.cross_rules:
            if not rule.check(self):
                raise PydanticCustomError(
                    "spec_rule", "{message}", {"message": rule.message, "field": rule.field}
                )
        return self


def _add_cross_rules(schema: dict[str, Any], cls: Any) -> None:
    rules: tuple[CrossRule, ...] = getattr(cls, "cross_rules", ())
    if rules:
        schema.setdefault("x-kubernetes-validations", []).extend(
            {"rule": r.cel, "message": r.message, "fieldPath": "." + r.field} for r in rules
        )


# --------------------------------------------------------------------------------------------
# Value rules (Cognito refuses these anyway; refusing them here names the field)
# --------------------------------------------------------------------------------------------

CODE_PLACEHOLDER = "{####}"

HAS_CODE = Rule(
    cel="self.contains('{####}')",
    message="must contain the verification code placeholder {####}",
    check=lambda v: CODE_PLACEHOLDER in v,
)

# One set of expressions for the CEL rule and the operator's own check, written so that RE2
# (the API server) and Python read them alike: no \s or \w, no "$" before a final newline
# (whitespace is refused first), schemes case-insensitive.
_URI_FORBIDDEN = r"[ \t\r\n#]"  # whitespace anywhere; a fragment, which Cognito refuses
_URI_HTTPS = r"(?i)^https://.+$"
_URI_LOCAL = r"(?i)^http://(localhost|127[.]0[.]0[.]1|\[::1\])(:[0-9]+)?([/?].*)?$"
_URI_UNSAFE = r"(?i)^(https?|data|javascript|file|vbscript|blob):"
_URI_APP = r"^[A-Za-z][A-Za-z0-9+.-]*:/.+$"  # myapp://callback, com.example.app:/oauth2redirect


def _redirect_uri_ok(uri: str) -> bool:
    def m(pattern: str) -> bool:
        return re.search(pattern, uri) is not None

    if m(_URI_FORBIDDEN):
        return False
    return m(_URI_HTTPS) or m(_URI_LOCAL) or (not m(_URI_UNSAFE) and m(_URI_APP))


def _cel(pattern: str) -> str:
    return "'" + pattern.replace("\\", "\\\\") + "'"


REDIRECT_URI = Rule(
    cel=(
        f"!self.matches({_cel(_URI_FORBIDDEN)}) && (self.matches({_cel(_URI_HTTPS)}) "
        f"|| self.matches({_cel(_URI_LOCAL)}) "
        f"|| (!self.matches({_cel(_URI_UNSAFE)}) && self.matches({_cel(_URI_APP)})))"
    ),
    message=(
        "must be an absolute URI without spaces or a fragment: https://..., http://localhost... "
        "for local testing, or an app scheme such as myapp://callback"
    ),
    check=_redirect_uri_ok,
)

# Cognito's pattern [\w\s+=,.@-]+, spelled out in ASCII: the API server's regular expressions
# (RE2) read \w as ASCII only, while Python's and pydantic's read it as Unicode.
_NAME_CHARACTERS = r"^[A-Za-z0-9_\t\n\f\r +=,.@-]+$"
_USER_POOL_NAME_PATTERN = _NAME_CHARACTERS
# A Kubernetes object name (Secret, ConfigMap): lower-case DNS subdomain.
_DNS_SUBDOMAIN = r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
_PATTERN_HINTS = {
    r"^[a-z]{2}(-[a-z]+)+-[0-9]+$": "must be an AWS region such as eu-west-1",
    r"^[a-z0-9]+$": "must be lowercase letters and digits, as Amplify app ids are (e.g. d1a2b3c4d5e6f7)",
    r"^[A-Za-z0-9]+$": "must be letters and digits only",
    r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$": (
        "must be a DNS label: lowercase letters, digits and hyphens, not starting or ending with a hyphen"
    ),
    _USER_POOL_NAME_PATTERN: "may contain only letters, digits, spaces and the characters + = , . @ -",
    _DNS_SUBDOMAIN: "must be a Kubernetes object name: lowercase letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
    r"^[-._a-zA-Z0-9]+$": "must be a Secret key: letters, digits, '-', '_' and '.'",
}


# --------------------------------------------------------------------------------------------
# Enums, spelled exactly as AWS spells them
# --------------------------------------------------------------------------------------------

AuthResources = Literal["USER_POOL_ONLY", "IDENTITY_POOL_AND_USER_POOL"]
DeliveryMethod = Literal["EMAIL", "SMS"]
MfaMode = Literal["ON", "OFF", "OPTIONAL"]
MfaType = Literal["SMS", "TOTP"]
OAuthGrantType = Literal["CODE", "IMPLICIT"]
OAuthScope = Literal["PHONE", "EMAIL", "OPENID", "PROFILE", "AWS_COGNITO_SIGNIN_USER_ADMIN"]
PasswordConstraint = Literal["REQUIRE_DIGIT", "REQUIRE_LOWERCASE", "REQUIRE_SYMBOL", "REQUIRE_UPPERCASE"]
SignUpAttribute = Literal[
    "ADDRESS", "BIRTHDATE", "EMAIL", "FAMILY_NAME", "GENDER", "GIVEN_NAME", "LOCALE", "MIDDLE_NAME",
    "NAME", "NICKNAME", "PHONE_NUMBER", "PICTURE", "PREFERRED_USERNAME", "PROFILE", "UPDATED_AT",
    "WEBSITE", "ZONE_INFO",
]  # fmt: skip
SignInMethod = Literal["EMAIL", "EMAIL_AND_PHONE_NUMBER", "PHONE_NUMBER", "USERNAME"]
DeletionPolicy = Literal["Retain", "Delete"]
AdoptionPolicy = Literal["Create", "AdoptOrCreate"]
DriftPolicy = Literal["Correct", "Report"]

# --------------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------------

SmsMessage = Annotated[str, Field(min_length=6, max_length=140), HAS_CODE]
EmailMessage = Annotated[str, Field(min_length=6, max_length=20000), HAS_CODE]
EmailSubject = Annotated[str, Field(min_length=1, max_length=140)]
_DNS_LABEL = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
DomainPrefix = Annotated[str, Field(min_length=1, max_length=63, pattern=_DNS_LABEL)]


class SecretKeyRef(SpecModel):
    """A key of a Secret in the BackendAuth's own namespace; read at call time, never copied."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=_DNS_SUBDOMAIN,
        description="Name of the Secret (same namespace).",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key within the Secret's data.",
    )


class EmailSettings(SpecModel):
    """The email that carries a verification code."""

    email_message: EmailMessage | None = Field(None, description="Body; must contain {####}.")
    email_subject: EmailSubject | None = Field(None, description="Subject, 1-140 characters.")


class SmsSettings(SpecModel):
    """The SMS that carries a verification code."""

    sms_message: SmsMessage | None = Field(None, description="6-140 characters; must contain {####}.")


_SMS_NEEDS_SETTINGS = CrossRule(
    cel="self.deliveryMethod != 'SMS' || has(self.smsSettings)",
    message="smsSettings is required when deliveryMethod is SMS",
    field="smsSettings",
    check=lambda m: m.delivery_method != "SMS" or m.sms_settings is not None,
)
_EMAIL_NEEDS_SETTINGS = CrossRule(
    cel="self.deliveryMethod != 'EMAIL' || has(self.emailSettings)",
    message="emailSettings is required when deliveryMethod is EMAIL",
    field="emailSettings",
    check=lambda m: m.delivery_method != "EMAIL" or m.email_settings is not None,
)


class _CodeDelivery(SpecModel):
    """How a verification code is sent; the settings of the chosen method are required."""

    cross_rules = (_SMS_NEEDS_SETTINGS, _EMAIL_NEEDS_SETTINGS)

    delivery_method: DeliveryMethod = Field(description="How the code is sent.")
    email_settings: EmailSettings | None = None
    sms_settings: SmsSettings | None = None


class ForgotPassword(_CodeDelivery):
    """Deprecated by AWS (use verificationMessage), still accepted by the API."""


class VerificationMessage(_CodeDelivery):
    """How sign-up verification codes are sent."""


class MfaSettings(SpecModel):
    """Which second factors are offered."""

    mfa_types: list[MfaType] | None = Field(None, max_length=2, description="SMS and/or TOTP.")
    sms_message: SmsMessage | None = Field(None, description="6-140 characters; must contain {####}.")


class Mfa(SpecModel):
    """Multi-factor authentication."""

    cross_rules = (
        CrossRule(
            cel="self.mfaMode == 'OFF' || (has(self.settings) && has(self.settings.mfaTypes) "
            "&& size(self.settings.mfaTypes) > 0)",
            message="settings.mfaTypes is required when mfaMode is ON or OPTIONAL",
            field="settings.mfaTypes",
            check=lambda m: m.mfa_mode == "OFF" or bool(m.settings and m.settings.mfa_types),
        ),
    )

    mfa_mode: MfaMode = Field(description="ON, OFF or OPTIONAL.")
    settings: MfaSettings | None = None


class PasswordPolicy(SpecModel):
    """Password rules of the user pool."""

    additional_constraints: list[PasswordConstraint] | None = Field(None, max_length=4)
    minimum_length: int = Field(ge=6, le=99, description="6-99 characters (Cognito's bounds).")


class SocialProvider(SpecModel):
    """An OAuth identity provider (Facebook, Google, Login with Amazon)."""

    cross_rules = (exactly_one("clientSecret", "clientSecretRef"),)

    client_id: str = Field(min_length=1, max_length=1024, description="The provider's app client id.")
    client_secret: Annotated[SecretStr, Field(min_length=1, max_length=4096)] | None = Field(
        None,
        description="Deprecated: an inline secret ends up in Git and in kubectl's last-applied "
        "annotation. Use clientSecretRef.",
    )
    client_secret_ref: SecretKeyRef | None = Field(None, description="Secret key holding the client secret.")


class AppleProvider(SpecModel):
    """Sign in with Apple."""

    cross_rules = (exactly_one("privateKey", "privateKeyRef"),)

    client_id: str = Field(min_length=1, max_length=1024, description="The Services ID.")
    key_id: str = Field(min_length=1, max_length=256, description="The key's id.")
    team_id: str = Field(min_length=1, max_length=256, description="The Apple team id.")
    private_key: Annotated[SecretStr, Field(min_length=1, max_length=8192)] | None = Field(
        None,
        description="Deprecated: an inline key ends up in Git and in kubectl's last-applied "
        "annotation. Use privateKeyRef.",
    )
    private_key_ref: SecretKeyRef | None = Field(None, description="Secret key holding the .p8 key.")


class SocialProviderSettings(SpecModel):
    """Federated identity providers; a provider cannot be removed once set (AWS would keep it)."""

    cross_rules = tuple(
        kept_once_set(provider, _AWS_KEEPS)
        for provider in ("facebook", "google", "loginWithAmazon", "signInWithApple")
    )

    facebook: SocialProvider | None = None
    google: SocialProvider | None = None
    login_with_amazon: SocialProvider | None = None
    sign_in_with_apple: AppleProvider | None = None


class OAuth(SpecModel):
    """The hosted UI / OAuth 2.0 settings."""

    domain_prefix: DomainPrefix | None = Field(
        None, description="Hosted UI domain prefix: a DNS label of lowercase letters, digits and hyphens."
    )
    o_auth_grant_type: OAuthGrantType
    o_auth_scopes: list[OAuthScope] = Field(min_length=1, max_length=5)
    redirect_sign_in_uris: list[Annotated[str, Field(min_length=1, max_length=1024), REDIRECT_URI]] = Field(
        alias="redirectSignInURIs", min_length=1, max_length=100
    )
    redirect_sign_out_uris: list[Annotated[str, Field(min_length=1, max_length=1024), REDIRECT_URI]] = Field(
        alias="redirectSignOutURIs", min_length=1, max_length=100
    )
    social_provider_settings: SocialProviderSettings | None = None

    cross_rules = (
        kept_once_set("domainPrefix", _AWS_KEEPS),
        kept_once_set("socialProviderSettings", _AWS_KEEPS),
    )


class UserPoolConfigs(SpecModel):
    """The Cognito user pool. Removing ``mfa`` turns MFA off; the other optional blocks cannot be
    removed once set (AWS would keep them)."""

    cross_rules = tuple(
        kept_once_set(block, _AWS_KEEPS)
        for block in ("forgotPassword", "oAuth", "passwordPolicy", "verificationMessage")
    )

    forgot_password: ForgotPassword | None = Field(None, description="Deprecated by AWS; still accepted.")
    mfa: Mfa | None = None
    o_auth: OAuth | None = None
    password_policy: PasswordPolicy | None = None
    required_sign_up_attributes: Annotated[list[SignUpAttribute], IMMUTABLE] = Field(
        max_length=17, description="Immutable: Cognito cannot change required attributes."
    )
    sign_in_method: Annotated[SignInMethod, IMMUTABLE] = Field(description="Immutable.")
    user_pool_name: Annotated[str, IMMUTABLE] = Field(
        min_length=1, max_length=128, pattern=_USER_POOL_NAME_PATTERN,
        description="Immutable. 1-128 characters of letters, digits, spaces and +=,.@-",
    )  # fmt: skip
    verification_message: VerificationMessage | None = None


class IdentityPoolConfigs(SpecModel):
    """The Cognito identity pool."""

    identity_pool_name: Annotated[str, IMMUTABLE] = Field(
        min_length=1, max_length=128, pattern=_NAME_CHARACTERS,
        description="Immutable. Letters, digits, underscores and spaces.",
    )  # fmt: skip
    unauthenticated_login: bool = Field(description="Allow guest (unauthenticated) identities.")


class ResourceConfig(SpecModel):
    """Mirrors boto3's ``ResourceConfig`` of ``create_backend_auth``."""

    cross_rules = (
        CrossRule(
            cel="self.authResources != 'IDENTITY_POOL_AND_USER_POOL' || has(self.identityPoolConfigs)",
            message="identityPoolConfigs is required when authResources is IDENTITY_POOL_AND_USER_POOL",
            field="identityPoolConfigs",
            check=lambda m: (
                m.auth_resources != "IDENTITY_POOL_AND_USER_POOL" or m.identity_pool_configs is not None
            ),
        ),
        kept_once_set("identityPoolConfigs", "the identity pool cannot be deleted by an update"),
    )

    auth_resources: AuthResources
    identity_pool_configs: IdentityPoolConfigs | None = None
    service: Literal["COGNITO"]
    user_pool_configs: UserPoolConfigs


class Outputs(SpecModel):
    """Publishing the auth resource's ids."""

    config_map_name: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        pattern=_DNS_SUBDOMAIN,
        description="A ConfigMap in the BackendAuth's namespace that the operator writes and owns, with "
        "the keys userPoolId, appClientIdWeb, appClientId, identityPoolId and region.",
    )


# --------------------------------------------------------------------------------------------
# Import: existing Cognito pools linked to the Amplify backend environment (ImportBackendAuth)
# --------------------------------------------------------------------------------------------

# The ids as Cognito spells them (its own patterns, in ASCII for RE2 and Python alike).
USER_POOL_ID_PATTERN = r"^[A-Za-z0-9-]+_[0-9a-zA-Z]+$"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_+]+$"
IDENTITY_POOL_ID_PATTERN = r"^[A-Za-z0-9-]+:[0-9a-f-]+$"
_PATTERN_HINTS.update(
    {
        USER_POOL_ID_PATTERN: "must be a Cognito user pool id such as eu-west-1_AbCdEf123",
        CLIENT_ID_PATTERN: "must be a Cognito app client id: letters, digits, '_' and '+'",
        IDENTITY_POOL_ID_PATTERN: (
            "must be a Cognito identity pool id such as eu-west-1:00000000-0000-0000-0000-000000000000"
        ),
    }
)


class ConfigMapKeyRef(SpecModel):
    """A key of a ConfigMap in the BackendAuth's own namespace; read at each step."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=_DNS_SUBDOMAIN,
        description="Name of the ConfigMap (same namespace).",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key within the ConfigMap's data.",
    )


class IdSource(SpecModel):
    """Where an id is read from: a ConfigMap key or a Secret key, in the BackendAuth's namespace
    (a Crossplane connection Secret, an ACK FieldExport's ConfigMap or Secret...)."""

    cross_rules = (exactly_one("configMapKeyRef", "secretKeyRef"),)

    config_map_key_ref: ConfigMapKeyRef | None = Field(None, description="A ConfigMap key holding the id.")
    secret_key_ref: SecretKeyRef | None = Field(None, description="A Secret key holding the id.")


@dataclass(frozen=True)
class ImportId:
    """One id of an import: its spec key, the pattern Cognito gives it, whether it is needed."""

    key: str
    pattern: str
    required: bool = True

    @property
    def source_key(self) -> str:
        return f"{self.key}From"


IMPORT_IDS = (
    ImportId("userPoolId", USER_POOL_ID_PATTERN),
    ImportId("webClientId", CLIENT_ID_PATTERN),
    ImportId("nativeClientId", CLIENT_ID_PATTERN),
    ImportId("identityPoolId", IDENTITY_POOL_ID_PATTERN, required=False),
)
"""The ids ImportBackendAuth takes, in its order (the spec key is the boto3 key in camelCase)."""


def _one_source(id_: ImportId) -> CrossRule:
    literal, source = id_.key, id_.source_key
    if id_.required:
        return exactly_one(literal, source)
    return CrossRule(
        cel=f"!(has(self.{literal}) && has(self.{source}))",
        message=f"at most one of {literal} and {source} may be set",
        field=source,
        check=lambda m: getattr(m, to_snake(literal)) is None or getattr(m, to_snake(source)) is None,
    )


def _pool_id(description: str) -> Any:
    return Field(None, min_length=1, max_length=55, pattern=USER_POOL_ID_PATTERN, description=description)


class ImportConfig(SpecModel):
    """Existing Cognito pools to link to the backend environment with ImportBackendAuth. Each id
    is given as a literal or read from a ConfigMap or Secret key (``...From``), exactly one of
    the two; ``identityPoolId`` is optional. The ids are shown in status and events (they are
    identifiers, not credentials)."""

    cross_rules = tuple(_one_source(id_) for id_ in IMPORT_IDS)

    user_pool_id: str | None = _pool_id("The Cognito user pool id, e.g. eu-west-1_AbCdEf123.")
    user_pool_id_from: IdSource | None = Field(None, description="Read the user pool id from a key.")
    web_client_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=CLIENT_ID_PATTERN,
        description="The web app client id: a client of the user pool without a client secret.",
    )  # fmt: skip
    web_client_id_from: IdSource | None = Field(None, description="Read the web client id from a key.")
    native_client_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=CLIENT_ID_PATTERN,
        description="The native app client id: a client of the user pool (a secret is allowed).",
    )  # fmt: skip
    native_client_id_from: IdSource | None = Field(None, description="Read the native client id from a key.")
    identity_pool_id: str | None = Field(
        None, min_length=1, max_length=55, pattern=IDENTITY_POOL_ID_PATTERN,
        description="Optional: the Cognito identity pool id; it must list both app clients.",
    )  # fmt: skip
    identity_pool_id_from: IdSource | None = Field(None, description="Read the identity pool id from a key.")

    def literal(self, key: str) -> str | None:
        """The literal value of the id ``key`` (a spec key), if given as one."""
        value = getattr(self, to_snake(key))
        return value if isinstance(value, str) else None

    def source(self, key: str) -> IdSource | None:
        """Where the id ``key`` is read from, if not a literal."""
        value = getattr(self, to_snake(f"{key}From"))
        return value if isinstance(value, IdSource) else None


def _has_import(m: Any) -> bool:
    return getattr(m, "import_", None) is not None


class BackendAuthSpec(SpecModel):
    """The desired state of one Amplify backend auth resource."""

    cross_rules = (
        CrossRule(
            # A transition rule: evaluated by the API server only when an old object exists.
            cel="has(self.region) == has(oldSelf.region)",
            message="region cannot be added or removed once the BackendAuth exists",
            field="region",
            check=lambda _: True,
        ),
        # ``import`` is a reserved word of CEL: the API server spells the field __import__ there.
        CrossRule(
            cel="has(self.__import__) != has(self.resourceConfig)",
            message="exactly one of resourceConfig and import must be set",
            field="import",
            check=lambda m: _has_import(m) != (m.resource_config is not None),
        ),
        CrossRule(
            cel="!has(self.__import__) || !has(self.resourceName)",
            message="resourceName is not given with import: AWS names the auth resource it links",
            field="resourceName",
            check=lambda m: not _has_import(m) or m.resource_name is None,
        ),
        CrossRule(
            cel="has(self.__import__) || has(self.resourceName)",
            message="resourceName is required with resourceConfig",
            field="resourceName",
            check=lambda m: _has_import(m) or m.resource_name is not None,
        ),
        CrossRule(
            # A transition rule: evaluated by the API server only when an old object exists.
            cel="has(self.__import__) == has(oldSelf.__import__)",
            message="a BackendAuth cannot change between import and resourceConfig once it exists; "
            "create another BackendAuth instead",
            field="import",
            check=lambda _: True,
        ),
    )

    app_id: Annotated[str, IMMUTABLE] = Field(
        min_length=1, max_length=20, pattern=r"^[a-z0-9]+$", description="Amplify app id. Immutable."
    )
    backend_environment_name: Annotated[str, IMMUTABLE] = Field(
        min_length=1, max_length=255, description="Amplify backend environment. Immutable."
    )
    resource_name: (
        Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9]+$"), IMMUTABLE] | None
    ) = Field(
        None,
        description="Name of the auth resource in the Amplify project (letters and digits). Immutable. "
        "Required with resourceConfig; not given with import (AWS names the auth resource it links).",
    )
    region: Annotated[str, Field(max_length=32, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"), IMMUTABLE] | None = (
        Field(None, description="AWS region; defaults to the operator's AWS_REGION. Immutable.")
    )
    deletion_policy: DeletionPolicy | None = Field(
        None,
        description="Retain (keep the Cognito pools when the BackendAuth is deleted) or Delete; "
        "defaults to the operator's BACKENDAUTH_DEFAULT_DELETION_POLICY.",
    )
    adoption_policy: AdoptionPolicy | None = Field(
        None,
        description="Create (default): an auth resource of this name that the operator did not create "
        "stops the BackendAuth with reason AlreadyExists. AdoptOrCreate: take it over with no create "
        "call, then update it to this spec if it differs.",
    )
    drift_policy: DriftPolicy | None = Field(
        None,
        description="When AWS's configuration differs from this spec: Correct (default) sends one "
        "UpdateBackendAuth; Report only shows the differing paths in status.drift (Ready=False, "
        "reason Drifted).",
    )
    outputs: Outputs | None = Field(None, description="Where to publish the ids apps need.")
    resource_config: ResourceConfig | None = Field(
        None, description="The auth resource to create and keep as this spec says (not with import)."
    )
    import_: ImportConfig | None = Field(
        None,
        alias="import",
        description="Existing Cognito pools to link with ImportBackendAuth, instead of resourceConfig. "
        "AWS shows the link in GetBackend; the operator never changes the pools.",
    )

    def secret_refs(self) -> list[SecretKeyRef]:
        """Every Secret key this spec reads, in a stable order (those of ``resourceConfig``:
        an import's ids are read at each step, see :mod:`import_variant`)."""
        if self.resource_config is None:
            return []
        oauth = self.resource_config.user_pool_configs.o_auth
        social = oauth.social_provider_settings if oauth else None
        if social is None:
            return []
        refs = [p.client_secret_ref for p in (social.facebook, social.google, social.login_with_amazon) if p]
        refs.append(social.sign_in_with_apple.private_key_ref if social.sign_in_with_apple else None)
        return [r for r in refs if r is not None]


# --------------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------------


class StatusModel(BaseModel):
    """Base of the status models: camelCase keys; unknown keys kept (older operators wrote them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    """A kstatus-style condition (Ready, Reconciling, Stalled)."""

    type: str = Field(description="Ready, Reconciling or Stalled.")
    status: Literal["True", "False", "Unknown"] = Field(
        description="Exactly one of Ready, Reconciling and Stalled is True."
    )
    reason: str = Field("", description="A CamelCase word: why the condition has this status.")
    message: str = Field("", description="What happens, for people: the job, the field, AWS's words.")
    observed_generation: int | None = Field(None, description="The generation this condition describes.")
    last_transition_time: str | None = Field(None, description="RFC 3339 time of the last status change.")


@dataclass(frozen=True)
class AmplifyMetaKey:
    """Marks an :class:`AuthOutputs` field with the key that holds its value in amplify-meta
    (``auth`` → resource → ``output``, as the Amplify CLI writes it and GetBackend returns it)."""

    key: str


class AuthOutputs(StatusModel):
    """The ids apps need, as AWS reports them (never a secret)."""

    user_pool_id: Annotated[str | None, AmplifyMetaKey("UserPoolId")] = Field(
        None, description="The Cognito user pool id."
    )
    app_client_id_web: Annotated[str | None, AmplifyMetaKey("AppClientIDWeb")] = Field(
        None, description="The web app client id."
    )
    app_client_id: Annotated[str | None, AmplifyMetaKey("AppClientID")] = Field(
        None, description="The native app client id."
    )
    identity_pool_id: Annotated[str | None, AmplifyMetaKey("IdentityPoolId")] = Field(
        None, description="The Cognito identity pool id."
    )


AMPLIFY_META_OUTPUTS = {
    mark.key: field.alias or name
    for name, field in AuthOutputs.model_fields.items()
    for mark in field.metadata
    if isinstance(mark, AmplifyMetaKey)
}
"""amplify-meta's output key → the :class:`AuthOutputs` key (``UserPoolId`` → ``userPoolId``)."""


class BackendAuthStatus(StatusModel):
    """What the operator last saw and did."""

    observed_generation: int | None = Field(
        None, description="The generation the status describes; 0 until the operator has seen the object."
    )
    app_id: str | None = Field(None, description="The app id as AWS returned it.")
    backend_environment_name: str | None = Field(None, description="The environment as AWS returned it.")
    resource_name: str | None = Field(
        None,
        description="For an import: the name AWS gave the auth resource it linked, as GetBackend shows it.",
    )
    job_id: str | None = Field(None, description="The latest AWS job.")
    operation: str | None = Field(None, description="The latest job's operation, as AWS returned it.")
    status: str | None = Field(None, description="The latest job's status, verbatim from AWS.")
    error: str | None = Field(None, description="AWS's error, or the operator's own clear message.")
    conditions: list[Condition] = Field(
        default_factory=list, description="kstatus conditions: Ready, Reconciling and Stalled, by type."
    )
    last_handled_reconcile_at: str | None = Field(
        None, description="The last reconcile-requested-at annotation value handled."
    )
    drift: list[str] | None = Field(
        None, description="Spec paths whose value differs in AWS; empty when AWS is as the spec says."
    )
    outputs: AuthOutputs | None = Field(None, description="The ids AWS reports for the auth resource.")
    aws_account_id: str | None = Field(
        None,
        description=(
            "The AWS account this BackendAuth acts in: the account its namespace's "
            "amplifybackend.gitops.dev/owner-account-id annotation names, or, without it, the "
            "operator's own account as sts:GetCallerIdentity reports it (empty when that call "
            "fails). Once set, the BackendAuth never acts in another account (AccountChanged)."
        ),
    )


def status_on_create() -> dict[str, Any]:
    """The status the API server gives a new BackendAuth (the CRD's default for ``status``).

    ``observedGeneration: 0`` says that no one has observed generation 1 yet. Without any status,
    kstatus (Flux, kpt) reads a new object as Current, healthy before the operator has seen it;
    with this one it reads InProgress until the operator writes its first status."""
    return BackendAuthStatus(observed_generation=0).model_dump(by_alias=True, exclude_unset=True)


# --------------------------------------------------------------------------------------------
# Parsing, with every problem named by its field path
# --------------------------------------------------------------------------------------------


class InvalidSpecError(ValueError):
    """The spec cannot be used; ``problems`` are ``"spec.path: message"`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def describe_validation_error(error: ValidationError, root: str = "spec") -> list[str]:
    """Turn pydantic's errors into ``"spec.a.b[0].c: message"`` lines, without echoing input."""
    lines = []
    for err in error.errors(include_url=False, include_input=False):
        path = [root, *err["loc"]]
        message = err["msg"]
        if err["type"] == "spec_rule":
            ctx = err.get("ctx") or {}
            message = ctx.get("message", message)
            if ctx.get("field"):
                path.extend(str(ctx["field"]).split("."))
        elif err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "string_pattern_mismatch":
            pattern = (err.get("ctx") or {}).get("pattern", "")
            message = _PATTERN_HINTS.get(pattern, message)
        lines.append(f"{_join_path(path)}: {message}")
    return lines


def _join_path(parts: list[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_spec(spec: Mapping[str, Any]) -> BackendAuthSpec:
    """Validate a BackendAuth's ``spec``; raise :class:`InvalidSpecError` naming each bad field."""
    try:
        return BackendAuthSpec.model_validate(dict(spec), by_alias=True, by_name=False)
    except ValidationError as error:
        raise InvalidSpecError(describe_validation_error(error)) from None


# --------------------------------------------------------------------------------------------
# The boto3 request
# --------------------------------------------------------------------------------------------

SecretResolver = Callable[[SecretKeyRef], str]
"""Returns the value of a Secret key; raises if the Secret or key is missing."""

_BOTO_KEY_EXCEPTIONS = {"mfaMode": "MFAMode"}
_SPEC_KEY_EXCEPTIONS = {boto: alias for alias, boto in _BOTO_KEY_EXCEPTIONS.items()}


@dataclass(frozen=True)
class SecretField:
    """A secret of the request: its boto3 key, its inline spec key and the spec key of the
    reference to a Secret that holds it."""

    boto: str
    inline: str
    ref: str


# The one list of secret fields. Refs exist only on our side: each is replaced by the value it
# points to.
SECRET_FIELDS = (
    SecretField("ClientSecret", "clientSecret", "clientSecretRef"),
    SecretField("PrivateKey", "privateKey", "privateKeyRef"),
)
SECRET_BOTO_KEYS = frozenset(f.boto for f in SECRET_FIELDS)
SECRET_REF_KEYS = frozenset(f.ref for f in SECRET_FIELDS)
_REF_TARGETS = {f.ref: f.boto for f in SECRET_FIELDS}


def immutable_keys(model: type[BaseModel]) -> frozenset[str]:
    """The spec keys of the fields marked :data:`IMMUTABLE` in ``model`` and the models it nests."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if any(rule is IMMUTABLE for rule in field.metadata) or _marked(field.annotation):
            keys.add(field.alias or name)
        keys |= {key for nested in _nested_models(field.annotation) for key in immutable_keys(nested)}
    return frozenset(keys)


def _marked(annotation: Any) -> bool:
    """Whether :data:`IMMUTABLE` annotates ``annotation`` or a type within it (``X | None``)."""
    return any(arg is IMMUTABLE or _marked(arg) for arg in typing.get_args(annotation))


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _nested_models(arg)]


# Inside ResourceConfig, the immutable fields are those UpdateBackendAuth does not carry (they
# are absent from UpdateBackendAuthResourceConfig in the botocore model): only a create sets
# them. tests/test_models.py checks the two against each other.
_CREATE_ONLY = immutable_keys(ResourceConfig)


def create_only(path: str) -> bool:
    """Whether a spec path (``resourceConfig.userPoolConfigs.signInMethod``) is one that only a
    create sets: UpdateBackendAuth does not carry it, so no update can change it in AWS."""
    return path.rsplit(".", 1)[-1] in _CREATE_ONLY


def boto_key(alias: str) -> str:
    """The boto3 key of a spec key: ``oAuthScopes`` → ``OAuthScopes``, ``mfaMode`` → ``MFAMode``."""
    return _BOTO_KEY_EXCEPTIONS.get(alias, alias[:1].upper() + alias[1:])


def spec_key(boto: str) -> str:
    """The spec key of a boto3 key, the inverse of :func:`boto_key`: ``MFAMode`` → ``mfaMode``."""
    return _SPEC_KEY_EXCEPTIONS.get(boto, boto[:1].lower() + boto[1:])


def spec_path(boto_path: Sequence[str]) -> str:
    """The spec path of a boto3 ``ResourceConfig`` path: ``UserPoolConfigs.Mfa.MFAMode`` →
    ``resourceConfig.userPoolConfigs.mfa.mfaMode``."""
    return ".".join(["resourceConfig", *(spec_key(key) for key in boto_path)])


def has_secrets(config: Mapping[str, Any]) -> bool:
    """Whether a boto3 ``ResourceConfig`` carries a secret value (at any depth)."""
    return any(
        key in SECRET_BOTO_KEYS or (isinstance(value, Mapping) and has_secrets(value))
        for key, value in config.items()
    )


def _to_boto(model: BaseModel, resolve: SecretResolver, drop: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        alias = field.alias or name
        if value is None or alias in drop:
            continue
        if alias in _REF_TARGETS:
            out[_REF_TARGETS[alias]] = resolve(value)
        elif isinstance(value, SecretStr):  # kept hidden from repr() and logs until this moment
            out[boto_key(alias)] = value.get_secret_value()
        elif isinstance(value, BaseModel):
            out[boto_key(alias)] = _to_boto(value, resolve, drop)
        elif isinstance(value, list):
            out[boto_key(alias)] = list(value)
        elif alias == "minimumLength":
            out[boto_key(alias)] = float(value)  # the model types it as a double
        else:
            out[boto_key(alias)] = value
    return out


def _request(spec: BackendAuthSpec, resolve: SecretResolver, drop: frozenset[str]) -> dict[str, Any]:
    if spec.resource_config is None:
        raise ValueError("an import sends ImportBackendAuth: see import_backend_auth_kwargs")
    return {
        "AppId": spec.app_id,
        "BackendEnvironmentName": spec.backend_environment_name,
        "ResourceName": spec.resource_name,
        "ResourceConfig": _to_boto(spec.resource_config, resolve, drop),
    }


def create_backend_auth_kwargs(spec: BackendAuthSpec, resolve: SecretResolver) -> dict[str, Any]:
    """The keyword arguments of ``client.create_backend_auth`` for this spec."""
    return _request(spec, resolve, frozenset())


def update_backend_auth_kwargs(spec: BackendAuthSpec, resolve: SecretResolver) -> dict[str, Any]:
    """The keyword arguments of ``client.update_backend_auth``: the create-only fields left out.

    No ``mfa`` block means MFA off, also after the block was removed: UpdateBackendAuth changes
    only what it is sent, so "off" is sent explicitly.
    """
    request = _request(spec, resolve, _CREATE_ONLY)
    request["ResourceConfig"]["UserPoolConfigs"].setdefault("Mfa", {"MFAMode": "OFF"})
    return request


def import_backend_auth_kwargs(spec: BackendAuthSpec, ids: Mapping[str, str]) -> dict[str, Any]:
    """The keyword arguments of ``client.import_backend_auth``: the ids as read (by spec key:
    ``userPoolId``...; ``identityPoolId`` only when given)."""
    kwargs: dict[str, Any] = {"AppId": spec.app_id, "BackendEnvironmentName": spec.backend_environment_name}
    for id_ in IMPORT_IDS:
        if ids.get(id_.key):
            kwargs[boto_key(id_.key)] = ids[id_.key]
    return kwargs
