"""The Cognito resources behind an auth resource, read and never changed.

Amplify keeps an auth resource in Cognito: a user pool with two app clients (web, native), a
hosted-UI domain, the social identity providers, and (unless ``USER_POOL_ONLY``) an identity
pool with its two roles. The hand-off export reads them here, with read-only calls only:

* cognito-idp: DescribeUserPool, GetUserPoolMfaConfig, DescribeUserPoolClient,
  DescribeUserPoolDomain, ListIdentityProviders, DescribeIdentityProvider;
* cognito-identity: DescribeIdentityPool, GetIdentityPoolRoles.

The calls go through the one client factory and pace of :mod:`clients` (the account's role, the
pace of its account and region, the same error classification). Every answer becomes a frozen
value; what AWS returns as a secret (an app client's ``ClientSecret``, a provider's
``client_secret`` or Apple ``private_key``) is dropped here, as it arrives: only the fact that
there was one is kept, so no secret value leaves this module.

A failure is a :class:`~core.failure.Failure` whose message, one line, names the action that failed and
the role it was made with (``cognito-idp:DescribeUserPool refused for role arn:aws:iam::...``).
Cognito answers ResourceNotFoundException and NotAuthorizedException with HTTP 400: they are
NotFound and AccessDenied here. An operation the endpoint does not have (UnknownOperationException,
or HTTP 501) is NotImplemented, naming the operation and the endpoint; an answer that holds no AWS
error at all (an HTML error page, as some AWS fakes send for an operation they lack) is named by
its HTTP status and the page's title.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from backendauth_operator.aws.clients import ClientFactory, classify, pace_key
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.role import Role

IDP = "cognito-idp"
IDENTITY = "cognito-identity"

# The IAM actions of these reads (for an IAM policy: a test keeps the list equal to the calls).
ACTIONS = (
    "cognito-idp:DescribeUserPool",
    "cognito-idp:GetUserPoolMfaConfig",
    "cognito-idp:DescribeUserPoolClient",
    "cognito-idp:DescribeUserPoolDomain",
    "cognito-idp:ListIdentityProviders",
    "cognito-idp:DescribeIdentityProvider",
    "cognito-identity:DescribeIdentityPool",
    "cognito-identity:GetIdentityPoolRoles",
)

# Keys of ProviderDetails that hold a secret: never kept.
SECRET_PROVIDER_DETAILS = frozenset({"client_secret", "private_key"})


# ---- the values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaAttribute:
    """One attribute of the user pool's schema."""

    name: str
    data_type: str = "String"
    required: bool = False
    mutable: bool = True
    developer_only: bool = False
    string_min: str | None = None
    string_max: str | None = None
    number_min: str | None = None
    number_max: str | None = None


@dataclass(frozen=True)
class PasswordPolicy:
    minimum_length: int = 8
    require_uppercase: bool = False
    require_lowercase: bool = False
    require_numbers: bool = False
    require_symbols: bool = False
    temporary_password_validity_days: int | None = None
    password_history_size: int | None = None


@dataclass(frozen=True)
class VerificationTemplate:
    default_email_option: str | None = None
    email_message: str | None = None
    email_subject: str | None = None
    email_message_by_link: str | None = None
    email_subject_by_link: str | None = None
    sms_message: str | None = None


@dataclass(frozen=True)
class UserPool:
    """DescribeUserPool (and GetUserPoolMfaConfig for TOTP), what a hand-off carries."""

    id: str
    name: str
    arn: str = ""
    mfa_configuration: str = "OFF"
    totp_enabled: bool = False
    sms_authentication_message: str | None = None
    password_policy: PasswordPolicy | None = None
    username_attributes: tuple[str, ...] = ()
    alias_attributes: tuple[str, ...] = ()
    auto_verified_attributes: tuple[str, ...] = ()
    schema: tuple[SchemaAttribute, ...] = ()
    verification: VerificationTemplate | None = None
    account_recovery: tuple[tuple[str, int], ...] = ()  # (mechanism, priority)
    sms_configuration: Mapping[str, str] = field(default_factory=dict)  # snsCallerArn, externalId, snsRegion
    email_configuration: Mapping[str, str] = field(default_factory=dict)
    admin_create_user: Mapping[str, Any] = field(default_factory=dict)
    device_configuration: Mapping[str, bool] = field(default_factory=dict)
    username_case_sensitive: bool | None = None
    deletion_protection: str | None = None
    advanced_security_mode: str | None = None
    attributes_require_verification: tuple[str, ...] = ()
    lambda_config: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    domain: str | None = None  # the hosted UI's domain prefix
    custom_domain: str | None = None
    tier: str | None = None


