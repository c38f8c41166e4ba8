# ruff: noqa: E501  (the table reads best one row to a line)
"""``spec.import`` in the models: each rule refused by the operator's own check with the field
named, and written once for the CRD as the same CEL rule (``import`` is a CEL keyword: the CRD's
rules spell it ``__import__``, as the API server escapes it)."""

from __future__ import annotations

from typing import Any

import pytest

from backendauth_operator.commands.crd import build_crd
from backendauth_operator.core.models import InvalidSpecError, import_backend_auth_kwargs, parse_spec
from specs import minimal_spec

IDS = {
    "userPoolId": "eu-west-1_AbCdEf123",
    "webClientId": "1example23456789",
    "nativeClientId": "2example2345",
}
CM = {"configMapKeyRef": {"name": "pools", "key": "nativeClientId"}}
SECRET = {"secretKeyRef": {"name": "pools-connection", "key": "identityPoolId"}}


def importing(**ids: Any) -> dict[str, Any]:
    return {"appId": "d1a2b3c4d5e6f7", "backendEnvironmentName": "staging", "import": {**IDS, **ids}}


def refused(spec: dict[str, Any]) -> str:
    with pytest.raises(InvalidSpecError) as error:
        parse_spec(spec)
    return str(error.value)


def test_an_import_of_literals_and_references_parses() -> None:
    ids = {k: v for k, v in IDS.items() if k != "nativeClientId"}
    spec = parse_spec(
        {**importing(), "import": {**ids, "nativeClientIdFrom": CM, "identityPoolIdFrom": SECRET}}
    )
    assert spec.import_ is not None and spec.resource_config is None and spec.resource_name is None
    assert spec.import_.literal("userPoolId") == IDS["userPoolId"]
    source = spec.import_.source("nativeClientId")
    assert source is not None and source.config_map_key_ref is not None
    assert spec.secret_refs() == []  # an import's ids are read at each step, not as call secrets


def test_the_import_request_carries_the_ids_given() -> None:
    spec = parse_spec(importing())
    assert import_backend_auth_kwargs(spec, IDS) == {
        "AppId": "d1a2b3c4d5e6f7", "BackendEnvironmentName": "staging", "UserPoolId": IDS["userPoolId"],
        "WebClientId": IDS["webClientId"], "NativeClientId": IDS["nativeClientId"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({**minimal_spec(), "import": IDS}, "spec.import", "exactly one of resourceConfig and import"),
        ({"appId": "abc", "backendEnvironmentName": "dev"}, "spec.import", "exactly one of resourceConfig"),
        ({**importing(), "resourceName": "named"}, "spec.resourceName", "not given with import"),
        ({k: v for k, v in minimal_spec().items() if k != "resourceName"}, "spec.resourceName", "required"),
        (importing(userPoolIdFrom=CM), "spec.import.userPoolIdFrom", "exactly one of userPoolId and userPoolIdFrom"),
        ({**importing(), "import": {k: v for k, v in IDS.items() if k != "webClientId"}},
         "spec.import.webClientIdFrom", "exactly one of webClientId and webClientIdFrom"),
        (importing(identityPoolId="eu-west-1:0000-1111", identityPoolIdFrom=SECRET),
         "spec.import.identityPoolIdFrom", "at most one of identityPoolId and identityPoolIdFrom"),
        ({**importing(), "import": {**{k: v for k, v in IDS.items() if k != "nativeClientId"},
                                    "nativeClientIdFrom": {**CM, **SECRET}}},
         "spec.import.nativeClientIdFrom.secretKeyRef", "exactly one of configMapKeyRef and secretKeyRef"),
        (importing(userPoolId="not-a-pool"), "spec.import.userPoolId", "Cognito user pool id"),
        (importing(identityPoolId="nope"), "spec.import.identityPoolId", "identity pool id"),
        (importing(unknown="x"), "spec.import.unknown", "unknown field"),
    ],
)  # fmt: skip
def test_the_operator_refuses_what_the_crd_refuses_naming_the_field(
    spec: dict[str, Any], field: str, words: str
) -> None:
    message = refused(spec)
    assert f"{field}: " in message and words in message, message


def test_the_crd_carries_the_rules_with_import_escaped() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {r["rule"]: (r["message"], r.get("fieldPath")) for r in schema["x-kubernetes-validations"]}
    assert rules["has(self.__import__) != has(self.resourceConfig)"][1] == ".import"
    assert rules["!has(self.__import__) || !has(self.resourceName)"][1] == ".resourceName"
    assert rules["has(self.__import__) == has(oldSelf.__import__)"][1] == ".import"
    assert "resourceName" not in schema.get("required", []) and "resourceConfig" not in schema.get(
        "required", []
    )
    ids = schema["properties"]["import"]
    assert {r["fieldPath"] for r in ids["x-kubernetes-validations"]} == {
        ".userPoolIdFrom", ".webClientIdFrom", ".nativeClientIdFrom", ".identityPoolIdFrom",
    }  # fmt: skip
