"""What the pools behind an auth resource become elsewhere: Crossplane, ACK, Amplify Gen 2.

Pure functions: a :class:`~cognito.AuthView` (what Cognito has, secrets already dropped) and
where it came from in, text out. :mod:`export` reads and writes; :mod:`handoff_mapping` says
field by field what goes where, and what does not (the renderers print those rows as comments).

* **Crossplane** (Upbound's AWS provider): every resource, each imported by its
  ``crossplane.io/external-name``: ``managementPolicies: ["Observe"]`` and ``deletionPolicy:
  Orphan`` by default; with ``manage``, ``["Observe", "Update"]`` (never Create, never Delete)
  and the whole configuration in ``spec.forProvider``, so that taking over shows no difference.
  IdentityProviders stay Observe: the provider takes no Secret reference for their details.
* **ACK**: the UserPool, adopted by its id and retained; the rest as comments.
* **Gen 2**: ``amplify/auth/resource.ts`` with ``referenceAuth``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from backendauth_operator.aws.cognito import (
    AppClient,
    AuthView,
    Domain,
    IdentityPool,
    IdentityProvider,
    UserPool,
    VerificationTemplate,
)
from backendauth_operator.commands import handoff_mapping

XP_IDP = "cognitoidp.aws.upbound.io"
XP_IDENTITY = "cognitoidentity.aws.upbound.io"
ACK_GROUP = "cognitoidentityprovider.services.k8s.aws"
EXTERNAL_NAME = "crossplane.io/external-name"
EXPORTED_FROM = "amplifybackend.gitops.dev/exported-from"
OBSERVE = ["Observe"]
MANAGE = ["Observe", "Update"]  # never Create (a lost pool is not re-made empty), never Delete
CONNECTION_SECRET_KEY = "attribute.client_secret"


@dataclass(frozen=True)
class Source:
    """The auth resource a view belongs to: its BackendAuth (``namespace``/``name``, empty
    outside a cluster) and its Amplify names."""

    app: str
    env: str
    resource: str
    namespace: str = ""
    name: str = ""

    def __str__(self) -> str:
        where = f"BackendAuth {self.namespace}/{self.name}, " if self.name else ""
        return f"{where}app {self.app}, environment {self.env}, auth resource {self.resource}"

    @property
    def base(self) -> str:
        """The stem of the exported objects' names: unique per BackendAuth (cluster-scoped
        managed resources share one name space)."""
        stem = f"{self.namespace}-{self.name}" if self.name else f"{self.resource}-{self.env}"
        name = dns_name(stem, 1000)
        if len(name) <= 40:
            return name
        # Shortened, with a digest of the whole: two long names that share a beginning stay apart.
        return f"{name[:33].strip('-')}-{hashlib.sha256(stem.encode()).hexdigest()[:6]}"


@dataclass(frozen=True)
class CrossplaneOptions:
    manage: bool = False
    secret_namespace: str = "crossplane-system"
    provider_config: str = "default"  # "{account}" is replaced by the account id


def dns_name(text: str, limit: int = 63) -> str:
    """``text`` as a Kubernetes object name (lowercase letters, digits, '-')."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:limit].strip("-") or "auth"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _comments(lines: Iterable[str]) -> str:
    return "".join(f"# {_one_line(line)}\n" for line in lines)


def _clean(value: Any) -> Any:
    """``value`` without None, empty strings, lists and mappings, at any depth."""
    if isinstance(value, Mapping):
        out = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value if v not in (None, "", [], {})]
    return value