@dataclass(frozen=True)
class AppClient:
    """DescribeUserPoolClient; ``has_secret`` says whether it has a secret (whose value is
    dropped)."""

    id: str
    name: str
    user_pool_id: str
    has_secret: bool = False
    callback_urls: tuple[str, ...] = ()
    logout_urls: tuple[str, ...] = ()
    default_redirect_uri: str | None = None
    allowed_oauth_flows: tuple[str, ...] = ()
    allowed_oauth_scopes: tuple[str, ...] = ()
    allowed_oauth_flows_user_pool_client: bool = False
    supported_identity_providers: tuple[str, ...] = ()
    explicit_auth_flows: tuple[str, ...] = ()
    read_attributes: tuple[str, ...] = ()
    write_attributes: tuple[str, ...] = ()
    refresh_token_validity: int | None = None
    access_token_validity: int | None = None
    id_token_validity: int | None = None
    token_validity_units: Mapping[str, str] = field(default_factory=dict)
    prevent_user_existence_errors: str | None = None
    enable_token_revocation: bool | None = None
    enable_propagate_additional_user_context_data: bool | None = None
    auth_session_validity: int | None = None


@dataclass(frozen=True)
class Domain:
    """DescribeUserPoolDomain: the hosted UI's domain (a prefix, or a custom domain)."""

    domain: str
    user_pool_id: str
    certificate_arn: str | None = None  # a custom domain's
    managed_login_version: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class IdentityProvider:
    """DescribeIdentityProvider, without its secret: ``details`` holds the non-secret
    ProviderDetails (client_id, authorize_scopes, Apple's team_id and key_id...);
    ``secret_keys`` names the ProviderDetails keys AWS had a secret under (dropped)."""

    name: str
    type: str
    user_pool_id: str
    details: Mapping[str, str] = field(default_factory=dict)
    secret_keys: tuple[str, ...] = ()
    attribute_mapping: Mapping[str, str] = field(default_factory=dict)
    idp_identifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class CognitoProvider:
    """An app client the identity pool trusts."""

    provider_name: str
    client_id: str
    server_side_token_check: bool = False


@dataclass(frozen=True)
class RoleMapping:
    """GetIdentityPoolRoles' ``RoleMappings`` entry of one identity provider."""

    identity_provider: str
    type: str
    ambiguous_role_resolution: str | None = None
    rules: tuple[Mapping[str, str], ...] = ()  # claim, matchType, value, roleArn


@dataclass(frozen=True)
class IdentityPool:
    """DescribeIdentityPool and GetIdentityPoolRoles."""

    id: str
    name: str
    allow_unauthenticated: bool = False
    allow_classic_flow: bool | None = None
    cognito_providers: tuple[CognitoProvider, ...] = ()
    supported_login_providers: Mapping[str, str] = field(default_factory=dict)
    openid_connect_provider_arns: tuple[str, ...] = ()
    saml_provider_arns: tuple[str, ...] = ()
    developer_provider_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    auth_role_arn: str | None = None
    unauth_role_arn: str | None = None
    role_mappings: tuple[RoleMapping, ...] = ()


@dataclass(frozen=True)
class PoolIds:
    """The ids an auth resource's pools go by (GetBackend's amplify-meta ``output``)."""

    user_pool_id: str
    web_client_id: str | None = None
    native_client_id: str | None = None
    identity_pool_id: str | None = None

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, str]) -> PoolIds | None:
        """From :func:`amplify.auth_outputs`' keys; None without a user pool id."""
        if not outputs.get("userPoolId"):
            return None
        return cls(
            outputs["userPoolId"],
            outputs.get("appClientIdWeb") or None,
            outputs.get("appClientId") or None,
            outputs.get("identityPoolId") or None,
        )


