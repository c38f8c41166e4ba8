"""Configuration from the environment: defaults, regions, and one clear line per mistake."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from backendauth_operator.config import ConfigError, Settings, load_settings, operator_identity

VARIABLES = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "BACKENDAUTH_AWS_ENDPOINT_URL",
    "BACKENDAUTH_JOB_POLL_SECONDS",
    "BACKENDAUTH_RETRY_BASE_SECONDS",
    "BACKENDAUTH_RETRY_MAX_SECONDS",
    "BACKENDAUTH_DEFAULT_DELETION_POLICY",
    "BACKENDAUTH_JOB_TIMEOUT_SECONDS",
    "BACKENDAUTH_RESYNC_MAX_SHARE",
    "BACKENDAUTH_LEASE_NAMESPACE",
    "POD_NAMESPACE",
    "POD_NAME",
)
NUMERIC = (
    "BACKENDAUTH_JOB_POLL_SECONDS",
    "BACKENDAUTH_RETRY_BASE_SECONDS",
    "BACKENDAUTH_RETRY_MAX_SECONDS",
    "BACKENDAUTH_JOB_TIMEOUT_SECONDS",
    "BACKENDAUTH_RESYNC_MAX_SHARE",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable the settings read, in any letter case (pydantic-settings ignores case)."""
    for name in list(os.environ):
        if name.upper() in VARIABLES:
            monkeypatch.delenv(name)


def config_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    text = str(raised.value)
    assert "\n" not in text, text
    assert text.strip() == text and text
    return text


# ---- values ------------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = load_settings()
    assert settings.job_poll_seconds == 10
    assert settings.retry_base_seconds == 5
    assert settings.retry_max_seconds == 300
    assert settings.default_deletion_policy == "Retain"
    assert settings.default_region is None
    assert settings.aws_endpoint_url is None
    assert settings.resync_max_share == 0.5


def test_aws_region_sets_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert load_settings().default_region == "eu-west-1"


def test_aws_default_region_sets_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    assert load_settings().default_region == "us-east-2"


def test_aws_region_wins_over_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert load_settings().default_region == "eu-west-1"


def test_endpoint_url_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKENDAUTH_AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert load_settings().aws_endpoint_url == "http://127.0.0.1:4566"


def test_numbers_and_policy_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKENDAUTH_JOB_POLL_SECONDS", "2.5")
    monkeypatch.setenv("BACKENDAUTH_RETRY_BASE_SECONDS", "1")
    monkeypatch.setenv("BACKENDAUTH_RETRY_MAX_SECONDS", "60")
    monkeypatch.setenv("BACKENDAUTH_DEFAULT_DELETION_POLICY", "Delete")
    settings = load_settings()
    numbers = (settings.job_poll_seconds, settings.retry_base_seconds, settings.retry_max_seconds)
    assert numbers == (2.5, 1, 60)
    assert settings.default_deletion_policy == "Delete"


def test_retry_max_equal_to_base_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKENDAUTH_RETRY_BASE_SECONDS", "7")
    monkeypatch.setenv("BACKENDAUTH_RETRY_MAX_SECONDS", "7")
    settings = load_settings()
    assert settings.retry_base_seconds == settings.retry_max_seconds == 7


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError):
        settings.job_poll_seconds = 1  # type: ignore[misc]


def test_settings_accept_field_names_for_tests() -> None:
    settings = Settings(job_poll_seconds=0.1, retry_base_seconds=0.2, retry_max_seconds=0.4)
    numbers = (settings.job_poll_seconds, settings.retry_base_seconds, settings.retry_max_seconds)
    assert numbers == (0.1, 0.2, 0.4)


# ---- mistakes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", NUMERIC)
@pytest.mark.parametrize("value", ["abc", "10s", "", "five"])
def test_non_number_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    text = config_error(monkeypatch, **{variable: value})
    assert variable in text
    assert "number" in text


@pytest.mark.parametrize("variable", NUMERIC)
@pytest.mark.parametrize("value", ["0", "-1", "-0.5", "nan"])
def test_zero_negative_or_nan_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    text = config_error(monkeypatch, **{variable: value})
    assert variable in text


@pytest.mark.parametrize("value", ["1.01", "2", "50%"])
def test_a_resync_share_above_one_or_not_a_number_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    assert "BACKENDAUTH_RESYNC_MAX_SHARE" in config_error(monkeypatch, BACKENDAUTH_RESYNC_MAX_SHARE=value)


def test_the_whole_pace_may_go_to_resyncs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKENDAUTH_RESYNC_MAX_SHARE", "1")
    assert load_settings().resync_max_share == 1.0


