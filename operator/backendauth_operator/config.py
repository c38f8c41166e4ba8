"""Operator configuration from the environment, read once at start-up (the docs' configuration
reference, docs/reference/configuration.md, is generated from this class)."""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _object_name(default: str, variable: str) -> Any:
    """A setting that names a Kubernetes object (a DNS subdomain), read from ``variable``."""
    return Field(
        default, validation_alias=variable, min_length=1, max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )  # fmt: skip


class Settings(BaseSettings):
    """What the operator is told by its environment. Kept in Kopf's ``memo``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    default_region: str | None = Field(
        None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"), min_length=1
    )
    aws_endpoint_url: str | None = Field(None, validation_alias="BACKENDAUTH_AWS_ENDPOINT_URL")
    job_poll_seconds: float = Field(
        10.0, gt=0, allow_inf_nan=False, validation_alias="BACKENDAUTH_JOB_POLL_SECONDS"
    )
    retry_base_seconds: float = Field(
        5.0, gt=0, allow_inf_nan=False, validation_alias="BACKENDAUTH_RETRY_BASE_SECONDS"
    )
    retry_max_seconds: float = Field(
        300.0, gt=0, allow_inf_nan=False, validation_alias="BACKENDAUTH_RETRY_MAX_SECONDS"
    )
    aws_max_rps: float = Field(
        5.0, gt=0, le=1000, allow_inf_nan=False, validation_alias="BACKENDAUTH_AWS_MAX_RPS"
    )
    resync_seconds: float = Field(
        600.0, ge=0, allow_inf_nan=False, validation_alias="BACKENDAUTH_RESYNC_SECONDS"
    )
    resync_max_share: float = Field(
        0.5, gt=0, le=1, allow_inf_nan=False, validation_alias="BACKENDAUTH_RESYNC_MAX_SHARE"
    )
    job_timeout_seconds: float = Field(
        3600.0, gt=0, allow_inf_nan=False, validation_alias="BACKENDAUTH_JOB_TIMEOUT_SECONDS"
    )
    lease_namespace: str | None = Field(
        None,
        validation_alias=AliasChoices("BACKENDAUTH_LEASE_NAMESPACE", "POD_NAMESPACE"),
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )
    account_map: str = _object_name("backendauth-role-account-map", "BACKENDAUTH_ACCOUNT_MAP")
    metrics_port: int = Field(9090, ge=0, le=65535, validation_alias="BACKENDAUTH_METRICS_PORT")
    default_deletion_policy: Literal["Retain", "Delete"] = Field(
        "Retain", validation_alias="BACKENDAUTH_DEFAULT_DELETION_POLICY"
    )
    pod_name: str | None = Field(None, validation_alias="POD_NAME", min_length=1, max_length=253)
    leader_election: bool = Field(True, validation_alias="BACKENDAUTH_LEADER_ELECTION")
    leader_lease: str = _object_name("backendauth-operator-leader", "BACKENDAUTH_LEADER_LEASE")
    lease_duration_seconds: float = Field(
        15.0, gt=0, allow_inf_nan=False, validation_alias="BACKENDAUTH_LEASE_DURATION_SECONDS"
    )
    renew_deadline_seconds: float = Field(
        10.0, gt=0, allow_inf_nan=False, validation_alias="BACKENDAUTH_RENEW_DEADLINE_SECONDS"
    )
    retry_period_seconds: float = Field(
        2.0, gt=0, allow_inf_nan=False, validation_alias="BACKENDAUTH_RETRY_PERIOD_SECONDS"
    )

    @model_validator(mode="after")
    def _max_not_below_base(self) -> Settings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("BACKENDAUTH_RETRY_MAX_SECONDS must not be below BACKENDAUTH_RETRY_BASE_SECONDS")
        # client-go's rules: a leader gives up before its Lease can be taken, and tries to
        # renew more than once before giving up.
        if self.renew_deadline_seconds >= self.lease_duration_seconds:
            raise ValueError(
                "BACKENDAUTH_RENEW_DEADLINE_SECONDS must be below BACKENDAUTH_LEASE_DURATION_SECONDS"
            )
        if self.retry_period_seconds * 1.2 >= self.renew_deadline_seconds:
            raise ValueError(
                "BACKENDAUTH_RETRY_PERIOD_SECONDS must be below BACKENDAUTH_RENEW_DEADLINE_SECONDS / 1.2"
            )
        return self


def _first_name(alias: object) -> str | None:
    if isinstance(alias, AliasChoices):
        first = alias.choices[0]
        return first if isinstance(first, str) else None
    return alias if isinstance(alias, str) else None


# Each field's environment variable, read from its validation alias: the one source.
_ENV_NAMES = {
    name: env
    for name, field in Settings.model_fields.items()
    if (env := _first_name(field.validation_alias)) is not None
}


def _env_name(field: str) -> str:
    if field in ("default_region", "AWS_REGION") and os.environ.get("AWS_REGION") is None:
        return "AWS_DEFAULT_REGION"  # the one that was actually set
    return _ENV_NAMES.get(field, field)


def operator_identity(settings: Settings) -> str:
    """This process's name among operators: ``POD_NAME`` (deploy/ sets it from the pod's name),
    else the hostname plus a random suffix, so that two processes on one host never share one.

    Never the user name: a container runs as a uid with no passwd entry (65532 in deploy/), and
    a user lookup there raises instead of answering."""
    if settings.pod_name:
        return settings.pod_name
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"


class ConfigError(Exception):
    """Bad configuration: one line naming the variable."""


def load_settings() -> Settings:
    """Read the settings from the environment; raise :class:`ConfigError` with one clear line."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        loc = [str(part) for part in first["loc"]]
        names = [_env_name(part) for part in loc] or ["configuration"]
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid {'.'.join(names)}: {message}") from None