@dataclass(frozen=True)
class Pools:
    """The pool, its clients and the identity pool: the read that an import also checks with."""

    region: str
    user_pool: UserPool
    web_client: AppClient | None = None
    native_client: AppClient | None = None
    identity_pool: IdentityPool | None = None

    @property
    def clients(self) -> tuple[AppClient, ...]:
        return tuple(c for c in (self.web_client, self.native_client) if c is not None)


@dataclass(frozen=True)
class AuthView:
    """Everything behind one auth resource, as the hand-off export renders it."""

    pools: Pools
    domains: tuple[Domain, ...] = ()  # the prefix domain (Amplify's), and a custom one if any
    providers: tuple[IdentityProvider, ...] = ()
    account: str = ""  # the AWS account (empty: the operator's own, not known)


# ---- the reads ----------------------------------------------------------------------------------


class Cognito:
    """The Cognito reads of one region of one account: ``account`` (empty: the operator's own,
    not known) under ``role`` (None: the operator's own credentials). Each method returns the
    value, or a :class:`~core.failure.Failure` naming the action and the role."""

    def __init__(
        self, clients: ClientFactory, region: str, role: Role | None = None, account: str = ""
    ) -> None:
        self.clients, self.region, self.role, self.account = clients, region, role, account
        self.key = pace_key(account, region)

    def _who(self) -> str:
        return f"role {self.role.arn}" if self.role else "the operator's own credentials"

    def _read(self, service: str, method: str, **kwargs: Any) -> dict[str, Any] | Failure:
        action = "".join(part.capitalize() for part in method.split("_"))
        client: Any = None
        try:
            client = self.clients.reading(self.region, self.role, service=service)
            return self.clients.call(client, method, key=self.key, **kwargs)
        except Exception as error:
            failure = classify(error)
            code, http = _error_code(error)
            reason, retryable, ambiguous = failure.reason, failure.retryable, failure.ambiguous
            text = _one_line(failure.message)
            if code in _UNIMPLEMENTED or http == 501:
                where = getattr(getattr(client, "meta", None), "endpoint_url", None) or "the endpoint"
                return Failure(
                    "NotImplemented", False, f"{service}:{action} is not implemented by {where} ({text})"
                )
            if code == "ResourceNotFoundException":  # Cognito answers it with HTTP 400
                reason, retryable = "NotFound", False
            elif code == "NotAuthorizedException":  # Cognito's refusal, HTTP 400 as well
                reason, retryable = "AccessDenied", False
            elif code.isdigit():  # an answer without an AWS error in it (an HTML error page...)
                text = f"HTTP {code} without an AWS error in the answer ({_page_title(failure.message)})"
            words = "refused for" if reason == "AccessDenied" else "failed with"
            return Failure(reason, retryable, f"{service}:{action} {words} {self._who()}: {text}", ambiguous)

    def _incomplete(self, service: str, action: str, missing: str, of: str) -> Failure:
        """An answer the shapes allow but that lacks what the hand-off must have."""
        return Failure(
            "IncompleteAnswer", False,
            f"{service}:{action} with {self._who()} answered without {missing} for {of}",
        )  # fmt: skip

    def user_pool(self, pool_id: str) -> UserPool | Failure:
        """DescribeUserPool; GetUserPoolMfaConfig as well when MFA is on (TOTP's setting is
        only there) or when DescribeUserPool leaves MfaConfiguration out (taking OFF then would
        turn MFA off on a pool taken over with --manage)."""
        answer = self._read(IDP, "describe_user_pool", UserPoolId=pool_id)
        if isinstance(answer, Failure):
            return answer
        raw = answer.get("UserPool") or {}
        if not raw.get("Name"):
            return self._incomplete(IDP, "DescribeUserPool", "UserPool.Name", pool_id)
        pool = user_pool_of({"Id": pool_id, **_present(raw)})
        mfa_said = raw.get("MfaConfiguration")
        if mfa_said in ("ON", "OPTIONAL", None):  # None: only GetUserPoolMfaConfig says
            mfa = self._read(IDP, "get_user_pool_mfa_config", UserPoolId=pool_id)
            if isinstance(mfa, Failure):
                return mfa
            totp = bool((mfa.get("SoftwareTokenMfaConfiguration") or {}).get("Enabled"))
            mode = mfa_said or str(mfa.get("MfaConfiguration") or "OFF")
            pool = replace(pool, totp_enabled=totp, mfa_configuration=mode)
        return pool

    def user_pool_exists(self, pool_id: str) -> Failure | None:
        """DescribeUserPool alone (an import's check): None when the pool is there."""
        answer = self._read(IDP, "describe_user_pool", UserPoolId=pool_id)
        return answer if isinstance(answer, Failure) else None

    def identity_pool_description(self, pool_id: str) -> IdentityPool | Failure:
        """DescribeIdentityPool alone (an import's check: the clients it lists), without roles."""
        answer = self._read(IDENTITY, "describe_identity_pool", IdentityPoolId=pool_id)
        if isinstance(answer, Failure):
            return answer
        return identity_pool_of({"IdentityPoolId": pool_id, **_present(answer)}, {})

    def app_client(self, pool_id: str, client_id: str) -> AppClient | Failure:
        """DescribeUserPoolClient; the client's secret is dropped here."""
        answer = self._read(IDP, "describe_user_pool_client", UserPoolId=pool_id, ClientId=client_id)
        if isinstance(answer, Failure):
            return answer
        raw = answer.get("UserPoolClient") or {}
        if not raw.get("ClientName"):
            return self._incomplete(IDP, "DescribeUserPoolClient", "UserPoolClient.ClientName", client_id)
        return app_client_of({"ClientId": client_id, "UserPoolId": pool_id, **_present(raw)})

    def domain(self, domain: str) -> Domain | Failure | None:
        """DescribeUserPoolDomain; None when AWS has no such domain."""
        answer = self._read(IDP, "describe_user_pool_domain", Domain=domain)
        if isinstance(answer, Failure):
            return answer
        return domain_of(answer.get("DomainDescription") or {})

    def identity_providers(self, pool_id: str) -> tuple[IdentityProvider, ...] | Failure:
        """ListIdentityProviders, then DescribeIdentityProvider of each; secrets dropped."""
        names: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"UserPoolId": pool_id, "MaxResults": 60}
            if token:
                kwargs["NextToken"] = token
            answer = self._read(IDP, "list_identity_providers", **kwargs)
            if isinstance(answer, Failure):
                return answer
            names += [str(p["ProviderName"]) for p in answer.get("Providers") or [] if p.get("ProviderName")]
            token = answer.get("NextToken")
            if not token:
                break
        providers = []
        for name in names:
            described = self._read(IDP, "describe_identity_provider", UserPoolId=pool_id, ProviderName=name)
            if isinstance(described, Failure):
                return described
            raw = _present(described.get("IdentityProvider") or {})
            providers.append(identity_provider_of({"ProviderName": name, "UserPoolId": pool_id, **raw}))
        return tuple(providers)

    def identity_pool(self, pool_id: str) -> IdentityPool | Failure:
        """DescribeIdentityPool and GetIdentityPoolRoles."""
        answer = self._read(IDENTITY, "describe_identity_pool", IdentityPoolId=pool_id)
        if isinstance(answer, Failure):
            return answer
        roles = self._read(IDENTITY, "get_identity_pool_roles", IdentityPoolId=pool_id)
        if isinstance(roles, Failure):
            return roles
        return identity_pool_of({"IdentityPoolId": pool_id, **_present(answer)}, roles)

    def pools(self, ids: PoolIds) -> Pools | Failure:
        """The user pool, its web and native clients and the identity pool (if any): what the
        export renders, and what an import checks before it links pools."""
        pool = self.user_pool(ids.user_pool_id)
        if isinstance(pool, Failure):
            return pool
        clients: list[AppClient | None] = []
        for client_id in (ids.web_client_id, ids.native_client_id):
            if not client_id:
                clients.append(None)
                continue
            client = self.app_client(ids.user_pool_id, client_id)
            if isinstance(client, Failure):
                return client
            clients.append(client)
        identity: IdentityPool | None = None
        if ids.identity_pool_id:
            found = self.identity_pool(ids.identity_pool_id)
            if isinstance(found, Failure):
                return found
            identity = found
        return Pools(self.region, pool, clients[0], clients[1], identity)

    def view(self, ids: PoolIds, domain_prefix: str | None = None) -> AuthView | Failure:
        """Everything behind an auth resource: :meth:`pools`, the hosted UI's domains (the
        pool's prefix domain, else ``domain_prefix`` if AWS has it for this pool; and its custom
        domain) and the identity providers."""
        pools = self.pools(ids)
        if isinstance(pools, Failure):
            return pools
        domains: list[Domain] = []
        prefix = pools.user_pool.domain or domain_prefix
        for candidate in dict.fromkeys(d for d in (prefix, pools.user_pool.custom_domain) if d):
            found = self.domain(candidate)
            if isinstance(found, Failure):
                return found
            if found is not None and found.user_pool_id in ("", ids.user_pool_id):
                domains.append(found)
        providers = self.identity_providers(ids.user_pool_id)
        if isinstance(providers, Failure):
            return providers
        return AuthView(pools, tuple(domains), providers, self.account)