def _clean_map(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _clean(value)
    return out


def not_carried(config: Mapping[str, Any] | None, column: str) -> list[str]:
    """The lines saying which fields set in ``config`` (``spec.resourceConfig``) ``column``
    (crossplane, ack, gen2) does not carry, and why (from the mapping table)."""
    lines = []
    for path in handoff_mapping.set_paths(dict(config or {})):
        target = getattr(handoff_mapping.BY_PATH[path], column)
        if isinstance(target, handoff_mapping.NotCarried):
            lines.append(f"not carried: {path}: {target.reason}")
    return lines


# ---- Crossplane -------------------------------------------------------------------------------------


def _managed(
    api: str, kind: str, name: str, external: str, source: Source, policies: list[str],
    provider_config: str, for_provider: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {
            "name": name,
            "annotations": {EXTERNAL_NAME: external, EXPORTED_FROM: str(source)},
        },
        "spec": {
            "managementPolicies": list(policies),
            "deletionPolicy": "Orphan",
            "providerConfigRef": {"name": provider_config},
            "forProvider": _clean(for_provider),
        },
    }


_LAMBDA_OBJECTS = {"CustomEmailSender", "CustomSMSSender", "PreTokenGenerationConfig"}


def _lambda_config(raw: Mapping[str, Any], ack: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "KMSKeyID":
            out["kmsKeyID" if ack else "kmsKeyId"] = value
        elif key in _LAMBDA_OBJECTS and isinstance(value, Mapping):
            name = {"CustomSMSSender": "customSMSSender" if ack else "customSmsSender"}.get(
                key, key[:1].lower() + key[1:]
            )
            arn_key = "lambdaARN" if ack else "lambdaArn"
            out[name] = {arn_key: value.get("LambdaArn"), "lambdaVersion": value.get("LambdaVersion")}
        elif isinstance(value, str):
            out[key[:1].lower() + key[1:]] = value
    return out


def _verification_template(template: VerificationTemplate | None) -> dict[str, Any] | None:
    """The pool's verification messages, as both providers spell them."""
    if template is None:
        return None
    return {
        "defaultEmailOption": template.default_email_option,
        "emailMessage": template.email_message,
        "emailSubject": template.email_subject,
        "emailMessageByLink": template.email_message_by_link,
        "emailSubjectByLink": template.email_subject_by_link,
        "smsMessage": template.sms_message,
    }


def _schema(pool: UserPool, ack: bool) -> list[dict[str, Any]]:
    """The schema entries to carry: the required ones and the custom ones. The other standard
    attributes are in every pool as Cognito made them, and ``sub`` cannot be configured."""
    out = []
    for attribute in pool.schema:
        custom = attribute.name.startswith("custom:")
        if attribute.name == "sub" or not (attribute.required or custom):
            continue
        entry: dict[str, Any] = {
            "name": attribute.name.removeprefix("custom:") if not ack else attribute.name,
            "attributeDataType": attribute.data_type,
            "required": attribute.required,
            "mutable": attribute.mutable,
            "developerOnlyAttribute": attribute.developer_only,
        }
        if attribute.data_type == "String" and (attribute.string_min or attribute.string_max):
            entry["stringAttributeConstraints"] = {
                "minLength": attribute.string_min, "maxLength": attribute.string_max,
            }  # fmt: skip
        if attribute.data_type == "Number" and (attribute.number_min or attribute.number_max):
            entry["numberAttributeConstraints"] = {
                "minValue": attribute.number_min, "maxValue": attribute.number_max,
            }  # fmt: skip
        out.append(entry)
    return out


def _case_sensitive(pool: UserPool) -> dict[str, bool] | None:
    sensitive = pool.username_case_sensitive
    return None if sensitive is None else {"caseSensitive": sensitive}


def user_pool_for_provider(pool: UserPool, region: str) -> dict[str, Any]:
    """UserPool (v1beta2) ``spec.forProvider``: the pool's whole configuration."""
    policy = pool.password_policy
    return _clean_map({
        "region": region,
        "name": pool.name,
        "mfaConfiguration": pool.mfa_configuration,
        "softwareTokenMfaConfiguration": (
            {"enabled": pool.totp_enabled} if pool.mfa_configuration in ("ON", "OPTIONAL") else None
        ),
        "smsAuthenticationMessage": pool.sms_authentication_message,
        "smsConfiguration": dict(pool.sms_configuration),
        "passwordPolicy": {
            "minimumLength": policy.minimum_length,
            "requireLowercase": policy.require_lowercase,
            "requireNumbers": policy.require_numbers,
            "requireSymbols": policy.require_symbols,
            "requireUppercase": policy.require_uppercase,
            "temporaryPasswordValidityDays": policy.temporary_password_validity_days,
            "passwordHistorySize": policy.password_history_size,
        } if policy else None,
        "usernameAttributes": list(pool.username_attributes),
        "aliasAttributes": list(pool.alias_attributes),
        "autoVerifiedAttributes": list(pool.auto_verified_attributes),
        "schema": _schema(pool, ack=False),
        "verificationMessageTemplate": _verification_template(pool.verification),
        "accountRecoverySetting": {
            "recoveryMechanism": [{"name": n, "priority": p} for n, p in pool.account_recovery]
        },
        "emailConfiguration": dict(pool.email_configuration),
        "adminCreateUserConfig": dict(pool.admin_create_user),
        "deviceConfiguration": dict(pool.device_configuration),
        "usernameConfiguration": _case_sensitive(pool),
        "deletionProtection": pool.deletion_protection,
        "userPoolAddOns": {"advancedSecurityMode": pool.advanced_security_mode},
        "userAttributeUpdateSettings": {
            "attributesRequireVerificationBeforeUpdate": list(pool.attributes_require_verification)
        },
        "lambdaConfig": _lambda_config(pool.lambda_config, ack=False),
        "tags": dict(pool.tags),
        "userPoolTier": pool.tier,
    })  # fmt: skip


def client_for_provider(client: AppClient, region: str) -> dict[str, Any]:
    """UserPoolClient (v1beta1) ``spec.forProvider``. ``generateSecret`` is left out: it only
    applies when a client is created, and a change of it re-creates the client."""
    units = dict(client.token_validity_units)
    return _clean_map({
        "region": region,
        "userPoolId": client.user_pool_id,
        "name": client.name,
        "callbackUrls": list(client.callback_urls),
        "logoutUrls": list(client.logout_urls),
        "defaultRedirectUri": client.default_redirect_uri,
        "allowedOauthFlows": list(client.allowed_oauth_flows),
        "allowedOauthScopes": list(client.allowed_oauth_scopes),
        "allowedOauthFlowsUserPoolClient": client.allowed_oauth_flows_user_pool_client,
        "supportedIdentityProviders": list(client.supported_identity_providers),
        "explicitAuthFlows": list(client.explicit_auth_flows),
        "readAttributes": list(client.read_attributes),
        "writeAttributes": list(client.write_attributes),
        "refreshTokenValidity": client.refresh_token_validity,
        "accessTokenValidity": client.access_token_validity,
        "idTokenValidity": client.id_token_validity,
        "tokenValidityUnits": [{
            "accessToken": units.get("AccessToken"),
            "idToken": units.get("IdToken"),
            "refreshToken": units.get("RefreshToken"),
        }] if units else None,
        "preventUserExistenceErrors": client.prevent_user_existence_errors,
        "enableTokenRevocation": client.enable_token_revocation,
        "enablePropagateAdditionalUserContextData": client.enable_propagate_additional_user_context_data,
        "authSessionValidity": client.auth_session_validity,
    })  # fmt: skip


def identity_pool_for_provider(pool: IdentityPool, region: str) -> dict[str, Any]:
    """Pool (v1beta1) ``spec.forProvider``."""
    return _clean_map({
        "region": region,
        "identityPoolName": pool.name,
        "allowUnauthenticatedIdentities": pool.allow_unauthenticated,
        "allowClassicFlow": pool.allow_classic_flow,
        "cognitoIdentityProviders": [
            {"clientId": p.client_id, "providerName": p.provider_name,
             "serverSideTokenCheck": p.server_side_token_check}
            for p in pool.cognito_providers
        ],
        "supportedLoginProviders": dict(pool.supported_login_providers),
        "openidConnectProviderArns": list(pool.openid_connect_provider_arns),
        "samlProviderArns": list(pool.saml_provider_arns),
        "developerProviderName": pool.developer_provider_name,
        "tags": dict(pool.tags),
    })  # fmt: skip


def roles_for_provider(pool: IdentityPool, region: str) -> dict[str, Any]:
    """PoolRolesAttachment (v1beta1) ``spec.forProvider``."""
    return _clean_map({
        "region": region,
        "identityPoolId": pool.id,
        "roles": {"authenticated": pool.auth_role_arn, "unauthenticated": pool.unauth_role_arn},
        "roleMapping": [
            {"identityProvider": m.identity_provider, "type": m.type,
             "ambiguousRoleResolution": m.ambiguous_role_resolution,
             "mappingRule": [dict(rule) for rule in m.rules]}
            for m in pool.role_mappings
        ],
    })  # fmt: skip


def _document(doc: Mapping[str, Any], comments: Iterable[str] = ()) -> str:
    return "---\n" + _comments(comments) + yaml.safe_dump(dict(doc), sort_keys=False)


def crossplane(
    view: AuthView, source: Source, config: Mapping[str, Any] | None = None,
    options: CrossplaneOptions = CrossplaneOptions(),
) -> str:  # fmt: skip
    """The managed resources of Upbound's AWS provider for one auth resource, as YAML
    documents with comments (what each holds, which Secret the provider writes, what is not
    carried and why)."""
    pools, region, base = view.pools, view.pools.region, source.base
    policies = MANAGE if options.manage else OBSERVE
    provider_config = options.provider_config.replace("{account}", view.account or "unknown")
    pool = pools.user_pool
    docs: list[str] = []
    head = [
        f"Hand-off to Crossplane (Upbound AWS provider) of {source}.",
        f"AWS account {view.account or '(the credentials in use)'}, region {region}: ProviderConfig "
        f"{provider_config!r} must hold credentials for that account.",
    ]
    if options.manage:
        head.append(
            'managementPolicies ["Observe", "Update"]: Crossplane updates the pools to spec.forProvider '
            "(the configuration Cognito has now, so nothing changes at first); it never creates or deletes; "
            "deletionPolicy Orphan keeps the pools when a managed resource is deleted. Stop Amplify's "
            "management first: two writers would fight."
        )
    else:
        head.append(
            'managementPolicies ["Observe"] and deletionPolicy Orphan: Crossplane only reads; Amplify\'s '
            "CloudFormation stack still owns the pools, and two writers would fight. Export again with "
            "--manage to take them over."
        )
    head += not_carried(config, "crossplane")

    def body(full: dict[str, Any], ids: dict[str, Any]) -> dict[str, Any]:
        return full if options.manage else {"region": region, **ids}

    pool_name = f"{base}-user-pool"
    docs.append(
        _document(
            _managed(
                f"{XP_IDP}/v1beta2", "UserPool", pool_name, pool.id, source, policies, provider_config,
                body(user_pool_for_provider(pool, region), {}),
            ),
            [*head, f"UserPool {pool.id} ({pool.name})."],
        )
    )  # fmt: skip
    for role, client in (("web", pools.web_client), ("native", pools.native_client)):
        if client is None:
            continue
        name = f"{base}-{role}-client"
        doc = _managed(
            f"{XP_IDP}/v1beta1", "UserPoolClient", name, client.id, source, policies, provider_config,
            body(client_for_provider(client, region), {"userPoolId": client.user_pool_id}),
        )  # fmt: skip
        notes = [f"The {role} app client {client.id} ({client.name})."]
        if client.has_secret:
            doc["spec"]["writeConnectionSecretToRef"] = {"name": name, "namespace": options.secret_namespace}
            notes.append(
                f"It has a secret: the provider writes it to Secret {options.secret_namespace}/{name}, key "
                f"{CONNECTION_SECRET_KEY}. Nothing to fill in; this output never holds it."
            )
        docs.append(_document(doc, notes))
    for domain in view.domains:
        full = _clean({
            "region": region, "userPoolId": pool.id, "domain": domain.domain,
            "certificateArn": domain.certificate_arn, "managedLoginVersion": domain.managed_login_version,
        })  # fmt: skip
        docs.append(
            _document(
                _managed(
                    f"{XP_IDP}/v1beta1", "UserPoolDomain", domain_name(base, domain), domain.domain, source,
                    policies, provider_config, body(full, {"userPoolId": pool.id}),
                ),
                [f"The hosted UI's {'custom ' if domain.certificate_arn else ''}domain {domain.domain}."],
            )
        )  # fmt: skip
    for provider in view.providers:
        docs.append(_identity_provider(provider, base, source, region, provider_config, options.manage))
    identity = pools.identity_pool
    if identity is not None:
        notes = [f"The identity pool {identity.id} ({identity.name})."]
        if not _has_roles(identity):
            notes.append(
                "GetIdentityPoolRoles shows no roles attached to it: there is no PoolRolesAttachment to take "
                "over (the provider's requires roles)"
                + (", so its role mappings are not carried" if identity.role_mappings else "")
                + "."
            )
        docs.append(
            _document(
                _managed(
                    f"{XP_IDENTITY}/v1beta1", "Pool", f"{base}-identity-pool", identity.id, source, policies,
                    provider_config, body(identity_pool_for_provider(identity, region), {}),
                ),
                notes,
            )
        )  # fmt: skip
    if identity is not None and _has_roles(identity):
        docs.append(
            _document(
                _managed(
                    f"{XP_IDENTITY}/v1beta1", "PoolRolesAttachment", f"{base}-identity-pool-roles",
                    identity.id,
                    source, policies, provider_config,
                    body(roles_for_provider(identity, region), {"identityPoolId": identity.id}),
                ),
                ["The identity pool's authenticated and unauthenticated roles."],
            )
        )  # fmt: skip
    return "".join(docs)


def _has_roles(pool: IdentityPool) -> bool:
    return bool(pool.auth_role_arn or pool.unauth_role_arn)


def domain_name(base: str, domain: Domain) -> str:
    """The UserPoolDomain's name: ``-domain`` for the prefix domain Amplify makes,
    ``-custom-domain`` for a custom one (a pool has at most one of each)."""
    return f"{base}-custom-domain" if domain.certificate_arn else f"{base}-domain"


def _identity_provider(
    provider: IdentityProvider, base: str, source: Source, region: str, provider_config: str, manage: bool
) -> str:
    """An IdentityProvider, Observe whatever ``manage`` says: the provider takes no Secret
    reference for ``providerDetails``, and managing it without its secret would break sign-in."""
    name = f"{base}-idp-{dns_name(provider.name, 20)}"
    doc = _managed(
        f"{XP_IDP}/v1beta1", "IdentityProvider", name, f"{provider.user_pool_id}:{provider.name}", source,
        OBSERVE, provider_config,
        {"region": region, "userPoolId": provider.user_pool_id, "providerName": provider.name,
         "providerType": provider.type},
    )  # fmt: skip
    notes = [f"The identity provider {provider.name} ({provider.type})."]
    why = (
        "It stays Observe"
        + (" even with --manage" if manage else "")
        + ": the provider takes no Secret reference for providerDetails"
        + (f" (its {', '.join(provider.secret_keys)})" if provider.secret_keys else "")
        + ", and a managed IdentityProvider without its secret would break sign-in through it. "
        "Its secret stays in Cognito and is never printed."
    )
    return _document(doc, [*notes, why])


# ---- ACK ---------------------------------------------------------------------------------------------


def ack_user_pool_spec(pool: UserPool) -> dict[str, Any]:
    """ACK UserPool ``spec``: the fields its CRD has."""
    policy = pool.password_policy
    sms = pool.sms_configuration
    email = pool.email_configuration
    admin = pool.admin_create_user
    invite = admin.get("inviteMessageTemplate") or {}
    return _clean_map({
        "name": pool.name,
        "mfaConfiguration": pool.mfa_configuration,
        "smsAuthenticationMessage": pool.sms_authentication_message,
        "smsConfiguration": {
            "snsCallerARN": sms.get("snsCallerArn"), "externalID": sms.get("externalId"),
            "snsRegion": sms.get("snsRegion"),
        },
        "policies": {"passwordPolicy": {
            "minimumLength": policy.minimum_length,
            "requireLowercase": policy.require_lowercase,
            "requireNumbers": policy.require_numbers,
            "requireSymbols": policy.require_symbols,
            "requireUppercase": policy.require_uppercase,
            "temporaryPasswordValidityDays": policy.temporary_password_validity_days,
        }} if policy else None,
        "usernameAttributes": list(pool.username_attributes),
        "aliasAttributes": list(pool.alias_attributes),
        "autoVerifiedAttributes": list(pool.auto_verified_attributes),
        "schema": _schema(pool, ack=True),
        "verificationMessageTemplate": _verification_template(pool.verification),
        "accountRecoverySetting": {
            "recoveryMechanisms": [{"name": n, "priority": p} for n, p in pool.account_recovery]
        },
        "emailConfiguration": {
            "sourceARN": email.get("sourceArn"), "replyToEmailAddress": email.get("replyToEmailAddress"),
            "emailSendingAccount": email.get("emailSendingAccount"),
            "configurationSet": email.get("configurationSet"),
        },
        "adminCreateUserConfig": {
            "allowAdminCreateUserOnly": admin.get("allowAdminCreateUserOnly"),
            "inviteMessageTemplate": {
                "emailMessage": invite.get("emailMessage"), "emailSubject": invite.get("emailSubject"),
                "sMSMessage": invite.get("smsMessage"),
            },
        },
        "deviceConfiguration": dict(pool.device_configuration),
        "usernameConfiguration": _case_sensitive(pool),
        "deletionProtection": pool.deletion_protection,
        "userPoolAddOns": {"advancedSecurityMode": pool.advanced_security_mode},
        "userAttributeUpdateSettings": {
            "attributesRequireVerificationBeforeUpdate": list(pool.attributes_require_verification)
        },
        "lambdaConfig": _lambda_config(pool.lambda_config, ack=True),
        "userPoolTags": dict(pool.tags),
    })  # fmt: skip


def ack(view: AuthView, source: Source, config: Mapping[str, Any] | None = None, namespace: str = "") -> str:
    """ACK's UserPool for one auth resource (adopted by its id, retained on delete), and as
    comments what ACK cannot hold, naming what holds it instead."""
    pools, pool, region = view.pools, view.pools.user_pool, view.pools.region
    base = source.base
    metadata: dict[str, Any] = {
        "name": f"{base}-user-pool",
        "annotations": {
            "services.k8s.aws/adoption-policy": "adopt",
            "services.k8s.aws/adoption-fields": json.dumps({"id": pool.id}),
            "services.k8s.aws/deletion-policy": "retain",
            "services.k8s.aws/region": region,
            EXPORTED_FROM: str(source),
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    doc = {
        "apiVersion": f"{ACK_GROUP}/v1alpha1",
        "kind": "UserPool",
        "metadata": metadata,
        "spec": ack_user_pool_spec(pool),
    }
    head = [
        f"Hand-off to ACK (AWS Controllers for Kubernetes) of {source}.",
        f"AWS account {view.account or '(the credentials in use)'}, region {region}: the ACK controller must "
        "act in that account.",
        "adoption-policy adopt takes the existing pool by its id without changing it; deletion-policy "
        "retain keeps it when the UserPool is deleted.",
        "Not held by ACK's UserPool; the Crossplane export (backendauth-operator export --to crossplane) "
        "holds it instead, as:",
    ]
    for role, client in (("web", pools.web_client), ("native", pools.native_client)):
        if client is not None:
            head.append(f"- the {role} app client {client.id}: UserPoolClient {base}-{role}-client")
    for domain in view.domains:
        head.append(f"- the domain {domain.domain}: UserPoolDomain {domain_name(base, domain)}")
    for provider in view.providers:
        head.append(
            f"- the identity provider {provider.name}: IdentityProvider "
            f"{base}-idp-{dns_name(provider.name, 20)} (Observe)"
        )
    if pools.identity_pool is not None and _has_roles(pools.identity_pool):
        head.append(
            f"- the identity pool {pools.identity_pool.id} and its roles: Pool "
            f"{base}-identity-pool and PoolRolesAttachment {base}-identity-pool-roles"
        )
    elif pools.identity_pool is not None:
        head.append(
            f"- the identity pool {pools.identity_pool.id} (no roles attached): Pool {base}-identity-pool"
        )
    if pool.mfa_configuration in ("ON", "OPTIONAL"):
        head.append(
            f"- TOTP (software token MFA, {'on' if pool.totp_enabled else 'off'}): ACK's UserPool has no "
            f"such setting: UserPool {base}-user-pool (softwareTokenMfaConfiguration)"
        )
    head += not_carried(config, "ack")
    return _document(doc, head)


# ---- Gen 2 -------------------------------------------------------------------------------------------


class Gen2Unsupported(ValueError):
    """The auth resource cannot be referenced by Gen 2's ``referenceAuth``; the message says why."""


def gen2_resource_ts(
    *, user_pool_id: str, user_pool_client_id: str, identity_pool_id: str | None,
    auth_role_arn: str | None, unauth_role_arn: str | None, comment: str = "",
) -> str:  # fmt: skip
    """``amplify/auth/resource.ts``: ``referenceAuth`` with the ids filled in. Raises
    :class:`Gen2Unsupported` without an identity pool and both of its roles: ``referenceAuth``
    requires them (a user pool alone is the open request aws-amplify/amplify-backend#2252)."""
    missing = [
        name
        for name, value in (
            ("an identity pool", identity_pool_id), ("its authenticated role", auth_role_arn),
            ("its unauthenticated role", unauth_role_arn), ("a web app client", user_pool_client_id),
        )
        if not value
    ]  # fmt: skip
    if missing:
        raise Gen2Unsupported(
            "Gen 2's referenceAuth needs an identity pool with its authenticated and unauthenticated "
            f"roles, and a web app client; this auth resource lacks {', '.join(missing)} (a user pool "
            "alone is the open request aws-amplify/amplify-backend#2252)"
        )
    head = "".join(f"// {_one_line(line)}\n" for line in comment.splitlines() if line.strip())
    fields = (
        ("userPoolId", user_pool_id),
        ("userPoolClientId", user_pool_client_id),
        ("identityPoolId", identity_pool_id),
        ("authRoleArn", auth_role_arn),
        ("unauthRoleArn", unauth_role_arn),
    )
    body = "".join(f"  {key}: {json.dumps(value)},\n" for key, value in fields)
    return (
        head
        + "import { referenceAuth } from '@aws-amplify/backend';\n\n"
        + "export const auth = referenceAuth({\n"
        + body
        + "});\n"
    )


def gen2(view: AuthView, source: Source) -> str:
    """``amplify/auth/resource.ts`` for one auth resource (:func:`gen2_resource_ts`)."""
    pools = view.pools
    identity = pools.identity_pool
    client = pools.web_client
    comment = (
        f"Generated by `backendauth-operator export --to gen2` from {source}.\n"
        "The pools stay as they are in Cognito: referenceAuth refers to them by id and changes nothing."
    )
    return gen2_resource_ts(
        user_pool_id=pools.user_pool.id,
        user_pool_client_id=client.id if client else "",
        identity_pool_id=identity.id if identity else None,
        auth_role_arn=identity.auth_role_arn if identity else None,
        unauth_role_arn=identity.unauth_role_arn if identity else None,
        comment=comment,
    )
