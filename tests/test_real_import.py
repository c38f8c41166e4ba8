"""``spec.import`` on a real kube-apiserver (``tests/real_apiserver.py``): the CRD's CEL rules
(``import`` is a CEL keyword, which the rules spell ``__import__``) refuse what the operator
refuses, with the field named; and the operator, with the simulator, links pools whose ids come
from a ConfigMap and a Secret, also under deploy/'s RBAC."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from harness import backendauth, secret
from real_apiserver import RealBed, RealCluster
from sim import mutating_calls, seed_pools
from specs import minimal_spec
from test_real_rbac import RbacSetup, rbac  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.real_apiserver, pytest.mark.integration]

IDS = {
    "userPoolId": "eu-west-1_AbCdEf123",
    "webClientId": "1example23456789",
    "nativeClientId": "2example2345",
}


def importing(ids: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"appId": "d1a2b3c4d5e6f7", "backendEnvironmentName": "staging", "import": ids or IDS, **extra}


def applied(real: RealCluster, namespace: str, name: str, spec: dict[str, Any]) -> Any:
    manifest = {**backendauth(name, spec), "metadata": {"name": name, "namespace": namespace}}
    return real.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({**minimal_spec(), "import": IDS}, "spec.import", "exactly one of resourceConfig and import"),
        (importing(resourceName="named"), "spec.resourceName", "resourceName is not given with import"),
        (importing({**IDS, "userPoolIdFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
         "spec.import.userPoolIdFrom", "exactly one of userPoolId and userPoolIdFrom"),
        (importing({**IDS, "nativeClientIdFrom": {"configMapKeyRef": {"name": "c", "key": "k"},
                                                  "secretKeyRef": {"name": "s", "key": "k"}}}),
         "spec.import.nativeClientIdFrom", "exactly one"),
        ({k: v for k, v in minimal_spec().items() if k != "resourceName"}, "spec.resourceName",
         "resourceName is required with resourceConfig"),
    ],
)  # fmt: skip
def test_the_api_server_refuses_naming_the_field(
    real_cluster: RealCluster, real_namespace: str, spec: dict[str, Any], field: str, words: str
) -> None:
    result = applied(real_cluster, real_namespace, "refused", spec)
    assert result.returncode != 0
    assert field in result.stderr and words in result.stderr, result.stderr


def test_an_import_is_stored_as_written_and_cannot_become_a_create(
    real_cluster: RealCluster, real_namespace: str
) -> None:
    spec = importing(
        {**IDS, "identityPoolIdFrom": {"configMapKeyRef": {"name": "pools", "key": "identityPoolId"}}}
    )
    result = applied(real_cluster, real_namespace, "linked", spec)
    assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr
    stored = real_cluster.get_json("backendauth", "linked", "-n", real_namespace)
    assert stored["spec"] == spec
    changed = {k: v for k, v in minimal_spec().items() if k != "resourceName"}
    result = applied(real_cluster, real_namespace, "linked", {**changed, "resourceName": "linked"})
    assert result.returncode != 0
    assert (
        "spec.import" in result.stderr and "cannot change between import and resourceConfig" in result.stderr
    )


def pools_objects(pools: dict[str, Any]) -> list[dict[str, Any]]:
    configmap = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pools", "namespace": "default"},
        "data": {"userPoolId": pools["userPoolId"], "webClientId": pools["clients"]["web"]},
    }  # fmt: skip
    return [configmap, secret("pools-connection", {"nativeClientId": pools["clients"]["native"]})]


REFERENCED = {
    "userPoolIdFrom": {"configMapKeyRef": {"name": "pools", "key": "userPoolId"}},
    "webClientIdFrom": {"configMapKeyRef": {"name": "pools", "key": "webClientId"}},
    "nativeClientIdFrom": {"secretKeyRef": {"name": "pools-connection", "key": "nativeClientId"}},
}


def linked_from_references(bed: RealBed) -> None:
    pools = seed_pools(bed, region="eu-west-1")
    bed.apply(
        *pools_objects(pools), backendauth("referenced", importing(REFERENCED, deletionPolicy="Delete"))
    )
    obj = bed.wait_reason("referenced", "JobCompleted", status="True", timeout=60)
    assert obj["status"]["operation"] == "ImportBackendAuth" and obj["status"]["resourceName"]
    assert obj["status"]["outputs"]["appClientId"] == pools["clients"]["native"]
    assert bed.count("ImportBackendAuth") == 1
    bed.kubectl("delete", "backendauth", "referenced", "--timeout=60s")
    assert bed.count("DeleteBackendAuth") == 1
    assert [c for c in mutating_calls(bed) if c["service"] != "amplifybackend"] == []


def test_ids_from_a_configmap_and_a_secret_on_the_real_api_server(real_bed: RealBed) -> None:
    linked_from_references(real_bed)


def test_ids_from_a_configmap_under_deploys_rbac(
    rbac: RbacSetup,  # noqa: F811
    make_real_bed: Callable[..., RealBed],
) -> None:
    linked_from_references(rbac.run_as_service_account(make_real_bed))
