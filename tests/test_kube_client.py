"""The operator's Kubernetes client: its credentials hook runs at most once a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
import yaml

from backendauth_operator.kube.client import throttle_refresh


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """As the kubernetes client's config loaders do: the hook sets the token and installs
    itself again each time it runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.token = "first"

    def hook(self, configuration: Any) -> None:
        self.runs += 1
        configuration.api_key["BearerToken"] = self.token
        configuration.refresh_api_key_hook = self.hook


def test_the_credentials_hook_runs_at_most_once_a_second_and_stays_throttled() -> None:
    configuration, loader, clock = kubernetes.client.Configuration(), Loader(), Clock()
    configuration.refresh_api_key_hook = loader.hook
    throttle_refresh(configuration, seconds=1.0, clock=clock)
    for _ in range(50):  # fifty requests within the second: one refresh
        assert configuration.get_api_key_with_prefix("BearerToken") == "first"
    assert loader.runs == 1
    loader.token = "second"
    clock.now += 0.5
    assert configuration.get_api_key_with_prefix("BearerToken") == "first"
    clock.now += 0.6  # a second after the last refresh: the new token is taken
    assert configuration.get_api_key_with_prefix("BearerToken") == "second"
    assert loader.runs == 2
    clock.now += 0.1  # the loader installed its own hook again; the throttle is still in front
    configuration.get_api_key_with_prefix("BearerToken")
    assert loader.runs == 2


def test_a_kubeconfig_token_reaches_each_request_through_the_throttled_hook(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }))  # fmt: skip
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    throttle_refresh(configuration)
    for _ in range(3):
        assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer t0ken"
    assert configuration.host == "https://127.0.0.1:6443"


def test_a_configuration_without_a_hook_is_left_alone() -> None:
    configuration = kubernetes.client.Configuration()
    throttle_refresh(configuration)
    assert configuration.refresh_api_key_hook is None