# ---- AWS's errors ---------------------------------------------------------------------------------

# Error codes of an operation the endpoint does not have (AWS's own, and fakes').
_UNIMPLEMENTED = frozenset(
    {"UnknownOperationException", "InvalidAction", "NotImplemented", "NotImplementedException"}
)


def _error_code(error: BaseException) -> tuple[str, int]:
    """A ClientError's code (botocore takes it from ``__type`` without its namespace) and HTTP
    status; ``("", 0)`` for anything else."""
    response = getattr(error, "response", None)
    if not isinstance(response, Mapping):
        return "", 0
    code = str((response.get("Error") or {}).get("Code") or "")
    return code.rsplit("#", 1)[-1], int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _page_title(text: str) -> str:
    """The title of an HTML error page (what a fake answers an operation it lacks with), else
    the text's first words."""
    found = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    return _one_line(found[1] if found else re.sub(r"<[^>]+>", " ", text), 120)


# ---- AWS's answers → values (pure) ----------------------------------------------------------------


def _present(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` without members that are None (so the ids asked for fill in what AWS left out)."""
    return {k: v for k, v in raw.items() if v is not None}


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _clean(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``mapping`` without empty values."""
    return {k: v for k, v in mapping.items() if v not in (None, "", [], {})}


def user_pool_of(raw: Mapping[str, Any]) -> UserPool:
    """DescribeUserPool's ``UserPool``."""
    policy_raw = (raw.get("Policies") or {}).get("PasswordPolicy")
    policy = None
    if policy_raw:
        policy = PasswordPolicy(
            minimum_length=_int(policy_raw.get("MinimumLength")) or 8,
            require_uppercase=bool(policy_raw.get("RequireUppercase")),
            require_lowercase=bool(policy_raw.get("RequireLowercase")),
            require_numbers=bool(policy_raw.get("RequireNumbers")),
            require_symbols=bool(policy_raw.get("RequireSymbols")),
            temporary_password_validity_days=_int(policy_raw.get("TemporaryPasswordValidityDays")),
            password_history_size=_int(policy_raw.get("PasswordHistorySize")),
        )
    schema = []
    for attribute in raw.get("SchemaAttributes") or []:
        strings = attribute.get("StringAttributeConstraints") or {}
        numbers = attribute.get("NumberAttributeConstraints") or {}
        schema.append(
            SchemaAttribute(
                name=str(attribute.get("Name", "")),
                data_type=str(attribute.get("AttributeDataType") or "String"),
                required=bool(attribute.get("Required")),
                mutable=bool(attribute.get("Mutable", True)),
                developer_only=bool(attribute.get("DeveloperOnlyAttribute")),
                string_min=strings.get("MinLength"),
                string_max=strings.get("MaxLength"),
                number_min=numbers.get("MinValue"),
                number_max=numbers.get("MaxValue"),
            )
        )
    template_raw = raw.get("VerificationMessageTemplate") or {}
    template = VerificationTemplate(
        default_email_option=template_raw.get("DefaultEmailOption"),
        email_message=template_raw.get("EmailMessage") or raw.get("EmailVerificationMessage"),
        email_subject=template_raw.get("EmailSubject") or raw.get("EmailVerificationSubject"),
        email_message_by_link=template_raw.get("EmailMessageByLink"),
        email_subject_by_link=template_raw.get("EmailSubjectByLink"),
        sms_message=template_raw.get("SmsMessage") or raw.get("SmsVerificationMessage"),
    )
    recovery = tuple(
        (str(m.get("Name")), _int(m.get("Priority")) or 1)
        for m in (raw.get("AccountRecoverySetting") or {}).get("RecoveryMechanisms") or []
    )
    sms = raw.get("SmsConfiguration") or {}
    email = raw.get("EmailConfiguration") or {}
    admin = raw.get("AdminCreateUserConfig") or {}
    invite = admin.get("InviteMessageTemplate") or {}
    return UserPool(
        id=str(raw.get("Id", "")),
        name=str(raw.get("Name", "")),
        arn=str(raw.get("Arn") or ""),
        mfa_configuration=str(raw.get("MfaConfiguration") or "OFF"),
        sms_authentication_message=raw.get("SmsAuthenticationMessage"),
        password_policy=policy,
        username_attributes=_strs(raw.get("UsernameAttributes")),
        alias_attributes=_strs(raw.get("AliasAttributes")),
        auto_verified_attributes=_strs(raw.get("AutoVerifiedAttributes")),
        schema=tuple(schema),
        verification=template if any(vars(template).values()) else None,
        account_recovery=recovery,
        sms_configuration=_clean(
            {
                "snsCallerArn": sms.get("SnsCallerArn"),
                "externalId": sms.get("ExternalId"),
                "snsRegion": sms.get("SnsRegion"),
            }
        ),
        email_configuration=_clean(
            {
                "sourceArn": email.get("SourceArn"),
                "replyToEmailAddress": email.get("ReplyToEmailAddress"),
                "emailSendingAccount": email.get("EmailSendingAccount"),
                "fromEmailAddress": email.get("From"),
                "configurationSet": email.get("ConfigurationSet"),
            }
        ),
        admin_create_user=_clean(
            {
                "allowAdminCreateUserOnly": admin.get("AllowAdminCreateUserOnly"),
                "inviteMessageTemplate": _clean(
                    {
                        "emailMessage": invite.get("EmailMessage"),
                        "emailSubject": invite.get("EmailSubject"),
                        "smsMessage": invite.get("SMSMessage"),
                    }
                ),
            }
        ),
        device_configuration=_clean(
            {
                "challengeRequiredOnNewDevice": (raw.get("DeviceConfiguration") or {}).get(
                    "ChallengeRequiredOnNewDevice"
                ),
                "deviceOnlyRememberedOnUserPrompt": (raw.get("DeviceConfiguration") or {}).get(
                    "DeviceOnlyRememberedOnUserPrompt"
                ),
            }
        ),
        username_case_sensitive=(raw.get("UsernameConfiguration") or {}).get("CaseSensitive"),
        deletion_protection=raw.get("DeletionProtection"),
        advanced_security_mode=(raw.get("UserPoolAddOns") or {}).get("AdvancedSecurityMode"),
        attributes_require_verification=_strs(
            (raw.get("UserAttributeUpdateSettings") or {}).get("AttributesRequireVerificationBeforeUpdate")
        ),
        lambda_config=dict(raw.get("LambdaConfig") or {}),
        tags=_str_map(raw.get("UserPoolTags")),
        domain=raw.get("Domain") or None,
        custom_domain=raw.get("CustomDomain") or None,
        tier=raw.get("UserPoolTier"),
    )


def app_client_of(raw: Mapping[str, Any]) -> AppClient:
    """DescribeUserPoolClient's ``UserPoolClient``, its ``ClientSecret`` dropped."""
    return AppClient(
        id=str(raw.get("ClientId", "")),
        name=str(raw.get("ClientName", "")),
        user_pool_id=str(raw.get("UserPoolId", "")),
        has_secret=bool(raw.get("ClientSecret")),
        callback_urls=_strs(raw.get("CallbackURLs")),
        logout_urls=_strs(raw.get("LogoutURLs")),
        default_redirect_uri=raw.get("DefaultRedirectURI"),
        allowed_oauth_flows=_strs(raw.get("AllowedOAuthFlows")),
        allowed_oauth_scopes=_strs(raw.get("AllowedOAuthScopes")),
        allowed_oauth_flows_user_pool_client=bool(raw.get("AllowedOAuthFlowsUserPoolClient")),
        supported_identity_providers=_strs(raw.get("SupportedIdentityProviders")),
        explicit_auth_flows=_strs(raw.get("ExplicitAuthFlows")),
        read_attributes=_strs(raw.get("ReadAttributes")),
        write_attributes=_strs(raw.get("WriteAttributes")),
        refresh_token_validity=_int(raw.get("RefreshTokenValidity")),
        access_token_validity=_int(raw.get("AccessTokenValidity")),
        id_token_validity=_int(raw.get("IdTokenValidity")),
        token_validity_units=_str_map(raw.get("TokenValidityUnits")),
        prevent_user_existence_errors=raw.get("PreventUserExistenceErrors"),
        enable_token_revocation=raw.get("EnableTokenRevocation"),
        enable_propagate_additional_user_context_data=raw.get("EnablePropagateAdditionalUserContextData"),
        auth_session_validity=_int(raw.get("AuthSessionValidity")),
    )


def domain_of(raw: Mapping[str, Any]) -> Domain | None:
    """DescribeUserPoolDomain's ``DomainDescription``; None when it is empty (no such domain)."""
    if not raw.get("Domain"):
        return None
    return Domain(
        domain=str(raw["Domain"]),
        user_pool_id=str(raw.get("UserPoolId") or ""),
        certificate_arn=(raw.get("CustomDomainConfig") or {}).get("CertificateArn"),
        managed_login_version=_int(raw.get("ManagedLoginVersion")),
        status=raw.get("Status"),
    )


def identity_provider_of(raw: Mapping[str, Any]) -> IdentityProvider:
    """DescribeIdentityProvider's ``IdentityProvider``, its secret details dropped."""
    details = raw.get("ProviderDetails") or {}
    return IdentityProvider(
        name=str(raw.get("ProviderName", "")),
        type=str(raw.get("ProviderType", "")),
        user_pool_id=str(raw.get("UserPoolId", "")),
        details={str(k): str(v) for k, v in details.items() if k not in SECRET_PROVIDER_DETAILS},
        secret_keys=tuple(sorted(k for k in details if k in SECRET_PROVIDER_DETAILS)),
        attribute_mapping=_str_map(raw.get("AttributeMapping")),
        idp_identifiers=_strs(raw.get("IdpIdentifiers")),
    )


def identity_pool_of(raw: Mapping[str, Any], roles: Mapping[str, Any]) -> IdentityPool:
    """DescribeIdentityPool's and GetIdentityPoolRoles' answers."""
    role_arns = roles.get("Roles") or {}
    mappings = []
    for provider, mapping in sorted((roles.get("RoleMappings") or {}).items()):
        rules = ((mapping.get("RulesConfiguration") or {}).get("Rules")) or []
        mappings.append(
            RoleMapping(
                identity_provider=str(provider),
                type=str(mapping.get("Type", "")),
                ambiguous_role_resolution=mapping.get("AmbiguousRoleResolution"),
                rules=tuple(
                    {
                        "claim": str(r.get("Claim", "")),
                        "matchType": str(r.get("MatchType", "")),
                        "value": str(r.get("Value", "")),
                        "roleArn": str(r.get("RoleARN", "")),
                    }
                    for r in rules
                ),
            )
        )
    return IdentityPool(
        id=str(raw.get("IdentityPoolId", "")),
        name=str(raw.get("IdentityPoolName", "")),
        allow_unauthenticated=bool(raw.get("AllowUnauthenticatedIdentities")),
        allow_classic_flow=raw.get("AllowClassicFlow"),
        cognito_providers=tuple(
            CognitoProvider(
                str(p.get("ProviderName", "")),
                str(p.get("ClientId", "")),
                bool(p.get("ServerSideTokenCheck")),
            )
            for p in raw.get("CognitoIdentityProviders") or []
        ),
        supported_login_providers=_str_map(raw.get("SupportedLoginProviders")),
        openid_connect_provider_arns=_strs(raw.get("OpenIdConnectProviderARNs")),
        saml_provider_arns=_strs(raw.get("SamlProviderARNs")),
        developer_provider_name=raw.get("DeveloperProviderName"),
        tags=_str_map(raw.get("IdentityPoolTags")),
        auth_role_arn=role_arns.get("authenticated"),
        unauth_role_arn=role_arns.get("unauthenticated"),
        role_mappings=tuple(mappings),
    )