def test_only_the_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    text = config_error(monkeypatch, BACKENDAUTH_RETRY_BASE_SECONDS="x", BACKENDAUTH_JOB_POLL_SECONDS="3")
    assert "BACKENDAUTH_RETRY_BASE_SECONDS" in text
    assert "BACKENDAUTH_JOB_POLL_SECONDS" not in text


@pytest.mark.parametrize("value", ["delete", "Orphan", "", "retain "])
def test_bad_deletion_policy_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    text = config_error(monkeypatch, BACKENDAUTH_DEFAULT_DELETION_POLICY=value)
    assert "BACKENDAUTH_DEFAULT_DELETION_POLICY" in text
    assert "Retain" in text and "Delete" in text


def test_retry_max_below_base_names_the_max(monkeypatch: pytest.MonkeyPatch) -> None:
    text = config_error(monkeypatch, BACKENDAUTH_RETRY_BASE_SECONDS="10", BACKENDAUTH_RETRY_MAX_SECONDS="5")
    assert "BACKENDAUTH_RETRY_MAX_SECONDS" in text
    assert "Value error" not in text


def test_default_max_below_a_large_base_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    text = config_error(monkeypatch, BACKENDAUTH_RETRY_BASE_SECONDS="600")
    assert "BACKENDAUTH_RETRY_MAX_SECONDS" in text


def test_empty_aws_region_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    text = config_error(monkeypatch, AWS_REGION="")
    assert "AWS_REGION" in text


def test_empty_aws_default_region_is_named_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "AWS_DEFAULT_REGION" in str(caught.value)


@pytest.mark.parametrize("variable", NUMERIC)
@pytest.mark.parametrize("value", ["inf", "1e400"])
def test_infinite_interval_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    if variable == "BACKENDAUTH_RETRY_BASE_SECONDS":
        # Otherwise the "max below base" check refuses it, for another reason.
        monkeypatch.setenv("BACKENDAUTH_RETRY_MAX_SECONDS", "inf")
    text = config_error(monkeypatch, **{variable: value})
    assert variable in text


# ---- the command -------------------------------------------------------------------------------


def test_run_with_bad_configuration_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in VARIABLES}
    env["BACKENDAUTH_JOB_POLL_SECONDS"] = "abc"
    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")  # never reach a cluster, whatever happens
    done = subprocess.run(
        [sys.executable, "-m", "backendauth_operator.commands.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "BACKENDAUTH_JOB_POLL_SECONDS" in lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_job_timeout_defaults_to_an_hour() -> None:
    assert load_settings().job_timeout_seconds == 3600


def test_lease_namespace_from_its_variable_or_the_pods_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().lease_namespace is None
    monkeypatch.setenv("POD_NAMESPACE", "backendauth-system")
    assert load_settings().lease_namespace == "backendauth-system"
    monkeypatch.setenv("BACKENDAUTH_LEASE_NAMESPACE", "leases")
    assert load_settings().lease_namespace == "leases"


def test_identity_is_the_pod_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "backendauth-operator-7d9f-abcde")
    assert operator_identity(load_settings()) == "backendauth-operator-7d9f-abcde"


def test_identity_without_a_pod_name_is_the_host_and_never_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user lookup: a container's uid may have no passwd entry (the image runs as 65532)."""

    def no_user(*_: object) -> None:
        raise KeyError("getpwuid(): uid not found: 65532")

    monkeypatch.setattr("pwd.getpwuid", no_user)
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("LOGNAME", raising=False)
    first, second = operator_identity(load_settings()), operator_identity(load_settings())
    assert first.startswith(socket.gethostname() + "-")
    assert first != second


@pytest.mark.parametrize("value", ["Not_A_Namespace", "", "-x"])
def test_a_lease_namespace_that_is_no_namespace_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    assert "BACKENDAUTH_LEASE_NAMESPACE" in config_error(monkeypatch, BACKENDAUTH_LEASE_NAMESPACE=value)


def test_connection_pools_hold_one_connection_per_handler_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubernetes and AWS calls come from at most HANDLER_THREADS threads at once; neither
    client's pool may be smaller (the kubernetes client's default follows the CPU count)."""
    import kubernetes

    from backendauth_operator.runtime.runner import HANDLER_THREADS, build_context
    from backendauth_testbed.sandbox.kubeconfig import write_kubeconfig

    # The kubernetes package reads KUBECONFIG once, at import.
    kubeconfig = str(write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1"))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    ctx = build_context(Settings())
    assert ctx.kube.api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] == HANDLER_THREADS
    for client in (ctx.clients.reading("eu-west-1"), ctx.clients.mutating("eu-west-1")):
        assert client.meta.config.max_pool_connections == HANDLER_THREADS
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}, "merged, not replaced"
